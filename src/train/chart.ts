/**
 * A line chart as inline SVG text: x = step or wall time, y = value (linear or log), one or two
 * paths per series (the raw values, and a smoothed line over them), tick labels on both axes.
 * No script, no external asset, no xmlns URL (inline SVG in HTML needs none). (Past 300 lines:
 * the tick rules for linear, log and time axes sit with the one renderer that uses them.)
 */

export interface Point {
  readonly step: number;
  readonly value: number;
  /** Seconds since the run started (for the wall-time axis); absent or NaN when unknown. */
  readonly time?: number;
}

export interface Series {
  readonly label: string;
  readonly color: string;
  /** In step order; non-finite values are skipped (the line breaks there). */
  readonly points: readonly Point[];
  /** The smoothed line, drawn over the raw one (which is then drawn faint). */
  readonly smoothed?: readonly Point[];
  /** Dashed (eval beside train, when runs are overlaid). */
  readonly dashed?: boolean;
}

export interface ChartOptions {
  /** What x is: the step, or seconds since the run started. Default 'step'. */
  readonly x?: 'step' | 'time';
  /** A log10 y axis (every value must be positive). Default false. */
  readonly logY?: boolean;
}

const W = 640;
const H = 280;
const M = { left: 64, right: 16, top: 12, bottom: 40 };
const PLOT_W = W - M.left - M.right;
const PLOT_H = H - M.top - M.bottom;
/** Series with at most this many finite points get a marker per point (sparse eval curves). */
const MARKERS_UP_TO = 60;

/** Text for HTML and SVG: `& < > " '` escaped, so user-named metrics cannot open tags. */
export function escapeHtml(s: string): string {
  return s
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** Round-number ticks (1, 2, 5 × 10^k) covering [lo, hi]; about `target` of them. */
export function niceTicks(lo: number, hi: number, target = 5): { ticks: number[]; step: number } {
  // A range of a few ulps (a metric that is constant but for rounding) is drawn as flat: its
  // tick index lo/step would pass 2^53, where i++ no longer moves and the tick loop never ends.
  if (!(hi - lo > Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return niceTicks(lo - pad, lo + pad, target);
  }
  const rough = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const norm = rough / mag;
  const step = Number(((norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag).toPrecision(12));
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  // toPrecision trims binary noise (0.30000000000000004) without moving a tick.
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return { ticks, step };
}

/** A tick label with as many decimals as the tick spacing needs; exponents for extremes. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const lg = (x: number) => Math.floor(Math.log10(x) + 1e-9);
  const decimals = Math.max(0, -lg(step));
  const a = Math.max(Math.abs(v), step);
  if (a >= 1e6 || decimals > 5) return v.toExponential(Math.max(0, lg(a) - lg(step)));
  return v.toFixed(decimals);
}

/**
 * Ticks of a log axis over [lo, hi] (both > 0): the powers of ten, with 2 and 5 between them
 * while the range spans at most two decades, and the decades' ends always included.
 */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo) + 1e-9);
  const b = Math.ceil(Math.log10(hi) - 1e-9);
  const mantissas = b - a <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = a; e <= b; e++) {
    for (const m of mantissas) {
      const t = Number((m * 10 ** e).toPrecision(12));
      if (t <= 10 ** b) ticks.push(t);
    }
  }
  return ticks;
}

/** A log tick: `0.001`, `0.5`, `20`, `1e+4`, `1e-5`. */
export function formatLogTick(v: number): string {
  return v >= 1e4 || v < 1e-3 ? v.toExponential(0) : String(v);
}

/** Round-number seconds for a wall-time axis: about `target` ticks over [0, hi]. */
export function timeTicks(hi: number, target = 6): number[] {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
  const step = steps.find((s) => hi / s <= target) ?? 86400 * Math.ceil(hi / 86400 / target);
  const ticks: number[] = [];
  for (let t = 0; t <= hi + 1e-9; t += step) ticks.push(t);
  return ticks;
}

/** Seconds as a tick label: `45s`, `2m`, `2m30s`, `1h`, `1h30m`. */
export function formatSeconds(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const m = Math.floor(s / 60) % 60;
  return `${Math.floor(s / 3600)}h${m ? `${m}m` : ''}`;
}

const f1 = (x: number) => String(Math.round(x * 10) / 10);

/** A step tick: `500`, `2500`, `12.5k`, `1000k`. */
const formatStep = (s: number) => (s >= 1e4 ? `${Number((s / 1000).toPrecision(6))}k` : String(s));

interface Xy {
  readonly x: number;
  readonly y: number;
}

/** The x of a point on the chosen axis (NaN when it has none). */
type XOf = (p: Point) => number;

/** The extent of the drawable points (finite value and x) of all series; undefined if none. */
function extent(
  series: readonly (readonly Point[])[],
  xOf: XOf,
): { x0: number; x1: number; y0: number; y1: number; positive: boolean } | undefined {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  let positive = true;
  for (const points of series) {
    for (const p of points) {
      const x = xOf(p);
      if (!Number.isFinite(p.value) || !Number.isFinite(x)) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (p.value < y0) y0 = p.value;
      if (p.value > y1) y1 = p.value;
      if (p.value <= 0) positive = false;
    }
  }
  return x0 <= x1 ? { x0, x1, y0, y1, positive } : undefined;
}

/**
 * Runs of consecutive drawable points (a NaN or ±Inf, or a point without an x, ends one), each
 * decimated to at most a min and a max per horizontal pixel, in x order: a 100k-step curve stays
 * a few thousand points without losing its spikes. One pass, allocating only what is kept.
 */
