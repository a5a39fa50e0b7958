/**
 * The reference's scoring of GRPO rollouts (bench/suites/rl-grpo.ts's job: groups of 8 samples
 * sharing a 32-token prompt, 32 response tokens) at several batch sizes, shared prefix on, to
 * see what of its time scales with rows:  npx tsx scripts/score-rows.ts [reps] [--profile B]
 */

import { GRPO_JOB, grpoModelConfig } from '../bench/suites/rl-grpo.js';
import { tokenStream } from '../bench/tokens.js';
import { frozenModel } from '../src/algorithms/roles/models.js';
import { rightPad } from '../src/data/batching/collate.js';
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';
import { targetLogProbs } from '../src/policy/target-logprobs.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

const reps = Number(process.argv[2] ?? 7);
const profileAt = process.argv.includes('--profile')
  ? Number(process.argv[process.argv.indexOf('--profile') + 1])
  : undefined;
await startRuntime({ backend: 'wasm' });
const j = GRPO_JOB;
const config = grpoModelConfig();
const model = await frozenModel({ config, seed: 1 });
const token = tokenStream(512);
const rowsOf = (groups: number) =>
  Array.from({ length: groups }, () => {
    const prompt = Array.from({ length: 32 }, token);
    return Array.from({ length: j.samples }, () => [
      ...prompt,
      ...Array.from({ length: 32 }, token),
    ]);
  }).flat();
for (const groups of [8, 4, 2, 1]) {
  const batch = rightPad(rowsOf(groups), 0);
  const run = async () => {
    const y = tf.tidy(() => targetLogProbs(model, batch, { start: 32, sharePrefix: true }).logp);
    await y.data();
    y.dispose();
  };
  await run();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  say(
    `B ${groups * j.samples}: median ${ms[ms.length >> 1].toFixed(1)} ms (min ${ms[0].toFixed(1)})`,
  );
  if (profileAt === groups * j.samples) {
    const p = await tf.profile(run);
    const by = new Map<string, number>();
    for (const k of p.kernels) by.set(k.name, (by.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    const total = [...by.values()].reduce((a, b) => a + b, 0);
    say(`  ${p.kernels.length} kernels, ${total.toFixed(1)} ms`);
    for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 12))
      say(`  ${v.toFixed(1).padStart(7)} ms ${k}`);
  }
}
