import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import { native, nativeSkip } from '../helpers/native.js';

/**
 * The bf16 product (native/bf16.c) against a float64 plain loop over the same operands rounded to
 * bfloat16 (round to nearest even, as PyTorch's `.to(torch.bfloat16)`): the products of two bf16
 * values are exact in fp32, so the only difference is the order of the fp32 sums.
 */
const skip = nativeSkip;

/** float32 → the nearest bfloat16 value (ties to even), as a number. */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if ((u[0] & 0x7fffffff) > 0x7f800000) return Number.NaN;
  u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) << 16;
  return f[0];
}

/** The float64 sums of the bf16 products, and the sums of their magnitudes (the error scale). */
function reference(
  ta: boolean,
  tb: boolean,
  M: number,
  N: number,
  K: number,
  a: Float32Array,
  b: Float32Array,
): { sum: Float64Array; scale: Float64Array } {
  const ra = Float64Array.from(a, bf16);
  const rb = Float64Array.from(b, bf16);
  const sum = new Float64Array(M * N);
  const scale = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      let z = 0;
      for (let k = 0; k < K; k++) {
        const p = (ta ? ra[k * M + m] : ra[m * K + k]) * (tb ? rb[n * K + k] : rb[k * N + n]);
        s += p;
        z += Math.abs(p);
      }
      sum[m * N + n] = s;
      scale[m * N + n] = z;
    }
  return { sum, scale };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [32, 32, 32],
  [33, 31, 65],
  [64, 48, 100],
  [17, 130, 40],
];

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
        const want = reference(ta, tb, M, N, K, x, y);
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

  it('every path this CPU has gives the same numbers as the fp32 path on the rounded values', () => {
    // each path runs in its own process (the path is chosen once per process)
    const script = `
      import { nativeKernels } from './src/kernels/native.ts';
      import { RandomStream } from './src/kernels/random.ts';
      const n = nativeKernels(); const a = n.addon;
      const r = RandomStream.of({ seed: 5, step: 0, actor: 'p' });
      const x = r.normal(45 * 70), y = r.normal(70 * 37), c = new Float32Array(45 * 37);
      a.bf16Gemm(false, true, 45, 37, 70, x, y, c);
      process.stdout.write(JSON.stringify({ path: a.bf16Path(), c: Array.from(c) }));`;
    const run = (path: string) =>
      JSON.parse(
        execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
          env: { ...process.env, TROUPE_BF16_PATH: path },
          encoding: 'utf8',
        }),
      ) as { path: string; c: number[] };
    const fp32 = run('fp32');
    expect(fp32.path).toBe('fp32');
    for (const path of ['avx512', 'amx']) {
      const got = run(path);
      if (got.path === 'fp32') continue; // not on this CPU (or build)
      let worst = 0;
      got.c.forEach((v, i) => {
        worst = Math.max(worst, Math.abs(v - fp32.c[i]) / (Math.abs(fp32.c[i]) + 1));
      });
      expect(worst, got.path).toBeLessThan(1e-5);
    }
  }, 60_000);
});
