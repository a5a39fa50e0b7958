import { fitPowerLaw } from './regression.js';

/*
 * Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", eqs. 1.1–1.3): pure power laws
 * L(X) = (X_c / X)^{α_X} for X = N (data not limiting), D (model not limiting) and C (the
 * compute-efficient frontier). A sweep does not train every size to convergence, so each law is
 * fitted to the sweep's frontier in X: the jobs whose loss is lower than that of every job with
 * a smaller (or equal) X, i.e. the best loss the sweep reached with at most X.
 */

export interface KaplanLaw {
  /** α_X */
  readonly alpha: number;
  /** X_c */
  readonly xc: number;
  /** The frontier points it was fitted to. */
  readonly points: readonly { readonly x: number; readonly loss: number }[];
}

/** The lower frontier of loss against x: each point better than every one at smaller-or-equal x. */
export function frontier<T extends { readonly loss: number }>(
  rows: readonly T[],
  x: (r: T) => number,
): T[] {
  const sorted = [...rows].sort((a, b) => x(a) - x(b) || a.loss - b.loss);
  const out: T[] = [];
  let best = Number.POSITIVE_INFINITY;
  for (const r of sorted) {
    if (r.loss < best) {
      out.push(r);
      best = r.loss;
    }
  }
  return out;
}

/** L(X) = (X_c / X)^α on the frontier; undefined when it has fewer than 2 distinct x. */
export function kaplanLaw<T extends { readonly loss: number }>(
  rows: readonly T[],
  x: (r: T) => number,
): KaplanLaw | undefined {
  const f = frontier(rows, x);
  if (new Set(f.map(x)).size < 2) return undefined;
  // log L = α log X_c − α log X: slope −α, intercept α log X_c.
  const p = fitPowerLaw(
    f.map(x),
    f.map((r) => r.loss),
  );
  const alpha = -p.exponent;
  return {
    alpha,
    xc: Math.exp(Math.log(p.k) / alpha),
    points: f.map((r) => ({ x: x(r), loss: r.loss })),
  };
}
