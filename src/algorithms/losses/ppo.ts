import { lookup, TroupeError } from '../../errors.js';
import { maskedMean, maskedSum } from '../../kernels/numerics/index.js';
import * as tf from '../../kernels/tf.js';
import type { LossOutput } from './common.js';

/*
 * PPO losses over per-token tensors, after verl `verl/trainer/ppo/core_algos.py` (agg_loss,
 * compute_policy_loss "vanilla", compute_value_loss, entropy via agg_loss) and OpenRLHF
 * `openrlhf/models/loss.py` (PolicyLoss, ValueLoss). Pure and synchronous, for use under
 * tf.variableGrads. Every per-token tensor is (B, A); `mask` is the float32 (or int32/bool)
 * action mask, 1 on trained tokens.
 */

export type AggMode =
  | 'token-mean'
  | 'seq-mean-token-sum'
  | 'seq-mean-token-mean'
  | 'seq-mean-token-sum-norm';

type Aggregator = (lossMat: tf.Tensor, mask: tf.Tensor, maxLength: number) => tf.Scalar;

export const AGG_MODES: ReadonlyMap<AggMode, Aggregator> = new Map<AggMode, Aggregator>([
  // Σ_{b,t} ℓ·m / Σ_{b,t} m: every token weighs the same (DAPO, arXiv 2503.14476 eq. 8).
  ['token-mean', (l, m) => maskedMean(l, m) as tf.Scalar],
  // mean_b Σ_t ℓ·m.
  ['seq-mean-token-sum', (l, m) => tf.mean(maskedSum(l, m, 1)) as tf.Scalar],
  // mean_b (Σ_t ℓ·m / Σ_t m): every sequence weighs the same (GRPO, arXiv 2402.03300 eq. 3). An
  // empty row counts as 0 (verl divides 0 by 0 there).
  ['seq-mean-token-mean', (l, m) => tf.mean(maskedMean(l, m, 1)) as tf.Scalar],
  // mean_b Σ_t ℓ·m / L_max: Dr.GRPO's constant normaliser (arXiv 2503.20783 §3.1). verl's
  // version divides Σ_b Σ_t by L_max alone, i.e. B times this.
  [
    'seq-mean-token-sum-norm',
    (l, m, maxLength) => tf.div(tf.mean(maskedSum(l, m, 1)), maxLength) as tf.Scalar,
  ],
]);

/**
 * The one place a per-token loss becomes a scalar.
 *   lossMat: (B, A), mask: (B, A) → ()
 * `maxLength` (L_max) is used by 'seq-mean-token-sum-norm' only; default A.
 */
