/**
 * Where a full fine-tune step of a Hugging Face checkpoint goes, kernel by kernel (#17; the
 * methods suite's bf16 row on a model of the same widths with fewer layers, make-models.py
 * --layers N):
 *
 *   OPENBLAS_CORETYPE=SkylakeX npx tsx scripts/memory/profile-full-step.ts DIR [fp32|bf16] [reps]
 *
 * As bench/suites/memory-child.ts's `full` phase with --checkpoint: the model loaded as the
 * trainers load it (Trainable, AdamW, gradient checkpointing) on the cpu backend, 1 × 256 tokens,
 * one warm-up step, `reps` timed steps (wall and process CPU), then one forward + backward under
 * `tf.profile`: each kernel's summed `kernelTimeMs` by name and by name and input shapes (a custom
 * gradient's forward shows as an `unnamed scope` that contains the kernels it ran, left out of the
 * total). The step minus the forward + backward is the gradient norm and the AdamW update.
 */
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { lmLoss } from '../../src/policy/index.js';
import { resolveModelSource } from '../../src/policy/source.js';
import { Trainable } from '../../src/policy/trainable.js';

const [dir, precision = 'bf16', repsArg = '2'] = process.argv.slice(2);
if (!dir || !['fp32', 'bf16'].includes(precision)) {
  process.stderr.write('usage: profile-full-step.ts DIR [fp32|bf16] [reps]\n');
  process.exit(2);
}
const [B, T] = [1, 256];
await startRuntime({ backend: 'cpu', precision: precision as 'fp32' | 'bf16' });
const t = await Trainable.create(
  {
    model: { source: await resolveModelSource(dir) },
    optimizer: { lr: 1e-5 },
    gradientCheckpointing: true,
  },
  'bench',
);
const model = t.model;
let s = 1;
const token = () => {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return (s >>> 0) % model.config.vocabSize;
};
const batch = {
  ids: Int32Array.from({ length: B * T }, token),
  mask: new Uint8Array(B * T).fill(1),
  batch: B,
  length: T,
} as Parameters<typeof lmLoss>[1];
const say = (line: string) => process.stdout.write(`${line}\n`);

/** Minor page faults so far (fresh memory touched: each first write to a 4 KiB page). */
const faults = () => process.resourceUsage().minorPageFault;
const faulted: number[] = [];
async function timed(f: () => Promise<unknown>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const f0 = faults();
  const t0 = performance.now();
  await f();
  const cpu = process.cpuUsage(c0);
  faulted.push(faults() - f0);
  return [performance.now() - t0, (cpu.user + cpu.system) / 1000];
}
let n = 0;
const step = () =>
  t.step([() => ({ loss: lmLoss(model, batch, { checkpoint: true }).loss, weight: 1 })], 1e-5, ++n);
const vars = [...model.params.values()].filter((v) => v.trainable);
const fwdBwd = async () => {
  const { value, grads } = tf.variableGrads(
    () => lmLoss(model, batch, { checkpoint: true }).loss,
    vars,
  );
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
};
const fmt = (xs: [number, number][]) =>
  `wall ${xs.map(([w]) => w.toFixed(0)).join(' ')} ms, CPU ${xs.map(([, u]) => u.toFixed(0)).join(' ')} ms`;

const warm = await timed(step);
say(`${dir} ${precision}, ${B}×${T} tokens, warm-up step ${fmt([warm])}`);
const steps: [number, number][] = [];
for (let i = 0; i < Number(repsArg); i++) steps.push(await timed(step));
const best = Math.min(...steps.map(([w]) => w));
say(`trainer step: ${fmt(steps)} (best ${((B * T) / (best / 1000)).toFixed(1)} tokens/s)`);
say(`fwd + bwd:    ${fmt([await timed(fwdBwd)])}`);
say(
  `minor page faults: ${faulted.map((n) => `${(n / 1000).toFixed(0)}k`).join(' ')} (warm-up, steps, fwd + bwd)`,
);
const prof = await tf.profile(fwdBwd);
const byShape = new Map<string, number>();
const byName = new Map<string, number>();
const calls = new Map<string, number>();
for (const k of prof.kernels) {
  const ms = await (k.kernelTimeMs as number | Promise<number>);
  const key = `${k.name} ${JSON.stringify(k.inputShapes?.slice(0, 3))}`;
  byShape.set(key, (byShape.get(key) ?? 0) + ms);
  byName.set(k.name, (byName.get(k.name) ?? 0) + ms);
  calls.set(key, (calls.get(key) ?? 0) + 1);
  calls.set(k.name, (calls.get(k.name) ?? 0) + 1);
}
const total = [...byName].reduce((a, [name, ms]) => a + (name === 'unnamed scope' ? 0 : ms), 0);
const line = (k: string, ms: number) =>
  say(
    `${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / total).toFixed(1).padStart(5)} % ${String(calls.get(k)).padStart(5)}×  ${k}`,
  );
say(`\nfwd + bwd under tf.profile, ${total.toFixed(0)} ms of kernels (unnamed scopes left out):`);
const rows = Number(process.env.TROUPE_PROFILE_ROWS ?? 30);
for (const [k, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, rows)) line(k, ms);
say('\nby kernel and input shapes:');
for (const [k, ms] of [...byShape].sort((a, b) => b[1] - a[1]).slice(0, rows)) line(k, ms);
