import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { writeFileAtomic, writeFileAtomicSync } from '../util/atomic.js';
import { escapeHtml, type Point, renderChart, type Series } from './chart.js';
import { CONFIG_YAML, METRICS_FILE, REPORT_FILE } from './files.js';
import { formatDuration, formatValue } from './format.js';
import { type MetricRow, parseMetrics, SPLITS, type Split } from './metrics.js';
import { REPORT_CSS, REPORT_SCRIPT, REPORT_SCRIPT_HASH } from './report-assets.js';
import {
  collectMetrics,
  constantValue,
  groupMetrics,
  type MetricData,
  type MetricSeries,
  SMOOTH_FROM,
  smooth,
  wantsLogScale,
} from './report-data.js';

/**
 * A run's report, or several runs overlaid: one self-contained HTML file (inline CSS, SVG and
 * one small inline script, nothing fetched; a Content-Security-Policy admits that script alone)
 * with charts grouped by metric prefix (`actor/`, `critic/`, `reward/`, `timing/`), each drawn
 * against the step and against wall time, smoothed over the raw values, on a log axis where the
 * values span decades; constant metrics listed instead of drawn; the final values and the config.
 *
 * While a run goes on its report is "live": the script reloads the page every `reloadSeconds`,
 * until the file stops changing for `staleAfterSeconds` (a run killed without a last write); the
 * report written when the run ends has no reload. Every piece of user text is escaped.
 *
 * (Past 300 lines: the page is one template, its sections (groups of charts, the final table,
 * the summary, the status line) small functions of it, and the writers that read a run directory
 * for it at the end; the chart itself is chart.ts, the CSS and script report-assets.ts.)
 */
export { REPORT_FILE } from './files.js';

export interface LiveOptions {
  /** The page reloads itself this often. */
  readonly reloadSeconds: number;
  /** A page this much older than its writing stops reloading and says the run may have stopped. */
  readonly staleAfterSeconds: number;
}

export const DEFAULT_LIVE: LiveOptions = { reloadSeconds: 15, staleAfterSeconds: 600 };

export interface ReportOptions {
  readonly title: string;
  /** Shown in a <pre>: a string as it is, anything else as YAML. */
  readonly config?: unknown;
  /** The report of a run still going: it reloads itself (see `LiveOptions`). Default: not live. */
  readonly live?: LiveOptions;
  /** EMA weight of the smoothed lines, in [0, 1); default 0.6 (TensorBoard's). */
  readonly smoothing?: number;
  /** When the page was written, in ms since the epoch (tests fix it); default now. */
  readonly writtenAt?: number;
}

/** One run of a report: its name, the text of its metrics.jsonl, and its config if known. */
export interface RunInput {
  readonly name: string;
  readonly metrics: string;
  readonly config?: unknown;
}

const SPLIT_COLORS: Record<Split, string> = { train: '#2563eb', eval: '#ea580c' };
/** One colour per run when runs are overlaid (train solid, eval dashed). */
const RUN_COLORS = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#9333ea',
  '#ea580c',
  '#0891b2',
  '#ca8a04',
  '#db2777',
  '#4b5563',
  '#65a30d',
];

interface Run {
  readonly name: string;
  readonly rows: MetricRow[];
  readonly config?: unknown;
}

interface Styled {
  readonly label: string;
  readonly color: string;
  readonly dashed: boolean;
}

function styleOf(runs: readonly Run[], s: MetricSeries): Styled {
  if (runs.length === 1) return { label: s.split, color: SPLIT_COLORS[s.split], dashed: false };
  return {
    label: `${runs[s.run]!.name} ${s.split}`,
    color: RUN_COLORS[s.run % RUN_COLORS.length]!,
    dashed: s.split === 'eval',
  };
}

const nonFinite = (ps: readonly Point[]) => ps.filter((p) => !Number.isFinite(p.value)).length;

function skippedNote(runs: readonly Run[], m: MetricData): string {
  const counts = m.series
    .map((s) => [styleOf(runs, s).label, nonFinite(s.points)] as const)
    .filter(([, n]) => n > 0);
  if (counts.length === 0) return '';
  const total = counts.reduce((a, [, n]) => a + n, 0);
  const by = counts.map(([s, n]) => `${s} ${n}`).join(', ');
  return `<p class="note">${total} NaN/Inf point${total === 1 ? '' : 's'} skipped (${escapeHtml(by)})</p>`;
}

