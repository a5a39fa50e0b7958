import { afterAll, describe, expect, it } from 'vitest';
import { installNativeAdd } from '../../src/kernels/custom/native-add.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { expectNoLeak, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/*
 * The native Add (native/fused.c add, src/kernels/custom/native-add.ts) replaces wasm's and cpu's
 * for two float32 tensors of one shape: every element must be the IEEE float32 sum the stock
 * kernel gives (subnormals kept, infinities and NaN as they are), at 1 and 2 threads, and every
 * other Add must still reach the stock kernel.
 */

const N = 70_007; // past the 2^15 elements it takes, odd (7 × 10,001)

/** a and b with normal values, subnormals and their sums, ±∞, NaN and signed zeros mixed in */
function operands(): [Float32Array, Float32Array] {
  const rng = RandomStream.of({ seed: 4, step: 0, actor: 'native-add' });
  const a = rng.normal(N, 0, 3);
  const b = rng.normal(N, 0, 3);
  const special = [1e-40, -1e-41, 1.4e-45, Infinity, -Infinity, Number.NaN, 0, -0, 3.4e38];
  for (let i = 0; i < N; i += 97) {
    a[i] = special[(i / 97) % special.length];
    b[i + 1] = special[(i / 97 + 3) % special.length];
  }
  for (let i = 5; i < N; i += 101) b[i] = -a[i] * (1 - 2 ** -20); // cancellation to tiny sums
  for (let i = 11; i < N; i += 89) [a[i], b[i]] = [1e-40, -3e-41]; // subnormal + subnormal
  return [a, b];
}

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

describe.skipIf(skip !== null)('native Add of one shape', () => {
  const saved = native.available ? native.addon.threads() : 1;
  afterAll(() => {
    if (native.available) native.addon.setThreads(saved);
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`${backend}: the stock kernel's IEEE sums bit for bit, at 1 and 2 threads`, async () => {
      await useBackend(backend);
      expect(installNativeAdd(backend)).toEqual([`${backend}:Add(native, one shape)`]);
      const [a, b] = operands();
      // the reference: the sum of each pair in float32 (Math.fround of the exact double sum)
      const want = Float32Array.from(a, (x, i) => Math.fround(x + b[i]));
      for (const threads of [1, 2]) {
        if (native.available) native.addon.setThreads(threads);
        const got = await expectNoLeak(async () => {
          const [ta, tb] = [tf.tensor(a, [7, N / 7]), tf.tensor(b, [7, N / 7])];
          const y = tf.add(ta, tb);
          const v = (await y.data()) as Float32Array;
          tf.dispose([ta, tb, y]);
          return v;
        });
        const [g, w] = [bits(got), bits(want)];
        let bad = -1;
        for (let i = 0; i < g.length && bad < 0; i++) {
          if (g[i] !== w[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) bad = i;
        }
        expect(
          bad < 0 ? 'same' : `[${bad}] ${a[bad]} + ${b[bad]} = ${got[bad]}, want ${want[bad]}`,
        ).toBe('same');
        expect(got.some((x, i) => x !== 0 && Math.abs(x) < 1.2e-38 && !Number.isNaN(want[i]))).toBe(
          true,
        );
      }
    });

    it(`${backend}: broadcasting, int32 and small tensors still add (the stock kernel)`, async () => {
      await useBackend(backend);
      installNativeAdd(backend);
      const m = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const row = tf.tensor1d([10, 20, 30]);
      expect(Array.from(await tf.add(m, row).data())).toEqual([11, 22, 33, 14, 25, 36]);
      const i = tf.tensor1d([1, 2, 3], 'int32');
      const sum = tf.add(i, i);
      expect(sum.dtype).toBe('int32');
      expect(Array.from(await sum.data())).toEqual([2, 4, 6]);
      const big = tf.ones([1 << 16]);
      const col = tf.ones([1]);
      expect((await tf.sum(tf.add(big, col)).data())[0]).toBe(2 * (1 << 16)); // broadcast, big
      tf.dispose([m, row, i, sum, big, col]);
    });
  }
});

describe.skipIf(skip !== null)(
  'native permuteRuns refuses what it cannot do, naming the argument',
  () => {
    it('a perm that moves the last axis, is no permutation, or views of the wrong length', () => {
      if (!native.available) return;
      const a = native.addon;
      const x = new Float32Array(24);
      const y = new Float32Array(24);
      const shape = Int32Array.from([2, 3, 4]);
      expect(() => a.permuteRuns(x, y, shape, Int32Array.from([0, 2, 1]))).toThrow(
        /perm.*last axis/,
      );
      expect(() => a.permuteRuns(x, y, shape, Int32Array.from([0, 0, 2]))).toThrow(
        /perm.*permutation/,
      );
      expect(() =>
        a.permuteRuns(x, new Float32Array(20), shape, Int32Array.from([1, 0, 2])),
      ).toThrow(/y/);
      a.permuteRuns(
        Float32Array.from({ length: 24 }, (_, i) => i),
        y,
        shape,
        Int32Array.from([1, 0, 2]),
      );
      // y[j, i, k] = x[i, j, k]
      expect(Array.from(y.subarray(0, 8))).toEqual([0, 1, 2, 3, 12, 13, 14, 15]);
    });
  },
);
