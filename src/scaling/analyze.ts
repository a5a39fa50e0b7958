import { TroupeError } from '../errors.js';
import { type BootstrapResult, bootstrap } from './bootstrap.js';
import {
  type ChinchillaLaw,
  computeOptimal,
  fitChinchilla,
  type LossPoint,
  predictLoss,
} from './chinchilla.js';
import { type Approach2, approach2, type IsoPoint } from './isoflop.js';
import { type KaplanLaw, kaplanLaw } from './kaplan.js';
import type { SweepRow } from './table.js';

/*
 * Every fit of a sweep's table in one place: approach 3 (with bootstrap intervals), approach 2
 * (IsoFLOP designs), Kaplan's power laws on the sweep's frontiers, the compute-optimal
 * allocation per budget, a leave-largest-budget-out extrapolation, and approach 2's bias on
 * this very design. The result is plain data (fits.json); the report draws it.
 */

export interface AnalysisOptions {
  /** The N of the fits: every parameter, or the non-embedding ones. */
  readonly parameters: 'total' | 'nonEmbedding';
  readonly delta?: number;
  readonly bootstrap?: number;
  readonly seed?: number;
  readonly confidence?: number;
  /** Approach 2's parabola: the best size and this many on each side; undefined = every size. */
  readonly isoflopWindow?: number;
}

export interface Approach3Summary {
  readonly law: ChinchillaLaw;
  /** N_opt ∝ C^a, D_opt ∝ C^b, N_opt = G (C/6)^a. */
  readonly a: number;
  readonly b: number;
  readonly G: number;
  readonly objective: number;
  readonly points: number;
}

export interface Allocation {
  readonly c: number;
  readonly nOpt: number;
  readonly dOpt: number;
  readonly tokensPerParam: number;
  /** The law's loss at (nOpt, dOpt): the compute-efficient frontier. */
  readonly loss: number;
}

export interface Extrapolation {
  /** The budget left out of the fit; its jobs are predicted. */
  readonly heldOut: number;
  readonly fittedOn: number;
  readonly law: ChinchillaLaw;
  readonly jobs: readonly {
    readonly id: string;
    readonly n: number;
    readonly d: number;
    readonly loss: number;
    readonly predicted: number;
    /** (predicted − observed) / observed */
    readonly relError: number;
  }[];
  readonly meanAbsRelError: number;
  readonly maxAbsRelError: number;
  /** The best job of the held-out budget, observed and predicted. */
  readonly best: { readonly id: string; readonly loss: number; readonly predicted: number };
  /** Approach 2 fitted without the budget: its N_opt there, and the held-out curve's own vertex. */
  readonly approach2?: { readonly predictedNOpt: number; readonly observedNOpt?: number };
}

export interface ScalingAnalysis {
  readonly parameters: 'total' | 'nonEmbedding';
  /** Huber δ of approach 3. */
  readonly delta: number;
  readonly points: number;
  readonly budgets: readonly number[];
  readonly design: 'flops' | 'tokens';
  readonly approach3: Approach3Summary;
  /** Approach 3 with the other N (total ↔ non-embedding), for comparison. */
  readonly approach3Other: Approach3Summary & { readonly parameters: 'total' | 'nonEmbedding' };
  readonly approach2?: Approach2;
  /** Approach 2 on noiseless losses from the approach-3 law at this design, against the law's a. */
  readonly approach2Bias?: { readonly lawA: number; readonly approach2A: number };
  readonly kaplan: { readonly N?: KaplanLaw; readonly D?: KaplanLaw; readonly C?: KaplanLaw };
  /** Approach 3's allocation at each budget (and approach 2's vertex there, when it has one). */
  readonly optimal: readonly (Allocation & { readonly approach2NOpt?: number })[];
  readonly extrapolation?: Extrapolation;
  readonly intervals?: BootstrapResult;
}

const nOf = (p: 'total' | 'nonEmbedding') => (r: SweepRow) =>
  p === 'total' ? r.params : r.nonEmbeddingParams;

function lossPoints(rows: readonly SweepRow[], p: 'total' | 'nonEmbedding'): LossPoint[] {
  return rows.map((r) => ({ n: nOf(p)(r), d: r.tokens, loss: r.loss }));
}

const isoPoints = (rows: readonly SweepRow[], p: 'total' | 'nonEmbedding'): IsoPoint[] =>
  rows.map((r) => ({ c: r.budget, n: nOf(p)(r), loss: r.loss }));

function summary(
  points: readonly LossPoint[],
  delta: number,
  starts?: readonly (readonly number[])[],
) {
  const fit = fitChinchilla(points, { delta, starts });
  const co = computeOptimal(fit.law);
  const s: Approach3Summary = {
    law: fit.law,
    a: co.a,
    b: co.b,
    G: co.G,
    objective: fit.objective,
    points: points.length,
  };
  return { fit, s };
}

