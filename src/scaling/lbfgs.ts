import { TroupeError } from '../errors.js';

/*
 * L-BFGS (Nocedal & Wright, "Numerical Optimization", 2nd ed.: Algorithm 7.4 for the two-loop
 * recursion, Algorithms 3.5–3.6 for the strong-Wolfe line search with zoom). Small, in float64,
 * for the few-parameter fits of scaling laws; no bounds (the fits are over log-space parameters).
 */

/** f(x), writing ∇f(x) into `grad` (same length as x). */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Correction pairs kept (m). Default 10. */
  readonly memory?: number;
  /** Iterations at most. Default 1000. */
  readonly maxIterations?: number;
  /** Stop when max |∇f| ≤ gradTol. Default 1e-10. */
  readonly gradTol?: number;
  /** Stop when |f_k − f_{k+1}| ≤ fTol · max(|f_k|, |f_{k+1}|, 1e-300). Default 1e-15. */
  readonly fTol?: number;
  /** Armijo constant c1 and curvature constant c2 of the strong Wolfe conditions. */
  readonly c1?: number;
  readonly c2?: number;
}

export type LbfgsStop = 'gradient' | 'progress' | 'iterations' | 'line-search';

export interface LbfgsResult {
  readonly x: Float64Array;
  readonly f: number;
  /** max |∇f| at x. */
  readonly gradNorm: number;
  readonly iterations: number;
  /** Objective evaluations (each with its gradient). */
  readonly evaluations: number;
  /** Why it stopped: a small gradient, no more progress, the iteration cap, or no step found. */
  readonly stop: LbfgsStop;
}

const dot = (a: Float64Array, b: Float64Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const maxAbs = (a: Float64Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/** Minimise `f` from `x0`. Non-finite values at x0 are refused; later ones shrink the step. */
export function lbfgs(f: Objective, x0: ArrayLike<number>, o: LbfgsOptions = {}): LbfgsResult {
  const n = x0.length;
  const m = o.memory ?? 10;
  const maxIter = o.maxIterations ?? 1000;
  const gradTol = o.gradTol ?? 1e-10;
  const fTol = o.fTol ?? 1e-15;
  const c1 = o.c1 ?? 1e-4;
  const c2 = o.c2 ?? 0.9;
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = f(x, g);
  let evaluations = 1;
  if (!Number.isFinite(fx) || !g.every(Number.isFinite)) {
    throw new TroupeError('BAD_ARGUMENT', `lbfgs: the objective is not finite at the start point`, {
      details: { x0: [...x], f: fx },
    });
  }
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  const alphas = new Float64Array(m);
  let iterations = 0;
  let stop: LbfgsStop = 'iterations';
  const xt = new Float64Array(n);
  const gt = new Float64Array(n);
  /** φ(t) = f(x + t d) and φ'(t), with the point and gradient left in xt / gt. */
  const phi = (t: number): [number, number] => {
    for (let i = 0; i < n; i++) xt[i] = x[i] + t * d[i];
    const v = f(xt, gt);
    evaluations++;
    return [v, dot(gt, d)];
  };
  for (; iterations < maxIter; iterations++) {
    if (maxAbs(g) <= gradTol) {
      stop = 'gradient';
      break;
    }
    // Two-loop recursion: d = −H_k ∇f, H_0 = γI with γ = s·y / y·y of the newest pair.
    for (let i = 0; i < n; i++) d[i] = -g[i];
    for (let k = S.length - 1; k >= 0; k--) {
      alphas[k] = rho[k] * dot(S[k], d);
      for (let i = 0; i < n; i++) d[i] -= alphas[k] * Y[k][i];
    }
    if (S.length > 0) {
      const last = S.length - 1;
      const gamma = dot(S[last], Y[last]) / dot(Y[last], Y[last]);
      for (let i = 0; i < n; i++) d[i] *= gamma;
    }
    for (let k = 0; k < S.length; k++) {
      const beta = rho[k] * dot(Y[k], d);
      for (let i = 0; i < n; i++) d[i] += S[k][i] * (alphas[k] - beta);
    }
    let dphi0 = dot(g, d);
    if (!(dphi0 < 0)) {
      // Not a descent direction (a stale curvature pair): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i];
      dphi0 = dot(g, d);
    }
    const t0 = S.length === 0 ? Math.min(1, 1 / maxAbs(g)) : 1;
    const found = wolfe(phi, fx, dphi0, t0, c1, c2);
    if (!found) {
      stop = 'line-search';
      break;
    }
    // (xt, gt) hold the accepted point: re-evaluate only if the search ended elsewhere.
    if (found.evaluatedLast !== true) phi(found.t);
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xt[i] - x[i];
      y[i] = gt[i] - g[i];
    }
    const fPrev = fx;
    x = Float64Array.from(xt);
    g = Float64Array.from(gt);
    fx = found.f;
    const sy = dot(s, y);
    if (sy > 1e-300) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
    }
    if (Math.abs(fPrev - fx) <= fTol * Math.max(Math.abs(fPrev), Math.abs(fx), 1e-300)) {
      iterations++;
      stop = maxAbs(g) <= gradTol ? 'gradient' : 'progress';
      break;
    }
  }
  return { x, f: fx, gradNorm: maxAbs(g), iterations, evaluations, stop };
}

