import { lookup, TroupeError } from '../errors.js';
import { whiten } from './normalize.js';

/*
 * Advantage estimators over plain typed arrays (rollouts are plain data, see experience.ts),
 * after verl `verl/trainer/ppo/core_algos.py` (compute_gae_advantage_return,
 * compute_grpo_outcome_advantage, compute_rloo_outcome_advantage,
 * compute_reinforce_plus_plus_outcome_advantage,
 * compute_reinforce_plus_plus_baseline_outcome_advantage); the batch normalisations they use
 * (masked whitening) are in normalize.ts. Row-major [B, A] throughout; arithmetic in float64,
 * results float32.
 *
 * Unlike verl, every output is 0 where the mask is 0 (verl leaves whitened garbage there): the
 * losses mask those tokens anyway, and zeros are easier to check and to send.
 */

/** What an estimator reads. Which fields it needs depends on the estimator (see each). */
export interface AdvantageInputs {
  /** B sequences, A response tokens. */
  readonly shape: { readonly batch: number; readonly actions: number };
  /** (B, A) 1 on response tokens trained on, 0 on pads. */
  readonly mask: Uint8Array;
  /** (B, A) r_t: per-token rewards (KL-shaped, sequence reward at the last token). gae, reinforce_plus_plus. */
  readonly tokenRewards?: Float32Array;
  /** (B, A) V(s_t): the critic's values. gae. */
  readonly values?: Float32Array;
  /** (B) s: the sequence-level score of each response. grpo, rloo, reinforce_plus_plus_baseline. */
  readonly scores?: Float32Array;
  /** (B) group id of each response (responses to one prompt share one). grpo, rloo, reinforce_plus_plus_baseline. */
  readonly groups?: ArrayLike<number>;
}

export interface AdvantageParams {
  /** γ, the discount (gae, reinforce_plus_plus); default 1 as in verl. */
  readonly gamma?: number;
  /** λ, the GAE trace decay (gae); default 1 as in verl. */
  readonly lambda?: number;
  /** gae: whiten the advantages over the batch (verl does; returns use the raw ones). Default true. */
  readonly whiten?: boolean;
  /** grpo: divide by the group std (GRPO); false is Dr.GRPO (arXiv 2503.20783). Default true. */
  readonly normByStd?: boolean;
  /** grpo: ε in (s − mean)/(std + ε); default 1e-6 as in verl. */
  readonly eps?: number;
}

export interface AdvantageOutput {
  /** (B, A) Â_t, 0 where the mask is 0. */
  readonly advantages: Float32Array;
  /** (B, A) return targets R_t (the critic's, for gae), 0 where the mask is 0. */
  readonly returns: Float32Array;
}

export type AdvantageEstimator = (
  inputs: AdvantageInputs,
  params: AdvantageParams,
) => AdvantageOutput;

export type AdvantageEstimatorName =
  | 'gae'
  | 'grpo'
  | 'rloo'
  | 'reinforce_plus_plus'
  | 'reinforce_plus_plus_baseline';

/**
 * GAE (Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
 * Estimation", eq. 16), backwards over each row, skipping masked-out tokens as verl does
 * (a pad neither bootstraps V nor breaks the trace):
 *   δ_t = r_t + γ·V(s_{t'}) − V(s_t),   Â_t = δ_t + γλ·Â_{t'}   (t' the next unmasked token)
 *   R_t = Â_t + V(s_t), then Â whitened over the batch unless params.whiten = false.
 * Needs tokenRewards, values (B, A).
 */
function gae(inputs: AdvantageInputs, params: AdvantageParams): AdvantageOutput {
  const { gamma = 1, lambda = 1, whiten: doWhiten = true } = params;
  const { batch: B, actions: A } = inputs.shape;
  const r = need(inputs, 'tokenRewards', 'gae');
  const v = need(inputs, 'values', 'gae');
  const m = inputs.mask;
  const adv = new Float64Array(B * A);
  const returns = new Float32Array(B * A);
  for (let b = 0; b < B; b++) {
    let nextValue = 0;
    let lastGae = 0;
    for (let t = A - 1; t >= 0; t--) {
      const i = b * A + t;
      if (!m[i]) continue;
      const delta = r[i] + gamma * nextValue - v[i]; // δ_t
      lastGae = delta + gamma * lambda * lastGae; // Â_t = δ_t + γλ Â_{t+1}
      nextValue = v[i];
      adv[i] = lastGae;
      returns[i] = lastGae + v[i]; // R_t = Â_t + V(s_t)
    }
  }
  return { advantages: doWhiten ? whiten(adv, m) : Float32Array.from(adv), returns };
}

