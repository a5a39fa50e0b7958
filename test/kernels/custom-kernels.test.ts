import { beforeAll, describe, expect, it } from 'vitest';
import { setFastWasmBatchMatMul } from '../../src/kernels/custom/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { fdGradient, refMatMul } from '../helpers/reference.js';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Each gradient equals the finite-difference gradient of Σ w ⊙ f on the float64 reference. */
async function expectFdGradients(
  grads: tf.Tensor[],
  f: (...xs: Float64Array[]) => Float64Array,
  xs: Float64Array[],
  w: Float64Array,
): Promise<void> {
  for (const [i, g] of grads.entries()) {
    const want = fdGradient(f, xs, w, i);
    expectClose(await read(g), want, { atol: 1e-3, rtol: 1e-3, what: `gradient of input ${i}` });
  }
}

/** Every form the models and their gradients produce, including broadcasting. */
const MATMUL_FORMS: Array<[number[], number[], boolean, boolean]> = [
  [[7, 5], [5, 3], false, false],
  [[7, 5], [3, 5], false, true],
  [[5, 7], [5, 3], true, false],
  [[5, 7], [3, 5], true, true],
  [[2, 7, 5], [2, 5, 3], false, false],
  [[2, 7, 5], [2, 3, 5], false, true],
  [[2, 5, 7], [2, 5, 3], true, false],
  [[2, 5, 7], [2, 3, 5], true, true],
  [[2, 7, 5], [5, 3], false, false],
  [[2, 7, 5], [3, 5], false, true],
  [[2, 5, 7], [5, 3], true, false],
  [[7, 5], [2, 5, 3], false, false],
  [[2, 3, 7, 5], [2, 3, 5, 4], false, false],
  [[2, 3, 7, 5], [2, 3, 4, 5], false, true],
  [[2, 3, 7, 5], [3, 5, 4], false, false],
];

