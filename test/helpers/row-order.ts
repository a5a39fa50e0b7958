import { expect } from 'vitest';
import { native } from './native.js';

/**
 * Whether this machine's fp32 products give a row of a product the same bits whatever rows sit
 * beside it. Scoring a shared prompt once (3 rows, then 12), a batch split over two instances
 * (half the rows each) or a product split over threads then equals the whole product bit for bit
 * — or only to float32 rounding, where the BLAS sums a row in an order that depends on where the
 * row falls in its tiles.
 *
 * Measured, not assumed: OpenBLAS 0.3.21's SkylakeX sgemm (a chain of multiply-adds over k per
 * element, Troupe's 2–16-row kernel the same chain) holds it; its Haswell/Zen kernels, loaded on
 * CPUs without AVX-512 (the AMD EPYC Zen 3 of 2026-12-04), do not: the rows of a 99-row product
 * differ from the same rows of a 100-row one. Without the addon the probe answers true (the suites
 * that ask need the addon anyway).
 */
export const rowsIndependent: boolean = probe();

function probe(): boolean {
  if (!native.available) return true;
  const { addon } = native;
  let seed = 12345;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const TALL = 128;
  for (const [K, N] of [
    [16, 16],
    [16, 69],
    [384, 512],
  ]) {
    const x = Float32Array.from({ length: TALL * K }, random);
    const w = Float32Array.from({ length: K * N }, random);
    const bias = Float32Array.from({ length: N }, random);
    const whole = new Float32Array(TALL * N);
    addon.linearForward(x, w, bias, TALL, K, N, whole);
    for (const M of [3, 12, 17, 40, 64, 99]) {
      const part = new Float32Array(M * N);
      addon.linearForward(x.subarray(0, M * K), w, bias, M, K, N, part);
      for (let i = 0; i < M * N; i++) if (part[i] !== whole[i]) return false;
    }
  }
  return true;
}

/**
 * `got` equals `want` bit for bit where rows are independent here (rowsIndependent), else to
 * float32 rounding: every element within 1e-5 of it, relative to max(1, |want|). Either way a
 * wrong row, a shifted prompt or a missing token (differences of 1e-2 and more) fails.
 */
export function expectRowsEqual(got: ArrayLike<number>, want: ArrayLike<number>, what = ''): void {
  if (rowsIndependent) {
    expect(got, what).toEqual(want);
    return;
  }
  expect(got.length, `${what} length`).toBe(want.length);
  let worst = -1;
  let excess = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(e <= 1e-5) && (worst < 0 || !(e <= excess))) {
      worst = i;
      excess = e;
    }
  }
  expect(
    worst < 0 ? '' : `element ${worst}: ${got[worst]} against ${want[worst]} (relative ${excess})`,
    `${what} (rows not independent on this machine's BLAS: compared to float32 rounding)`,
  ).toBe('');
}
