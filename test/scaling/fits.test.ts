import { describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import { bootstrap, quantile, resample } from '../../src/scaling/bootstrap.js';
import { computeOptimal, predictLoss } from '../../src/scaling/chinchilla.js';
import { approach2, type IsoPoint, isoWindow } from '../../src/scaling/isoflop.js';
import { frontier, kaplanLaw } from '../../src/scaling/kaplan.js';
import { fitLine, fitParabola, fitPowerLaw, solve } from '../../src/scaling/regression.js';

describe('least squares', () => {
  it('solves a 3×3 system that needs a row swap', () => {
    // x = (1, 2, 3): rows chosen so the first pivot is 0.
    const v = solve(
      [
        [0, 1, 1],
        [2, 0, 1],
        [1, 1, 0],
      ],
      [5, 5, 3],
    )!;
    expect(v[0]).toBeCloseTo(1, 12);
    expect(v[1]).toBeCloseTo(2, 12);
    expect(v[2]).toBeCloseTo(3, 12);
    expect(
      solve(
        [
          [1, 2],
          [2, 4],
        ],
        [1, 2],
      ),
    ).toBeUndefined();
  });

  it('fits a line and a power law exactly on exact data', () => {
    expect(fitLine([0, 1, 2, 3], [1, 3, 5, 7])).toEqual({ intercept: 1, slope: 2 });
    const p = fitPowerLaw([1e3, 1e4, 1e5], [2 * 1e3 ** 0.5, 2 * 1e4 ** 0.5, 2 * 1e5 ** 0.5]);
    expect(p.k).toBeCloseTo(2, 10);
    expect(p.exponent).toBeCloseTo(0.5, 12);
    expect(() => fitLine([1, 1], [2, 3])).toThrow(/2 distinct x/);
  });

  it('a parabola by hand: y = 2 + 0.5 (x − 3)² has its vertex at x = 3, y = 2', () => {
    const xs = [1, 2, 4, 5.5];
    const p = fitParabola(
      xs,
      xs.map((x) => 2 + 0.5 * (x - 3) ** 2),
    );
    // Expanded: 6.5 − 3x + 0.5x².
    expect(p.p0).toBeCloseTo(6.5, 10);
    expect(p.p1).toBeCloseTo(-3, 10);
    expect(p.p2).toBeCloseTo(0.5, 10);
    expect(p.xMin).toBeCloseTo(3, 10);
    expect(p.yMin).toBeCloseTo(2, 10);
    expect(fitParabola([0, 1, 2], [0, 1, 0]).xMin).toBeUndefined(); // opens downward
    expect(() => fitParabola([1, 1, 2], [1, 2, 3])).toThrow(/3 distinct x/);
  });
});

describe('approach 2 (IsoFLOP parabolas)', () => {
  it('hand case: losses exactly parabolic in log N with vertex N_opt = 0.1·C^0.5', () => {
    const pts: IsoPoint[] = [];
    for (const c of [1e12, 1e14, 1e16]) {
      const v = Math.log(0.1 * c ** 0.5);
      for (const dx of [-1.2, -0.4, 0.3, 1.1])
        pts.push({ c, n: Math.exp(v + dx), loss: 3 + 0.2 * dx * dx });
    }
    const r = approach2(pts);
    expect(r.skipped).toEqual([]);
    for (const k of r.curves) {
      expect(k.nOpt! / (0.1 * k.c ** 0.5)).toBeCloseTo(1, 9);
      expect(k.dOpt! * k.nOpt! * 6).toBeCloseTo(k.c, -Math.log10(k.c) + 6);
      expect(k.lossAtOpt).toBeCloseTo(3, 10);
      expect(k.inside).toBe(true);
    }
    expect(r.nOpt!.exponent).toBeCloseTo(0.5, 10);
    expect(r.nOpt!.k).toBeCloseTo(0.1, 8);
    expect(r.dOpt!.exponent).toBeCloseTo(0.5, 10);
  });

  it('skips a budget with fewer than 3 sizes or no minimum, saying why', () => {
    const r = approach2([
      { c: 1, n: 10, loss: 3 },
      { c: 1, n: 20, loss: 2 },
      { c: 2, n: 10, loss: 1 },
      { c: 2, n: 20, loss: 2 },
      { c: 2, n: 40, loss: 1 },
    ]);
    expect(r.skipped).toEqual([
      { c: 1, why: '2 distinct sizes (a parabola needs 3)' },
      { c: 2, why: 'the parabola opens downward (no minimum)' },
    ]);
    expect(r.nOpt).toBeUndefined();
  });

  it('the window keeps the best size and w on each side, shifted inward at the edges', () => {
    const pts = [5, 4, 3, 2, 2.5, 3.5, 4.5].map((loss, i) => ({ c: 1, n: 10 * 2 ** i, loss }));
    expect(isoWindow(pts, 1).map((p) => p.loss)).toEqual([3, 2, 2.5]);
    expect(isoWindow(pts, 2).map((p) => p.loss)).toEqual([4, 3, 2, 2.5, 3.5]);
    const edge = pts.map((p, i) => ({ ...p, loss: i }));
    expect(isoWindow(edge, 1).map((p) => p.loss)).toEqual([0, 1, 2]);
    expect(isoWindow(pts, undefined).length).toBe(7);
  });

  it('is biased on a skewed law (α ≠ β) with fixed sizes; not when α = β and centred; the window shrinks it', () => {
    const run = (
      law: Parameters<typeof computeOptimal>[0],
      center: (c: number) => number,
      window?: number,
    ) => {
      const co = computeOptimal(law);
      const pts: IsoPoint[] = [];
      for (const c of [1e18, 1e19, 1e20, 1e21]) {
        for (let k = -3; k <= 3; k++) {
          const n = center(c) * Math.exp(0.9 * k);
          pts.push({ c, n, loss: predictLoss(law, n, c / (6 * n)) });
        }
      }
      return approach2(pts, window).nOpt!.exponent - co.a;
    };
    const symmetric = { E: 1.7, A: 400, B: 400, alpha: 0.3, beta: 0.3 };
    expect(Math.abs(run(symmetric, (c) => computeOptimal(symmetric).nOpt(c)))).toBeLessThan(1e-9);
    // Chinchilla's law, the same 7 sizes at every budget (the optimum moves across them).
    const chin = { E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 };
    const fixed = () => computeOptimal(chin).nOpt(10 ** 19.5);
    expect(run(chin, fixed)).toBeLessThan(-0.01);
    expect(Math.abs(run(chin, fixed, 2))).toBeLessThan(0.002);
  });
});

describe('Kaplan power laws on the frontier', () => {
  it('the frontier keeps each point better than all at smaller or equal x', () => {
    const rows = [
      { x: 1, loss: 5 },
      { x: 2, loss: 6 },
      { x: 2, loss: 4 },
      { x: 3, loss: 4.5 },
      { x: 4, loss: 3 },
    ];
    expect(frontier(rows, (r) => r.x)).toEqual([rows[0], rows[2], rows[4]]);
  });

  it('recovers L = (X_c / X)^α from exact frontier data', () => {
    const rows = [1e5, 1e6, 1e7, 1e8].map((x) => ({ x, loss: (1e13 / x) ** 0.076 }));
    const k = kaplanLaw(rows, (r) => r.x)!;
    expect(k.alpha).toBeCloseTo(0.076, 10);
    expect(k.xc / 1e13).toBeCloseTo(1, 6);
    expect(kaplanLaw([rows[0]], (r) => r.x)).toBeUndefined();
  });
});

describe('bootstrap', () => {
  it('quantiles interpolate between order statistics', () => {
    expect(quantile([3, 1, 2, 4], 0)).toBe(1);
    expect(quantile([3, 1, 2, 4], 1)).toBe(4);
    expect(quantile([3, 1, 2, 4], 0.5)).toBe(2.5);
    expect(quantile([10, 20], 0.25)).toBe(12.5);
  });

  it('a resample keeps each stratum its size and draws only from it', () => {
    const rng = RandomStream.of({ seed: 1, step: 0, actor: 't' });
    const strata = [
      [0, 1, 2],
      [3, 4],
      [5, 6, 7, 8],
    ];
    const r = resample(strata, rng);
    expect(r.length).toBe(9);
    expect(r.slice(0, 3).every((i) => i <= 2)).toBe(true);
    expect(r.slice(3, 5).every((i) => i === 3 || i === 4)).toBe(true);
    expect(r.slice(5).every((i) => i >= 5)).toBe(true);
  });

  it('is deterministic by seed; another seed gives other intervals; the mean of the sample lies inside', () => {
    const rows = Array.from({ length: 40 }, (_, i) => ({
      g: i % 2,
      v: Math.sin(i * 1.7) * 3 + i / 10,
    }));
    const mean = (rs: readonly { v: number }[]) => ({
      mean: rs.reduce((s, r) => s + r.v, 0) / rs.length,
    });
    const o = { resamples: 300, seed: 5, confidence: 0.9 };
    const a = bootstrap(rows, (r) => r.g, mean, o);
    const b = bootstrap(rows, (r) => r.g, mean, o);
    const c = bootstrap(rows, (r) => r.g, mean, { ...o, seed: 6 });
    expect(a).toEqual(b);
    expect(c.intervals['mean']).not.toEqual(a.intervals['mean']);
    const m = mean(rows).mean;
    const [lo, hi] = a.intervals['mean'];
    expect(lo).toBeLessThan(m);
    expect(hi).toBeGreaterThan(m);
    expect(a.used['mean']).toBe(300);
    // A 90 % interval of a mean of 40 values with sd ≈ 2.3 is about ±0.6 wide: not a degenerate one.
    expect(hi - lo).toBeGreaterThan(0.5);
    expect(hi - lo).toBeLessThan(2.5);
  });
});
