/**
 * A forward-only scoring pass's time and memory (#16 item 8, #17): what a frozen reference or
 * the policy's π_old pass runs on rollouts, with no gradient recorded.
 *
 *   OPENBLAS_CORETYPE=SkylakeX tbench npx tsx bench/profile-score.ts [grpo|v32k] [reps]
 *
 * grpo: the RL suite's GRPO job's tiny GPT-2 (bench/suites/rl-grpo.ts: V 512, d 128, 4 layers,
 * 4 heads) on its 64 rollouts of 64 tokens, scoring the 32 action columns (2048 rows);
 * v32k: the same model at a 32768-word vocabulary, 8 rows of 64 tokens, every next token scored
 * (504 rows; N·V = 16.5 M ≤ 2²⁵, so the head keeps its whole block). The model is built as the
 * roles build a frozen one (roles/models.ts frozenModel, fp32) on wasm with the native kernels.
 * Prints each pass's wall and process CPU ms (after a warm-up), the median, the wasm heap's peak
 * above what was live (each buffer once), and the same for the LM head alone on the pass's
 * hidden rows (`CausalLM.tokenLogProbs`). Wall times on a shared machine move with its load.
 */

import { frozenModel } from '../src/algorithms/roles/models.js';
import { rightPad } from '../src/data/batching/collate.js';
import { wasmTensorBytes } from '../src/kernels/backends/wasm.js';
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';
import { targetLogProbs } from '../src/policy/target-logprobs.js';
import { GRPO_JOB, grpoModelConfig } from './suites/rl-grpo.js';
import { tokenStream } from './tokens.js';

const [which = 'grpo', repsArg = '9'] = process.argv.slice(2);
const reps = Number(repsArg);
if (!['grpo', 'v32k'].includes(which) || !(Number.isInteger(reps) && reps >= 1)) {
  process.stderr.write('usage: profile-score.ts [grpo|v32k] [reps ≥ 1]\n');
  process.exit(2);
}
await startRuntime({ backend: 'wasm' });
const j = GRPO_JOB;
const V = which === 'grpo' ? 512 : 32768;
const [B, T, start] = which === 'grpo' ? [j.prompts * j.samples, 64, 64 - j.newTokens] : [8, 64, 1];
const config = grpoModelConfig(V);
const token = tokenStream(V);
const batch = rightPad(
  Array.from({ length: B }, () => Array.from({ length: T }, token)),
  0,
);
const model = await frozenModel({ config, seed: 1 });
const N = B * (T - start);
const r = (n: number) => tf.randomNormal([n, config.hidden], 0, 1, 'float32', 7);
const h = r(N);
const labels = tf.tensor1d(
  Array.from({ length: N }, (_, i) => (i * 7919) % V),
  'int32',
);

/** wall and process CPU ms of `f`, and the wasm peak above live in bytes */
async function timed(f: () => tf.Tensor): Promise<[number, number, number]> {
  const live = wasmTensorBytes({ reset: true })!.liveBytes;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const y = tf.tidy(f);
  await y.data();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  y.dispose();
  return [wall, (cpu.user + cpu.system) / 1000, wasmTensorBytes()!.peakBytes - live];
}
const score = () => targetLogProbs(model, batch, { start }).logp;
const head = () => model.tokenLogProbs(h, labels);
const say = (line: string) => process.stdout.write(`${line}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  say(
    `${which}: V ${V}, d ${config.hidden}, ${config.layers} layers, ${B}×${T} tokens, ${N} scored rows, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'unset'}`,
  );
  for (const [name, f] of [
    ['scoring pass', score],
    ['LM head only', head],
  ] as const) {
    await timed(f);
    const xs: [number, number, number][] = [];
    for (let i = 0; i < reps; i++) xs.push(await timed(f));
    say(
      `${name}: wall ${xs.map(([w]) => w.toFixed(1)).join(' ')} ms (median ${median(xs.map(([w]) => w)).toFixed(1)}), CPU median ${median(xs.map(([, c]) => c)).toFixed(1)} ms, wasm peak above live ${(xs[0][2] / 2 ** 20).toFixed(2)} MiB`,
    );
  }
} finally {
  tf.dispose([h, labels]);
  model.dispose();
}
