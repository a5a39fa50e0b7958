import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { w16Buffer } from '../../src/kernels/custom/native-w16-linear.js';
import { RandomStream } from '../../src/kernels/random.js';
import { bf16Bits } from '../../src/policy/model/bf16-weights.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/**
 * bf16LinearW's few-row loops (native/w16rows.c, 1-31 rows): the AVX-512 loop (2 or 4 panels at
 * once, even/odd widening, prefetch) and the generic one (TROUPE_BF16_PATH=fp32 here) give the
 * same bits, at 1 and 2 threads, for every row count 1-16 and for columns and depths that are
 * not multiples of the vector width or of the panels walked at once; and both match a float64
 * plain loop over the bf16-rounded weights within the fp32-sum bound.
 */

// [N, K]: one column, a part panel, 4 panels + 2 columns (the 4-panel walk then one panel),
// 9 panels (two walks of 4 and one); depths 1, odd, > the prefetch distance; the last is split
// between 2 threads (≥ 2^19 weights) at 33 panels, unevenly
const SHAPES: [number, number][] = [
  [1, 1],
  [31, 7],
  [130, 65],
  [257, 33],
  [1030, 520],
];
const ROWS = Array.from({ length: 16 }, (_, i) => i + 1);

/** Every output of every case, as float32 bits, from a process with TROUPE_BF16_PATH=`path`. */
function outputs(path: string | undefined): number[] {
  const script = `
    import { nativeKernels } from './src/kernels/native.ts';
    import { w16Buffer } from './src/kernels/custom/native-w16-linear.ts';
    import { RandomStream } from './src/kernels/random.ts';
    const a = nativeKernels().addon;
    const out = [];
    for (const [N, K] of ${JSON.stringify(SHAPES)}) {
      const r = RandomStream.of({ seed: N, step: K, actor: 'rows' });
      const bits = w16Buffer(K, N);
      a.toBf16Panels(r.normal(K * N), K, N, bits);
      for (const R of ${JSON.stringify(ROWS)}) {
        const x = r.normal(R * K);
        for (const t of [1, 2]) {
          a.setThreads(t);
          const y = new Float32Array(R * N);
          a.bf16LinearW(x, bits, new Float32Array(0), R, K, N, y);
          out.push(...new Uint32Array(y.buffer));
        }
      }
    }
    process.stdout.write(JSON.stringify(out));`;
  const env = { ...process.env };
  if (path === undefined) delete env.TROUPE_BF16_PATH;
  else env.TROUPE_BF16_PATH = path;
  return JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env,
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    }),
  ) as number[];
}

const word = new Uint32Array(1);
const wordF = new Float32Array(word.buffer);
const bf16 = (v: number) => {
  word[0] = bf16Bits(v) << 16;
  return wordF[0];
};

describe.skipIf(skip !== null)(`bf16LinearW's few-row loops${skip ? ` (${skip})` : ''}`, () => {
  it('rows 1-16, tails in N and K, 1 and 2 threads: within the fp32-sum bound of float64', () => {
    if (!native.available) throw new Error('no addon');
    const a = native.addon;
    const saved = a.threads();
    try {
      for (const [N, K] of SHAPES) {
        const rng = RandomStream.of({ seed: N, step: K, actor: 'rows' });
        const w = rng.normal(K * N);
        const bits = w16Buffer(K, N);
        a.toBf16Panels(w, K, N, bits);
        const rw = Float64Array.from(w, bf16);
        for (const R of ROWS) {
          const x = rng.normal(R * K);
          for (const t of [1, 2]) {
            a.setThreads(t);
            const y = new Float32Array(R * N).fill(Number.NaN);
            a.bf16LinearW(x, bits, new Float32Array(0), R, K, N, y);
            // every output where the shape is small, else a stride through all rows and columns
            const every = R * N > 4000 ? 13 : 1;
            for (let i = 0; i < R * N; i += every) {
              const [r, n] = [Math.floor(i / N), i % N];
              let s = 0;
              let z = 0;
              for (let k = 0; k < K; k++) {
                const p = x[r * K + k] * rw[k * N + n];
                s += p;
                z += Math.abs(p);
              }
              expect(
                Math.abs(y[i] - s),
                `${R}×${N}×${K} on ${t} thread(s) at ${i}`,
              ).toBeLessThanOrEqual(z * 2 ** -23 * (K + 4) + 1e-30);
            }
          }
        }
      }
    } finally {
      a.setThreads(saved);
    }
  });

  it('the AVX-512 loop and the generic loop give the same bits (1 and 2 threads each)', () => {
    const fast = outputs(undefined);
    const generic = outputs('fp32');
    expect(fast.length).toBe(generic.length);
    let differ = 0;
    for (let i = 0; i < fast.length; i++) if (fast[i] !== generic[i]) differ++;
    expect(differ).toBe(0);
    // and 1 thread against 2 within each run: the cases come in pairs of equal length
    let at = 0;
    for (const [N] of SHAPES)
      for (const R of ROWS) {
        const n = R * N;
        expect(fast.slice(at + n, at + 2 * n), `${R} rows, N ${N}`).toEqual(fast.slice(at, at + n));
        at += 2 * n;
      }
    expect(at).toBe(fast.length);
  }, 120_000);
});