function extrapolate(
  rows: readonly SweepRow[],
  o: AnalysisOptions,
  delta: number,
): Extrapolation | undefined {
  const heldOut = Math.max(...rows.map((r) => r.budget));
  const rest = rows.filter((r) => r.budget < heldOut);
  const test = rows.filter((r) => r.budget === heldOut);
  if (rest.length < 5) return undefined;
  const law = fitChinchilla(lossPoints(rest, o.parameters), { delta }).law;
  const jobs = test.map((r) => {
    const n = nOf(o.parameters)(r);
    const predicted = predictLoss(law, n, r.tokens);
    return {
      id: r.id,
      n,
      d: r.tokens,
      loss: r.loss,
      predicted,
      relError: (predicted - r.loss) / r.loss,
    };
  });
  const abs = jobs.map((j) => Math.abs(j.relError));
  const best = jobs.reduce((x, y) => (y.loss < x.loss ? y : x));
  let a2: Extrapolation['approach2'];
  if (rows[0].budgetKind === 'flops') {
    const fitted = approach2(isoPoints(rest, o.parameters), o.isoflopWindow).nOpt;
    const held = approach2(isoPoints(test, o.parameters), o.isoflopWindow).curves[0];
    if (fitted)
      a2 = { predictedNOpt: fitted.k * heldOut ** fitted.exponent, observedNOpt: held?.nOpt };
  }
  return {
    heldOut,
    fittedOn: rest.length,
    law,
    jobs,
    meanAbsRelError: abs.reduce((s, x) => s + x, 0) / abs.length,
    maxAbsRelError: Math.max(...abs),
    best: { id: best.id, loss: best.loss, predicted: best.predicted },
    ...(a2 ? { approach2: a2 } : {}),
  };
}

/** The quantities one bootstrap resample refits. */
function refit(
  rows: readonly SweepRow[],
  o: AnalysisOptions,
  delta: number,
  starts: readonly (readonly number[])[],
): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  const fit = fitChinchilla(lossPoints(rows, o.parameters), { delta, starts });
  const co = computeOptimal(fit.law);
  Object.assign(out, { ...fit.law, a: co.a, b: co.b });
  if (rows[0].budgetKind === 'flops')
    out['approach2.a'] = approach2(isoPoints(rows, o.parameters), o.isoflopWindow).nOpt?.exponent;
  for (const [k, x] of [
    ['N', nOf(o.parameters)],
    ['D', (r: SweepRow) => r.tokens],
    ['C', (r: SweepRow) => r.flops],
  ] as const)
    out[`kaplan.${k}.alpha`] = kaplanLaw(rows, x)?.alpha;
  return out;
}

/** Fit everything to a sweep's rows. */
export function analyzeSweep(rows: readonly SweepRow[], o: AnalysisOptions): ScalingAnalysis {
  if (rows.length < 5) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `a sweep needs at least 5 finished jobs to fit L(N, D) (5 parameters); it has ${rows.length}`,
      { details: { rows: rows.length } },
    );
  }
  const delta = o.delta ?? 1e-3;
  const design = rows[0].budgetKind;
  const budgets = [...new Set(rows.map((r) => r.budget))].sort((a, b) => a - b);
  const { fit, s: approach3 } = summary(lossPoints(rows, o.parameters), delta);
  const other = o.parameters === 'total' ? 'nonEmbedding' : 'total';
  const approach3Other = {
    ...summary(lossPoints(rows, other), delta).s,
    parameters: other,
  } as const;
  const a2 =
    design === 'flops' ? approach2(isoPoints(rows, o.parameters), o.isoflopWindow) : undefined;
  let approach2Bias: ScalingAnalysis['approach2Bias'];
  if (a2) {
    const clean = rows.map((r) => ({
      c: r.budget,
      n: nOf(o.parameters)(r),
      loss: predictLoss(fit.law, nOf(o.parameters)(r), r.tokens),
    }));
    const e = approach2(clean, o.isoflopWindow).nOpt?.exponent;
    if (e !== undefined) approach2Bias = { lawA: approach3.a, approach2A: e };
  }
  const co = computeOptimal(fit.law);
  const cs =
    design === 'flops' ? budgets : [...new Set(rows.map((r) => r.flops))].sort((a, b) => a - b);
  const optimal = (design === 'flops' ? cs : [cs[0], cs[cs.length - 1]]).map((c) => {
    const nOpt = co.nOpt(c);
    const dOpt = co.dOpt(c);
    const v = a2?.curves.find((k) => k.c === c)?.nOpt;
    return {
      c,
      nOpt,
      dOpt,
      tokensPerParam: dOpt / nOpt,
      loss: co.frontier(c),
      ...(v === undefined ? {} : { approach2NOpt: v }),
    };
  });
  const kaplan = {
    N: kaplanLaw(rows, nOf(o.parameters)),
    D: kaplanLaw(rows, (r) => r.tokens),
    C: kaplanLaw(rows, (r) => r.flops),
  };
  const intervals =
    (o.bootstrap ?? 0) > 0
      ? bootstrap(
          rows,
          (r) => r.budget,
          (rs) => refit(rs, o, delta, fit.minima),
          {
            resamples: o.bootstrap!,
            seed: o.seed ?? 0,
            confidence: o.confidence ?? 0.95,
          },
        )
      : undefined;
  const extrapolation = budgets.length >= 2 ? extrapolate(rows, o, delta) : undefined;
  return {
    parameters: o.parameters,
    delta,
    points: rows.length,
    budgets,
    design,
    approach3,
    approach3Other,
    ...(a2 ? { approach2: a2 } : {}),
    ...(approach2Bias ? { approach2Bias } : {}),
    kaplan,
    optimal,
    ...(extrapolation ? { extrapolation } : {}),
    ...(intervals ? { intervals } : {}),
  };
}
