import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeSkip as skip } from '../helpers/native.js';

/**
 * native/seqgemm.c: the decoder block's projections at > 16 rows, summed in the order OpenBLAS's
 * SkylakeX sgemm sums (a chain of fused multiply-adds over k, K > 448 cut in two). Run in child
 * processes, one per BLAS core (chosen as OpenBLAS loads): under SkylakeX it must give
 * linearForward's bits (sgemm, then the bias) on every shape, under Haswell it must decline; and
 * its values are held to a float64 loop wherever it runs.
 */
const SHAPES: [number, number, number][] = [
  // rows, in, out: the GRPO job's decode (64, 32 rows) and prefill, and around K's cut
  [64, 128, 128],
  [64, 128, 512],
  [64, 512, 128],
  [32, 128, 512],
  [32, 512, 128],
  [256, 128, 384],
  [17, 96, 48], // tails: rows past 8, columns past 32
  [23, 448, 32],
  [40, 449, 48],
  [24, 500, 64], // M·N·K ≤ 10^6 (sgemm's small-matrix kernel): K not cut
  [25, 625, 64],
  [25, 626, 64], // past it: K cut at 320
  [64, 512, 48],
  [24, 640, 128],
  [24, 768, 64],
  [64, 768, 16],
];

interface Result {
  config: string;
  ran: boolean[];
  /** per shape: elements whose bits differ from linearForward's */
  differ: number[];
  /** per shape: the largest |y − float64| / (Σ|x·w| + |b|) */
  err: number[];
  /** outside what it takes: 16 rows, in 769, out 40, two threads */
  declined: boolean[];
}

function runIn(core: string): Result {
  const script = `
    import { nativeKernels } from './src/kernels/native.ts';
    const st = nativeKernels();
    const a = st.addon;
    a.setThreads(1);
    let s = 7;
    const rnd = (n) => Float32Array.from({ length: n }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 2 ** 32 - 0.5;
    });
    const shapes = ${JSON.stringify(SHAPES)};
    const out = { config: a.config(), ran: [], differ: [], err: [], declined: [] };
    for (const [R, K, N] of shapes) {
      const x = rnd(R * K), w = rnd(K * N), b = rnd(N);
      const got = new Float32Array(R * N), want = new Float32Array(R * N);
      out.ran.push(a.linearInOrder(x, w, b, R, K, N, got));
      a.linearForward(x, w, b, R, K, N, want);
      const g = new Uint32Array(got.buffer), h = new Uint32Array(want.buffer);
      let d = 0;
      for (let i = 0; i < g.length; i++) d += g[i] !== h[i] ? 1 : 0;
      out.differ.push(d);
      let e = 0;
      for (let r = 0; r < R; r++)
        for (let n = 0; n < N; n++) {
          let ref = b[n], mag = Math.abs(b[n]);
          for (let k = 0; k < K; k++) {
            ref += x[r * K + k] * w[k * N + n];
            mag += Math.abs(x[r * K + k] * w[k * N + n]);
          }
          e = Math.max(e, Math.abs(got[r * N + n] - ref) / mag);
        }
      out.err.push(out.ran.at(-1) ? e : 0);
    }
    const y = new Float32Array(769 * 32);
    out.declined.push(!a.linearInOrder(rnd(16 * 8), rnd(8 * 8), new Float32Array(0), 16, 8, 8, y));
    out.declined.push(!a.linearInOrder(rnd(17 * 769), rnd(769 * 16), new Float32Array(0), 17, 769, 16, y));
    out.declined.push(!a.linearInOrder(rnd(17 * 8), rnd(8 * 40), new Float32Array(0), 17, 8, 40, y));
    a.setThreads(2);
    out.declined.push(!a.linearInOrder(rnd(64 * 8), rnd(8 * 16), new Float32Array(0), 64, 8, 16, y));
    process.stdout.write(JSON.stringify(out));`;
  return JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TROUPE_BLAS_CORETYPE: core },
      encoding: 'utf8',
    }),
  ) as Result;
}

/** The CPU runs OpenBLAS's SkylakeX kernels (the AVX-512 subsets the addon asks for): Linux x86. */
function avx512(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  const flags =
    readFileSync('/proc/cpuinfo', 'utf8')
      .match(/^flags\s*:(.*)$/m)?.[1]
      .split(' ') ?? [];
  return ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.includes(f));
}

describe.skipIf(skip !== null)(`native in-order projection${skip ? ` (${skip})` : ''}`, () => {
  it.skipIf(!avx512())(
    "under OpenBLAS's SkylakeX kernels: sgemm's bits on every shape, float64 within float32 sums",
    () => {
      const r = runIn('SkylakeX');
      expect(r.config).toContain('SkylakeX');
      expect(r.ran).toEqual(SHAPES.map(() => true));
      expect(r.differ).toEqual(SHAPES.map(() => 0));
      // a sum of K products in float32, then the bias: within (K + 2)·2^-24 of Σ|terms|
      for (const [i, e] of r.err.entries())
        expect(e, `shape ${SHAPES[i]}`).toBeLessThan((SHAPES[i][1] + 2) * 2 ** -24);
      expect(r.declined).toEqual([true, true, true, true]);
    },
    60_000,
  );

  it('under another core (Haswell): declines, and sgemm runs', () => {
    const r = runIn('Haswell');
    expect(r.config).toContain('Haswell');
    expect(r.ran).toEqual(SHAPES.map(() => false));
    expect(r.declined).toEqual([true, true, true, true]);
  }, 60_000);
});