export function aggLoss(
  lossMat: tf.Tensor,
  mask: tf.Tensor,
  mode: AggMode,
  maxLength?: number,
): tf.Scalar {
  const agg = lookup(AGG_MODES as ReadonlyMap<string, Aggregator>, mode, 'loss aggregation mode');
  checkPerToken('aggLoss', { lossMat, mask });
  const L = maxLength ?? (lossMat.shape[1] as number);
  if (!(Number.isFinite(L) && L > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'maxLength' passed to 'aggLoss' must be a positive number; got ${maxLength}`,
    );
  }
  return tf.tidy(() => agg(lossMat, mask, L));
}

export interface AggParams {
  /** How per-token losses become a scalar (see AGG_MODES). */
  readonly aggMode: AggMode;
  /** L_max for 'seq-mean-token-sum-norm'; default A. */
  readonly maxLength?: number;
}

export interface PolicyLossInputs {
  /** (B, A) log π_θ(a|s): the policy being trained (differentiated). */
  readonly logp: tf.Tensor;
  /** (B, A) log π_old(a|s): the behaviour policy. */
  readonly oldLogp: tf.Tensor;
  /** (B, A) Â_t. */
  readonly advantages: tf.Tensor;
  /** (B, A) action mask. */
  readonly mask: tf.Tensor;
}

export interface PolicyLossParams extends AggParams {
  /** ε_low: the ratio is clipped below at 1 − ε_low (verl clip_ratio_low). */
  readonly clipLow: number;
  /** ε_high: the ratio is clipped above at 1 + ε_high (verl clip_ratio_high; DAPO clip-higher). */
  readonly clipHigh: number;
  /** c > 1: dual-clip bound for negative advantages (verl clip_ratio_c, Ye et al. 2020); off when unset. */
  readonly dualClip?: number;
}

/** log-ratio clamp before exp, as verl, so a stale token cannot overflow the ratio. */
const LOG_RATIO_CLAMP = 20;

/**
 * PPO clipped surrogate (Schulman et al. 2017, arXiv 1707.06347 eq. 7), asymmetric clip
 * (DAPO, arXiv 2503.14476 eq. 10) and dual clip for Â < 0 (Ye et al. 2020, arXiv 1912.09729 eq. 5):
 *   ρ_t = exp(log π_θ − log π_old)
 *   ℓ_t = max(−Â_t ρ_t, −Â_t clip(ρ_t, 1 − ε_low, 1 + ε_high))
 *   ℓ_t ← min(ℓ_t, −c Â_t)   where Â_t < 0 and dualClip = c is set
 *   L   = aggLoss(ℓ, mask)
 * Metrics (masked token means): actor/pg_loss (= L), actor/pg_clipfrac (the clipped term won),
 * actor/ppo_kl (mean of log π_old − log π_θ, the k1 KL estimate), actor/pg_clipfrac_lower (the
 * dual clip won).
 */
export function ppoPolicyLoss(inputs: PolicyLossInputs, params: PolicyLossParams): LossOutput {
  checkPerToken('ppoPolicyLoss', inputs);
  checkPolicyParams(params);
  const { clipLow, clipHigh, dualClip, aggMode, maxLength } = params;
  const { logp, oldLogp, advantages: adv, mask } = inputs;
  return tf.tidy(() => {
    const logRatio = tf.clipByValue(tf.sub(logp, oldLogp), -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP);
    const ratio = tf.exp(logRatio); // ρ_t (B, A)
    const negAdv = tf.neg(adv);
    const unclipped = tf.mul(negAdv, ratio); // −Â ρ
    const clipped = tf.mul(negAdv, tf.clipByValue(ratio, 1 - clipLow, 1 + clipHigh)); // −Â clip(ρ)
    const surrogate = tf.maximum(unclipped, clipped); // eq. 7, negated
    const clipfrac = maskedMean(tf.cast(tf.greater(clipped, unclipped), 'float32'), mask);
    let perToken = surrogate;
    let clipfracLower: tf.Tensor = tf.scalar(0);
    if (dualClip !== undefined) {
      const bound = tf.mul(negAdv, dualClip); // −c Â
      const negative = tf.less(adv, 0);
      perToken = tf.where(negative, tf.minimum(surrogate, bound), surrogate); // dual clip eq. 5
      const lower = tf.logicalAnd(negative, tf.greater(surrogate, bound));
      clipfracLower = maskedMean(tf.cast(lower, 'float32'), mask);
    }
    const loss = aggLoss(perToken, mask, aggMode, maxLength);
    const metrics = {
      'actor/pg_loss': tf.clone(loss),
      'actor/pg_clipfrac': clipfrac as tf.Scalar,
      'actor/ppo_kl': maskedMean(tf.neg(logRatio), mask) as tf.Scalar,
      'actor/pg_clipfrac_lower': clipfracLower as tf.Scalar,
    };
    return { loss, metrics };
  });
}

export interface ValueLossInputs {
  /** (B, A) V_φ(s_t): the critic being trained (differentiated). */
  readonly values: tf.Tensor;
  /** (B, A) V_old(s_t): the critic's values at rollout time. */
  readonly oldValues: tf.Tensor;
  /** (B, A) R_t: the return targets. */
  readonly returns: tf.Tensor;
  /** (B, A) action mask. */
  readonly mask: tf.Tensor;
}

export interface ValueLossParams extends AggParams {
  /** ε_v: V is clipped to V_old ± ε_v (verl cliprange_value); unset: no clipping. */
  readonly clip?: number;
}

/**
 * Clipped value loss (PPO2 as in OpenAI baselines; verl compute_value_loss):
 *   ℓ_t = ½ max((V − R)², (clip(V, V_old − ε_v, V_old + ε_v) − R)²),   L = aggLoss(ℓ, mask)
 * Metrics: critic/vf_loss (= L), critic/vf_clipfrac (masked fraction where the clipped term won).
 */
export function valueLoss(inputs: ValueLossInputs, params: ValueLossParams): LossOutput {
  checkPerToken('valueLoss', inputs);
  const { clip, aggMode, maxLength } = params;
  if (clip !== undefined && !(clip > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Param 'clip' passed to 'valueLoss' must be a positive number (or unset for no clipping); got ${clip}`,
    );
  }
  const { values, oldValues, returns, mask } = inputs;
  return tf.tidy(() => {
    const unclipped = tf.square(tf.sub(values, returns)); // (V − R)²
    let perToken = unclipped;
    let clipfrac: tf.Tensor = tf.scalar(0);
    if (clip !== undefined) {
      const vClipped = tf.add(oldValues, tf.clipByValue(tf.sub(values, oldValues), -clip, clip));
      const clipped = tf.square(tf.sub(vClipped, returns)); // (clip(V) − R)²
      perToken = tf.maximum(unclipped, clipped);
      clipfrac = maskedMean(tf.cast(tf.greater(clipped, unclipped), 'float32'), mask);
    }
    const loss = tf.mul(aggLoss(perToken, mask, aggMode, maxLength), 0.5) as tf.Scalar;
    return {
      loss,
      metrics: { 'critic/vf_loss': tf.clone(loss), 'critic/vf_clipfrac': clipfrac as tf.Scalar },
    };
  });
}