/**
 * Group mean and (unbiased) std of the scores, per element. One pass for counts and sums, one
 * for squared deviations. A group of one has mean 0 and std 1, as in verl.
 *   scores, groups: (B) → mean, std, count: (B)
 */
function groupStats(scores: Float32Array, groups: ArrayLike<number>) {
  const B = scores.length;
  const index = new Map<number, number>();
  const slot = new Int32Array(B);
  for (let i = 0; i < B; i++) {
    let k = index.get(groups[i]);
    if (k === undefined) {
      k = index.size;
      index.set(groups[i], k);
    }
    slot[i] = k;
  }
  const G = index.size;
  const count = new Float64Array(G);
  const sum = new Float64Array(G);
  for (let i = 0; i < B; i++) {
    count[slot[i]]++;
    sum[slot[i]] += scores[i];
  }
  const mean = Float64Array.from(sum, (s, g) => (count[g] > 1 ? s / count[g] : 0));
  const ss = new Float64Array(G);
  for (let i = 0; i < B; i++) ss[slot[i]] += (scores[i] - mean[slot[i]]) ** 2;
  const std = Float64Array.from(ss, (s, g) => (count[g] > 1 ? Math.sqrt(s / (count[g] - 1)) : 1));
  const per = (x: Float64Array) => Float64Array.from(slot, (k) => x[k]);
  return { mean: per(mean), std: per(std), count: per(count) };
}

/** Each row's scalar over its response tokens: out[b, t] = x[b]·mask[b, t]. (B) → (B, A) */
function broadcast(x: ArrayLike<number>, mask: Uint8Array, A: number): Float32Array {
  return Float32Array.from(mask, (mi, i) => (mi ? x[Math.floor(i / A)] : 0));
}

/**
 * GRPO outcome advantages (Shao et al. 2024, "DeepSeekMath", §4.1.2):
 *   Â_{i,t} = (s_i − mean(s_G)) / (std(s_G) + ε)   with normByStd (default)
 *   Â_{i,t} = s_i − mean(s_G)                      Dr.GRPO (Liu et al. 2025, arXiv 2503.20783)
 * over response i's group G, std unbiased, broadcast over the response tokens.
 * Needs scores, groups (B). Returns = advantages.
 */
function grpo(inputs: AdvantageInputs, params: AdvantageParams): AdvantageOutput {
  const { normByStd = true, eps = 1e-6 } = params;
  const s = need(inputs, 'scores', 'grpo');
  const { mean, std } = groupStats(s, need(inputs, 'groups', 'grpo'));
  const a = Float64Array.from(s, (x, i) =>
    normByStd ? (x - mean[i]) / (std[i] + eps) : x - mean[i],
  );
  const advantages = broadcast(a, inputs.mask, inputs.shape.actions);
  return { advantages, returns: advantages };
}

/**
 * RLOO (Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740, eq. 5): each response's
 * baseline is the mean score of the others in its group,
 *   Â_i = s_i − 1/(n−1) Σ_{j≠i} s_j = n/(n−1)·(s_i − mean(s_G)),
 * broadcast over the response tokens; a group of one keeps its score (verl). Needs scores, groups.
 */
function rloo(inputs: AdvantageInputs, _params: AdvantageParams): AdvantageOutput {
  const s = need(inputs, 'scores', 'rloo');
  const { mean, count } = groupStats(s, need(inputs, 'groups', 'rloo'));
  const a = Float64Array.from(s, (x, i) =>
    count[i] > 1 ? (count[i] / (count[i] - 1)) * (x - mean[i]) : x,
  );
  const advantages = broadcast(a, inputs.mask, inputs.shape.actions);
  return { advantages, returns: advantages };
}

/**
 * REINFORCE++ (Hu 2025, arXiv 2501.03262, eq. 7–8): discounted returns of the token rewards,
 * G_t = r_t + γ·G_{t+1} (reset after a masked-out token, as verl), then whitened over the batch.
 * Needs tokenRewards. Returns = G (0 where masked).
 */