function figure(runs: readonly Run[], m: MetricData, weight: number): string {
  const series: Series[] = m.series.map((s) => ({
    ...styleOf(runs, s),
    points: s.points,
    ...(s.points.length > SMOOTH_FROM && weight > 0 ? { smoothed: smooth(s.points, weight) } : {}),
  }));
  const keys = series
    .map(
      (s) =>
        `<span class="key"><span class="swatch${s.dashed ? ' dashed' : ''}" style="border-color:${escapeHtml(s.color)}"></span>${escapeHtml(s.label)}</span>`,
    )
    .join('');
  const logY = wantsLogScale(m);
  return (
    `<figure data-metric="${escapeHtml(m.name)}"><figcaption><span class="name">${escapeHtml(m.name)}</span>` +
    `<span class="keys">${keys}</span></figcaption>` +
    `<div class="by-step">${renderChart(series, m.name, { x: 'step', logY })}</div>` +
    `<div class="by-time">${renderChart(series, `${m.name} against wall time`, { x: 'time', logY })}</div>` +
    skippedNote(runs, m) +
    '</figure>'
  );
}

function constantsLine(m: readonly [MetricData, number][]): string {
  if (m.length === 0) return '';
  const items = m
    .map(
      ([d, v]) =>
        `<span class="const">${escapeHtml(d.name)} = ${escapeHtml(formatValue(v))}</span>`,
    )
    .join(' ');
  return `<p class="constants">Constant (not drawn): ${items}</p>`;
}

function groupSection(
  runs: readonly Run[],
  group: string,
  metrics: MetricData[],
  w: number,
): string {
  const constant: [MetricData, number][] = [];
  const drawn: MetricData[] = [];
  for (const m of metrics) {
    const c = constantValue(m);
    if (c === undefined) drawn.push(m);
    else constant.push([m, c]);
  }
  const title = group === '' ? 'main' : `${group}/`;
  const what = `${drawn.length} chart${drawn.length === 1 ? '' : 's'}${constant.length ? `, ${constant.length} constant` : ''}`;
  return (
    `<details class="group" open data-group="${escapeHtml(group)}"><summary><span class="gname">${escapeHtml(title)}</span> ` +
    `<span class="count">${what}</span></summary>` +
    `<div class="charts">${drawn.map((m) => figure(runs, m, w)).join('\n')}</div>` +
    `${constantsLine(constant)}</details>`
  );
}

function lastCell(ps: readonly Point[] | undefined): string {
  const last = ps?.[ps.length - 1];
  if (!last) return '<td></td><td></td>';
  return `<td class="num">${escapeHtml(formatValue(last.value))}</td><td class="num">${last.step}</td>`;
}

