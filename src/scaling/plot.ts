import { escapeHtml, formatLogTick, formatTick, logTicks, niceTicks } from '../train/chart.js';

/*
 * A small x–y plot as SVG text for the scaling report: log or linear axes, series drawn as
 * markers, lines or both, a legend. Inline in report.html, or a standalone .svg file.
 */

/** 3 significant digits; counts as 28.3k, 1.9M, 3e12. */
export function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9 || (a > 0 && a < 1e-3)) return v.toExponential(digits - 1).replace('e+', 'e');
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(digits))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(digits))}k`;
  return String(Number(v.toPrecision(digits)));
}

export interface PlotSeries {
  readonly label: string;
  readonly color: string;
  readonly points: readonly { readonly x: number; readonly y: number }[];
  readonly mode: 'markers' | 'line';
  readonly dashed?: boolean;
  /** Markers drawn hollow (predictions beside observations). */
  readonly hollow?: boolean;
}

export interface PlotOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly logX?: boolean;
  readonly logY?: boolean;
  /** A standalone file (with the SVG namespace) rather than an element inline in HTML. */
  readonly standalone?: boolean;
}

/** Distinct colours for series (Tableau 10). */
export const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

const W = 700;
const H = 360;
const M = { left: 64, right: 200, top: 30, bottom: 44 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

interface Axis {
  readonly at: (v: number) => number;
  readonly ticks: readonly { readonly v: number; readonly label: string }[];
}

function axis(values: readonly number[], log: boolean, length: number, flip: boolean): Axis {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (log) {
    lo = Math.log10(lo);
    hi = Math.log10(hi);
  }
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.04;
  lo -= pad;
  hi += pad;
  const scale = (v: number) => {
    const t = ((log ? Math.log10(v) : v) - lo) / (hi - lo);
    return (flip ? 1 - t : t) * length;
  };
  let ticks: { v: number; label: string }[];
  if (log) {
    ticks = logTicks(10 ** lo, 10 ** hi)
      .filter((v) => Math.log10(v) >= lo && Math.log10(v) <= hi)
      .map((v) => ({ v, label: formatLogTick(v) }));
    if (ticks.length < 2) {
      const { ticks: t, step } = niceTicks(10 ** lo, 10 ** hi, 4);
      ticks = t
        .filter((v) => v > 0 && Math.log10(v) >= lo && Math.log10(v) <= hi)
        .map((v) => ({ v, label: formatTick(v, step) }));
    }
  } else {
    const { ticks: t, step } = niceTicks(lo, hi, 5);
    ticks = t.filter((v) => v >= lo && v <= hi).map((v) => ({ v, label: formatTick(v, step) }));
  }
  return { at: scale, ticks };
}

const f = (v: number) => v.toFixed(1);

/** The plot as SVG text. Non-finite or (on a log axis) non-positive points are left out. */
export function renderPlot(series: readonly PlotSeries[], o: PlotOptions): string {
  const ok = (p: { x: number; y: number }) =>
    Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logX || p.x > 0) && (!o.logY || p.y > 0);
  const shown = series.map((s) => ({ ...s, points: s.points.filter(ok) }));
  const all = shown.flatMap((s) => s.points);
  const ns = o.standalone ? ' xmlns="http://www.w3.org/2000/svg"' : '';
  const head = `<svg${ns} class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(o.title)}">`;
  const style = o.standalone
    ? '<style>text{font:11px sans-serif;fill:#4b5563}.t{font-size:13px;font-weight:600;fill:#1f2937}</style>'
    : '';
  const title = `<text class="t" x="${M.left}" y="18" font-weight="600">${escapeHtml(o.title)}</text>`;
  if (all.length === 0)
    return `${head}${style}${title}<text x="${W / 2}" y="${H / 2}">no data</text></svg>`;
  const X = axis(
    all.map((p) => p.x),
    o.logX ?? false,
    PW,
    false,
  );
  const Y = axis(
    all.map((p) => p.y),
    o.logY ?? false,
    PH,
    true,
  );
  const px = (v: number) => M.left + X.at(v);
  const py = (v: number) => M.top + Y.at(v);
  const grid = [
    ...X.ticks.map(
      (t) =>
        `<line x1="${f(px(t.v))}" y1="${M.top}" x2="${f(px(t.v))}" y2="${M.top + PH}" stroke="#eef0f3"/>` +
        `<text x="${f(px(t.v))}" y="${M.top + PH + 16}" text-anchor="middle">${escapeHtml(t.label)}</text>`,
    ),
    ...Y.ticks.map(
      (t) =>
        `<line x1="${M.left}" y1="${f(py(t.v))}" x2="${M.left + PW}" y2="${f(py(t.v))}" stroke="#eef0f3"/>` +
        `<text x="${M.left - 6}" y="${f(py(t.v) + 4)}" text-anchor="end">${escapeHtml(t.label)}</text>`,
    ),
  ].join('');
  const frame = `<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#9ca3af"/>`;
  const labels =
    `<text x="${M.left + PW / 2}" y="${H - 8}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>` +
    `<text transform="translate(14 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`;
  const body = shown
    .map((s) => {
      if (s.mode === 'line') {
        const d = s.points
          .map((p, i) => `${i === 0 ? 'M' : 'L'}${f(px(p.x))},${f(py(p.y))}`)
          .join('');
        return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`;
      }
      return s.points
        .map(
          (p) =>
            `<circle cx="${f(px(p.x))}" cy="${f(py(p.y))}" r="3.6" ${s.hollow ? `fill="white" stroke="${s.color}" stroke-width="1.6"` : `fill="${s.color}"`}/>`,
        )
        .join('');
    })
    .join('');
  const legend = shown
    .map((s, i) => {
      const y = M.top + 8 + i * 16;
      const x = M.left + PW + 12;
      const mark =
        s.mode === 'line'
          ? `<line x1="${x}" y1="${y}" x2="${x + 18}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`
          : `<circle cx="${x + 9}" cy="${y}" r="3.6" ${s.hollow ? `fill="white" stroke="${s.color}"` : `fill="${s.color}"`}/>`;
      return `${mark}<text x="${x + 24}" y="${y + 4}">${escapeHtml(s.label)}</text>`;
    })
    .join('');
  return `${head}${style}${title}${grid}${frame}${labels}${body}${legend}</svg>`;
}

/** `n` points spaced evenly in log space over [lo, hi]. */
export function logSpace(lo: number, hi: number, n = 60): number[] {
  const a = Math.log(lo);
  const b = Math.log(hi);
  return Array.from({ length: n }, (_, i) => Math.exp(a + ((b - a) * i) / (n - 1)));
}
