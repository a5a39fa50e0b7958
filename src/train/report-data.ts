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
  const byName = new Map<string, Map<string, Point[]>>();
  runs.forEach((run, r) => {
    const times = run.rows.map((row) => row.time).filter(Number.isFinite);
    const start = times.length > 0 ? Math.min(...times) : Number.NaN;
    for (const row of run.rows) {
      for (const [name, value] of Object.entries(row.values)) {
        let series = byName.get(name);
        if (!series) {
          series = new Map();
          byName.set(name, series);
        }
        const key = `${r}:${row.split}`;
        let points = series.get(key);
        if (!points) {
          points = [];
          series.set(key, points);
        }
        points.push({ step: row.step, value, time: row.time - start });
      }
    }
  });
  return [...byName].map(([name, map]) => {
    const series: MetricSeries[] = [];
    runs.forEach((_, r) => {
      for (const split of SPLITS) {
        const points = map.get(`${r}:${split}`);
        if (points) series.push({ run: r, split, points });
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
  const values = m.series.flatMap((s) => s.points.map((p) => p.value));
  if (values.length < 2 || !values.every(Number.isFinite)) return undefined;
  return values.every((v) => v === values[0]) ? values[0] : undefined;
}

/** A log axis helps where every value is positive and they span more than this ratio. */
const LOG_RATIO = 30;

/** True when a log y axis shows the metric better: all finite values > 0, spanning ≥ 30×. */
export function wantsLogScale(m: MetricData): boolean {
  const values = m.series.flatMap((s) => s.points.map((p) => p.value)).filter(Number.isFinite);
  if (values.length < 2 || values.some((v) => v <= 0)) return false;
  return Math.max(...values) / Math.min(...values) >= LOG_RATIO;
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