function reinforcePlusPlus(inputs: AdvantageInputs, params: AdvantageParams): AdvantageOutput {
  const { gamma = 1 } = params;
  const { batch: B, actions: A } = inputs.shape;
  const r = need(inputs, 'tokenRewards', 'reinforce_plus_plus');
  const m = inputs.mask;
  const g = new Float64Array(B * A);
  for (let b = 0; b < B; b++) {
    let running = 0;
    for (let t = A - 1; t >= 0; t--) {
      const i = b * A + t;
      running = r[i] + gamma * running; // G_t = r_t + γ G_{t+1}
      g[i] = m[i] ? running : 0;
      if (!m[i]) running = 0;
    }
  }
  return { advantages: whiten(g, m), returns: Float32Array.from(g) };
}

/**
 * REINFORCE++-baseline (Hu 2025, arXiv 2501.03262 §3): subtract the group mean score (0 for a
 * group of one), broadcast over the response tokens, then whiten over the batch's tokens.
 * Needs scores, groups. Returns = advantages.
 */
function reinforcePlusPlusBaseline(
  inputs: AdvantageInputs,
  _params: AdvantageParams,
): AdvantageOutput {
  const name = 'reinforce_plus_plus_baseline';
  const s = need(inputs, 'scores', name);
  const { mean } = groupStats(s, need(inputs, 'groups', name));
  const centred = broadcast(
    Float64Array.from(s, (x, i) => x - mean[i]),
    inputs.mask,
    inputs.shape.actions,
  );
  const advantages = whiten(centred, inputs.mask);
  return { advantages, returns: advantages };
}

export const ADVANTAGE_ESTIMATORS: ReadonlyMap<AdvantageEstimatorName, AdvantageEstimator> =
  new Map<AdvantageEstimatorName, AdvantageEstimator>([
    ['gae', gae],
    ['grpo', grpo],
    ['rloo', rloo],
    ['reinforce_plus_plus', reinforcePlusPlus],
    ['reinforce_plus_plus_baseline', reinforcePlusPlusBaseline],
  ]);

/**
 * Advantages and returns by the `name` estimator (see ADVANTAGE_ESTIMATORS). Checks that the
 * fields it needs are there with the lengths `inputs.shape` gives.
 *   → advantages, returns: (B, A) float32, 0 where the mask is 0
 */
export function computeAdvantages(
  name: AdvantageEstimatorName,
  inputs: AdvantageInputs,
  params: AdvantageParams = {},
): AdvantageOutput {
  const estimator = lookup(
    ADVANTAGE_ESTIMATORS as ReadonlyMap<string, AdvantageEstimator>,
    name,
    'advantage estimator',
  );
  checkInputs(name, inputs, params);
  return estimator(inputs, params);
}

function checkInputs(name: string, inputs: AdvantageInputs, params: AdvantageParams): void {
  const { batch: B, actions: A } = inputs.shape;
  if (!Number.isSafeInteger(B) || B < 1 || !Number.isSafeInteger(A) || A < 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'inputs.shape' passed to '${name}' must hold integers batch ≥ 1 and actions ≥ 1; ` +
        `got batch ${B}, actions ${A}`,
    );
  }
  const lengths: [keyof AdvantageInputs, number][] = [
    ['mask', B * A],
    ['tokenRewards', B * A],
    ['values', B * A],
    ['scores', B],
    ['groups', B],
  ];
  for (const [key, n] of lengths) {
    const x = inputs[key] as ArrayLike<number> | undefined;
    if (x !== undefined && x.length !== n) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `Argument 'inputs.${key}' passed to '${name}' must have length ${n} ` +
          `(batch ${B}, actions ${A}); got ${x.length}`,
        { details: { field: key, expected: n, got: x.length } },
      );
    }
  }
  for (const key of ['gamma', 'lambda'] as const) {
    const p = params[key];
    if (p !== undefined && !(p >= 0 && p <= 1)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Param '${key}' passed to '${name}' must be in [0, 1]; got ${p}`,
      );
    }
  }
  if (params.eps !== undefined && !(params.eps > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Param 'eps' passed to '${name}' must be positive; got ${params.eps}`,
    );
  }
}

function need<K extends 'tokenRewards' | 'values' | 'scores' | 'groups'>(
  inputs: AdvantageInputs,
  key: K,
  name: string,
): NonNullable<AdvantageInputs[K]> {
  const x = inputs[key];
  if (x === undefined) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Advantage estimator '${name}' needs 'inputs.${key}'; it was not given`,
      { details: { estimator: name, field: key } },
    );
  }
  return x as NonNullable<AdvantageInputs[K]>;
}
