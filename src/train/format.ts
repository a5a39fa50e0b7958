/**
 * Number and duration formatting shared by the progress line and the HTML report: short,
 * fixed-ish width, and honest about NaN and ±Inf.
 */

/** A metric value in 4 significant digits (`2.314`, `12.35`, `1.23e-5`); `NaN`, `inf`, `-inf`. */
export function formatValue(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? 'inf' : '-inf';
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

/** A rate or count with an SI suffix: `0.52`, `3.25`, `51.2`, `512`, `1.2k`, `12.3k`, `123k`, `4.5M`. */
export function formatCompact(x: number): string {
  if (!Number.isFinite(x)) return formatValue(x);
  const a = Math.abs(x);
  if (a < 1) return String(Number(x.toPrecision(2)));
  if (a < 10) return x.toFixed(2);
  if (a < 100) return x.toFixed(1);
  if (a < 1000) return x.toFixed(0);
  for (const [scale, suffix] of [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (a >= scale * 0.9995) {
      const v = x / scale;
      return (Math.abs(v) < 100 ? v.toFixed(1) : v.toFixed(0)) + suffix;
    }
  }
  return x.toFixed(0);
}

/** Seconds as `42s`, `3m12s`, `2h05m`, `1d03h` (rounded down to the shown unit). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.floor(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}
