import { TroupeError } from '../errors.js';
import { lbfgs } from './lbfgs.js';

/*
 * Chinchilla approach 3 (Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models",
 * §3.3 and appendix D.2): the parametric loss L(N, D) = E + A/N^α + B/D^β, fitted by minimising
 * the Huber loss (δ = 1e-3) between the predicted and observed log loss, over the log-space
 * parameters θ = (a, b, e, α, β) with A = e^a, B = e^b, E = e^e:
 *
 *   log L̂(N, D) = LSE(a − α log N, b − β log D, e)
 *
 * by L-BFGS from a grid of starts, keeping the best local minimum.
 */

/** One observation: N parameters, D tokens, final loss L (nats per token). */
export interface LossPoint {
  readonly n: number;
  readonly d: number;
  readonly loss: number;
}

/** The law L(N, D) = E + A/N^α + B/D^β. */
export interface ChinchillaLaw {
  readonly E: number;
  readonly A: number;
  readonly B: number;
  readonly alpha: number;
  readonly beta: number;
}

/** Huber loss of residual r: r²/2 within δ, δ(|r| − δ/2) beyond (Huber 1964). */
export function huber(r: number, delta: number): number {
  const a = Math.abs(r);
  return a <= delta ? 0.5 * r * r : delta * (a - 0.5 * delta);
}

/** dHuber/dr: r within δ, δ·sign(r) beyond. */
export function huberGrad(r: number, delta: number): number {
  return Math.abs(r) <= delta ? r : delta * Math.sign(r);
}

/** θ = [a, b, e, α, β] → the law. */
export function lawOf(theta: ArrayLike<number>): ChinchillaLaw {
  return {
    A: Math.exp(theta[0]),
    B: Math.exp(theta[1]),
    E: Math.exp(theta[2]),
    alpha: theta[3],
    beta: theta[4],
  };
}

/** The law's predicted loss at (N, D). */
export function predictLoss(law: ChinchillaLaw, n: number, d: number): number {
  return law.E + law.A / n ** law.alpha + law.B / d ** law.beta;
}

/**
 * The fit's objective at θ, its gradient written into `grad`: (1 / (n δ)) Σ Huber_δ(log L̂ − log L).
 * The sum is Hoffmann et al.'s; dividing by n δ leaves the minimiser where it was and gives
 * values of order |residual| whatever δ and the number of points, so the stopping tolerances of
 * L-BFGS mean the same thing for every sweep.
 */
export function chinchillaObjective(
  points: readonly LossPoint[],
  delta: number,
): (theta: Float64Array, grad: Float64Array) => number {
  const logN = points.map((p) => Math.log(p.n));
  const logD = points.map((p) => Math.log(p.d));
  const logL = points.map((p) => Math.log(p.loss));
  const scale = 1 / (points.length * delta);
  return (theta, grad) => {
    const [a, b, e, alpha, beta] = theta;
    grad.fill(0);
    let total = 0;
    for (let i = 0; i < logN.length; i++) {
      const u1 = a - alpha * logN[i];
      const u2 = b - beta * logD[i];
      const u3 = e;
      const top = Math.max(u1, u2, u3);
      const e1 = Math.exp(u1 - top);
      const e2 = Math.exp(u2 - top);
      const e3 = Math.exp(u3 - top);
      const sum = e1 + e2 + e3;
      const r = top + Math.log(sum) - logL[i];
      total += huber(r, delta);
      // ∂LSE/∂u_k is the softmax weight of u_k.
      const h = huberGrad(r, delta) / sum;
      grad[0] += h * e1;
      grad[1] += h * e2;
      grad[2] += h * e3;
      grad[3] -= h * e1 * logN[i];
      grad[4] -= h * e2 * logD[i];
    }
    for (let k = 0; k < 5; k++) grad[k] *= scale;
    return total * scale;
  };
}

/** The grid of starts of Hoffmann et al. (appendix D.2): 6 × 6 × 5 × 5 × 5 = 4,500 points. */
export const HOFFMANN_GRID = {
  a: [0, 5, 10, 15, 20, 25],
  b: [0, 5, 10, 15, 20, 25],
  e: [-1, -0.5, 0, 0.5, 1],
  alpha: [0, 0.5, 1, 1.5, 2],
  beta: [0, 0.5, 1, 1.5, 2],
} as const;

