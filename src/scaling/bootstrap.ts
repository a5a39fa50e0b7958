import { TroupeError } from '../errors.js';
import { RandomStream } from '../kernels/random.js';

/*
 * Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the jobs with replacement
 * within each stratum (a budget, so that every IsoFLOP curve keeps its number of points), refit,
 * and take the empirical quantiles of each fitted quantity. Seeded: the same seed gives the same
 * resamples, on every machine (the draws are Philox, see kernels/random.ts).
 */

/** Indices of one resample: as many draws from each stratum as it holds. */
export function resample(strata: readonly (readonly number[])[], rng: RandomStream): number[] {
  const out: number[] = [];
  for (const s of strata) {
    for (let i = 0; i < s.length; i++) out.push(s[Math.floor(rng.nextDouble() * s.length)]);
  }
  return out;
}

/** The q-quantile (0 ≤ q ≤ 1) of the values, by linear interpolation between order statistics. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new TroupeError('BAD_ARGUMENT', 'quantile of no values');
  const s = [...values].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

export interface BootstrapResult {
  /** [lower, upper] of each quantity at the requested confidence. */
  readonly intervals: Readonly<Record<string, readonly [number, number]>>;
  /** Resamples each quantity has (a refit that cannot give it is left out of its interval). */
  readonly used: Readonly<Record<string, number>>;
  readonly resamples: number;
  readonly seed: number;
  readonly confidence: number;
}

/**
 * Bootstrap `statistic` over `rows`, stratified by `stratum`. The statistic returns the
 * quantities it could fit on a resample (any it cannot, it leaves out).
 */
export function bootstrap<T>(
  rows: readonly T[],
  stratum: (r: T) => number | string,
  statistic: (rows: readonly T[]) => Readonly<Record<string, number | undefined>>,
  o: { readonly resamples: number; readonly seed: number; readonly confidence: number },
): BootstrapResult {
  const groups = new Map<number | string, number[]>();
  for (const [i, r] of rows.entries()) {
    const key = stratum(r);
    groups.set(key, [...(groups.get(key) ?? []), i]);
  }
  const strata = [...groups.values()];
  const rng = RandomStream.of({ seed: o.seed, step: 0, actor: 'scaling', purpose: 'bootstrap' });
  const samples: Record<string, number[]> = {};
  for (let b = 0; b < o.resamples; b++) {
    const pick = resample(strata, rng).map((i) => rows[i]);
    for (const [k, v] of Object.entries(statistic(pick))) {
      if (v === undefined || !Number.isFinite(v)) continue;
      samples[k] = [...(samples[k] ?? []), v];
    }
  }
  const tail = (1 - o.confidence) / 2;
  const intervals: Record<string, readonly [number, number]> = {};
  const used: Record<string, number> = {};
  for (const [k, v] of Object.entries(samples)) {
    intervals[k] = [quantile(v, tail), quantile(v, 1 - tail)];
    used[k] = v.length;
  }
  return { intervals, used, resamples: o.resamples, seed: o.seed, confidence: o.confidence };
}
