/**
 * Where a bf16 generation's time goes (#17 item 4):
 *
 *   TROUPE_BLAS_THREADS=1 npx tsx bench/profile-generate.ts [small|gpt2|grpo] [batch] [reps] [--js-sampling] [--samples n]
 *
 * The bf16 suite's generate row (bench/suites/model-measure.ts: a model holding bf16 weights,
 * greedy, prompt 32, 64 new tokens, prefill included) on wasm with the native kernels, timed
 * `reps` times after a warm-up, with the wall time inside each native call the step makes
 * (decodeBlock: a decoder block; bf16LinearW: the LM head and the prefill's projections) summed
 * by wrapping the addon's functions; the rest is tfjs and JS between them (embedding, final norm,
 * sampling, the cache's bookkeeping). Prints tokens/s (median, min, max) and the shares.
 * --js-sampling samples in JavaScript (sampleTokenJs, as before native/sample.c): the same tokens.
 * `grpo` is the RL suite's GRPO generation instead (bench/suites/rl-grpo.ts: the tiny GPT-2 in
 * fp32, prompt 32, 32 new tokens sampled at temperature 1; batch 64 is its 8 prompts × 8). The
 * prompts are all distinct (each row prefilled) unless --samples n repeats each of batch/n prompts
 * n times, as GRPO's samples do (the prefill then runs once a prompt: `grpo 64 5 --samples 8` is
 * the bench job's generation). `ppo` is the RL suite's PPO generation (bench/suites/rl.ts: the
 * small model d 384, L 6, V 512 in fp32, prompt 32, 64 new tokens at temperature 1; batch 16).
 */

import { nativeKernels } from '../src/kernels/native.js';
import { RandomStream } from '../src/kernels/random.js';
import { startRuntime } from '../src/kernels/runtime.js';
import { holdBf16 } from '../src/policy/bf16.js';
import { gpt2Config } from '../src/policy/config.js';
import { CausalLM, generate } from '../src/policy/index.js';
import { bf16Cases } from './suites/model.js';
import { GRPO_JOB } from './suites/rl-grpo.js';
import { tokenStream } from './tokens.js';

const jsSampling = process.argv.includes('--js-sampling');
// --samples n: batch/n distinct prompts, each n times in a row (GRPO's samples of a prompt, whose
// prefill then runs once a prompt); default every prompt distinct
const samplesAt = process.argv.indexOf('--samples');
const samples = samplesAt > 0 ? Number(process.argv[samplesAt + 1]) : 1;
const [which = 'gpt2', batchArg = '8', repsArg = '5'] = process.argv
  .slice(2)
  .filter((a, i, all) => a !== '--js-sampling' && a !== '--samples' && all[i - 1] !== '--samples');
const B = Number(batchArg);
const reps = Number(repsArg);
if (
  !['small', 'gpt2', 'grpo', 'ppo'].includes(which) ||
  !(B >= 1) ||
  !(reps >= 1) ||
  !Number.isInteger(samples) ||
  samples < 1 ||
  B % samples !== 0
) {
  process.stderr.write(
    'usage: profile-generate.ts [small|gpt2|grpo|ppo] [batch] [reps] [--js-sampling] [--samples n (divides batch)]\n',
  );
  process.exit(2);
}
const grpo = which === 'grpo' || which === 'ppo';
await startRuntime({ backend: 'wasm', ...(grpo ? {} : { precision: 'bf16' as const }) });
const j = GRPO_JOB;
const c =
  which === 'ppo'
    ? {
        name: 'ppo small',
        config: gpt2Config({ vocabSize: 512, layers: 6, heads: 6, hidden: 384, maxPositions: 128 }),
        generate: { prompt: 32, newTokens: 64 },
      }
    : grpo
      ? {
          name: 'grpo tiny GPT-2',
          config: gpt2Config({
            vocabSize: 512,
            layers: j.layers,
            heads: j.heads,
            hidden: j.hidden,
            maxPositions: j.positions,
          }),
          generate: { prompt: 32, newTokens: j.newTokens },
        }
      : bf16Cases(false).find((x) => x.name === (which === 'gpt2' ? 'gpt2-124M' : 'small'))!;
