import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import { bf16Product } from '../helpers/bf16.js';
import { native, nativeSkip } from '../helpers/native.js';

/**
 * The bf16 product (native/bf16.c) against a float64 plain loop over the same operands rounded to
 * bfloat16 (round to nearest even, as PyTorch's `.to(torch.bfloat16)`): the products of two bf16
 * values are exact in fp32, so the only difference is the order of the fp32 sums.
 */
const skip = nativeSkip;

/** Runs `script` (an ES module printing one JSON value) in a child process on bf16 path `path`. */
function onPath<T>(script: string, path: string): T {
  return JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TROUPE_BF16_PATH: path },
      encoding: 'utf8',
    }),
  ) as T;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [32, 32, 32],
  [33, 31, 65],
  [64, 48, 100],
  [17, 130, 40],
];

type Addon = Extract<typeof native, { available: true }>['addon'];

/** One product's operands: op(x) [M, K] and op(y) [K, N], seeded normal values. */
interface Product {
  readonly ta: boolean;
  readonly tb: boolean;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly x: Float32Array;
  readonly y: Float32Array;
}

/**
 * `body` for each shape, untransposed and both transposed, with operands drawn in that order from
 * one seeded stream; the addon's thread count is restored after.
 */
function eachProduct(
  seed: number,
  actor: string,
  shapes: readonly (readonly [number, number, number])[],
  body: (a: Addon, p: Product) => void,
): void {
  const a = native.available ? native.addon : undefined;
  if (!a) return;
  const saved = a.threads();
  try {
    const rng = RandomStream.of({ seed, step: 0, actor });
    for (const [M, N, K] of shapes)
      for (const [ta, tb] of [
        [false, false],
        [true, true],
      ] as const) {
        const x = rng.normal(M * K);
        const y = rng.normal(K * N);
        body(a, { ta, tb, M, N, K, x, y });
      }
  } finally {
    a.setThreads(saved);
  }
}

/** |c − Σ| within the fp32 summation bound of K bf16 products (2^-23 · (K + 4) · Σ|products|). */
function expectWithinBf16Bound(
  c: Float32Array,
  want: { sum: Float64Array; scale: Float64Array },
  K: number,
): void {
  for (let i = 0; i < c.length; i++) {
    expect(Math.abs(c[i] - want.sum[i])).toBeLessThanOrEqual(
      want.scale[i] * 2 ** -23 * (K + 4) + 1e-30,
    );
  }
}