describe.skipIf(skip !== null)(`bf16LinearWMany${skip ? ` (${skip})` : ''}`, () => {
  // q, k, v of a decoder block in one pass: part panels, a bias on some, and 2 threads splitting
  // the joint range of panels inside a weight (4 + 2 + 33 panels: the split falls in the third)
  const K = 67;
  const outs = [130, 40, 1030];
  const r = RandomStream.of({ seed: 4, step: 0, actor: 'many' });
  const ws = outs.map((N) => {
    const bits = w16Buffer(K, N);
    native.available && native.addon.toBf16Panels(r.normal(K * N), K, N, bits);
    return bits;
  });
  const biases = [r.normal(outs[0]), new Float32Array(0), r.normal(outs[2])];

  it('the same bits as bf16LinearW of each weight, few rows (one pass) and 40 (the packed product)', () => {
    if (!native.available) return;
    const a = native.addon;
    const saved = a.threads();
    try {
      for (const R of [1, 3, 8, 13, 40])
        for (const t of [1, 2]) {
          a.setThreads(t);
          const x = r.normal(R * K);
          const ys = outs.map((N) => new Float32Array(R * N).fill(Number.NaN));
          a.bf16LinearWMany(x, ws, biases, R, K, Int32Array.from(outs), ys);
          outs.forEach((N, i) => {
            const want = new Float32Array(R * N);
            a.bf16LinearW(x, ws[i], biases[i], R, K, N, want);
            expect(ys[i], `${R} rows, ${t} threads, weight ${i}`).toEqual(want);
          });
        }
    } finally {
      a.setThreads(saved);
    }
  });

  it('checks its arguments', () => {
    if (!native.available) return;
    const a = native.addon;
    const x = new Float32Array(2 * K);
    const ys = outs.map((N) => new Float32Array(2 * N));
    expect(() => a.bf16LinearWMany(x, ws, biases, 2, K, new Int32Array(0), ys)).toThrow(
      /bf16LinearWMany: outs must have 1 to 4 elements/,
    );
    expect(() =>
      a.bf16LinearWMany(x, ws, biases, 2, K, Int32Array.from([130, 40, 1057]), ys),
    ).toThrow(/ws\[i\] is shorter than/);
    expect(() =>
      a.bf16LinearWMany(
        x,
        [ws[0], new Float32Array(9) as never, ws[2]],
        biases,
        2,
        K,
        Int32Array.from(outs),
        ys,
      ),
    ).toThrow(/ws\[i\] must be a Uint16Array/);
    expect(() =>
      a.bf16LinearWMany(x, ws, biases, 2, K, Int32Array.from(outs), [
        ys[0],
        ys[1],
        new Float32Array(5),
      ]),
    ).toThrow(/ys\[i\] is shorter than rows·outs\[i\]/);
  });
});
