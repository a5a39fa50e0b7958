import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { writeFileAtomic } from '../policy/checkpoint/atomic.js';
import { escapeHtml, type Point, renderChart, type Series } from './chart.js';
import { formatDuration, formatValue } from './format.js';
import { type MetricRow, parseMetrics, SPLITS, type Split } from './metrics.js';
import { CONFIG_YAML, METRICS_FILE } from './run-dir.js';

/**
 * A run's report: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched;
 * a Content-Security-Policy says so to the browser too) with a chart per metric, a table of the
 * final values and the config. Every piece of user text is escaped.
 */
export const REPORT_FILE = 'report.html';

export interface ReportOptions {
  readonly title: string;
  /** Shown in a <pre>: a string as it is, anything else as YAML. */
  readonly config?: unknown;
}

const COLORS: Record<Split, string> = { train: '#2563eb', eval: '#ea580c' };

interface MetricSummary {
  readonly name: string;
  readonly points: Record<Split, Point[]>;
}

/** Metrics in the order they first appear, each with its train and eval points in file order. */
function collect(rows: readonly MetricRow[]): MetricSummary[] {
  const byName = new Map<string, MetricSummary>();
  for (const row of rows) {
    for (const [name, value] of Object.entries(row.values)) {
      let m = byName.get(name);
      if (!m) {
        m = { name, points: { train: [], eval: [] } };
        byName.set(name, m);
      }
      m.points[row.split].push({ step: row.step, value });
    }
  }
  return [...byName.values()];
}

const nonFinite = (ps: readonly Point[]) => ps.filter((p) => !Number.isFinite(p.value)).length;

function skippedNote(m: MetricSummary): string {
  const counts = SPLITS.map((s) => [s, nonFinite(m.points[s])] as const).filter(([, n]) => n > 0);
  if (counts.length === 0) return '';
  const total = counts.reduce((a, [, n]) => a + n, 0);
  const by = counts.map(([s, n]) => `${s} ${n}`).join(', ');
  return `<p class="note">${total} NaN/Inf point${total === 1 ? '' : 's'} skipped (${by})</p>`;
}

function figure(m: MetricSummary): string {
  const splits = SPLITS.filter((s) => m.points[s].length > 0);
  const series: Series[] = splits.map((s) => ({ label: s, color: COLORS[s], points: m.points[s] }));
  const legend = splits
    .map(
      (s) =>
        `<span class="key"><span class="swatch" style="background:${COLORS[s]}"></span>${s}</span>`,
    )
    .join('');
  const name = escapeHtml(m.name);
  return (
    `<figure><figcaption><span class="name">${name}</span>${legend}</figcaption>` +
    renderChart(series, m.name) +
    skippedNote(m) +
    '</figure>'
  );
}

function lastCell(ps: readonly Point[]): string {
  const last = ps[ps.length - 1];
  if (!last) return '<td></td><td></td>';
  return `<td class="num">${escapeHtml(formatValue(last.value))}</td><td class="num">${last.step}</td>`;
}

function finalTable(metrics: readonly MetricSummary[]): string {
  const head =
    '<tr><th>metric</th><th>train (last)</th><th>at step</th><th>eval (last)</th><th>at step</th><th>NaN/Inf</th></tr>';
  const body = metrics
    .map((m) => {
      const skipped = nonFinite(m.points.train) + nonFinite(m.points.eval);
      return (
        `<tr><td>${escapeHtml(m.name)}</td>${lastCell(m.points.train)}${lastCell(m.points.eval)}` +
        `<td class="num">${skipped || ''}</td></tr>`
      );
    })
    .join('');
  return `<table><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function summary(rows: readonly MetricRow[]): string {
  if (rows.length === 0) return 'No metrics recorded yet.';
  const steps = rows.map((r) => r.step);
  const times = rows.map((r) => r.time).filter(Number.isFinite);
  const wall =
    times.length > 1
      ? ` · ${formatDuration(Math.max(...times) - Math.min(...times))} wall time`
      : '';
  return `${rows.length} records · steps ${Math.min(...steps)}–${Math.max(...steps)}${wall}`;
}

function configText(config: unknown): string {
  return typeof config === 'string' ? config : toYaml(config);
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1320px;padding:0 16px;color:#1f2937}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.summary{color:#6b7280;margin:0 0 16px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px}
figcaption{display:flex;gap:14px;align-items:center;margin-bottom:4px}
.name{font-weight:600;margin-right:auto;overflow-wrap:anywhere}
.key{color:#4b5563;font-size:12px}.swatch{display:inline-block;width:14px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
svg.chart{width:100%;height:auto;display:block}
.grid line{stroke:#eef0f3}.axis line{stroke:#9ca3af}
svg text{font-size:11px;fill:#4b5563}svg text.label{fill:#6b7280}svg text.empty{font-size:14px}
.note{color:#b45309;font-size:12px;margin:4px 0 0}
table{border-collapse:collapse}th,td{padding:4px 12px;border-bottom:1px solid #e5e7eb;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f9fafb;border:1px solid #e5e7eb;border-radius:6px;padding:12px;overflow:auto}
`;

/** The report of a `metrics.jsonl` text, as one HTML page. */
export function renderReport(metricsJsonlText: string, options: ReportOptions): string {
  const rows = parseMetrics(metricsJsonlText);
  const metrics = collect(rows);
  const title = escapeHtml(options.title);
  const config =
    options.config === undefined
      ? ''
      : `<h2>Config</h2><pre>${escapeHtml(configText(options.config))}</pre>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><style>${CSS}</style></head>
<body><h1>${title}</h1><p class="summary">${escapeHtml(summary(rows))}</p>
<div class="charts">${metrics.map(figure).join('\n')}</div>
${metrics.length > 0 ? `<h2>Final values</h2>${finalTable(metrics)}` : ''}
${config}
</body></html>
`;
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Write `report.html` into a run directory from its metrics.jsonl and config.yaml; returns its path. */
export async function writeReport(run: string | { readonly dir: string }): Promise<string> {
  const dir = typeof run === 'string' ? run : run.dir;
  const metrics = (await readIfPresent(join(dir, METRICS_FILE))) ?? '';
  const config = await readIfPresent(join(dir, CONFIG_YAML));
  const html = renderReport(metrics, { title: `Troupe run: ${basename(dir)}`, config });
  const path = join(dir, REPORT_FILE);
  await writeFileAtomic(path, html);
  return path;
}