describe.skipIf(skip !== null)(`bf16 products${skip ? ` (${skip})` : ''}`, () => {
  it.each(SHAPES)(
    '%i×%i×%i, every transpose: equal to the float64 sum of bf16 products',
    (M, N, K) => {
      const a = native.available ? native.addon : undefined;
      if (!a) return;
      const rng = RandomStream.of({ seed: M * 1000 + N, step: K, actor: 'bf16' });
      for (const [ta, tb] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const x = rng.normal(M * K);
        const y = rng.normal(K * N);
        const c = new Float32Array(M * N).fill(Number.NaN);
        a.bf16Gemm(ta, tb, M, N, K, x, y, c);
        const want = bf16Product(x, y, M, N, K, ta, tb);
        let worst = 0;
        for (let i = 0; i < c.length; i++) {
          // fp32 sums of K exact products: at most ~K ulp of the magnitudes summed
          const err = Math.abs(c[i] - want.sum[i]) / (want.scale[i] * 2 ** -23 + 1e-30);
          worst = Math.max(worst, err);
        }
        expect(worst, `${a.bf16Path()} ta ${ta} tb ${tb}`).toBeLessThan(K + 4);
      }
    },
  );

  it('cache blocks: a K past 4096 in slices, rows past an L2 block, edges off 8 and 32 (1 and 2 threads)', () => {
    // K 4500: slices of 2048, 2048 and 404, partial sums read back from C; M 700 at K 300:
    // two row blocks; N 45 and M 13 / 700: column and row edges inside a block
    const shapes = [
      [13, 45, 4500],
      [700, 45, 300],
    ] as const;
    eachProduct(23, 'bf16-blocks', shapes, (a, p) => {
      const want = bf16Product(p.x, p.y, p.M, p.N, p.K, p.ta, p.tb);
      const outs: Float32Array[] = [];
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        const c = new Float32Array(p.M * p.N).fill(Number.NaN);
        a.bf16Gemm(p.ta, p.tb, p.M, p.N, p.K, p.x, p.y, c);
        outs.push(c);
        expectWithinBf16Bound(c, want, p.K);
      }
      expect(outs[1]).toEqual(outs[0]);
    });
  });

  it('on 2 threads: equal to the float64 reference, and bit for bit to 1 thread', () => {
    // big enough to be split (2^22 multiply-adds a thread): by columns, then by rows; odd
    // sizes cut the splits' edges
    const shapes = [
      [97, 161, 600],
      [300, 70, 520],
    ] as const;
    eachProduct(11, 'bf16-threads', shapes, (a, p) => {
      const one = new Float32Array(p.M * p.N);
      const two = new Float32Array(p.M * p.N).fill(Number.NaN);
      a.setThreads(1);
      a.bf16Gemm(p.ta, p.tb, p.M, p.N, p.K, p.x, p.y, one);
      a.setThreads(2);
      a.bf16Gemm(p.ta, p.tb, p.M, p.N, p.K, p.x, p.y, two);
      expect(two).toEqual(one);
      expectWithinBf16Bound(two, bf16Product(p.x, p.y, p.M, p.N, p.K, p.ta, p.tb), p.K);
    });
  });

  it('batched: each product as bf16Gemm gives it (strides, a broadcast operand, 1 and 2 threads)', () => {
    const a = native.available ? native.addon : undefined;
    if (!a) return;
    const saved = a.threads();
    try {
      const rng = RandomStream.of({ seed: 12, step: 0, actor: 'bf16-batch' });
      // 24 products of 2^18.5 multiply-adds: split among the threads, one product each at a time
      const [batch, M, N, K] = [24, 64, 64, 96];
      const cases = [
        { ta: false, tb: false, sa: M * K, sb: K * N }, // each its own
        { ta: false, tb: true, sa: M * K, sb: 0 }, // B shared: folded into one product
        { ta: true, tb: false, sa: 0, sb: K * N }, // A shared
        { ta: true, tb: true, sa: M * K + 3, sb: K * N + 5 }, // strides past the matrices
      ];
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        for (const { ta, tb, sa, sb } of cases) {
          const x = rng.normal((batch - 1) * sa + M * K);
          const y = rng.normal((batch - 1) * sb + K * N);
          const c = new Float32Array(batch * M * N).fill(Number.NaN);
          a.bf16GemmBatched(ta, tb, batch, M, N, K, x, sa, y, sb, c);
          for (let i = 0; i < batch; i++) {
            const one = new Float32Array(M * N);
            a.bf16Gemm(
              ta,
              tb,
              M,
              N,
              K,
              x.subarray(i * sa, i * sa + M * K),
              y.subarray(i * sb, i * sb + K * N),
              one,
            );
            expect(c.subarray(i * M * N, (i + 1) * M * N), `${threads} ${sa} ${sb} ${i}`).toEqual(
              one,
            );
          }
        }
      }
    } finally {
      a.setThreads(saved);
    }
  });

  it('bf16Linear: x·W + bias, W [in, out]; no bias when it is empty', () => {
    const a = native.available ? native.addon : undefined;
    if (!a) return;
    const rng = RandomStream.of({ seed: 13, step: 0, actor: 'bf16-linear' });
    const [R, I, O] = [37, 50, 29];
    const x = rng.normal(R * I);
    const w = rng.normal(I * O);
    const b = rng.normal(O);
    const y = new Float32Array(R * O);
    const plain = new Float32Array(R * O);
    a.bf16Linear(x, w, b, R, I, O, y);
    a.bf16Gemm(false, false, R, O, I, x, w, plain);
    for (let i = 0; i < y.length; i++) expect(y[i]).toBe(Math.fround(plain[i] + b[i % O]));
    a.bf16Linear(x, w, new Float32Array(0), R, I, O, y);
    expect(y).toEqual(plain);
  });

  it('the bias is added in the product (bf16Linear, bf16LinearW): the product + bias bit for bit on every path, K slices and 2 threads', () => {
    // each path in its own process (chosen once per process); per case the count of elements
    // that differ from fround(product + bias), the product taken without the bias
    const script = `
      import { nativeKernels } from './src/kernels/native.ts';
      import { RandomStream } from './src/kernels/random.ts';
      const a = nativeKernels().addon;
      const r = RandomStream.of({ seed: 31, step: 0, actor: 'bias' });
      const out = { path: a.bf16Path(), bad: [] };
      const check = (y, plain, b, O) => {
        let bad = 0;
        for (let i = 0; i < y.length; i++) if (y[i] !== Math.fround(plain[i] + b[i % O])) bad++;
        out.bad.push(bad);
      };
      // edges off 16 and 32; K past 4096 (the AVX512-BF16 loop's slices); split over threads
      for (const [R, I, O] of [[37, 50, 29], [70, 4500, 45], [256, 200, 300]])
        for (const threads of [1, 2]) {
          a.setThreads(threads);
          const x = r.normal(R * I), w = r.normal(I * O), b = r.normal(O);
          const y = new Float32Array(R * O).fill(NaN), plain = new Float32Array(R * O);
          a.bf16Linear(x, w, b, R, I, O, y);
          a.bf16Linear(x, w, new Float32Array(0), R, I, O, plain);
          check(y, plain, b, O);
          const w16 = new Uint16Array(Math.ceil(O / 32) * 32 * I);
          a.toBf16Panels(w, I, O, w16);
          a.bf16LinearW(x, w16, b, R, I, O, y.fill(NaN));
          a.bf16LinearW(x, w16, new Float32Array(0), R, I, O, plain);
          check(y, plain, b, O);
        }
      process.stdout.write(JSON.stringify(out));`;
    const run = (path: string) => onPath<{ path: string; bad: number[] }>(script, path);
    const seen = new Set<string>();
    for (const path of ['fp32', 'fma', 'avx512', 'amx']) {
      const got = run(path);
      if (seen.has(got.path)) continue; // not on this CPU (or build): it ran another path
      seen.add(got.path);
      expect(got.bad, got.path).toEqual(new Array(12).fill(0));
    }
    expect(seen.has('fp32')).toBe(true);
  }, 60_000);

  it('bf16LinearBackward: dx and dW as bf16Gemm gives them, db the fp32 column sums of dy (1 and 2 threads, parts left out)', () => {
    const a = native.available ? native.addon : undefined;
    if (!a?.bf16LinearBackward) return;
    const saved = a.threads();
    try {
      const rng = RandomStream.of({ seed: 14, step: 0, actor: 'bf16-linear-grad' });
      // edges off 16 and 32; dx's K past 4096 (slices); a dW big enough to split between threads
      for (const [R, I, O] of [
        [37, 50, 29],
        [70, 48, 4500],
        [600, 100, 300],
      ] as const) {
        const x = rng.normal(R * I);
        const w = rng.normal(I * O);
        const dy = rng.normal(R * O);
        const dbRef = new Float64Array(O);
        const dbScale = new Float64Array(O);
        for (let i = 0; i < R * O; i++) {
          dbRef[i % O] += dy[i];
          dbScale[i % O] += Math.abs(dy[i]);
        }
        const wantDx = new Float32Array(R * I);
        const wantDw = new Float32Array(I * O);
        a.bf16Gemm(false, true, R, I, O, dy, w, wantDx);
        a.bf16Gemm(true, false, I, O, R, x, dy, wantDw);
        const dbs: Float32Array[] = [];
        // elements that differ bit for bit (a loop: toEqual on 10^5 elements takes seconds)
        const differ = (x: Float32Array, y: Float32Array) => {
          let n = x.length === y.length ? 0 : -1;
          for (let i = 0; i < x.length && n >= 0; i++) if (!Object.is(x[i], y[i])) n++;
          return n;
        };
        const within = (db: Float32Array) => {
          let bad = 0;
          for (let j = 0; j < O; j++)
            if (!(Math.abs(db[j] - dbRef[j]) <= dbScale[j] * 2 ** -23 * (R + 4))) bad++;
          return bad;
        };
        for (const threads of [1, 2]) {
          a.setThreads(threads);
          const dx = new Float32Array(R * I).fill(Number.NaN);
          const dw = new Float32Array(I * O).fill(Number.NaN);
          const db = new Float32Array(O).fill(Number.NaN);
          a.bf16LinearBackward(dy, x, w, R, I, O, dx, dw, db);
          expect(differ(dx, wantDx), `dx ${R} ${I} ${O}`).toBe(0);
          expect(differ(dw, wantDw), `dw ${R} ${I} ${O}`).toBe(0);
          expect(within(db), `db ${R} ${I} ${O}`).toBe(0);
          dbs.push(db);
          // without dx; without dw (db then summed on its own); db alone
          const none = new Float32Array(0);
          const db2 = new Float32Array(O).fill(Number.NaN);
          const dw2 = new Float32Array(I * O).fill(Number.NaN);
          a.bf16LinearBackward(dy, x, w, R, I, O, none, dw2, db2);
          expect(differ(dw2, wantDw)).toBe(0);
          expect(differ(db2, db)).toBe(0);
          const dx3 = new Float32Array(R * I).fill(Number.NaN);
          const db3 = new Float32Array(O).fill(Number.NaN);
          a.bf16LinearBackward(dy, x, w, R, I, O, dx3, none, db3);
          expect(differ(dx3, wantDx)).toBe(0);
          expect(within(db3)).toBe(0);
        }
        expect(differ(dbs[1], dbs[0])).toBe(0);
      }
      const f = (n: number) => new Float32Array(n);
      const backward = a.bf16LinearBackward.bind(a);
      expect(() => backward(f(6), f(6), f(6), 2, 3, 3, f(6), f(9), f(2))).toThrow(
        /bf16LinearBackward.*\bw\b/,
      );
      expect(() => backward(f(6), f(6), f(9), 2, 3, 3, f(6), f(9), f(2))).toThrow(
        /bf16LinearBackward.*\bdb\b.*out/,
      );
    } finally {
      a.setThreads(saved);
    }
  });

  it('bf16GemmStrided: each (b, h) product where it lies equals bf16GemmBatched on dense copies bit for bit, on every path', () => {
    // q [B, T, H, hd] in place · kᵀ (dense), p (dense) · v → out [B, T, H, hd] in place, and the
    // transposed form (dk = dSᵀ·q); per path in its own process, the count of differing bits
    const script = `
      import { nativeKernels } from './src/kernels/native.ts';
      import { RandomStream } from './src/kernels/random.ts';
      const a = nativeKernels().addon;
      const r = RandomStream.of({ seed: 41, step: 0, actor: 'strided' });
      const out = { path: a.bf16Path(), bad: [] };
      const [B, T, H, hd] = [2, 40, 3, 24];
      const inPlace = [T * H * hd, hd, H * hd], dense = (R, C) => [H * R * C, R * C, C];
      // dense [B, H, T, hd] copy of x [B, T, H, hd]
      const split = (x) => { const y = new Float32Array(x.length);
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++)
          for (let d = 0; d < hd; d++) y[((b * H + h) * T + t) * hd + d] = x[((b * T + t) * H + h) * hd + d];
        return y; };
      const q = r.normal(B * T * H * hd), k = r.normal(B * H * T * hd), p = r.normal(B * H * T * T);
      const count = (x, y) => { let n = 0; for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) n++; return n; };
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        // scores = q·kᵀ: [B, H, T, T]
        const s1 = new Float32Array(B * H * T * T), s2 = new Float32Array(B * H * T * T);
        a.bf16GemmStrided(false, true, Int32Array.from([B, H, T, T, hd]), q, Int32Array.from(inPlace),
          k, Int32Array.from(dense(T, hd)), s1, Int32Array.from(dense(T, T)));
        a.bf16GemmBatched(false, true, B * H, T, T, hd, split(q), T * hd, k, T * hd, s2);
        out.bad.push(count(s1, s2));
        // out = p·v written in place [B, T, H, hd] (NaN elsewhere: none, every element is written)
        const o1 = new Float32Array(B * T * H * hd).fill(NaN), o2 = new Float32Array(B * H * T * hd);
        a.bf16GemmStrided(false, false, Int32Array.from([B, H, T, hd, T]), p, Int32Array.from(dense(T, T)),
          k, Int32Array.from(dense(T, hd)), o1, Int32Array.from(inPlace));
        a.bf16GemmBatched(false, false, B * H, T, hd, T, p, T * T, k, T * hd, o2);
        out.bad.push(count(split(o1), o2));
        // dk = pᵀ·q with q in place
        const d1 = new Float32Array(B * H * T * hd), d2 = new Float32Array(B * H * T * hd);
        a.bf16GemmStrided(true, false, Int32Array.from([B, H, T, hd, T]), p, Int32Array.from(dense(T, T)),
          q, Int32Array.from(inPlace), d1, Int32Array.from(dense(T, hd)));
        a.bf16GemmBatched(true, false, B * H, T, hd, T, p, T * T, split(q), T * hd, d2);
        out.bad.push(count(d1, d2));
      }
      process.stdout.write(JSON.stringify(out));`;
    const run = (path: string) => onPath<{ path: string; bad: number[] }>(script, path);
    const seen = new Set<string>();
    for (const path of ['fp32', 'fma', 'avx512', 'amx']) {
      const got = run(path);
      if (seen.has(got.path)) continue;
      seen.add(got.path);
      expect(got.bad, got.path).toEqual([0, 0, 0, 0, 0, 0]);
    }
    const a = native.available ? native.addon : undefined;
    if (!a?.bf16GemmStrided) return;
    const f = (n: number) => new Float32Array(n);
    const i = (...x: number[]) => Int32Array.from(x);
    const strided = a.bf16GemmStrided.bind(a);
    expect(() =>
      strided(
        false,
        false,
        i(1, 1, 4, 4, 4),
        f(16),
        i(0, 0, 3),
        f(16),
        i(0, 0, 4),
        f(16),
        i(0, 0, 4),
      ),
    ).toThrow(/bf16GemmStrided.*leading dimension/);
    expect(() =>
      strided(
        false,
        false,
        i(1, 2, 4, 4, 4),
        f(16),
        i(0, 16, 4),
        f(32),
        i(0, 16, 4),
        f(32),
        i(0, 16, 4),
      ),
    ).toThrow(/bf16GemmStrided.*\ba\b/);
  }, 60_000);

  it('bad arguments name the function and the argument', () => {
    const a = native.available ? native.addon : undefined;
    if (!a) return;
    const f = (n: number) => new Float32Array(n);
    expect(() => a.bf16GemmBatched(false, false, 2, 3, 4, 5, f(30), 15, f(20), 0, f(23))).toThrow(
      /bf16GemmBatched.*\bc\b.*batch·M·N/,
    );
    expect(() => a.bf16GemmBatched(false, false, 2, 3, 4, 5, f(29), 15, f(20), 0, f(24))).toThrow(
      /\ba\b.*strideA/,
    );
    expect(() => a.bf16Linear(f(6), f(5), f(0), 2, 3, 2, f(4))).toThrow(/bf16Linear.*\bw\b/);
    expect(() => a.bf16Linear(f(6), f(6), f(1), 2, 3, 2, f(4))).toThrow(/bias/);
  });

  it('rounds its inputs to bf16: a value between two bf16 numbers is not kept', () => {
    const a = native.available ? native.addon : undefined;
    if (!a) return;
    const c = new Float32Array(1);
    // 1 + 2^-9 is not a bf16 (8 bits of mantissa): it rounds to 1, so 1·x = x
    a.bf16Gemm(false, false, 1, 1, 1, Float32Array.of(1 + 2 ** -9), Float32Array.of(3), c);
    expect(c[0]).toBe(3);
    a.bf16Gemm(false, false, 1, 1, 1, Float32Array.of(1 + 2 ** -7), Float32Array.of(1), c);
    expect(c[0]).toBe(1 + 2 ** -7); // exactly representable: kept
  });

  it('every path this CPU has gives the same numbers as the fp32 path on the rounded values (the fma path among them)', () => {
    // each path runs in its own process (the path is chosen once per process)
    const script = `
      import { nativeKernels } from './src/kernels/native.ts';
      import { RandomStream } from './src/kernels/random.ts';
      const n = nativeKernels(); const a = n.addon;
      const r = RandomStream.of({ seed: 5, step: 0, actor: 'p' });
      const x = r.normal(45 * 70), y = r.normal(70 * 37), c = new Float32Array(45 * 37);
      a.bf16Gemm(false, true, 45, 37, 70, x, y, c);
      a.setThreads(2); // and split between 2 threads
      const u = r.normal(130 * 500), v = r.normal(500 * 150), w = new Float32Array(130 * 150);
      a.bf16Gemm(true, false, 130, 150, 500, u, v, w);
      process.stdout.write(JSON.stringify({ path: a.bf16Path(), c: [...c, ...w] }));`;
    const run = (path: string) => onPath<{ path: string; c: number[] }>(script, path);
    const fp32 = run('fp32');
    expect(fp32.path).toBe('fp32');
    const seen = new Map<string, number[]>();
    for (const path of ['fma', 'avx512', 'amx']) {
      const got = run(path);
      if (seen.has(got.path)) continue; // not on this CPU (or build): it ran another path
      seen.set(got.path, got.c);
      let worst = 0;
      got.c.forEach((v, i) => {
        worst = Math.max(worst, Math.abs(v - fp32.c[i]) / (Math.abs(fp32.c[i]) + 1));
      });
      expect(worst, got.path).toBeLessThan(1e-5);
    }
    expect(seen.has('fma')).toBe(true); // the widening path runs on every CPU
    // Where the CPU has VDPBF16PS, the widening path adds each pair in the order Intel's manual
    // gives it (odd k, then even, each rounded), so the two agree bit for bit: first seen on a
    // Zen 5 (0 of 21 165 elements differ), asserted since. Not for subnormals, which VDPBF16PS
    // reads and writes as zero; these inputs have none.
    const avx512 = seen.get('avx512-bf16');
    const fma = seen.get('fma');
    if (avx512 && fma) {
      const differ = fma.filter((v, i) => !Object.is(v, avx512[i])).length;
      expect(differ, `fma vs avx512-bf16: elements whose bits differ, of ${fma.length}`).toBe(0);
    }
  }, 60_000);
});
