import { describe, expect, it } from 'vitest';
import type { NativeAddon } from '../../src/kernels/native.js';
import { RandomStream } from '../../src/kernels/random.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

/*
 * The element-wise and row kernels (native/fused.c, rows.c) share their work between the BLAS
 * threads (native/ranges.h). Every thread count must give the same bits — a run's numbers may
 * not depend on its placement, which sets the threads — and the shared-out sums must still be
 * the sums: checked against float64 loops here. The shapes are past the 2^16 floats a thread
 * gets at least, with sizes that are not multiples of the split's grain and views that start at
 * odd offsets.
 */

const addon = (): NativeAddon => {
  if (!native.available) throw new Error(native.reason);
  return native.addon;
};

const rng = RandomStream.of({ seed: 3, step: 0, actor: 'native-threads' });
/** n normals in a view that starts `offset` floats into its buffer */
const view = (n: number, offset: number, mean = 0, std = 1): Float32Array => {
  const buf = new Float32Array(offset + n);
  buf.set(rng.normal(n, mean, std), offset);
  return buf.subarray(offset);
};

/** Runs `call` (which writes its outputs into fresh arrays it returns) at 1 and 2 threads. */
function atOneAndTwo(call: () => Float32Array[]): [Float32Array[], Float32Array[]] {
  const a = addon();
  const saved = a.threads();
  try {
    a.setThreads(1);
    const one = call();
    a.setThreads(2);
    const two = call();
    return [one, two];
  } finally {
    a.setThreads(saved);
  }
}

const out = (n: number) => new Float32Array(n).fill(Number.NaN);

/** a and b hold the same bits (a NaN left in either fails): the first difference, named */
function sameBits(a: Float32Array, b: Float32Array, name: string): void {
  expect(b.length, name).toBe(a.length);
  const [u, v] = [
    new Uint32Array(a.buffer, a.byteOffset, a.length),
    new Uint32Array(b.buffer, b.byteOffset, b.length),
  ];
  let i = 0;
  while (i < u.length && u[i] === v[i] && !Number.isNaN(a[i])) i++;
  expect(i === u.length ? 'same' : `${name}[${i}]: ${a[i]} vs ${b[i]}`).toBe('same');
}

