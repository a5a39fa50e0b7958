import { beforeAll, describe, expect, it } from 'vitest';
import { KV_EXPAND, KV_EXPAND_GRAD, kvExpand } from '../../src/kernels/custom/native-kv.js';
import { segmentSumInto } from '../../src/kernels/custom/row-loops.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { expectNoLeak, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

const rng = (purpose: string) => RandomStream.of({ seed: 4, step: 0, actor: 'test', purpose });

/** The plain loop: out[b, g, p] = past[rows[b], g, p], out[b, g, P + t] = fresh[b, t, g]. */
function loopExpand(
  past: Float32Array,
  rows: Int32Array,
  fresh: Float32Array,
  [D, B, G, P, T, hd]: number[],
): Float32Array {
  expect(past.length).toBe(D * G * P * hd);
  const S = P + T;
  const out = new Float32Array(B * G * S * hd);
  for (let b = 0; b < B; b++)
    for (let g = 0; g < G; g++)
      for (let s = 0; s < S; s++)
        for (let j = 0; j < hd; j++) {
          out[((b * G + g) * S + s) * hd + j] =
            s < P
              ? past[((rows[b] * G + g) * P + s) * hd + j]
              : fresh[((b * T + (s - P)) * G + g) * hd + j];
        }
  return out;
}

/** The gradients by plain loops: dpast summed in float64 (the reference), dfresh moved. */
function loopGrad(dy: Float32Array, rows: Int32Array, [D, B, G, P, T, hd]: number[]) {
  const S = P + T;
  const dpast = new Float64Array(D * G * P * hd);
  const dfresh = new Float32Array(B * T * G * hd);
  for (let b = 0; b < B; b++)
    for (let g = 0; g < G; g++)
      for (let s = 0; s < S; s++)
        for (let j = 0; j < hd; j++) {
          const v = dy[((b * G + g) * S + s) * hd + j];
          if (s < P) dpast[((rows[b] * G + g) * P + s) * hd + j] += v;
          else dfresh[((b * T + (s - P)) * G + g) * hd + j] = v;
        }
  return { dpast, dfresh };
}

/** What the model runs without the kernel: tfjs' gather, transpose and concat. */
function composite(past: tf.Tensor, rows: tf.Tensor, fresh: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.concat([tf.gather(past, rows), tf.transpose(fresh, [0, 2, 1, 3])], 2));
}

function withoutKernel<T>(backend: string, f: () => T): T {
  const saved = [KV_EXPAND, KV_EXPAND_GRAD].map((k) => tf.getKernel(k, backend));
  for (const k of saved) if (k) tf.unregisterKernel(k.kernelName, backend);
  try {
    return f();
  } finally {
    for (const k of saved) if (k) tf.registerKernel(k);
  }
}

const bits = (t: tf.Tensor) => new Uint32Array((t.dataSync() as Float32Array).slice().buffer);

