/**
 * What one tfjs kernel call costs outside its kernel on wasm (#16 item 8: the GRPO update runs
 * ~1,400 of them): a Reshape, an Identity (what every saved tensor's clone runs) and a
 * [128]-float Add, each called N times (no gradient tape), warm; the best of two runs.
 *
 *   npx tsx scripts/dispatch-cost.ts [N = 20000]
 */
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';

const N = Number(process.argv[2] ?? 20000);
await startRuntime({ backend: 'wasm' });
const x = tf.variable(tf.zeros([32, 32, 128]));
const small = tf.variable(tf.zeros([128]));
const cases: [string, () => void][] = [
  ['Reshape [32,32,128] -> [1024,128]', () => tf.reshape(x, [1024, 128])],
  ['Identity (clone)', () => tf.clone(x)],
  ['Add [128] + [128]', () => tf.add(small, small)],
];
const time = (f: () => void) => {
  const t0 = performance.now();
  tf.tidy(() => {
    for (let i = 0; i < N; i++) f();
  });
  return ((performance.now() - t0) * 1000) / N;
};
for (const [name, f] of cases) {
  time(f); // warm-up
  const plain = Math.min(time(f), time(f));
  process.stdout.write(`${name.padEnd(36)} ${plain.toFixed(2)} µs a call (no tape)\n`);
}
