import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setCpuKernels, stridedCopy } from '../../src/kernels/custom/cpu-kernels.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { expectNoLeak, useBackend } from '../helpers/backends.js';
import { nativeSkip } from '../helpers/native.js';

/**
 * The cpu backend's strided-loop kernels (src/kernels/custom/cpu-kernels.ts) against tfjs' own
 * cpu kernels (an independent implementation: per-element index arithmetic) on seeded random
 * inputs, bit for bit (both compute the same float32 operations in the same order), and the
 * strided copy against a hand-computed case.
 */

function random(shape: number[], purpose: string): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = RandomStream.of({ seed: 3, step: 0, actor: 'cpu-kernels', purpose }).normal(n, 0, 1);
  return tf.tensor(v, shape, 'float32');
}

/** fn's outputs with the strided kernels, then with the stock ones. */
function both(fn: () => tf.Tensor): [Float32Array, Float32Array, number[]] {
  setCpuKernels(true);
  const a = tf.tidy(fn);
  setCpuKernels(false);
  const b = tf.tidy(fn);
  setCpuKernels(true);
  try {
    expect(a.shape).toEqual(b.shape);
    return [a.dataSync() as Float32Array, b.dataSync() as Float32Array, a.shape];
  } finally {
    tf.dispose([a, b]);
  }
}

function same(fn: () => tf.Tensor): void {
  const [ours, stock] = both(fn);
  expect(Array.from(ours)).toEqual(Array.from(stock));
}

