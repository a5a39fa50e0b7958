/**
 * A line chart as inline SVG text: x = step, y = value, one path per series, tick labels on
 * both axes. No script, no external asset, no xmlns URL (inline SVG in HTML needs none).
 */

export interface Point {
  readonly step: number;
  readonly value: number;
}

export interface Series {
  readonly label: string;
  readonly color: string;
  /** In step order; non-finite values are skipped (the line breaks there). */
  readonly points: readonly Point[];
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
  if (!(hi > lo)) {
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

const f1 = (x: number) => String(Math.round(x * 10) / 10);

/** A step tick: `500`, `2500`, `12.5k`, `1000k`. */
const formatStep = (s: number) => (s >= 1e4 ? `${Number((s / 1000).toPrecision(6))}k` : String(s));

/**
 * Keep at most a min and a max per horizontal pixel, in step order: a 100k-step curve stays a
 * few thousand points without losing its spikes.
 */
function decimate(points: readonly Point[], x: (s: number) => number): Point[] {
  if (points.length <= 2 * PLOT_W) return [...points];
  const out: Point[] = [];
  let col = Number.NaN;
  let lo: Point | undefined;
  let hi: Point | undefined;
  const flush = () => {
    if (!lo || !hi) return;
    if (lo === hi) out.push(lo);
    else out.push(...(lo.step <= hi.step ? [lo, hi] : [hi, lo]));
  };
  for (const p of points) {
    const c = Math.floor(x(p.step));
    if (c !== col) {
      flush();
      col = c;
      lo = p;
      hi = p;
    } else {
      if (p.value < lo!.value) lo = p;
      if (p.value > hi!.value) hi = p;
    }
  }
  flush();
  return out;
}

/** Runs of consecutive finite points: a NaN or ±Inf ends one. */
function segments(points: readonly Point[]): Point[][] {
  const out: Point[][] = [[]];
  for (const p of points) {
    if (Number.isFinite(p.value)) out[out.length - 1]!.push(p);
    else if (out[out.length - 1]!.length > 0) out.push([]);
  }
  return out.filter((s) => s.length > 0);
}

/** The chart of `series`; `ariaLabel` names it for screen readers. */
export function renderChart(series: readonly Series[], ariaLabel: string): string {
  const finite = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.value)));
  const parts: string[] = [];
  parts.push(
    `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(ariaLabel)}" class="chart">`,
  );
  if (finite.length === 0) {
    parts.push(
      `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="empty">no finite values</text></svg>`,
    );
    return parts.join('');
  }
  const steps = finite.map((p) => p.step);
  const values = finite.map((p) => p.value);
  const xMin = Math.min(...steps);
  const xMax = Math.max(...steps);
  const yt = niceTicks(Math.min(...values), Math.max(...values));
  const y0 = yt.ticks[0]!;
  const y1 = yt.ticks[yt.ticks.length - 1]!;
  // One step alone still gets a width: centre it.
  const [xa, xb] = xMax > xMin ? [xMin, xMax] : [xMin - 1, xMin + 1];
  const x = (s: number) => M.left + ((s - xa) / (xb - xa)) * PLOT_W;
  const y = (v: number) => M.top + (1 - (v - y0) / (y1 - y0)) * PLOT_H;
  const xt = niceTicks(xa, xb, 6);

  parts.push('<g class="grid">');
  for (const t of yt.ticks) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f1(y(t))}" y2="${f1(y(t))}"/>`);
  }
  parts.push('</g><g class="axis">');
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PLOT_H}"/>`);
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H}"/>`,
  );
  for (const t of yt.ticks) {
    parts.push(
      `<text x="${M.left - 6}" y="${f1(y(t))}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatTick(t, yt.step))}</text>`,
    );
  }
  for (const t of xt.ticks.filter((t) => t >= xa && t <= xb && Number.isInteger(t))) {
    const px = f1(x(t));
    parts.push(`<line x1="${px}" x2="${px}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H + 4}"/>`);
    parts.push(
      `<text x="${px}" y="${M.top + PLOT_H + 16}" text-anchor="middle">${escapeHtml(formatStep(t))}</text>`,
    );
  }
  parts.push(
    `<text x="${M.left + PLOT_W / 2}" y="${H - 4}" text-anchor="middle" class="label">step</text>`,
  );
  parts.push('</g>');

  for (const s of series) {
    const segs = segments(s.points).map((seg) => decimate(seg, x));
    const d = segs
      .map((seg) =>
        seg.map((p, i) => `${i === 0 ? 'M' : 'L'}${f1(x(p.step))} ${f1(y(p.value))}`).join(''),
      )
      .join('');
    const color = escapeHtml(s.color);
    parts.push(`<g class="series"><title>${escapeHtml(s.label)}</title>`);
    if (d !== '') parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    const n = segs.reduce((a, seg) => a + seg.length, 0);
    // Markers for sparse series, and for points that no line passes through.
    for (const seg of segs) {
      if (n > MARKERS_UP_TO && seg.length > 1) continue;
      for (const p of seg) {
        parts.push(
          `<circle cx="${f1(x(p.step))}" cy="${f1(y(p.value))}" r="2.5" fill="${color}"/>`,
        );
      }
    }
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('');
}
