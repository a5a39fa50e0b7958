import { describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import {
  chinchillaObjective,
  computeOptimal,
  fitChinchilla,
  gridStarts,
  huber,
  huberGrad,
  type LossPoint,
  predictLoss,
} from '../../src/scaling/chinchilla.js';

/** Hoffmann et al.'s published fit (approach 3). */
const CHINCHILLA = { E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 };

function gaussian(rng: RandomStream): number {
  const u = 1 - rng.nextDouble();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextDouble());
}

/**
 * IsoFLOP-shaped synthetic data from the law: 9 budgets 6e18–3e21 FLOPs, 9 sizes each from a
 * tenth to ten times the law's N_opt, losses with log-normal noise of 0.5 %.
 */
function synthetic(seed: number, noise = 0.005): LossPoint[] {
  const rng = RandomStream.of({ seed, step: 0, actor: 'test', purpose: 'noise' });
  const opt = computeOptimal(CHINCHILLA);
  const out: LossPoint[] = [];
  for (const c of [6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21]) {
    for (let k = 0; k < 9; k++) {
      const n = opt.nOpt(c) * 10 ** (-1 + k / 4);
      const d = c / (6 * n);
      out.push({ n, d, loss: predictLoss(CHINCHILLA, n, d) * Math.exp(noise * gaussian(rng)) });
    }
  }
  return out;
}

describe('Huber loss', () => {
  it('is quadratic within δ and linear beyond, with a continuous slope', () => {
    expect(huber(0.5e-3, 1e-3)).toBeCloseTo(0.125e-6, 15);
    expect(huber(-3e-3, 1e-3)).toBeCloseTo(1e-3 * (3e-3 - 0.5e-3), 15);
    expect(huberGrad(0.5e-3, 1e-3)).toBe(0.5e-3);
    expect(huberGrad(-3e-3, 1e-3)).toBe(-1e-3);
    // At |r| = δ both pieces meet: value δ²/2 and slope δ.
    expect(huber(1e-3, 1e-3)).toBeCloseTo(0.5e-6, 15);
    expect(huber(1e-3 + 1e-12, 1e-3)).toBeCloseTo(0.5e-6, 14);
  });
});

describe('approach 3 objective', () => {
  it('has the gradient of its central finite differences, inside and beyond δ', () => {
    const points = synthetic(7, 0.02);
    // δ = 1e-2 with 2 % noise puts residuals on both sides of δ.
    const f = chinchillaObjective(points, 1e-2);
    for (const theta of [
      [6, 6, 0.5, 0.34, 0.28],
      [5.5, 6.3, 0.4, 0.3, 0.3],
      [8, 4, 0.7, 0.5, 0.2],
    ]) {
      const x = Float64Array.from(theta);
      const g = new Float64Array(5);
      f(x, g);
      const tmp = new Float64Array(5);
      for (let k = 0; k < 5; k++) {
        const h = 1e-6;
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[k] += h;
        down[k] -= h;
        const fd = (f(up, tmp) - f(down, tmp)) / (2 * h);
        expect(g[k], `θ ${theta}, ∂/∂θ${k}`).toBeCloseTo(fd, 6);
        expect(Math.abs(g[k] - fd)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fd)));
      }
    }
  });

  it('is zero at the true parameters on noiseless data, and its LSE equals the law', () => {
    const points = synthetic(0, 0);
    const f = chinchillaObjective(points, 1e-3);
    const theta = Float64Array.from([
      Math.log(CHINCHILLA.A),
      Math.log(CHINCHILLA.B),
      Math.log(CHINCHILLA.E),
      CHINCHILLA.alpha,
      CHINCHILLA.beta,
    ]);
    expect(f(theta, new Float64Array(5))).toBeLessThan(1e-20);
  });
});

describe('fitChinchilla', () => {
  it("recovers Hoffmann et al.'s constants from data made with them and 0.5 % log-noise", () => {
    const fit = fitChinchilla(synthetic(0));
    const truthOpt = computeOptimal(CHINCHILLA);
    const got = computeOptimal(fit.law);
    expect(Math.abs(fit.law.alpha - CHINCHILLA.alpha)).toBeLessThan(0.02);
    expect(Math.abs(fit.law.beta - CHINCHILLA.beta)).toBeLessThan(0.02);
    expect(Math.abs(got.a - truthOpt.a)).toBeLessThan(0.03);
    expect(Math.abs(fit.law.E - CHINCHILLA.E)).toBeLessThan(0.05);
    expect(fit.starts).toBe(4500);
  });

  it('refuses fewer than 5 points and non-positive values, by name', () => {
    const p = synthetic(0).slice(0, 4);
    expect(() => fitChinchilla(p)).toThrow(/at least 5/);
    expect(() => fitChinchilla([...p, { n: 0, d: 1, loss: 1 }])).toThrow(/positive, got N 0/);
  });

  it('has 4,500 grid starts, the Hoffmann grid', () => {
    const s = gridStarts();
    expect(s.length).toBe(4500);
    expect(s[0]).toEqual([0, 0, -1, 0, 0]);
    expect(s[4499]).toEqual([25, 25, 1, 2, 2]);
  });
});

describe('computeOptimal', () => {
  it('minimises the law on C = 6ND: N_opt matches a golden-section search', () => {
    const co = computeOptimal(CHINCHILLA);
    expect(co.a).toBeCloseTo(0.28 / 0.62, 12);
    expect(co.b).toBeCloseTo(0.34 / 0.62, 12);
    for (const c of [1e18, 5.76e23]) {
      const loss = (logN: number) =>
        predictLoss(CHINCHILLA, Math.exp(logN), c / (6 * Math.exp(logN)));
      let lo = Math.log(1e3);
      let hi = Math.log(1e14);
      const g = (Math.sqrt(5) - 1) / 2;
      for (let i = 0; i < 200; i++) {
        const m1 = hi - g * (hi - lo);
        const m2 = lo + g * (hi - lo);
        if (loss(m1) < loss(m2)) hi = m2;
        else lo = m1;
      }
      const nStar = Math.exp((lo + hi) / 2);
      expect(co.nOpt(c) / nStar).toBeCloseTo(1, 6);
      expect(co.nOpt(c) * co.dOpt(c) * 6).toBeCloseTo(c, -Math.log10(c) + 6);
      expect(co.frontier(c)).toBeCloseTo(loss(Math.log(nStar)), 9);
    }
    // Chinchilla's own budget (5.76e23 FLOPs) gives a model of tens of billions of parameters.
    expect(co.nOpt(5.76e23)).toBeGreaterThan(2e10);
    expect(co.nOpt(5.76e23)).toBeLessThan(5e10);
  });
});