const g = c.generate!;
const temperature = grpo ? 1 : 0;
const model = CausalLM.init(c.config, { seed: 1 });
if (!grpo) await holdBf16(model);

const native = nativeKernels();
if (!native.available) throw new Error(`profile-generate: no native addon: ${native.reason}`);
const spent = new Map<string, { ms: number; calls: number }>();
const addon = native.addon as unknown as Record<string, unknown>;
for (const name of [
  'decodeBlock',
  'bf16LinearW',
  'logSoftmaxPick',
  'sampleExpRow',
  'sampleExpRows',
  'decodeStep',
]) {
  const f = addon[name];
  if (name === 'decodeStep' && typeof f !== 'function') continue; // a build before it
  if (typeof f !== 'function') throw new Error(`profile-generate: the addon has no ${name}`);
  addon[name] = (...args: unknown[]) => {
    const t0 = performance.now();
    const r = (f as (...a: unknown[]) => unknown)(...args);
    // decodeBlock's prefill (T > 1 new tokens: dims[1]) apart from its decode steps
    const key = name === 'decodeBlock' && (args[0] as Int32Array)[1] > 1 ? 'decodeBlock T>1' : name;
    const s = spent.get(key) ?? { ms: 0, calls: 0 };
    s.ms += performance.now() - t0;
    s.calls++;
    spent.set(key, s);
    return r;
  };
}

// sampleToken looks for sampleExpRow at its first call: without it, it samples in JavaScript.
if (jsSampling) delete addon.sampleExpRow;

const token = tokenStream(c.config.vocabSize, 7);
const distinct = Array.from({ length: B / samples }, () => Array.from({ length: g.prompt }, token));
const prompts = distinct.flatMap((p) => Array.from({ length: samples }, () => p));
await generate(model, prompts, { maxNewTokens: 2, temperature: 0 });
spent.clear();
const runs: number[] = [];
const c0 = process.cpuUsage();
for (let i = 0; i < reps; i++) {
  const t0 = performance.now();
  const rng = RandomStream.of({ seed: 1, step: i, actor: 'generator', purpose: 'sample' });
  await generate(model, prompts, { maxNewTokens: g.newTokens, temperature, rng });
  runs.push(performance.now() - t0);
}
const cpu = process.cpuUsage(c0);
const total = runs.reduce((a, b) => a + b, 0);
const sorted = [...runs].sort((a, b) => a - b);
const rate = (ms: number) => (B * g.newTokens) / (ms / 1000);
const lines = [
  `${c.name} ${grpo ? 'fp32' : 'bf16'} generate b${B} (${B / samples} distinct prompts × ${samples}, prompt ${g.prompt}, ${g.newTokens} new), BLAS threads ${process.env.TROUPE_BLAS_THREADS ?? 'default'}, ${reps} reps`,
  `tokens/s median ${rate(sorted[sorted.length >> 1]).toFixed(1)} (min ${rate(sorted.at(-1)!).toFixed(1)}, max ${rate(sorted[0]).toFixed(1)}); process CPU / wall ${((cpu.user + cpu.system) / 1000 / total).toFixed(2)}`,
];
let inNative = 0;
for (const [name, s] of spent) {
  inNative += s.ms;
  lines.push(
    `  ${name.padEnd(16)} ${((100 * s.ms) / total).toFixed(1).padStart(5)} %  ${(s.ms / reps).toFixed(1)} ms/run  ${(s.calls / reps).toFixed(0)} calls/run  ${((1000 * s.ms) / s.calls).toFixed(0)} µs/call`,
  );
}
lines.push(`  rest (tfjs, JS)  ${((100 * (total - inNative)) / total).toFixed(1).padStart(5)} %`);
process.stdout.write(`${lines.join('\n')}\n`);
model.dispose();