function inputs(seed: number, ...shapes: number[][]): Float64Array[] {
  const s = RandomStream.of({ seed, step: 0, actor: 'test' });
  return shapes.map((sh) => Float64Array.from(s.normal(size(sh))));
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`custom kernels on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(MATMUL_FORMS)(
      'matMul %j · %j (tA=%s, tB=%s) forward and gradient',
      async (sa, sb, ta, tb) => {
        const [a, b] = inputs(sa.length * 100 + sb.length, sa, sb);
        const ref = refMatMul(a, sa, b, sb, ta, tb);
        const [w] = inputs(7, ref.shape);
        await expectNoLeak(async () => {
          const at = tf.tensor(Float32Array.from(a), sa, 'float32');
          const bt = tf.tensor(Float32Array.from(b), sb, 'float32');
          const wt = tf.tensor(Float32Array.from(w), ref.shape, 'float32');
          const y = tf.matMul(at, bt, ta, tb);
          expect(y.shape).toEqual(ref.shape);
          expectClose(await read(y), ref.data, { atol: 1e-4, rtol: 1e-4, what: 'forward' });
          const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) =>
            tf.sum(tf.mul(tf.matMul(x, z, ta, tb), wt)),
          )([at, bt]);
          expect(ga.shape).toEqual(sa);
          expect(gb.shape).toEqual(sb);
          const f = (x: Float64Array, z: Float64Array) => refMatMul(x, sa, z, sb, ta, tb).data;
          await expectFdGradients([ga, gb], f, [a, b], w);
          tf.dispose([at, bt, wt, y, ga, gb]);
        });
      },
    );

    it.each([
      ['maximum', tf.maximum, (p: number, q: number) => Math.max(p, q)],
      ['minimum', tf.minimum, (p: number, q: number) => Math.min(p, q)],
      ['squaredDifference', tf.squaredDifference, (p: number, q: number) => (p - q) ** 2],
    ] as const)(
      '%s broadcast [3,5]⊙[5] has gradients of the input shapes, equal to finite differences',
      async (_n, op, scalar) => {
        const [a, b, w] = inputs(21, [3, 5], [5], [3, 5]);
        // Plain loop: y[i,j] = op(a[i,j], b[j]).
        const f = (x: Float64Array, z: Float64Array) =>
          Float64Array.from(x, (v, k) => scalar(v, z[k % 5]));
        await expectNoLeak(async () => {
          const at = tf.tensor(Float32Array.from(a), [3, 5]);
          const bt = tf.tensor(Float32Array.from(b), [5]);
          const wt = tf.tensor(Float32Array.from(w), [3, 5]);
          const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(op(x, z), wt)))([
            at,
            bt,
          ]);
          expect(gb.shape).toEqual([5]);
          await expectFdGradients([ga, gb], f, [a, b], w);
          tf.dispose([at, bt, wt, ga, gb]);
        });
      },
    );

    it('gather with batchDims picks one element per row, forward and backward', async () => {
      const [x, w] = inputs(22, [4, 7], [4, 1]);
      const ids = [3, 0, 6, 3];
      await expectNoLeak(async () => {
        const xt = tf.tensor(Float32Array.from(x), [4, 7]);
        const it = tf.tensor2d(ids, [4, 1], 'int32');
        const wt = tf.tensor(Float32Array.from(w), [4, 1]);
        const y = tf.gather(xt, it, 1, 1);
        expectClose(
          await read(y),
          ids.map((k, r) => x[r * 7 + k]),
          { what: 'gather' },
        );
        const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.gather(v, it, 1, 1), wt)))(xt);
        const want = new Float64Array(28);
        ids.forEach((k, r) => {
          want[r * 7 + k] = w[r];
        });
        expectClose(await read(g), want, { what: 'd gather' });
        tf.dispose([xt, it, wt, y, g]);
      });
    });

    it('UnsortedSegmentSum (the embedding gradient) matches a plain loop', async () => {
      const V = 11;
      const d = 6;
      const ids = [3, 0, 3, 10, 7, 3, 0, -1];
      const [x] = inputs(3, [ids.length, d]);
      const want = new Float64Array(V * d);
      ids.forEach((s, i) => {
        if (s < 0) return;
        for (let j = 0; j < d; j++) want[s * d + j] += x[i * d + j];
      });
      await expectNoLeak(async () => {
        const xt = tf.tensor(Float32Array.from(x), [ids.length, d], 'float32');
        const it = tf.tensor1d(ids, 'int32');
        const y = tf.unsortedSegmentSum(xt, it, V);
        expectClose(await read(y), want, { what: 'unsortedSegmentSum' });
        tf.dispose([xt, it, y]);
      });
    });

    it.each([
      [[6, 5], [0], false],
      [[2, 3, 5], [0, 1], false],
      [[2, 3, 5], [1, 0], true],
      [[2, 3, 5], [-3], false],
      [[2, 3, 5], [1], false], // not leading: the stock kernel
      [[2, 3, 5], [2], true],
    ] as [number[], number[], boolean][])(
      'sum of %j over axes %j (keepDims %s) matches a plain loop',
      async (shape, axes, keepDims) => {
        const [x] = inputs(6, shape);
        const rank = shape.length;
        const red = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
        const outShape = shape.map((d, i) => (red.has(i) ? 1 : d));
        const want = new Float64Array(outShape.reduce((a, b) => a * b, 1));
        const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
        const oStrides = outShape.map((_, i) => outShape.slice(i + 1).reduce((a, b) => a * b, 1));
        for (let f = 0; f < x.length; f++) {
          let o = 0;
          for (let i = 0; i < rank; i++) {
            const c = Math.floor(f / strides[i]) % shape[i];
            if (!red.has(i)) o += c * oStrides[i];
          }
          want[o] += x[f];
        }
        await expectNoLeak(async () => {
          const xt = tf.tensor(Float32Array.from(x), shape, 'float32');
          const y = tf.sum(xt, axes, keepDims);
          expect(y.shape).toEqual(keepDims ? outShape : shape.filter((_, i) => !red.has(i)));
          expectClose(await read(y), want, { what: 'sum' });
          tf.dispose([xt, y]);
        });
      },
    );

    // Troupe's leading-axes Sum (wasm, cpu); webgpu's stock reduce cannot take an empty input
    it.skipIf(backend === 'webgpu')(
      'a sum over an empty leading axis is zeros (the bias gradient of no rows)',
      async () => {
        await expectNoLeak(async () => {
          const xt = tf.zeros([0, 5]);
          const y = tf.sum(xt, 0);
          expect(y.shape).toEqual([5]);
          expect([...(await read(y))]).toEqual([0, 0, 0, 0, 0]);
          tf.dispose([xt, y]);
        });
      },
    );

    it('embedding lookup (gather) has a gradient equal to the scatter-add of dy', async () => {
      const table = inputs(4, [9, 4])[0];
      const ids = [
        [1, 8, 1],
        [0, 1, 5],
      ];
      const [w] = inputs(5, [2, 3, 4]);
      await expectNoLeak(async () => {
        const tt = tf.tensor(Float32Array.from(table), [9, 4], 'float32');
        const idt = tf.tensor2d(ids, [2, 3], 'int32');
        const wt = tf.tensor(Float32Array.from(w), [2, 3, 4], 'float32');
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, idt), wt)))(tt);
        const want = new Float64Array(9 * 4);
        ids.flat().forEach((row, i) => {
          for (let j = 0; j < 4; j++) want[row * 4 + j] += w[i * 4 + j];
        });
        expectClose(await read(g), want, { what: 'd table' });
        tf.dispose([tt, idt, wt, g]);
      });
    });

    it('comparison ops have zero gradients, so where() can be differentiated', async () => {
      await expectNoLeak(async () => {
        const x = tf.tensor1d([-2, -0.5, 0.5, 2]);
        const g = tf.grad((v: tf.Tensor) =>
          tf.sum(tf.where(tf.greater(v, tf.scalar(0)), tf.square(v), tf.neg(v))),
        )(x);
        expectClose(await read(g), [-1, -1, 1, 4], { what: 'd where' });
        const g2 = tf.grad((v: tf.Tensor) =>
          tf.sum(
            tf.mul(tf.cast(tf.logicalAnd(tf.less(v, 1), tf.greaterEqual(v, -1)), 'float32'), v),
          ),
        )(x);
        expectClose(await read(g2), [0, 1, 1, 0], { what: 'd mask·x' });
        tf.dispose([x, g, g2]);
      });
    });
  });
}

describe('fast wasm BatchMatMul equals the stock kernel', () => {
  const wasmSkip = BACKEND_CASES.find(([b]) => b === 'wasm')![1];
  it.skipIf(wasmSkip !== null).each(MATMUL_FORMS)(
    '%j · %j (tA=%s, tB=%s)',
    async (sa, sb, ta, tb) => {
      await useBackend('wasm');
      const [a, b] = inputs(11, sa, sb);
      const at = tf.tensor(Float32Array.from(a), sa, 'float32');
      const bt = tf.tensor(Float32Array.from(b), sb, 'float32');
      try {
        setFastWasmBatchMatMul(false);
        const stock = tf.matMul(at, bt, ta, tb);
        setFastWasmBatchMatMul(true);
        const fast = tf.matMul(at, bt, ta, tb);
        expect(fast.shape).toEqual(stock.shape);
        expectClose(await read(fast), await read(stock), { atol: 1e-5, rtol: 1e-5 });
        tf.dispose([stock, fast]);
      } finally {
        setFastWasmBatchMatMul(true);
        tf.dispose([at, bt]);
      }
    },
  );
});

describe('wasm Identity and same-dtype Cast share their input', () => {
  const wasmSkip = BACKEND_CASES.find(([b]) => b === 'wasm')![1];
  it.skipIf(wasmSkip !== null)('a clone outlives its source and the source its clone', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const c = tf.clone(x);
    const same = tf.cast(x, 'float32');
    expect(c.dataId).toBe(x.dataId); // one heap block, three tensors
    expect(same.dataId).toBe(x.dataId);
    x.dispose();
    expect(Array.from(await c.data())).toEqual([1, 2, 3, 4]);
    c.dispose();
    expect(Array.from(await same.data())).toEqual([1, 2, 3, 4]);
    same.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const ints = tf.cast(tf.tensor([1.5, -2.5]), 'int32'); // other casts still convert
    expect(ints.dtype).toBe('int32');
    expect(Array.from(await ints.data())).toEqual([1, -2]);
    ints.dispose();
  });

  it.skipIf(wasmSkip !== null)('gradients through saved tensors are unchanged', async () => {
    await useBackend('wasm');
    const x = tf.tensor([0.5, -1, 2, 3]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.exp(t), tf.square(t))))(x);
    const want = [0.5, -1, 2, 3].map((v) => Math.exp(v) * (v * v + 2 * v));
    expectClose(await read(g), want, { atol: 1e-5, rtol: 1e-5 });
    tf.dispose([x, g]);
  });
});

describe('wasm Slice over heap views equals the cpu backend', () => {
  const wasmSkip = BACKEND_CASES.find(([b]) => b === 'wasm')![1];
  const CASES: Array<[number[], number[], number[]]> = [
    [[10], [3], [4]],
    [
      [7, 5],
      [2, 0],
      [3, 5],
    ], // contiguous rows
    [
      [7, 5],
      [1, 1],
      [4, 3],
    ],
    [
      [4, 6, 5],
      [1, 2, 0],
      [2, 3, 5],
    ],
    [
      [4, 6, 5],
      [0, 0, 1],
      [4, 6, 2],
    ],
    [
      [3, 4, 5, 6],
      [1, 0, 2, 0],
      [2, 4, 2, 6],
    ],
    [
      [2, 3, 4, 5, 6],
      [0, 1, 1, 2, 3],
      [2, 2, 3, 3, 3],
    ],
    [
      [5, 4],
      [0, 0],
      [0, 4],
    ], // empty
  ];
  it.skipIf(wasmSkip !== null).each(CASES)('%j from %j size %j', async (shape, begin, size) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => i * 0.5 - 3);
    const want: Record<string, number[]> = {};
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      for (const dtype of ['float32', 'int32', 'bool'] as const) {
        const x = tf.tensor(
          dtype === 'bool' ? values.map((v) => (v > 0 ? 1 : 0)) : values,
          shape,
          dtype,
        );
        const y = tf.slice(x, begin, size);
        const got = Array.from(await y.data());
        expect(y.shape).toEqual(size);
        if (backend === 'cpu') want[dtype] = got;
        else expect(got).toEqual(want[dtype]);
        tf.dispose([x, y]);
      }
    }
  });
});

describe('wasm SplitV through the heap-view Slice equals the cpu backend', () => {
  const wasmSkip = BACKEND_CASES.find(([b]) => b === 'wasm')![1];
  const CASES: Array<[number[], number[] | number, number]> = [
    [[10], [3, 7], 0],
    [[6, 5], 3, 0], // contiguous pieces
    [[4, 6, 5], [2, 4], 1],
    [[3, 4, 6, 2], [1, 0, 5], 2], // an empty piece, along an inner axis (a KV cache's sequence)
    [[2, 3, 4, 5], 5, -1],
  ];
  it.skipIf(wasmSkip !== null).each(CASES)('%j into %j along %i', async (shape, splits, axis) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => i * 0.25 - 2);
    const want: Record<string, number[][]> = {};
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      for (const dtype of ['float32', 'int32'] as const) {
        const x = tf.tensor(values, shape, dtype);
        const parts = tf.split(x, splits, axis);
        const got = await Promise.all(parts.map(async (p) => Array.from(await p.data())));
        if (backend === 'cpu') want[dtype] = got;
        else expect(got).toEqual(want[dtype]);
        tf.dispose([x, ...parts]);
      }
    }
  });
});

describe('wasm Transpose by runs of the last axis equals the cpu backend', () => {
  const wasmSkip = BACKEND_CASES.find(([b]) => b === 'wasm')![1];
  const CASES: Array<[number[], number[]]> = [
    [
      [2, 3, 4, 16],
      [0, 2, 1, 3],
    ], // attention's head split / merge
    [
      [3, 5, 2, 17],
      [2, 0, 1, 3],
    ],
    [
      [2, 1, 3, 1, 20],
      [0, 3, 2, 1, 4],
    ], // axes of 1 among them
    [
      [4, 1, 3, 32],
      [1, 2, 0, 3],
    ],
    [
      [5, 16],
      [0, 1],
    ], // the identity
    [
      [3, 4, 8],
      [1, 0, 2],
    ], // a run under 16: the stock kernel
    [
      [3, 4, 16],
      [2, 1, 0],
    ], // the last axis moves: the stock kernel
  ];
  it.skipIf(wasmSkip !== null).each(CASES)('%j by %j', async (shape, perm) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => i * 0.5 - 7);
    const want: Record<string, number[]> = {};
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      for (const dtype of ['float32', 'int32'] as const) {
        const x = tf.tensor(values, shape, dtype);
        const y = tf.transpose(x, perm);
        expect(y.shape).toEqual(perm.map((a) => shape[a]));
        const got = Array.from(await y.data());
        if (backend === 'cpu') want[dtype] = got;
        else expect(got).toEqual(want[dtype]);
        tf.dispose([x, y]);
      }
    }
  });
});