function segments(points: readonly Point[], xOf: XOf, px: (x: number) => number): Xy[][] {
  const dense = points.length > 2 * PLOT_W;
  const out: Xy[][] = [];
  let seg: Xy[] = [];
  let col = Number.NaN;
  let lo: Xy | undefined;
  let hi: Xy | undefined;
  const flush = () => {
    if (lo && hi) {
      if (lo === hi) seg.push(lo);
      else seg.push(...(lo.x <= hi.x ? [lo, hi] : [hi, lo]));
    }
    lo = hi = undefined;
  };
  const end = () => {
    flush();
    if (seg.length > 0) out.push(seg);
    seg = [];
    col = Number.NaN;
  };
  for (const p of points) {
    const x = xOf(p);
    if (!Number.isFinite(p.value) || !Number.isFinite(x)) {
      end();
      continue;
    }
    if (!dense) {
      seg.push({ x, y: p.value });
      continue;
    }
    const c = Math.floor(px(x));
    if (c !== col) {
      flush();
      col = c;
      lo = hi = { x, y: p.value };
    } else if (p.value < lo!.y) lo = { x, y: p.value };
    else if (p.value > hi!.y) hi = { x, y: p.value };
  }
  end();
  return out;
}

/** The chart of `series`; `ariaLabel` names it for screen readers. */
export function renderChart(
  series: readonly Series[],
  ariaLabel: string,
  options: ChartOptions = {},
): string {
  const byTime = options.x === 'time';
  const xOf: XOf = byTime ? (p) => p.time ?? Number.NaN : (p) => p.step;
  // The smoothed lines are weighted means of the points: within their extent.
  const ext = extent(
    series.map((s) => s.points),
    xOf,
  );
  const logY = options.logY === true && ext !== undefined && ext.positive;
  const parts: string[] = [];
  parts.push(
    `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(ariaLabel)}" class="chart" ` +
      `data-x="${byTime ? 'time' : 'step'}" data-y="${logY ? 'log' : 'linear'}">`,
  );
  if (ext === undefined) {
    parts.push(
      `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="empty">no finite values</text></svg>`,
    );
    return parts.join('');
  }
  const xMin = byTime ? 0 : ext.x0;
  const { x1: xMax, y0: lo, y1: hi } = ext;
  const yTicks = logY ? logTicks(lo, hi) : niceTicks(lo, hi).ticks;
  const yStep = logY ? 1 : niceTicks(lo, hi).step;
  const fy = logY ? Math.log10 : (v: number) => v;
  const y0 = fy(yTicks[0]!);
  const y1 = fy(yTicks[yTicks.length - 1]!);
  // One x alone still gets a width: centre it.
  const [xa, xb] = xMax > xMin ? [xMin, xMax] : [xMin - 1, xMin + 1];
  const px = (x: number) => M.left + ((x - xa) / (xb - xa)) * PLOT_W;
  const py = (v: number) => M.top + (1 - (fy(v) - y0) / (y1 - y0)) * PLOT_H;
  const xTicks = byTime
    ? timeTicks(xb).filter((t) => t >= xa)
    : niceTicks(xa, xb, 6).ticks.filter((t) => t >= xa && t <= xb && Number.isInteger(t));

  parts.push('<g class="grid">');
  for (const t of yTicks) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f1(py(t))}" y2="${f1(py(t))}"/>`);
  }
  parts.push('</g><g class="axis">');
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PLOT_H}"/>`);
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H}"/>`,
  );
  for (const t of yTicks) {
    const label = logY ? formatLogTick(t) : formatTick(t, yStep);
    parts.push(
      `<text x="${M.left - 6}" y="${f1(py(t))}" text-anchor="end" dominant-baseline="middle">${escapeHtml(label)}</text>`,
    );
  }
  for (const t of xTicks) {
    const x = f1(px(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H + 4}"/>`);
    parts.push(
      `<text x="${x}" y="${M.top + PLOT_H + 16}" text-anchor="middle">${escapeHtml(byTime ? formatSeconds(t) : formatStep(t))}</text>`,
    );
  }
  const xLabel = byTime ? 'wall time' : 'step';
  parts.push(
    `<text x="${M.left + PLOT_W / 2}" y="${H - 4}" text-anchor="middle" class="label">${xLabel}${logY ? ' · log scale' : ''}</text>`,
  );
  parts.push('</g>');

  const pathOf = (segs: Xy[][]) =>
    segs
      .map((seg) =>
        seg.map((p, i) => `${i === 0 ? 'M' : 'L'}${f1(px(p.x))} ${f1(py(p.y))}`).join(''),
      )
      .join('');
  for (const s of series) {
    const segs = segments(s.points, xOf, px);
    const color = escapeHtml(s.color);
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    parts.push(
      `<g class="series" data-label="${escapeHtml(s.label)}"><title>${escapeHtml(s.label)}</title>`,
    );
    const d = pathOf(segs);
    if (d !== '') {
      const cls = s.smoothed ? 'raw' : 'line';
      parts.push(
        `<path class="${cls}" d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${dash}/>`,
      );
    }
    if (s.smoothed) {
      const ds = pathOf(segments(s.smoothed, xOf, px));
      if (ds !== '') {
        parts.push(
          `<path class="smooth" d="${ds}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`,
        );
      }
    }
    const n = segs.reduce((a, seg) => a + seg.length, 0);
    // Markers for sparse series, and for points that no line passes through.
    for (const seg of segs) {
      if (n > MARKERS_UP_TO && seg.length > 1) continue;
      for (const p of seg) {
        parts.push(`<circle cx="${f1(px(p.x))}" cy="${f1(py(p.y))}" r="2.5" fill="${color}"/>`);
      }
    }
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('');
}