interface Step {
  readonly t: number;
  readonly f: number;
  /** True when the last φ evaluation was at t (xt / gt hold that point). */
  readonly evaluatedLast?: boolean;
}

/**
 * A step t satisfying the strong Wolfe conditions along d: φ(t) ≤ φ(0) + c1 t φ'(0) and
 * |φ'(t)| ≤ c2 |φ'(0)| (N&W Algorithm 3.5). Undefined when none is found in 40 trials.
 */
function wolfe(
  phi: (t: number) => [number, number],
  f0: number,
  dphi0: number,
  t1: number,
  c1: number,
  c2: number,
): Step | undefined {
  let tPrev = 0;
  let fPrev = f0;
  let dPrev = dphi0;
  let t = t1;
  for (let i = 0; i < 40; i++) {
    const [ft, dt] = phi(t);
    if (!Number.isFinite(ft) || !Number.isFinite(dt)) {
      t = tPrev + (t - tPrev) / 4; // overshot into a non-finite region: come back
      continue;
    }
    if (ft > f0 + c1 * t * dphi0 || (i > 0 && ft >= fPrev)) {
      return zoom(phi, f0, dphi0, tPrev, fPrev, dPrev, t, ft, dt, c1, c2);
    }
    if (Math.abs(dt) <= -c2 * dphi0) return { t, f: ft, evaluatedLast: true };
    if (dt >= 0) return zoom(phi, f0, dphi0, t, ft, dt, tPrev, fPrev, dPrev, c1, c2);
    tPrev = t;
    fPrev = ft;
    dPrev = dt;
    t *= 2;
  }
  return undefined;
}

/**
 * The minimiser of the cubic through (a, fa, da) and (b, fb, db), kept inside the interval's
 * middle 80 %; bisection when the cubic has none (N&W eq. 3.59).
 */
function cubicStep(a: number, fa: number, da: number, b: number, fb: number, db: number): number {
  const d1 = da + db - (3 * (fa - fb)) / (a - b);
  const disc = d1 * d1 - da * db;
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  if (disc >= 0) {
    const d2 = Math.sign(b - a) * Math.sqrt(disc);
    const t = b - (b - a) * ((db + d2 - d1) / (db - da + 2 * d2));
    const margin = 0.1 * (hi - lo);
    if (Number.isFinite(t)) return Math.min(hi - margin, Math.max(lo + margin, t));
  }
  return (lo + hi) / 2;
}

/** N&W Algorithm 3.6: shrink [lo, hi] (lo the better end) until a strong Wolfe step is found. */
function zoom(
  phi: (t: number) => [number, number],
  f0: number,
  dphi0: number,
  lo: number,
  flo: number,
  dlo: number,
  hi: number,
  fhi: number,
  dhi: number,
  c1: number,
  c2: number,
): Step | undefined {
  for (let i = 0; i < 40; i++) {
    const t = cubicStep(lo, flo, dlo, hi, fhi, dhi);
    const [ft, dt] = phi(t);
    if (!Number.isFinite(ft) || ft > f0 + c1 * t * dphi0 || ft >= flo) {
      hi = t;
      fhi = Number.isFinite(ft) ? ft : Number.MAX_VALUE;
      dhi = Number.isFinite(dt) ? dt : 0;
    } else {
      if (Math.abs(dt) <= -c2 * dphi0) return { t, f: ft, evaluatedLast: true };
      if (dt * (hi - lo) >= 0) {
        hi = lo;
        fhi = flo;
        dhi = dlo;
      }
      lo = t;
      flo = ft;
      dlo = dt;
    }
    if (Math.abs(hi - lo) <= 1e-16 * Math.max(1, Math.abs(lo))) break;
  }
  // The interval collapsed: accept the best point if it decreased f (sufficient decrease holds).
  return lo > 0 && flo < f0 ? { t: lo, f: flo } : undefined;
}
