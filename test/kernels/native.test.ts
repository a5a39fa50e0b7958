import { beforeAll, describe, expect, it } from 'vitest';
import { setCpuBatchMatMul, setWasmBatchMatMul } from '../../src/kernels/custom/index.js';
import { nativeLinear } from '../../src/kernels/custom/native-linear.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { expectClose, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/** op(X) of a row-major matrix with c columns, as plain numbers. */
function op(x: ArrayLike<number>, c: number, t: boolean): (i: number, j: number) => number {
  return t ? (i, j) => x[j * c + i] : (i, j) => x[i * c + j];
}

/** BatchMatMul the slow way: every batch (a batch of 1 broadcast), every element, in float64. */
function slowBatchMatMul(
  a: Float32Array,
  sa: number[],
  b: Float32Array,
  sb: number[],
  ta: boolean,
  tb: boolean,
): Float64Array {
  const [ra, rb] = [sa.length, sb.length];
  const M = ta ? sa[ra - 1] : sa[ra - 2];
  const K = ta ? sa[ra - 2] : sa[ra - 1];
  const N = tb ? sb[rb - 2] : sb[rb - 1];
  const batchA = sa.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = sb.slice(0, -2).reduce((x, y) => x * y, 1);
  const batch = Math.max(batchA, batchB);
  const out = new Float64Array(batch * M * N);
  for (let i = 0; i < batch; i++) {
    const ai = a.subarray((batchA === 1 ? 0 : i) * M * K, (batchA === 1 ? 1 : i + 1) * M * K);
    const bi = b.subarray((batchB === 1 ? 0 : i) * K * N, (batchB === 1 ? 1 : i + 1) * K * N);
    const A = op(ai, ta ? M : K, ta);
    const B = op(bi, tb ? K : N, tb);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A(m, k) * B(k, n);
        out[i * M * N + m * N + n] = s;
      }
  }
  return out;
}