export interface EntropyInputs {
  /** (B, A) H(π_θ(·|s_t)), e.g. from numerics' entropyFromLogits (differentiated). */
  readonly entropy: tf.Tensor;
  /** (B, A) action mask. */
  readonly mask: tf.Tensor;
}

export interface EntropyParams extends AggParams {
  /** The entropy coefficient (verl entropy_coeff). */
  readonly coef: number;
}

/**
 * Entropy bonus as a loss term to add: L = −coef · aggLoss(H, mask) (verl: policy_loss −
 * entropy_coeff · entropy_loss). Metric actor/entropy = aggLoss(H, mask).
 */
export function entropyBonus(inputs: EntropyInputs, params: EntropyParams): LossOutput {
  checkPerToken('entropyBonus', inputs);
  if (!Number.isFinite(params.coef)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Param 'coef' passed to 'entropyBonus' must be finite; got ${params.coef}`,
    );
  }
  return tf.tidy(() => {
    const h = aggLoss(inputs.entropy, inputs.mask, params.aggMode, params.maxLength);
    return { loss: tf.mul(h, -params.coef) as tf.Scalar, metrics: { 'actor/entropy': h } };
  });
}

export type PolicyLossName = 'vanilla';
export type PolicyLoss = (inputs: PolicyLossInputs, params: PolicyLossParams) => LossOutput;

/** Policy losses by name, as verl's POLICY_LOSS_REGISTRY ("vanilla" is PPO's clipped surrogate). */
export const POLICY_LOSSES: ReadonlyMap<PolicyLossName, PolicyLoss> = new Map<
  PolicyLossName,
  PolicyLoss
>([['vanilla', ppoPolicyLoss]]);

/** The `name` policy loss (see POLICY_LOSSES). */
export function policyLoss(
  name: PolicyLossName,
  inputs: PolicyLossInputs,
  params: PolicyLossParams,
): LossOutput {
  return lookup(
    POLICY_LOSSES as ReadonlyMap<string, PolicyLoss>,
    name,
    'policy loss',
  )(inputs, params);
}

function checkPolicyParams(p: PolicyLossParams): void {
  const bad = (name: string, rule: string, got: unknown) =>
    new TroupeError(
      'BAD_ARGUMENT',
      `Param '${name}' passed to 'ppoPolicyLoss' must be ${rule}; got ${got}`,
    );
  if (!(p.clipLow >= 0 && p.clipLow < 1)) throw bad('clipLow', 'in [0, 1)', p.clipLow);
  if (!(p.clipHigh >= 0 && Number.isFinite(p.clipHigh))) {
    throw bad('clipHigh', 'a finite number ≥ 0', p.clipHigh);
  }
  if (p.dualClip !== undefined && !(p.dualClip > 1 && Number.isFinite(p.dualClip))) {
    throw bad('dualClip', 'a finite number > 1 (or unset to turn dual clip off)', p.dualClip);
  }
}

/** Every tensor a (B, A) float32 of one shape (masks may be int32 or bool). */
function checkPerToken(op: string, tensors: object): void {
  const entries = Object.entries(tensors) as [string, tf.Tensor][];
  const [, first] = entries[0];
  for (const [name, t] of entries) {
    const sameShape = t.rank === 2 && t.shape.every((d, i) => d === first.shape[i]);
    const dtypeOk = name === 'mask' || t.dtype === 'float32';
    if (!sameShape || !dtypeOk) {
      const all = entries.map(([n, x]) => `${n} ${x.dtype} [${x.shape.join(',')}]`).join(', ');
      throw new TroupeError(
        sameShape ? 'BAD_ARGUMENT' : 'SHAPE_MISMATCH',
        `Argument '${name}' passed to '${op}' must be a (B, A) tensor like the others ` +
          `(float32, masks may be int32 or bool); got ${all}`,
        { details: { op, argument: name } },
      );
    }
  }
}