describe('cpu backend strided kernels', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });
  afterAll(() => setCpuKernels(true));

  it('strided copy: a 2×3 transposed into 3×2', () => {
    const src = Float32Array.from([1, 2, 3, 4, 5, 6]); // [[1,2,3],[4,5,6]]
    const dst = new Float32Array(6);
    stridedCopy([3, 2], src, 0, [1, 3], dst, 0, [2, 1]);
    expect(Array.from(dst)).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('Transpose of rank 2 to 5, every kind of permutation', () => {
    const x4 = random([2, 3, 4, 5], 't4');
    for (const perm of [
      [0, 2, 1, 3],
      [0, 1, 3, 2],
      [3, 2, 1, 0],
      [1, 0, 2, 3],
    ]) {
      same(() => tf.transpose(x4, perm));
    }
    const x5 = random([2, 3, 1, 4, 3], 't5');
    same(() => tf.transpose(x5, [0, 3, 1, 2, 4]));
    same(() => tf.transpose(random([7, 5], 't2')));
    same(() => tf.transpose(tf.cast(tf.mul(random([3, 4], 'ti'), 10), 'int32'), [1, 0]));
    tf.dispose([x4, x5]);
  });

  it('Slice: contiguous, strided, and at every rank', () => {
    const x = random([3, 4, 5, 6], 's');
    same(() => tf.slice(x, [1, 0, 0, 0], [2, 4, 5, 6]));
    same(() => tf.slice(x, [0, 1, 2, 3], [3, 2, 2, 3]));
    same(() => tf.slice(x, [2, 3, 4, 5], [1, 1, 1, 1]));
    same(() => tf.slice(random([10], 's1'), [3], [4]));
    x.dispose();
  });

  it('SplitV along the last and a middle axis, equal and unequal parts', () => {
    const x = random([2, 3, 4, 6], 'split');
    for (const [sizes, axis] of [
      [[3, 3], 3],
      [[2, 4], 3],
      [[1, 2], 1],
    ] as const) {
      for (let i = 0; i < sizes.length; i++) same(() => tf.split(x, [...sizes], axis)[i]);
    }
    x.dispose();
  });

  it('PadV2 (the gradient of a slice), with zero and other constants', () => {
    const x = random([2, 3, 4], 'p');
    same(() =>
      tf.pad(x, [
        [1, 0],
        [0, 2],
        [3, 1],
      ]),
    );
    same(() =>
      tf.pad(
        x,
        [
          [0, 0],
          [1, 1],
          [0, 0],
        ],
        -2.5,
      ),
    );
    x.dispose();
  });

  it('Add, Sub, Multiply, RealDiv with every broadcast the models use', () => {
    const cases: [number[], number[]][] = [
      [
        [4, 5],
        [4, 5],
      ],
      [[2, 3, 8], [8]],
      [
        [2, 3, 8],
        [2, 3, 1],
      ],
      [
        [2, 3, 4, 6],
        [2, 3, 1, 6],
      ], // RoPE: cos over the heads
      [
        [2, 1, 1, 3, 5],
        [2, 4, 2, 3, 5],
      ],
      [[1], [3, 4]],
      [[], [3, 4]],
      [
        [6, 1],
        [1, 7],
      ],
    ];
    for (const [sa, sb] of cases) {
      const a = random(sa, `a${sa}`);
      const b = tf.add(tf.abs(random(sb, `b${sb}`)), 0.5);
      for (const op of [tf.add, tf.sub, tf.mul, tf.div]) {
        same(() => op(a, b));
        same(() => op(b, a));
      }
      tf.dispose([a, b]);
    }
  });

  it.skipIf(nativeSkip !== null)(
    'past 2^15 values, the addon: one-shape Add, Sub, Multiply, RealDiv and last-axis-kept Transposes are the stock kernels bit for bit',
    () => {
      const shape = [1, 64, 8, 72]; // 36864 values
      const n = 36864;
      const a = random(shape, 'big a');
      const b = random(shape, 'big b');
      // zeros, signed zeros, infinities, NaN, subnormals and huge values among the operands
      const special = [0, -0, Infinity, -Infinity, Number.NaN, 1e-40, -3e-39, 3e38, -3e38, 1e-30];
      const sv = Float32Array.from({ length: n }, (_, i) => special[i % special.length]);
      const c = tf.tensor(sv, shape);
      const d = tf.tensor(
        Float32Array.from({ length: n }, (_, i) => special[(i * 7) % 10]),
        shape,
      );
      for (const op of [tf.add, tf.sub, tf.mul, tf.div]) {
        for (const [x, y] of [
          [a, b],
          [b, a],
          [a, c],
          [c, d],
          [a, a],
        ]) {
          same(() => op(x, y));
        }
      }
      // each result against the float64 operation rounded to float32
      const [ours] = both(() => tf.mul(a, c));
      const av = a.dataSync();
      for (let i = 0; i < n; i += 97) expect(ours[i]).toBe(Math.fround(av[i] * sv[i]));
      for (const perm of [
        [0, 2, 1, 3],
        [2, 1, 0, 3],
        [1, 2, 0, 3],
      ]) {
        same(() => tf.transpose(a, perm));
      }
      const x5 = random([1, 4, 8, 32, 36], 'big t5'); // attention's [B, KV, rep, T, hd]
      same(() => tf.transpose(x5, [0, 3, 1, 2, 4]));
      const [t] = both(() => tf.transpose(x5, [0, 3, 1, 2, 4]));
      const xv = x5.dataSync();
      // out[0, t, k, r, j] = x[0, k, r, t, j]
      expect(t[((5 * 4 + 2) * 8 + 3) * 36 + 7]).toBe(xv[((2 * 8 + 3) * 32 + 5) * 36 + 7]);
      tf.dispose([a, b, c, d, x5]);
    },
  );

  it('Sum over leading axes (keepDims or not); other axes go to the stock kernel', () => {
    const x = random([3, 4, 5], 'sum');
    const [ours, stock] = both(() => tf.sum(x, [0, 1]));
    for (let i = 0; i < ours.length; i++) expect(ours[i]).toBeCloseTo(stock[i], 5);
    const [ours0, stock0] = both(() => tf.sum(x, 0, true));
    for (let i = 0; i < ours0.length; i++) expect(ours0[i]).toBeCloseTo(stock0[i], 5);
    same(() => tf.sum(x, 2));
    x.dispose();
  });

  it('UnsortedSegmentSum: repeated and dropped ids against a plain loop', () => {
    const x = random([6, 3], 'seg');
    const ids = [2, 0, 2, -1, 4, 2];
    const got = tf.tidy(() => tf.unsortedSegmentSum(x, tf.tensor1d(ids, 'int32'), 5));
    const xs = x.dataSync();
    const want = new Float32Array(15);
    ids.forEach((s, i) => {
      if (s >= 0) for (let j = 0; j < 3; j++) want[s * 3 + j] += xs[i * 3 + j];
    });
    expect(got.shape).toEqual([5, 3]);
    expect(Array.from(got.dataSync())).toEqual(Array.from(want));
    tf.dispose([x, got]);
  });

  it('GatherV2: embedding rows (axis 0) and rows along axis 1; out-of-range ids refused', () => {
    const table = random([10, 16], 'g');
    same(() => tf.gather(table, tf.tensor2d([3, 0, 9, 3], [2, 2], 'int32')));
    const x = random([2, 5, 16], 'g1');
    same(() => tf.gather(x, tf.tensor1d([4, 1], 'int32'), 1));
    expect(() => tf.gather(table, tf.tensor1d([10], 'int32'))).toThrow(/not in \[0, 9\]/);
    tf.dispose([table, x]);
  });

  it('an embedding gradient through gather: the kernels leak nothing', async () => {
    const table = tf.variable(random([8, 16], 'emb'));
    await expectNoLeak(() => {
      const { grads, value } = tf.variableGrads(
        () => tf.sum(tf.gather(table, tf.tensor1d([1, 1, 7], 'int32'))) as tf.Scalar,
        [table],
      );
      const g = grads[table.name].dataSync();
      expect(g[16]).toBe(2); // row 1 gathered twice
      expect(g[0]).toBe(0);
      tf.dispose([value, ...Object.values(grads)]);
    });
    table.dispose();
  });
});
