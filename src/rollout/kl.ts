import { lookup, TroupeError } from '../errors.js';
import type { KlEstimatorName } from '../kernels/numerics/index.js';

/*
 * KL reward shaping and the KL coefficient controllers, over plain typed arrays. The shaping is
 * OpenRLHF `openrlhf/models/utils.py` (compute_reward: −β·KL per token, the sequence reward added
 * at the last action token); the controllers are verl `verl/trainer/ppo/core_algos.py`
 * (FixedKLController, AdaptiveKLController, after Ziegler et al. 2019, arXiv 1909.08593 §2.2).
 */

/** Per-token KL estimate from log π(a) and log π_ref(a), a ~ π; plain-number twins of numerics/kl.ts. */
type PlainKl = (logp: number, logq: number) => number;

const PLAIN_KL: ReadonlyMap<KlEstimatorName, PlainKl> = new Map<KlEstimatorName, PlainKl>([
  ['k1', (logp, logq) => logp - logq], // −log r
  ['k2', (logp, logq) => 0.5 * (logp - logq) ** 2], // ½ (log r)²
  ['k3', (logp, logq) => Math.expm1(logq - logp) - (logq - logp)], // (r − 1) − log r
]);

/**
 * The `estimator` KL estimate per token, clamped to [−clamp, clamp] when set, 0 where the mask
 * is 0 (OpenRLHF compute_approx_kl multiplies by the action mask).
 *   logp, refLogp: (B, A), mask: (B, A) → (B, A)
 */
export function tokenKl(
  logp: Float32Array,
  refLogp: Float32Array,
  mask: Uint8Array,
  estimator: KlEstimatorName,
  clamp?: number,
): Float32Array {
  const kl = lookup(PLAIN_KL as ReadonlyMap<string, PlainKl>, estimator, 'KL estimator');
  if (logp.length !== mask.length || refLogp.length !== mask.length) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `Arguments 'logp', 'refLogp' and 'mask' passed to 'tokenKl' must have one length; got ` +
        `${logp.length}, ${refLogp.length} and ${mask.length}`,
    );
  }
  if (clamp !== undefined && !(clamp > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Option 'clamp' passed to 'tokenKl' must be a positive number; got ${clamp}`,
    );
  }
  const c = clamp ?? Number.POSITIVE_INFINITY;
  return Float32Array.from(mask, (m, i) =>
    m ? Math.min(c, Math.max(-c, kl(logp[i], refLogp[i]))) : 0,
  );
}

export interface ShapeRewardsInputs {
  readonly shape: { readonly batch: number; readonly actions: number };
  /** (B) r: the sequence-level reward. */
  readonly rewards: Float32Array;
  /** (B, A) log π_old(a|s). */
  readonly logp: Float32Array;
  /** (B, A) log π_ref(a|s). */
  readonly refLogp: Float32Array;
  /** (B, A) action mask. */
  readonly mask: Uint8Array;
}

export interface ShapeRewardsParams {
  /** β, the KL coefficient (a controller's `value`). */
  readonly beta: number;
  /** Which estimator of KL_t (default k1, as OpenRLHF's reward penalty). */
  readonly estimator?: KlEstimatorName;
  /** Clamp KL_t to [−clamp, clamp]. */
  readonly clamp?: number;
}

export interface ShapedRewards {
  /** (B, A) r_t = −β·KL_t, plus r at each row's last action token; 0 where masked. */
  readonly tokenRewards: Float32Array;
  /** (B, A) KL_t, 0 where masked. */
  readonly kl: Float32Array;
  /** Batch mean of each row's mean KL_t: what a controller's update takes (verl apply_kl_penalty). */
  readonly meanKl: number;
}

/**
 * r_t = −β·KL_t + [t = last action of the row]·r   (Ziegler et al. 2019 eq. 2; Ouyang et al.
 * 2022 eq. 2). A row with no action gets no reward and contributes 0 to meanKl.
 */
export function shapeRewards(
  inputs: ShapeRewardsInputs,
  params: ShapeRewardsParams,
): ShapedRewards {
  const { batch: B, actions: A } = inputs.shape;
  const { beta, estimator = 'k1', clamp } = params;
  if (!Number.isFinite(beta)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Param 'beta' passed to 'shapeRewards' must be finite; got ${beta}`,
    );
  }
  if (inputs.rewards.length !== B || inputs.mask.length !== B * A) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `Arguments 'rewards' and 'mask' passed to 'shapeRewards' must have lengths ${B} and ` +
        `${B * A} (batch ${B}, actions ${A}); got ${inputs.rewards.length} and ${inputs.mask.length}`,
    );
  }
  const kl = tokenKl(inputs.logp, inputs.refLogp, inputs.mask, estimator, clamp);
  const tokenRewards = Float32Array.from(kl, (k) => -beta * k);
  let klSum = 0;
  for (let b = 0; b < B; b++) {
    let last = -1;
    let n = 0;
    let rowKl = 0;
    for (let t = 0; t < A; t++) {
      if (!inputs.mask[b * A + t]) continue;
      last = t;
      n++;
      rowKl += kl[b * A + t];
    }
    if (last >= 0) tokenRewards[b * A + last] += inputs.rewards[b];
    klSum += n > 0 ? rowKl / n : 0;
  }
  return { tokenRewards, kl, meanKl: klSum / B };
}

/** What every KL controller offers: the current β, and an update from the observed KL. */
export interface KlController {
  /** β, the current KL coefficient. */
  readonly value: number;
  /** Update β from the KL observed over `nSteps` samples (verl passes the batch size). */
  update(currentKl: number, nSteps: number): void;
}

/** β fixed at `klCoef`; update does nothing. */
export class FixedKLController implements KlController {
  readonly value: number;
  constructor(klCoef: number) {
    checkFinite('klCoef', klCoef, 'FixedKLController');
    this.value = klCoef;
  }
  update(_currentKl: number, _nSteps: number): void {}
}

/**
 * Ziegler et al. 2019 (arXiv 1909.08593 §2.2) proportional controller, as verl:
 *   e = clip(KL/KL_target − 1, −0.2, 0.2),   β ← β·(1 + e·n_steps/horizon)
 */
export class AdaptiveKLController implements KlController {
  private beta: number;
  constructor(
    initKl: number,
    readonly target: number,
    readonly horizon: number,
  ) {
    checkFinite('initKl', initKl, 'AdaptiveKLController');
    if (!(target > 0)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Argument 'target' passed to 'AdaptiveKLController' must be positive; got ${target}`,
      );
    }
    if (!(horizon > 0)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Argument 'horizon' passed to 'AdaptiveKLController' must be positive; got ${horizon}`,
      );
    }
    this.beta = initKl;
  }
  get value(): number {
    return this.beta;
  }
  update(currentKl: number, nSteps: number): void {
    const error = Math.min(0.2, Math.max(-0.2, currentKl / this.target - 1)); // e_t
    this.beta *= 1 + (error * nSteps) / this.horizon; // β_{t+1} = β_t (1 + K_β e_t)
  }
}

function checkFinite(name: string, x: number, op: string): void {
  if (!Number.isFinite(x) || x < 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument '${name}' passed to '${op}' must be a finite number ≥ 0; got ${x}`,
    );
  }
}
