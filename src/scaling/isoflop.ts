import { TroupeError } from '../errors.js';
import { fitParabola, fitPowerLaw, type Parabola, type PowerLaw } from './regression.js';

/*
 * Chinchilla approach 2 (Hoffmann et al. 2022, §3.2): for each compute budget C, a parabola of
 * the final loss against log N over the sizes trained at C (an IsoFLOP curve); its vertex is
 * N_opt(C), D_opt(C) = C / 6 N_opt; then N_opt ∝ C^a by a line in log-log space.
 *
 * The bias: the IsoFLOP curve of L = E + A/N^α + B/D^β is A e^{−αx} + B' e^{βx} + E in
 * x = log N, a parabola only near its minimum and skewed when α ≠ β; a parabola over a finite
 * window of sizes puts its vertex off the true minimum by an amount that depends on how wide
 * the window is and where it sits against the optimum. With the same sizes at every budget the
 * optimum moves across the window as C grows, so the offset changes with C and tilts the fitted
 * exponent. `analyzeSweep` measures this offset for the sweep's own design (`approach2Bias`).
 */

/** One point of an IsoFLOP curve: a size trained at budget `c`. */
export interface IsoPoint {
  readonly c: number;
  readonly n: number;
  readonly loss: number;
}

export interface IsoCurve {
  readonly c: number;
  readonly points: number;
  /** loss = p0 + p1 log N + p2 (log N)² (natural log). */
  readonly parabola: Parabola;
  /** The vertex's N, when the parabola has a minimum. */
  readonly nOpt?: number;
  readonly dOpt?: number;
  readonly lossAtOpt?: number;
  /** The vertex lies between the smallest and largest N trained at c (not extrapolated). */
  readonly inside?: boolean;
}

export interface Approach2 {
  readonly curves: readonly IsoCurve[];
  /** N_opt = k C^a over the curves with a minimum; undefined with fewer than 2 of them. */
  readonly nOpt?: PowerLaw;
  /** D_opt = k C^b (b = 1 − a, since D_opt = C / 6 N_opt). */
  readonly dOpt?: PowerLaw;
  /** Budgets left out: fewer than 3 distinct sizes, or a parabola with no minimum. */
  readonly skipped: readonly { readonly c: number; readonly why: string }[];
}

/**
 * The points a budget's parabola is fitted to: all of them, or (with `window` w) the size with
 * the lowest loss and the w sizes on each side of it, so that far, skewed tails do not pull the
 * vertex (the bias above); at the edge of the sizes the window is shifted inward to keep 2w + 1.
 */
export function isoWindow(points: readonly IsoPoint[], window?: number): IsoPoint[] {
  const sorted = [...points].sort((a, b) => a.n - b.n);
  if (window === undefined || sorted.length <= 2 * window + 1) return sorted;
  const best = sorted.reduce((bi, p, i) => (p.loss < sorted[bi].loss ? i : bi), 0);
  const lo = Math.max(0, Math.min(best - window, sorted.length - (2 * window + 1)));
  return sorted.slice(lo, lo + 2 * window + 1);
}

/**
 * Approach 2 over points grouped by their budget `c`; `window` limits each parabola to the
 * sizes around its budget's best one (see `isoWindow`).
 */
export function approach2(points: readonly IsoPoint[], window?: number): Approach2 {
  const byC = new Map<number, IsoPoint[]>();
  for (const p of points) byC.set(p.c, [...(byC.get(p.c) ?? []), p]);
  const curves: IsoCurve[] = [];
  const skipped: { c: number; why: string }[] = [];
  for (const [c, all] of [...byC].sort(([a], [b]) => a - b)) {
    const ps = isoWindow(all, window);
    const xs = ps.map((p) => Math.log(p.n));
    if (new Set(xs).size < 3) {
      skipped.push({ c, why: `${new Set(xs).size} distinct sizes (a parabola needs 3)` });
      continue;
    }
    const parabola = fitParabola(
      xs,
      ps.map((p) => p.loss),
    );
    if (parabola.xMin === undefined) {
      skipped.push({ c, why: 'the parabola opens downward (no minimum)' });
      curves.push({ c, points: ps.length, parabola });
      continue;
    }
    const nOpt = Math.exp(parabola.xMin);
    curves.push({
      c,
      points: ps.length,
      parabola,
      nOpt,
      dOpt: c / (6 * nOpt),
      lossAtOpt: parabola.yMin,
      inside: parabola.xMin >= Math.min(...xs) && parabola.xMin <= Math.max(...xs),
    });
  }
  const withMin = curves.filter((k) => k.nOpt !== undefined);
  if (withMin.length < 2) return { curves, skipped };
  const cs = withMin.map((k) => k.c);
  return {
    curves,
    skipped,
    nOpt: fitPowerLaw(
      cs,
      withMin.map((k) => k.nOpt!),
    ),
    dOpt: fitPowerLaw(
      cs,
      withMin.map((k) => k.dOpt!),
    ),
  };
}

/** Approach 2's exponent a, refused by name when fewer than 2 budgets have a minimum. */
export function approach2Exponent(points: readonly IsoPoint[], window?: number): number {
  const r = approach2(points, window);
  if (!r.nOpt) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `approach 2 needs at least 2 budgets whose IsoFLOP parabola has a minimum; skipped: ${r.skipped.map((s) => `C ${s.c}: ${s.why}`).join('; ')}`,
    );
  }
  return r.nOpt.exponent;
}
