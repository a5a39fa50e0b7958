import type { Point } from './chart.js';
import { type MetricRow, SPLITS, type Split } from './metrics.js';

/**
 * What the report draws, as data: each metric's series (one per run and split, points carrying
 * step, value and seconds since their run started), its group (the prefix before the first `/`),
 * whether it is constant, whether a log axis helps it, and the smoothed lines.
 */

export interface ReportRun {
  /** Shown in legends: the run directory's name. */
  readonly name: string;
  readonly rows: readonly MetricRow[];
}

export interface MetricSeries {
  readonly run: number;
  readonly split: Split;
  readonly points: readonly Point[];
}

export interface MetricData {
  readonly name: string;
  /** `actor` for `actor/loss`; '' for a name without a `/`. */
  readonly group: string;
  /** In run order, train before eval. */
  readonly series: readonly MetricSeries[];
}

/** The group of a metric name: its prefix before the first `/`, or '' (the main group). */
export function groupOf(name: string): string {
  const i = name.indexOf('/');
  return i > 0 ? name.slice(0, i) : '';
}

/** Metrics in the order they first appear (run by run), each with a series per run and split. */
export function collectMetrics(runs: readonly ReportRun[]): MetricData[] {
  // name → points per (run, split), at index run · SPLITS.length + split
  const byName = new Map<string, Point[][]>();
  const slots = runs.length * SPLITS.length;
  runs.forEach((run, r) => {
    let start = Number.POSITIVE_INFINITY;
    for (const row of run.rows) if (row.time < start) start = row.time;
    for (const row of run.rows) {
      const slot = r * SPLITS.length + SPLITS.indexOf(row.split);
      const time = row.time - start;
      for (const name in row.values) {
        let series = byName.get(name);
        if (!series) {
          series = Array.from({ length: slots }, () => []);
          byName.set(name, series);
        }
        series[slot]!.push({ step: row.step, value: row.values[name]!, time });
      }
    }
  });
  return [...byName].map(([name, slotted]) => {
    const series: MetricSeries[] = [];
    slotted.forEach((points, i) => {
      if (points.length > 0) {
        series.push({
          run: Math.floor(i / SPLITS.length),
          split: SPLITS[i % SPLITS.length]!,
          points,
        });
      }
    });
    return { name, group: groupOf(name), series };
  });
}

/**
 * Groups in the order their first metric appears, the main group ('') first and `timing` last
 * (the least looked-at).
 */
export function groupMetrics(
  metrics: readonly MetricData[],
): Array<{ group: string; metrics: MetricData[] }> {
  const groups = new Map<string, MetricData[]>();
  for (const m of metrics) {
    const list = groups.get(m.group);
    if (list) list.push(m);
    else groups.set(m.group, [m]);
  }
  const rank = (g: string) => (g === '' ? 0 : g === 'timing' ? 2 : 1);
  return [...groups]
    .map(([group, list]) => ({ group, metrics: list }))
    .sort((a, b) => rank(a.group) - rank(b.group));
}

/**
 * The value of a metric that never changes (at least two points, all finite and equal, across
 * every run and split), else undefined: such a metric gets a line in a list, not a chart.
 */
export function constantValue(m: MetricData): number | undefined {
  let n = 0;
  let first = Number.NaN;
  for (const s of m.series) {
    for (const p of s.points) {
      if (!Number.isFinite(p.value) || (n > 0 && p.value !== first)) return undefined;
      if (n++ === 0) first = p.value;
    }
  }
  return n >= 2 ? first : undefined;
}

/** A log axis helps where every value is positive and they span more than this ratio. */
const LOG_RATIO = 30;

/** True when a log y axis shows the metric better: all finite values > 0, spanning ≥ 30×. */
export function wantsLogScale(m: MetricData): boolean {
  let [lo, hi, n] = [Number.POSITIVE_INFINITY, 0, 0];
  for (const s of m.series) {
    for (const p of s.points) {
      if (!Number.isFinite(p.value)) continue;
      if (p.value <= 0) return false;
      if (p.value < lo) lo = p.value;
      if (p.value > hi) hi = p.value;
      n++;
    }
  }
  return n >= 2 && hi / lo >= LOG_RATIO;
}

/** Series with more points than this get a smoothed line (sparse ones are drawn as they are). */
export const SMOOTH_FROM = 20;

/**
 * TensorBoard's smoothing: an exponential moving average with weight `weight` on the past,
 * debiased (divided by 1 − weight^n) so that the first points are not pulled towards 0.
 * Non-finite values are passed through and do not enter the average.
 */
export function smooth(points: readonly Point[], weight: number): Point[] {
  let last = 0;
  let n = 0;
  return points.map((p) => {
    if (!Number.isFinite(p.value)) return p;
    last = last * weight + (1 - weight) * p.value;
    n++;
    return { ...p, value: last / (1 - weight ** n) };
  });
}