// [D, B, G, P, T, hd], rows (B of them)
const CASES: [string, number[], number[]][] = [
  ['two prompts, five rows, odd sizes', [2, 5, 3, 4, 3, 5], [1, 0, 1, 1, 0]],
  ['a prompt no row continues (its gradient 0)', [3, 4, 2, 3, 2, 4], [2, 2, 0, 2]],
  ['one prompt, one row', [1, 1, 1, 1, 1, 1], [0]],
  ['no cached positions (P = 0)', [2, 3, 2, 0, 3, 4], [1, 0, 1]],
  ['no new positions (T = 0)', [2, 3, 2, 3, 0, 4], [0, 0, 1]],
  ['no rows (B = 0)', [2, 0, 2, 3, 2, 4], []],
  ['the bench shape: 4 prompts x 8 samples, [4, 32, 32]', [4, 32, 4, 32, 32, 32], []],
];

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(skip !== null)(`kvExpand on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('is registered (the addon has the calls)', () => {
      expect(native.available).toBe(true);
      expect(tf.getKernel(KV_EXPAND, backend)).toBeDefined();
      expect(tf.getKernel(KV_EXPAND_GRAD, backend)).toBeDefined();
    });

    it.each(CASES)('%s: the plain loop and the composite, bit for bit', async (_, dims, r) => {
      const [D, B, G, P, T, hd] = dims;
      const rows =
        r.length === B
          ? Int32Array.from(r)
          : Int32Array.from({ length: B }, (_, b) => Math.floor(b / (B / D)));
      const past = rng(`past${dims}`).normal(D * G * P * hd);
      const fresh = rng(`fresh${dims}`).normal(B * T * G * hd);
      const dy = rng(`dy${dims}`).normal(B * G * (P + T) * hd);
      await expectNoLeak(() => {
        const pt = tf.tensor(past, [D, G, P, hd]);
        const rt = tf.tensor1d(rows, 'int32');
        const ft = tf.tensor(fresh, [B, T, G, hd]);
        const out = kvExpand(pt, rt, ft)!;
        expect(out.shape).toEqual([B, G, P + T, hd]);
        expect([...bits(out)]).toEqual([
          ...new Uint32Array(loopExpand(past, rows, fresh, dims).buffer),
        ]);
        // wasm's stock GatherV2 fails on empty tensors (a wrong shape at P = 0, a trap at B = 0):
        // there the loops are the only reference
        const stockWorks = backend === 'cpu' || (P > 0 && B > 0);
        const stock = stockWorks ? withoutKernel(backend, () => composite(pt, rt, ft)) : out;
        expect([...bits(out)]).toEqual([...bits(stock)]);

        // gradients of Σ out ⊙ dy: the loop's (dpast within float32 rounding of the float64
        // sums) and the composite's (gather's segment sum, transpose), bit for bit
        const dyt = tf.tensor(dy, [B, G, P + T, hd]);
        const f = (a: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(kvExpand(a, rt, c)!, dyt));
        const [dpast, dfresh] = tf.grads(f)([pt, ft]);
        const want = loopGrad(dy, rows, dims);
        const got = dpast.dataSync();
        for (let i = 0; i < want.dpast.length; i++) {
          expect(Math.abs(got[i] - want.dpast[i])).toBeLessThanOrEqual(
            1e-6 * (1 + Math.abs(want.dpast[i])),
          );
        }
        expect([...bits(dfresh)]).toEqual([...new Uint32Array(want.dfresh.buffer)]);
        if (stockWorks) {
          const [sp, sf] = withoutKernel(backend, () =>
            tf.grads((a: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(composite(a, rt, c), dyt)))([
              pt,
              ft,
            ]),
          );
          expect([...bits(dpast)]).toEqual([...bits(sp)]);
          expect([...bits(dfresh)]).toEqual([...bits(sf)]);
          tf.dispose([sp, sf, stock]);
        }
        tf.dispose([pt, rt, ft, out, dyt, dpast, dfresh]);
      });
    });

    it('names a row outside the prompts, and shapes that do not fit', () => {
      const past = tf.zeros([2, 1, 3, 4]);
      const fresh = tf.zeros([3, 2, 1, 4]);
      const bad = tf.tensor1d([0, 2, 1], 'int32');
      expect(() => kvExpand(past, bad, fresh)).toThrow(/rows\[1\] = 2 is outside \[0, 2\)/);
      const negative = tf.tensor1d([0, -1, 1], 'int32');
      expect(() => kvExpand(past, negative, fresh)).toThrow(/rows\[1\] = -1 is outside/);
      const rows = tf.tensor1d([0, 1, 1], 'int32');
      expect(() => kvExpand(past, rows, tf.zeros([3, 2, 2, 4]))).toThrow(
        /TroupeKvExpand: rows \[3\] and fresh \[3,2,2,4\] do not fit past \[2,1,3,4\]/,
      );
      expect(() => kvExpand(past, tf.tensor1d([0, 1], 'int32'), fresh)).toThrow(/do not fit/);
      expect(() => kvExpand(tf.zeros([2, 3, 4]), rows, fresh)).toThrow(
        /past must be \[D, G, P, hd\]/,
      );
      expect(kvExpand(past, tf.tensor1d([0, 1, 1], 'float32'), fresh)).toBeNull();
      tf.dispose([past, fresh, bad, negative, rows]);
    });
  });
}

/** The native calls by name (typed in the files that use them). */
const addon = () => {
  if (!native.available) throw new Error(native.reason);
  return native.addon as unknown as {
    threads(): number;
    setThreads(n: number): void;
    segmentSum(
      x: Float32Array,
      ids: Int32Array,
      rows: number,
      inner: number,
      S: number,
      out: Float32Array,
    ): void;
    kvExpandBackward(dy: Float32Array, rows: Int32Array, ...rest: (number | Float32Array)[]): void;
  };
};

describe.skipIf(skip !== null)(`native segment sums${skip ? ` (${skip})` : ''}`, () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  // [rows, inner, numSegments, ids (or null: drawn)]
  it.each([
    ['repeated and dropped ids', 8, 6, 11, [3, 0, 3, 10, 7, 3, 0, -1]],
    ['one row', 1, 37, 2, [1]],
    ['no rows', 0, 5, 3, []],
    ['no segments, no rows', 0, 4, 0, []],
    ['a column not a multiple of 16', 9, 23, 4, null],
    ['the bench embedding gradient: 1024 rows of 128 into 512', 1024, 128, 512, null],
  ] as [string, number, number, number, number[] | null][])(
    'wasm UnsortedSegmentSum (%s): the JavaScript loop bit for bit, the float64 sums within rounding',
    async (_, R, inner, S, given) => {
      const ids = Int32Array.from(
        given ?? Array.from({ length: R }, (_, i) => ((i * 7919) % (S + 1)) - 1),
      );
      const x = rng(`seg${R}x${inner}`).normal(R * inner);
      const loop = new Float32Array(S * inner);
      segmentSumInto(loop, x, ids, inner, S);
      const f64 = new Float64Array(S * inner);
      for (let i = 0; i < R; i++)
        for (let j = 0; j < inner && ids[i] >= 0; j++) f64[ids[i] * inner + j] += x[i * inner + j];
      await expectNoLeak(() => {
        const y = tf.tidy(() =>
          tf.unsortedSegmentSum(tf.tensor(x, [R, inner]), tf.tensor1d(ids, 'int32'), S),
        );
        expect(y.shape).toEqual([S, inner]);
        expect([...bits(y)]).toEqual([...new Uint32Array(loop.buffer)]);
        const got = y.dataSync();
        for (let i = 0; i < f64.length; i++)
          expect(Math.abs(got[i] - f64[i])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(f64[i])));
        tf.dispose(y);
      });
    },
  );

  it('names an id past the segments, as the JavaScript loop does', () => {
    const x = tf.zeros([3, 20]);
    expect(() => tf.unsortedSegmentSum(x, tf.tensor1d([0, 3, 0], 'int32'), 3)).toThrow(
      'UnsortedSegmentSum: segment id 3 at 1 is >= numSegments 3',
    );
    x.dispose();
  });

  it('1 and 2 threads give the same bits (segmentSum by columns, kvExpandBackward by rows and units)', () => {
    const a = addon();
    const saved = a.threads();
    const [R, inner, S] = [700, 203, 5]; // 142,100 floats: two threads
    const x = rng('thr x').normal(R * inner);
    const ids = Int32Array.from({ length: R }, (_, i) => (i * 3) % S);
    const [D, B, G, P, T, hd] = [3, 24, 4, 40, 9, 32];
    const dy = rng('thr dy').normal(B * G * (P + T) * hd);
    const rows = Int32Array.from({ length: B }, (_, b) => b % D);
    const run = () => {
      const seg = new Float32Array(S * inner).fill(Number.NaN);
      a.segmentSum(x, ids, R, inner, S, seg);
      const dpast = new Float32Array(D * G * P * hd).fill(Number.NaN);
      const dfresh = new Float32Array(B * T * G * hd).fill(Number.NaN);
      a.kvExpandBackward(dy, rows, D, B, G, P, T, hd, dpast, dfresh);
      return [seg, dpast, dfresh];
    };
    try {
      a.setThreads(1);
      const one = run();
      a.setThreads(2);
      const two = run();
      for (let k = 0; k < one.length; k++) {
        expect(one[k].some(Number.isNaN)).toBe(false);
        expect([...new Uint32Array(two[k].buffer)]).toEqual([...new Uint32Array(one[k].buffer)]);
      }
      // and the segment sum is the loop's
      const loop = new Float32Array(S * inner);
      segmentSumInto(loop, x, ids, inner, S);
      expect([...new Uint32Array(one[0].buffer)]).toEqual([...new Uint32Array(loop.buffer)]);
    } finally {
      a.setThreads(saved);
    }
  });
});