const CASES: [number[], number[], boolean, boolean][] = [
  [[7, 5], [5, 9], false, false],
  [[5, 7], [5, 9], true, false],
  [[7, 5], [9, 5], false, true],
  [[5, 7], [9, 5], true, true],
  [[3, 7, 5], [3, 5, 9], false, false],
  [[3, 5, 7], [3, 9, 5], true, true],
  [[3, 7, 5], [5, 9], false, false], // B broadcast over the batch (a linear layer)
  [[7, 5], [3, 5, 9], false, false], // A broadcast
  [[2, 3, 7, 5], [2, 3, 9, 5], false, true], // attention's q·kᵀ
  [[64, 96], [96, 130], false, false], // sizes past one BLAS block
  // one row of op(A) takes sgemv, 2–16 rows the small-M kernel (columns in blocks of 32, k in
  // vectors of 16, rows in groups of 8): every transpose form, tails, batched and broadcast
  [[1, 5], [5, 9], false, false],
  [[5, 1], [5, 9], true, false],
  [[1, 5], [9, 5], false, true],
  [[5, 3], [9, 5], true, true],
  [[3, 4, 6], [6, 9], false, false],
  [[2, 3, 1, 5], [2, 3, 9, 5], false, true], // a decoding step's q·kᵀ
  [[2, 3, 1, 9], [2, 3, 9, 5], false, false], // and its p·v
  [[8, 37], [37, 70], false, false],
  [[37, 8], [37, 70], true, false],
  [[8, 37], [70, 37], false, true],
  [[37, 11], [70, 37], true, true],
  [[16, 40], [40, 64], false, false],
  [[13, 50], [33, 50], false, true],
  [[2, 9, 48], [48, 33], false, false], // B broadcast over the batch, a second group of 8 rows
  [[3, 5, 20], [3, 31, 20], false, true],
];

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(skip !== null)(
    `native BatchMatMul on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
        if (backend === 'wasm') setWasmBatchMatMul('native');
        else setCpuBatchMatMul('native');
      });

      it.each(CASES)(
        '%j · %j (transposeA %s, transposeB %s) equals the plain loop',
        async (sa, sb, ta, tb) => {
          const rng = RandomStream.of({ seed: 5, step: 0, actor: 'test', purpose: `${sa}/${sb}` });
          const na = sa.reduce((x, y) => x * y, 1);
          const nb = sb.reduce((x, y) => x * y, 1);
          const a = rng.normal(na);
          const b = rng.normal(nb);
          const out = tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb);
          const want = slowBatchMatMul(a, sa, b, sb, ta, tb);
          expect(out.size).toBe(want.length);
          expectClose(await read(out), want, { atol: 1e-4, rtol: 1e-4, what: 'product' });
          out.dispose();
        },
      );

      it.each([
        [12, 37, 100],
        [16, 64, 1552],
        [10, 384, 48],
      ])(
        'a %i-row product (one pass of 16 rows) has the bits of its rows taken 8 and fewer at a time (K %i, N %i)',
        async (M, K, N) => {
          // 9–16 rows run as one tile of 16; up to 8, the tile of 8. Each C[m, n] is the same
          // chain of multiply-adds over k either way, so the bits must agree exactly (N mod 32
          // columns: both the scalar tail). The rest keeps ≥ 2 rows: one row is sgemv's.
          const rng = RandomStream.of({ seed: 8, step: M, actor: 'test', purpose: 'rows16' });
          const a = rng.normal(M * K);
          const b = tf.tensor(rng.normal(K * N), [K, N]);
          const f32 = async (t: tf.Tensor) => Float32Array.from(await t.data());
          const whole = await f32(tf.matMul(tf.tensor(a, [M, K]), b));
          const top = await f32(tf.matMul(tf.tensor(a.subarray(0, 8 * K), [8, K]), b));
          const rest = await f32(tf.matMul(tf.tensor(a.subarray(8 * K), [M - 8, K]), b));
          const parts = new Float32Array(M * N);
          parts.set(top);
          parts.set(rest, 8 * N);
          const bits = new Uint32Array(whole.buffer);
          const want = new Uint32Array(parts.buffer);
          expect(bits.findIndex((x, i) => x !== want[i])).toBe(-1); // the first differing element
          b.dispose();
        },
      );

      it('gives the gradients of a matmul chain the stock kernel gives', async () => {
        const rng = RandomStream.of({ seed: 6, step: 0, actor: 'test', purpose: 'grad' });
        const x = tf.tensor(rng.normal(2 * 6 * 8), [2, 6, 8]);
        const w = tf.tensor(rng.normal(8 * 5), [8, 5]);
        const f = (xx: tf.Tensor, ww: tf.Tensor) =>
          tf.sum(tf.square(tf.matMul(tf.matMul(xx, ww), ww, false, true)));
        const grads = async () => {
          const [gx, gw] = tf.grads(f)([x, w]);
          return [await read(gx), await read(gw)];
        };
        const got = await grads();
        if (backend === 'wasm') setWasmBatchMatMul('stock');
        else setCpuBatchMatMul('stock');
        const want = await grads();
        if (backend === 'wasm') setWasmBatchMatMul('native');
        else setCpuBatchMatMul('native');
        expectClose(got[0], want[0], { atol: 1e-3, rtol: 1e-4, what: 'dx' });
        expectClose(got[1], want[1], { atol: 1e-3, rtol: 1e-4, what: 'dw' });
      });
    },
  );
}

describe.skipIf(skip !== null)('native addon arguments', () => {
  it('refuses bad sizes and types before touching memory, naming the argument', () => {
    if (!native.available) return;
    const addon = native.addon;
    const f = (n: number) => new Float32Array(n);
    const s = addon.sgemmBatched;
    expect(() => s(false, false, 1, 4, 4, 4, f(15), 0, f(16), 0, f(16))).toThrow(
      /a is shorter than/,
    );
    expect(() => s(false, false, 2, 4, 4, 4, f(32), 16, f(32), 16, f(16))).toThrow(
      /c is shorter than/,
    );
    expect(() => s(false, false, 0, 4, 4, 4, f(16), 0, f(16), 0, f(16))).toThrow(/batch must be/);
    expect(() =>
      s(false, false, 1, 4, 4, 4, new Float64Array(16) as never, 0, f(16), 0, f(16)),
    ).toThrow(/a must be a Float32Array/);
    expect(() => addon.setThreads(0)).toThrow(/setThreads/);
  });

  it('refuses sizes whose element count overflows 64 bits instead of wrapping past the check', () => {
    if (!native.available) return;
    const addon = native.addon;
    const f = (n: number) => new Float32Array(n);
    const big = 2 ** 31 - 1;
    // batch·M·N and G·H·R·C are ~2^93 and ~2^124: wrapped, they passed as tiny counts
    expect(() =>
      addon.sgemmBatched(false, false, big, big, big, 1, f(0), 0, f(0), 0, f(0)),
    ).toThrow(/a is shorter than/);
    expect(() => addon.scaledSoftmax(f(0), f(0), 65536, 65536, 65536, 65536, 1, f(0))).toThrow(
      /x has 0 elements, needs 18446744073709551615/,
    );
  });
});

describe.skipIf(skip !== null)('native TroupeLinear (x·W + b in one kernel)', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    it.each([
      [[1, 1, 7], true],
      [[5, 7], true],
      [[2, 20, 7], false],
      [[41, 7], true],
    ])(
      `${backend}: x %j (bias %s) equals the loop, gradients equal the composite`,
      async (shape, withBias) => {
        await useBackend(backend);
        const rng = RandomStream.of({ seed: 8, step: 0, actor: 'test', purpose: `lin${shape}` });
        const n = shape.reduce((a, b) => a * b, 1);
        const [inDim, outDim] = [7, 37];
        const x = rng.normal(n);
        const w = rng.normal(inDim * outDim);
        const b = rng.normal(outDim);
        const xt = tf.tensor(x, shape);
        const wt = tf.tensor(w, [inDim, outDim]);
        const bt = withBias ? tf.tensor(b, [outDim]) : undefined;
        const y = nativeLinear(xt, wt, bt)!;
        expect(y.shape).toEqual([...shape.slice(0, -1), outDim]);
        const want = new Float64Array((n / inDim) * outDim);
        for (let r = 0; r < n / inDim; r++)
          for (let j = 0; j < outDim; j++) {
            let s = withBias ? b[j] : 0;
            for (let k = 0; k < inDim; k++) s += x[r * inDim + k] * w[k * outDim + j];
            want[r * outDim + j] = s;
          }
        expectClose(await read(y), want, { atol: 1e-5, rtol: 1e-5 });
        const up = tf.tensor(rng.normal(want.length), y.shape);
        const composite = (xx: tf.Tensor, ww: tf.Tensor, bb?: tf.Tensor) => {
          const z = tf.reshape(tf.matMul(tf.reshape(xx, [-1, inDim]), ww), y.shape);
          return bb ? tf.add(z, bb) : z;
        };
        const loss = (f: typeof composite) => (xx: tf.Tensor, ww: tf.Tensor, bb?: tf.Tensor) =>
          tf.sum(tf.mul(f(xx, ww, bb), up));
        const args = bt ? [xt, wt, bt] : [xt, wt];
        const got = tf.grads(loss((xx, ww, bb) => nativeLinear(xx, ww, bb)!) as never)(args);
        const ref = tf.grads(loss(composite) as never)(args);
        for (const [i, g] of got.entries()) {
          expect(g.shape).toEqual(ref[i].shape);
          expectClose(await read(g), await read(ref[i]), {
            atol: 1e-4,
            rtol: 1e-4,
            what: `grad ${i}`,
          });
        }
        tf.dispose([xt, wt, y, up, ...got, ...ref, ...(bt ? [bt] : [])]);
      },
    );
  }

  it('refuses bad sizes, naming the argument', () => {
    if (!native.available) return;
    const f = (k: number) => new Float32Array(k);
    const lin = native.addon.linearForward;
    expect(() => lin(f(5), f(6), f(0), 2, 3, 2, f(4))).toThrow(/x is shorter than rows·in/);
    expect(() => lin(f(6), f(6), f(1), 2, 3, 2, f(4))).toThrow(/bias is shorter than out/);
    expect(() => lin(f(6), f(6), f(0), 0, 3, 2, f(4))).toThrow(/rows must be an integer/);
  });
});

describe.skipIf(skip !== null)('native kernels flush subnormals, and only while they run', () => {
  it('a subnormal input reads as zero inside a kernel; JavaScript keeps IEEE subnormals', () => {
    const a = native.available ? native.addon : undefined;
    if (!a) return;
    const tiny = 1e-39; // a float32 subnormal (the smallest normal is 1.18e-38)
    const x = Float32Array.of(tiny, 1);
    const w = Float32Array.of(1, 1); // [2, 1]
    const y = new Float32Array(1);
    a.linearForward(x.subarray(0, 1), w.subarray(0, 1), new Float32Array(0), 1, 1, 1, y);
    expect(Math.fround(tiny)).toBeGreaterThan(0);
    expect(y[0]).toBe(0); // flushed: the FPU's slow path for subnormals is never taken
    // the thread's mode was restored: JS arithmetic still produces subnormals
    const half = Number.MIN_VALUE * 1;
    expect(half).toBeGreaterThan(0);
    expect(new Float32Array([tiny * 1])[0]).toBeGreaterThan(0);
    // a normal input is untouched
    a.linearForward(Float32Array.of(2e-38), Float32Array.of(1), new Float32Array(0), 1, 1, 1, y);
    expect(y[0]).toBeCloseTo(2e-38, 44);
  });
});