function finalTable(metrics: readonly MetricData[], run: number): string {
  const head =
    '<tr><th>metric</th><th>train (last)</th><th>at step</th><th>eval (last)</th><th>at step</th><th>NaN/Inf</th></tr>';
  const body = metrics
    .map((m) => {
      const of = (split: Split) => m.series.find((s) => s.run === run && s.split === split)?.points;
      if (!of('train') && !of('eval')) return '';
      const skipped = SPLITS.reduce((a, s) => a + nonFinite(of(s) ?? []), 0);
      return (
        `<tr><td>${escapeHtml(m.name)}</td>${lastCell(of('train'))}${lastCell(of('eval'))}` +
        `<td class="num">${skipped || ''}</td></tr>`
      );
    })
    .join('');
  return `<table><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

/** Smallest and largest of values (a loop: a spread of a long run's rows overflows the stack). */
function range(values: Iterable<number>): { min: number; max: number; n: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let n = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    n++;
  }
  return { min, max, n };
}

function summary(rows: readonly MetricRow[]): string {
  if (rows.length === 0) return 'No metrics recorded yet.';
  const steps = range(rows.map((r) => r.step));
  const times = range(rows.map((r) => r.time));
  const wall = times.n > 1 ? ` · ${formatDuration(times.max - times.min)} wall time` : '';
  return `${rows.length} records · steps ${steps.min}–${steps.max}${wall}`;
}

function configText(config: unknown): string {
  return typeof config === 'string' ? config : toYaml(config);
}

function controls(weight: number): string {
  return (
    '<form id="controls" class="controls">' +
    '<fieldset><legend>x axis</legend>' +
    '<label><input type="radio" name="x" value="step" id="x-step" checked> step</label>' +
    '<label><input type="radio" name="x" value="time" id="x-time"> wall time</label></fieldset>' +
    `<label><input type="checkbox" name="smooth" id="smooth" checked> smoothed (EMA ${weight})</label>` +
    '</form>'
  );
}

function statusLine(writtenAt: number, live: LiveOptions | undefined): string {
  const when = new Date(writtenAt)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  if (!live) return `<p id="status" class="status">Written ${when}.</p>`;
  return (
    `<p id="status" class="status live">Live: rewritten as the run goes, and this page reloads every ` +
    `${live.reloadSeconds} s until the run ends (last written ${when}).</p>`
  );
}

/** The report of one or more runs as one HTML page (several runs are overlaid, a colour each). */
export function renderRuns(inputs: readonly RunInput[], options: ReportOptions): string {
  const runs: Run[] = inputs.map((r) => ({
    name: r.name,
    rows: parseMetrics(r.metrics, `${r.name}/${METRICS_FILE}`),
    config: r.config,
  }));
  const weight = options.smoothing ?? 0.6;
  const writtenAt = options.writtenAt ?? Date.now();
  const metrics = collectMetrics(runs);
  const title = escapeHtml(options.title);
  const many = runs.length > 1;
  const summaries = runs
    .map(
      (r) =>
        `<p class="summary">${many ? `<b>${escapeHtml(r.name)}</b>: ` : ''}${escapeHtml(summary(r.rows))}</p>`,
    )
    .join('');
  const finals =
    metrics.length === 0
      ? ''
      : '<h2>Final values</h2>' +
        runs
          .map((r, i) => `${many ? `<h3>${escapeHtml(r.name)}</h3>` : ''}${finalTable(metrics, i)}`)
          .join('');
  const configs = runs
    .filter((r) => r.config !== undefined)
    .map((r) =>
      many
        ? `<details><summary>${escapeHtml(r.name)}</summary><pre>${escapeHtml(configText(r.config))}</pre></details>`
        : `<pre>${escapeHtml(configText(r.config))}</pre>`,
    )
    .join('');
  const live = options.live;
  const body = live
    ? ` data-live="1" data-written="${writtenAt}" data-reload-s="${live.reloadSeconds}" data-stale-s="${live.staleAfterSeconds}"`
    : ' data-live="0"';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${REPORT_SCRIPT_HASH}'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><style>${REPORT_CSS}</style></head>
<body${body}><h1>${title}</h1>${summaries}
${statusLine(writtenAt, live)}
${metrics.length > 0 ? controls(weight) : ''}
${groupMetrics(metrics)
  .map((g) => groupSection(runs, g.group, g.metrics, weight))
  .join('\n')}
${finals}
${configs ? `<h2>Config</h2>${configs}` : ''}
<script>${REPORT_SCRIPT}</script>
</body></html>
`;
}

/** The report of a `metrics.jsonl` text, as one HTML page. */
export function renderReport(metricsJsonlText: string, options: ReportOptions): string {
  return renderRuns([{ name: 'run', metrics: metricsJsonlText, config: options.config }], options);
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function readIfPresentSync(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** A run directory's metrics and config, as a report input named after the directory. */
export async function readRun(dir: string): Promise<RunInput> {
  return {
    name: basename(dir),
    metrics: (await readIfPresent(join(dir, METRICS_FILE))) ?? '',
    config: await readIfPresent(join(dir, CONFIG_YAML)),
  };
}

/**
 * Write `report.html` into a run directory from its metrics.jsonl and config.yaml: the report of
 * a run that has ended (no reload; given the `RunDir`, its live rewrites stop). Returns its path.
 */
export async function writeReport(
  run: string | { readonly dir: string; endLiveReport?(): void },
): Promise<string> {
  const dir = typeof run === 'string' ? run : run.dir;
  // A run directory stops rewriting its live report: this one is the last.
  if (typeof run !== 'string') run.endLiveReport?.();
  const html = renderRuns([await readRun(dir)], { title: `Troupe run: ${basename(dir)}` });
  const path = join(dir, REPORT_FILE);
  await writeFileAtomic(path, html);
  return path;
}

/**
 * The live report of a run directory, written synchronously (the trainer calls it between
 * steps, and a later final `writeReport` must not be overtaken): through a temporary file
 * renamed over report.html.
 */
export function writeLiveReportSync(
  dir: string,
  live: LiveOptions = DEFAULT_LIVE,
  writtenAt: number = Date.now(),
): string {
  const html = renderRuns(
    [
      {
        name: basename(dir),
        metrics: readIfPresentSync(join(dir, METRICS_FILE)) ?? '',
        config: readIfPresentSync(join(dir, CONFIG_YAML)),
      },
    ],
    { title: `Troupe run: ${basename(dir)}`, live, writtenAt },
  );
  const path = join(dir, REPORT_FILE);
  writeFileAtomicSync(path, html);
  return path;
}
