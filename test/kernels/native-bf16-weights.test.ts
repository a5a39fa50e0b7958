import { describe, expect, it } from 'vitest';
import { w16Buffer, w16Elements } from '../../src/kernels/custom/native-w16-linear.js';
import { RandomStream } from '../../src/kernels/random.js';
import { bf16Bits } from '../../src/policy/model/bf16-weights.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/**
 * x·W with W stored as bf16 bits (native/bf16.c bf16LinearW, toBf16, toBf16Panels) against a
 * float64 plain loop over the bf16-rounded weights: below 32 rows x stays fp32 (the products are
 * then exact in float64, only the fp32 sums differ), from 32 rows on the bf16 kernel also rounds
 * x (unless the CPU has no bf16 products: the fp32 path keeps it).
 */

/** bf16 bits → its value. */
const word = new Uint32Array(1);
const wordF = new Float32Array(word.buffer);
function value(bits: number): number {
  word[0] = bits << 16;
  return wordF[0];
}

const scratch = new Float32Array(1);
const bf16 = (x: number) => value(bf16Bits(x, scratch));

/**
 * y = x·W + b in float64 at the entries `every` apart, W [K, N] rounded to bf16; x rounded too
 * when `roundX`.
 */
function reference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | undefined,
  R: number,
  K: number,
  N: number,
  roundX: boolean,
  every = 1,
) {
  const rw = Float64Array.from(w, bf16);
  const rx = roundX ? Float64Array.from(x, bf16) : Float64Array.from(x);
  const sum = new Float64Array(R * N);
  const scale = new Float64Array(R * N);
  for (let i = 0; i < R * N; i += every) {
    const [r, n] = [Math.floor(i / N), i % N];
    let s = b ? b[n] : 0;
    let z = Math.abs(s);
    for (let k = 0; k < K; k++) {
      const p = rx[r * K + k] * rw[k * N + n];
      s += p;
      z += Math.abs(p);
    }
    sum[i] = s;
    scale[i] = z;
  }
  return { sum, scale };
}

