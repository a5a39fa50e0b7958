import { TroupeError } from '../errors.js';

/*
 * The small least-squares pieces of the fits, in float64: a straight line, a parabola (on
 * centred x, for conditioning), a power law y = k·x^p by a line in log-log space.
 */

/** Solve the k×k system M v = r by Gaussian elimination with partial pivoting; undefined if singular. */
export function solve(M: number[][], r: number[]): number[] | undefined {
  const k = r.length;
  const A = M.map((row, i) => [...row, r[i]]);
  for (let c = 0; c < k; c++) {
    let p = c;
    for (let i = c + 1; i < k; i++) if (Math.abs(A[i][c]) > Math.abs(A[p][c])) p = i;
    if (Math.abs(A[p][c]) < 1e-300) return undefined;
    [A[c], A[p]] = [A[p], A[c]];
    for (let i = c + 1; i < k; i++) {
      const f = A[i][c] / A[c][c];
      for (let j = c; j <= k; j++) A[i][j] -= f * A[c][j];
    }
  }
  const v = new Array<number>(k).fill(0);
  for (let i = k - 1; i >= 0; i--) {
    let s = A[i][k];
    for (let j = i + 1; j < k; j++) s -= A[i][j] * v[j];
    v[i] = s / A[i][i];
  }
  return v;
}

/** Least-squares polynomial of degree `deg` in (x − x̄): coefficients [c0, c1, …] and x̄. */
function polyFit(xs: readonly number[], ys: readonly number[], deg: number) {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const M = Array.from({ length: deg + 1 }, () => new Array<number>(deg + 1).fill(0));
  const r = new Array<number>(deg + 1).fill(0);
  for (let i = 0; i < xs.length; i++) {
    const u = xs[i] - mean;
    for (let a = 0; a <= deg; a++) {
      r[a] += ys[i] * u ** a;
      for (let b = 0; b <= deg; b++) M[a][b] += u ** (a + b);
    }
  }
  return { c: solve(M, r), mean };
}

function distinct(xs: readonly number[]): number {
  return new Set(xs).size;
}

export interface Line {
  readonly intercept: number;
  readonly slope: number;
}

/** y = intercept + slope·x by least squares; needs 2 distinct x. */
export function fitLine(xs: readonly number[], ys: readonly number[]): Line {
  if (xs.length !== ys.length || distinct(xs) < 2) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `a line needs at least 2 distinct x (got ${distinct(xs)} of ${xs.length} points)`,
    );
  }
  const { c, mean } = polyFit(xs, ys, 1);
  const [c0, c1] = c!;
  return { intercept: c0 - c1 * mean, slope: c1 };
}

/** y = p0 + p1·x + p2·x², with its vertex when it opens upward. */
export interface Parabola {
  readonly p0: number;
  readonly p1: number;
  readonly p2: number;
  /** The vertex −p1 / 2p2 when p2 > 0 (a minimum); undefined otherwise. */
  readonly xMin?: number;
  readonly yMin?: number;
}

/** The least-squares parabola through the points; needs 3 distinct x. */
export function fitParabola(xs: readonly number[], ys: readonly number[]): Parabola {
  if (xs.length !== ys.length || distinct(xs) < 3) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `a parabola needs at least 3 distinct x (got ${distinct(xs)} of ${xs.length} points)`,
    );
  }
  const { c, mean: m } = polyFit(xs, ys, 2);
  const [c0, c1, c2] = c!;
  // Back from u = x − m: c0 + c1 u + c2 u² = (c0 − c1 m + c2 m²) + (c1 − 2 c2 m) x + c2 x².
  const p0 = c0 - c1 * m + c2 * m * m;
  const p1 = c1 - 2 * c2 * m;
  const p2 = c2;
  if (!(p2 > 0)) return { p0, p1, p2 };
  const xMin = m - c1 / (2 * c2);
  return { p0, p1, p2, xMin, yMin: c0 - (c1 * c1) / (4 * c2) };
}

export interface PowerLaw {
  /** y = k · x^exponent */
  readonly k: number;
  readonly exponent: number;
}

/** y = k·x^p by least squares on log y = log k + p log x; every x and y must be positive. */
export function fitPowerLaw(xs: readonly number[], ys: readonly number[]): PowerLaw {
  if (xs.some((x) => !(x > 0)) || ys.some((y) => !(y > 0))) {
    throw new TroupeError('BAD_ARGUMENT', 'a power law needs positive x and y');
  }
  const l = fitLine(xs.map(Math.log), ys.map(Math.log));
  return { k: Math.exp(l.intercept), exponent: l.slope };
}
