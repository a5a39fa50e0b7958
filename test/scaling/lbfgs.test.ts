import { describe, expect, it } from 'vitest';
import { lbfgs } from '../../src/scaling/lbfgs.js';

/** Rosenbrock in n dimensions: Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)²; minimum 0 at (1, …, 1). */
function rosenbrock(x: Float64Array, g: Float64Array): number {
  g.fill(0);
  let f = 0;
  for (let i = 0; i + 1 < x.length; i++) {
    const t = x[i + 1] - x[i] * x[i];
    const u = 1 - x[i];
    f += 100 * t * t + u * u;
    g[i] += -400 * t * x[i] - 2 * u;
    g[i + 1] += 200 * t;
  }
  return f;
}

describe('lbfgs', () => {
  it('finds the minimum of the 2-D Rosenbrock function from the classic start (−1.2, 1)', () => {
    const r = lbfgs(rosenbrock, [-1.2, 1]);
    expect(r.stop).not.toBe('line-search');
    expect(r.x[0]).toBeCloseTo(1, 6);
    expect(r.x[1]).toBeCloseTo(1, 6);
    expect(r.f).toBeLessThan(1e-12);
    // Plain gradient descent needs thousands of steps here; a working quasi-Newton method, tens.
    expect(r.iterations).toBeLessThan(100);
  });

  it('finds the minimum of the 10-D Rosenbrock function', () => {
    const x0 = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
    const r = lbfgs(rosenbrock, x0, { maxIterations: 2000 });
    for (const v of r.x) expect(v).toBeCloseTo(1, 5);
  });

  it('solves a quadratic 0.5 xᵀAx − bᵀx (A SPD, condition 1e4) to A⁻¹b', () => {
    // A = diag(1, 10, 100, 1e4) rotated by a fixed Givens pair in the (0, 3) plane.
    const diag = [1, 10, 100, 1e4];
    const c = Math.cos(0.3);
    const s = Math.sin(0.3);
    const A = diag.map((_, i) => diag.map((__, j) => (i === j ? diag[i] : 0)));
    const R = [
      [c, 0, 0, -s],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [s, 0, 0, c],
    ];
    const M = R.map((ri) =>
      R.map((rj) => ri.reduce((acc, _, k) => acc + ri[k] * A[k][k] * rj[k], 0)),
    );
    const b = [1, -2, 3, 0.5];
    const f = (x: Float64Array, g: Float64Array) => {
      let v = 0;
      for (let i = 0; i < 4; i++) {
        let ax = 0;
        for (let j = 0; j < 4; j++) ax += M[i][j] * x[j];
        g[i] = ax - b[i];
        v += 0.5 * x[i] * ax - b[i] * x[i];
      }
      return v;
    };
    const r = lbfgs(f, [0, 0, 0, 0]);
    // The solution by hand: M = R diag Rᵀ, so M⁻¹b = R diag⁻¹ Rᵀ b.
    const rtb = R.map((_, k) => R.reduce((acc, row, i) => acc + row[k] * b[i], 0));
    const want = R.map((row) => row.reduce((acc, rik, k) => acc + (rik * rtb[k]) / diag[k], 0));
    for (let i = 0; i < 4; i++) expect(r.x[i]).toBeCloseTo(want[i], 7);
  });

  it('refuses a start where the objective is not finite', () => {
    const log = (x: Float64Array, g: Float64Array) => {
      g[0] = 1 / x[0];
      return Math.log(x[0]);
    };
    expect(() => lbfgs(log, [-1])).toThrow(/not finite/);
  });
});