describe.skipIf(skip !== null)(`bf16-stored weights${skip ? ` (${skip})` : ''}`, () => {
  const addon = () => {
    if (!native.available) throw new Error('no addon');
    return native.addon;
  };

  it('toBf16 rounds to nearest even, keeps NaN a NaN and ±∞', () => {
    const a = addon();
    const src = Float32Array.of(
      1,
      1 + 2 ** -8, // halfway between 1 and 1 + 2^-7: even → 1
      1 + 3 * 2 ** -8, // halfway between 1 + 2^-7 and 1 + 2^-6: even → 1 + 2^-6
      1 + 2 ** -8 + 2 ** -20, // above halfway → up
      -2.5,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      1e-40, // a subnormal
      3.4e38, // rounds to +∞ past the largest bf16
    );
    const dst = new Uint16Array(src.length);
    a.toBf16(src, dst);
    const got = [...dst].map(value);
    expect(got.slice(0, 8)).toEqual([
      1,
      1,
      1 + 2 ** -6,
      1 + 2 ** -7,
      -2.5,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
    ]);
    expect(got[8]).toBe(bf16(1e-40));
    expect(got[9]).toBe(Number.POSITIVE_INFINITY);
    // the TypeScript rounding (bf16-weights.ts) gives the same bits
    expect([...src].map((v) => bf16Bits(v))).toEqual([...dst]);
  });

  it('toBf16Panels: [⌈N/32⌉][K][32], each column of W down K, zero past N', () => {
    const a = addon();
    const [K, N] = [3, 45];
    const w = RandomStream.of({ seed: 1, step: 0, actor: 'panels' }).normal(K * N);
    const dst = w16Buffer(K, N);
    expect(dst.length).toBe(w16Elements(K, N));
    expect(dst.length).toBe(K * 64);
    expect(dst.buffer.byteLength % 4).toBe(0);
    a.toBf16Panels(w, K, N, dst);
    for (let p = 0; p < 2; p++)
      for (let k = 0; k < K; k++)
        for (let j = 0; j < 32; j++) {
          const n = p * 32 + j;
          expect(dst[(p * K + k) * 32 + j]).toBe(n < N ? bf16Bits(w[k * N + n]) : 0);
        }
  });

  // rows: under 8, 8–31 (the few-row loops: 1, 2, ≤ 4 and 8 accumulators), ≥ 32 (the bf16
  // kernel); columns: a part panel, whole panels, one column; depths: 1, odd, a long one
  const SHAPES: [number, number, number][] = [
    [1, 1, 1],
    [1, 45, 7],
    [2, 32, 40],
    [3, 17, 5],
    [4, 64, 33],
    [5, 100, 16],
    [8, 70, 9],
    [9, 33, 65],
    [16, 96, 24],
    [31, 50, 100],
    [32, 45, 7],
    [33, 64, 50],
    [70, 31, 130],
  ];

  it.each(SHAPES)(
    '%i rows × %i out × %i in, with and without bias: the float64 sum over bf16 weights',
    (R, N, K) => {
      const a = addon();
      const rng = RandomStream.of({ seed: R * 1000 + N, step: K, actor: 'w16' });
      const x = rng.normal(R * K);
      const w = rng.normal(K * N);
      const b = rng.normal(N);
      const bits = w16Buffer(K, N);
      a.toBf16Panels(w, K, N, bits);
      const roundX = R >= 32 && a.bf16Path() !== 'fp32';
      for (const bias of [b, undefined]) {
        const y = new Float32Array(R * N).fill(Number.NaN);
        a.bf16LinearW(x, bits, bias ?? new Float32Array(0), R, K, N, y);
        const want = reference(x, w, bias, R, K, N, roundX);
        for (let i = 0; i < y.length; i++) {
          // fp32 sums of K exact products (and the bias): ~K ulp of the magnitudes summed
          expect(
            Math.abs(y[i] - want.sum[i]),
            `${R}×${N}×${K} bias ${!!bias} at ${i}`,
          ).toBeLessThanOrEqual(want.scale[i] * 2 ** -23 * (K + 4) + 1e-30);
        }
      }
    },
  );

  it('on 2 threads (split by panels): bit for bit what 1 thread gives, for few and many rows', () => {
    const a = addon();
    const saved = a.threads();
    try {
      const rng = RandomStream.of({ seed: 7, step: 0, actor: 'w16-threads' });
      // ≥ 2^18 weights a thread: split; an odd panel count cuts the split unevenly
      const [K, N] = [600, 1000];
      const w = rng.normal(K * N);
      const bits = w16Buffer(K, N);
      a.toBf16Panels(w, K, N, bits);
      for (const R of [1, 3, 8, 12, 40]) {
        const x = rng.normal(R * K);
        const one = new Float32Array(R * N);
        const two = new Float32Array(R * N).fill(Number.NaN);
        a.setThreads(1);
        a.bf16LinearW(x, bits, new Float32Array(0), R, K, N, one);
        a.setThreads(2);
        a.bf16LinearW(x, bits, new Float32Array(0), R, K, N, two);
        expect(two, `rows ${R}`).toEqual(one);
        const want = reference(x, w, undefined, R, K, N, R >= 32 && a.bf16Path() !== 'fp32', 37);
        for (let i = 0; i < two.length; i += 37) {
          expect(Math.abs(two[i] - want.sum[i])).toBeLessThanOrEqual(
            want.scale[i] * 2 ** -23 * (K + 4),
          );
        }
      }
    } finally {
      a.setThreads(saved);
    }
  });

  it('fp32 products of 2–16 rows on 2 threads: bit for bit 1 thread, and the float64 sum', () => {
    const a = addon();
    const saved = a.threads();
    try {
      const rng = RandomStream.of({ seed: 8, step: 0, actor: 'small-threads' });
      const [K, N] = [520, 1030]; // N not a multiple of 32: the last block's tail
      const w = rng.normal(K * N);
      const wt = rng.normal(N * K);
      for (const R of [2, 7, 9, 16]) {
        const x = rng.normal(R * K);
        for (const tb of [false, true]) {
          const one = new Float32Array(R * N);
          const two = new Float32Array(R * N).fill(Number.NaN);
          a.setThreads(1);
          a.sgemmBatched(false, tb, 1, R, N, K, x, 0, tb ? wt : w, 0, one);
          a.setThreads(2);
          a.sgemmBatched(false, tb, 1, R, N, K, x, 0, tb ? wt : w, 0, two);
          expect(two, `rows ${R} transB ${tb}`).toEqual(one);
          for (let i = 0; i < two.length; i += 41) {
            const [r, n] = [Math.floor(i / N), i % N];
            let s = 0;
            let z = 0;
            for (let k = 0; k < K; k++) {
              const p = x[r * K + k] * (tb ? wt[n * K + k] : w[k * N + n]);
              s += p;
              z += Math.abs(p);
            }
            expect(Math.abs(two[i] - s)).toBeLessThanOrEqual(z * 2 ** -23 * (K + 4));
          }
        }
      }
    } finally {
      a.setThreads(saved);
    }
  });

  it('bad arguments name the function and the argument', () => {
    const a = addon();
    const f = (n: number) => new Float32Array(n);
    const u = (n: number) => new Uint16Array(n);
    // W [3, 2] in panels: 3·32 values
    expect(() => a.bf16LinearW(f(6), u(6), f(0), 2, 3, 2, f(4))).toThrow(
      /bf16LinearW.*\bw\b.*⌈out\/32⌉·32·in/,
    );
    expect(() => a.bf16LinearW(f(6), u(96), f(1), 2, 3, 2, f(4))).toThrow(/bias/);
    expect(() => a.bf16LinearW(f(6), f(96) as never, f(0), 2, 3, 2, f(4))).toThrow(/Uint16Array/);
    expect(() => a.toBf16(f(4), u(3))).toThrow(/toBf16.*dst/);
    expect(() => a.toBf16Panels(f(6), 3, 2, u(6))).toThrow(/toBf16Panels.*dst/);
  });
});