export type StartGrid = { readonly [K in keyof typeof HOFFMANN_GRID]: readonly number[] };

/** Every start of a grid, as θ = [a, b, e, α, β]. */
export function gridStarts(grid: StartGrid = HOFFMANN_GRID): number[][] {
  const out: number[][] = [];
  for (const a of grid.a)
    for (const b of grid.b)
      for (const e of grid.e)
        for (const alpha of grid.alpha)
          for (const beta of grid.beta) out.push([a, b, e, alpha, beta]);
  return out;
}

export interface ChinchillaFit {
  readonly law: ChinchillaLaw;
  /** θ = [a, b, e, α, β] of the best start. */
  readonly theta: readonly number[];
  /** The objective there (mean Huber / δ). */
  readonly objective: number;
  readonly starts: number;
  /** The best distinct local minima found (θ), best first: warm starts for bootstrap refits. */
  readonly minima: readonly (readonly number[])[];
}

export interface ChinchillaOptions {
  /** Huber δ on log-loss residuals. Default 1e-3 (Hoffmann et al.). */
  readonly delta?: number;
  /** θ starts; default the Hoffmann grid. */
  readonly starts?: readonly (readonly number[])[];
  /** How many distinct minima to keep in the result. Default 8. */
  readonly keepMinima?: number;
}

/** Fit approach 3 to the points; at least 5 are needed (the law has 5 parameters). */
export function fitChinchilla(
  points: readonly LossPoint[],
  o: ChinchillaOptions = {},
): ChinchillaFit {
  if (points.length < 5) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `approach 3 needs at least 5 (N, D, loss) points for its 5 parameters, got ${points.length}`,
      { details: { points: points.length } },
    );
  }
  for (const p of points) {
    if (!(p.n > 0 && p.d > 0 && p.loss > 0)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `approach 3: every N, D and loss must be positive, got N ${p.n}, D ${p.d}, loss ${p.loss}`,
        { details: { ...p } },
      );
    }
  }
  const delta = o.delta ?? 1e-3;
  const f = chinchillaObjective(points, delta);
  const starts = o.starts ?? gridStarts();
  const found: { theta: number[]; f: number }[] = [];
  for (const s of starts) {
    const r = lbfgs(f, s, { maxIterations: 500 });
    if (Number.isFinite(r.f)) found.push({ theta: [...r.x], f: r.f });
  }
  found.sort((p, q) => p.f - q.f);
  const minima: number[][] = [];
  for (const m of found) {
    if (minima.length >= (o.keepMinima ?? 8)) break;
    if (!minima.some((x) => x.every((v, i) => Math.abs(v - m.theta[i]) < 1e-3)))
      minima.push(m.theta);
  }
  const best = found[0];
  return {
    law: lawOf(best.theta),
    theta: best.theta,
    objective: best.f,
    starts: starts.length,
    minima,
  };
}

/**
 * The compute-optimal allocation under C = 6ND (Hoffmann et al. eq. 4): minimising the law on the
 * budget gives N_opt(C) = G (C/6)^a, D_opt(C) = G⁻¹ (C/6)^b with G = (αA / βB)^{1/(α+β)},
 * a = β/(α+β), b = α/(α+β).
 */
export function computeOptimal(law: ChinchillaLaw): {
  readonly a: number;
  readonly b: number;
  readonly G: number;
  nOpt(c: number): number;
  dOpt(c: number): number;
  /** The law's loss at the optimum: the compute-efficient frontier L*(C). */
  frontier(c: number): number;
} {
  const s = law.alpha + law.beta;
  const a = law.beta / s;
  const b = law.alpha / s;
  const G = ((law.alpha * law.A) / (law.beta * law.B)) ** (1 / s);
  const nOpt = (c: number) => G * (c / 6) ** a;
  const dOpt = (c: number) => (c / 6) ** b / G;
  return { a, b, G, nOpt, dOpt, frontier: (c) => predictLoss(law, nOpt(c), dOpt(c)) };
}
