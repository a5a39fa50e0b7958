/**
 * A hash of the tokens and log-probabilities of the GRPO bench job's generations (the tiny GPT-2
 * of bench/suites/rl-grpo.ts in fp32 on wasm with the native kernels, 8 prompts × 8 samples of
 * 32 tokens at temperature 1, then 32 rows of 4 prompts × 8), to compare two builds' bits end to
 * end:  npx tsx scripts/generate-hash.ts   (run under each build; equal hashes: the same bits)
 */

import { grpoModelConfig, GRPO_JOB as j } from '../bench/suites/rl-grpo.js';
import { tokenStream } from '../bench/tokens.js';
import { RandomStream } from '../src/kernels/random.js';
import { startRuntime } from '../src/kernels/runtime.js';
import { CausalLM, generate } from '../src/policy/index.js';

await startRuntime({ backend: 'wasm' });
const config = grpoModelConfig();
const model = CausalLM.init(config, { seed: 1 });
const token = tokenStream(config.vocabSize, 7);
let hash = 0x811c9dc5;
const mix = (u: number) => {
  hash = Math.imul(hash ^ u, 16777619) >>> 0;
};
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
for (const [distinct, step] of [
  [8, 0],
  [4, 1],
  [8, 2],
] as const) {
  // prompts of 20-32 tokens (left-padded), each j.samples times in a row
  const prompts = Array.from({ length: distinct }, (_, i) =>
    Array.from({ length: 32 - ((i * 5) % 13) }, token),
  ).flatMap((p) => Array.from({ length: j.samples }, () => p));
  const rng = RandomStream.of({ seed: 1, step, actor: 'generator', purpose: 'sample' });
  const g = await generate(model, prompts, { maxNewTokens: j.newTokens, temperature: 1, rng });
  for (const [b, r] of g.responses.entries()) {
    for (const [i, t] of r.entries()) {
      mix(t);
      f64[0] = g.logprobs[b][i];
      mix(u32[0]);
      mix(u32[1]);
    }
  }
}
process.stdout.write(`generate hash ${hash.toString(16)}\n`);
model.dispose();