describe.skipIf(skip !== null)('native element-wise and row kernels across threads', () => {
  const [R, C] = [1031, 200]; // 206,200 floats: two threads; C not a multiple of 16

  it('GELU and SiLU, forward and backward: 2 threads bit for bit 1 thread', () => {
    const n = 300_001;
    const x = view(n, 3, 0.2, 2);
    const dy = view(n, 5);
    for (const kind of [0, 1]) {
      const [one, two] = atOneAndTwo(() => {
        const y = out(n);
        const dx = out(n);
        addon().activationForward(kind, x, y);
        addon().activationBackward(kind, x, dy, dx);
        return [y, dx];
      });
      sameBits(one[0], two[0], `kind ${kind} forward`);
      sameBits(one[1], two[1], `kind ${kind} backward`);
    }
  });

  it('LayerNorm and RMSNorm, forward and backward: same bits, and γ/β sums equal to float64', () => {
    const x = view(R * C, 1, 0.3, 1.5);
    const dy = view(R * C, 7);
    const gamma = view(C, 0, 1, 0.2);
    const beta = view(C, 0, 0, 0.2);
    const [one, two] = atOneAndTwo(() => {
      const [y, mean, rstd] = [out(R * C), out(R), out(R)];
      addon().layerNormForward(x, gamma, beta, R, C, 1e-5, y, mean, rstd);
      const [dx, dg, db] = [out(R * C), out(C), out(C)];
      addon().layerNormBackward(dy, x, gamma, mean, rstd, R, C, dx, dg, db);
      const [ry, rrstd] = [out(R * C), out(R)];
      addon().rmsNormForward(x, gamma, R, C, 1e-5, ry, rrstd);
      const [rdx, rdg] = [out(R * C), out(C)];
      addon().rmsNormBackward(dy, x, gamma, rrstd, R, C, rdx, rdg);
      return [y, mean, rstd, dx, dg, db, ry, rrstd, rdx, rdg];
    });
    const names = [
      'y',
      'mean',
      'rstd',
      'dx',
      'dgamma',
      'dbeta',
      'rms y',
      'rms rstd',
      'rms dx',
      'rms dgamma',
    ];
    for (const [i, t] of two.entries()) sameBits(one[i], t, names[i]);
    // dγ_j = Σ_r dy·x̂ and dβ_j = Σ_r dy (LayerNorm), dγ_j = Σ_r dy·x·rstd (RMSNorm), in float64
    const [, mean, rstd, , dg, db, , rrstd, , rdg] = two;
    for (let j = 0; j < C; j++) {
      let g = 0;
      let b = 0;
      let rg = 0;
      for (let r = 0; r < R; r++) {
        const [xv, d] = [x[r * C + j], dy[r * C + j]];
        g += d * (xv - mean[r]) * rstd[r];
        b += d;
        rg += d * xv * rrstd[r];
      }
      expect(Math.abs(dg[j] - g), `dgamma[${j}]`).toBeLessThan(1e-4 * (1 + Math.abs(g)));
      expect(Math.abs(db[j] - b), `dbeta[${j}]`).toBeLessThan(1e-4 * (1 + Math.abs(b)));
      expect(Math.abs(rdg[j] - rg), `rms dgamma[${j}]`).toBeLessThan(1e-4 * (1 + Math.abs(rg)));
    }
  });

  it('a batch of small products (attention per head) shared out: same bits, and the float64 sums', () => {
    const [batch, M, N, K] = [96, 32, 64, 32]; // 65,536 multiply-adds a product: one BLAS thread each
    for (const tb of [false, true]) {
      const x = view(batch * M * K, 3);
      const w = view(batch * K * N, 1);
      const [one, two] = atOneAndTwo(() => {
        const c = out(batch * M * N);
        addon().sgemmBatched(false, tb, batch, M, N, K, x, M * K, w, K * N, c);
        return [c];
      });
      sameBits(one[0], two[0], `transB ${tb}`);
      for (const [i, m, n] of [
        [0, 0, 0],
        [47, 13, 63],
        [95, 31, 7],
      ]) {
        let want = 0;
        for (let k = 0; k < K; k++) {
          const b = tb ? w[i * K * N + n * K + k] : w[i * K * N + k * N + n];
          want += x[i * M * K + m * K + k] * b;
        }
        expect(Math.abs(two[0][(i * M + m) * N + n] - want), `${i},${m},${n}`).toBeLessThan(1e-4);
      }
    }
  });

  it('softmax rows, log-softmax picks and column sums: same bits, and the sums equal float64', () => {
    const [G, H, Q] = [3, 4, 97]; // attention: 3 × 4 heads × 97 queries × C keys
    const x = view(G * H * Q * C, 2);
    const bias = view(G * Q * C, 1, 0, 0.5);
    const dy = view(G * H * Q * C, 4);
    const labels = Int32Array.from({ length: R }, (_, r) => (r * 37) % C);
    const z = view(R * C, 9, 0, 3);
    const dlp = view(R, 0);
    const [one, two] = atOneAndTwo(() => {
      const y = out(G * H * Q * C);
      addon().scaledSoftmax(x, bias, G, H, Q, C, 0.125, y);
      const dx = out(G * H * Q * C);
      addon().scaledSoftmaxBackward(y, dy, G * H * Q, C, 0.125, dx);
      const [lp, lse] = [out(R), out(R)];
      addon().logSoftmaxPick(z, labels, R, C, lp, lse);
      const g = out(R * C);
      addon().logSoftmaxPickBackward(z, lse, labels, dlp, R, C, 0, g);
      const sums = out(C);
      addon().columnSums(z, R, C, sums);
      return [y, dx, lp, lse, g, sums];
    });
    const names = ['softmax', 'softmax grad', 'lp', 'lse', 'lp grad', 'column sums'];
    for (const [i, t] of two.entries()) sameBits(one[i], t, names[i]);
    const [y, , lp, lse, , sums] = two;
    // row (g, h, q) of the softmax, its bias row (g, q): spot rows from each group
    for (const row of [0, H * Q + 5, G * H * Q - 1]) {
      const [g, q] = [Math.floor(row / (H * Q)), row % Q];
      const e = Array.from(
        { length: C },
        (_, j) => 0.125 * x[row * C + j] + bias[(g * Q + q) * C + j],
      );
      const m = Math.max(...e);
      const s = e.reduce((a, v) => a + Math.exp(v - m), 0);
      for (let j = 0; j < C; j += 13) {
        expect(
          Math.abs(y[row * C + j] - Math.exp(e[j] - m) / s),
          `softmax ${row},${j}`,
        ).toBeLessThan(1e-6);
      }
    }
    for (const r of [0, 515, R - 1]) {
      const zr = Array.from(z.subarray(r * C, (r + 1) * C));
      const m = Math.max(...zr);
      const l = m + Math.log(zr.reduce((a, v) => a + Math.exp(v - m), 0));
      expect(Math.abs(lse[r] - l), `lse ${r}`).toBeLessThan(1e-5 * Math.abs(l) + 1e-6);
      expect(Math.abs(lp[r] - (zr[labels[r]] - l)), `lp ${r}`).toBeLessThan(1e-4);
    }
    for (let j = 0; j < C; j++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += z[r * C + j];
      expect(Math.abs(sums[j] - s), `column ${j}`).toBeLessThan(1e-3);
    }
  });
});
