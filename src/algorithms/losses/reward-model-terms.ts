import { TroupeError } from '../../errors.js';
import * as tf from '../../kernels/tf.js';
import { mean } from './common.js';

/*
 * What the reward-model losses (reward-model.ts: Bradley–Terry; soft-reward-model.ts: its soft-
 * label form) share: their one hyperparameter, and the score metrics and centring term each
 * adds on top of its own pairwise term.
 */

export interface RewardModelParams {
  /**
   * c ≥ 0: adds c·mean((r_c + r_r)²), pulling the scores towards zero mean (Eisenstein et al.
   * 2023; TRL `center_rewards_coefficient`, suggested 0.01). Off when unset.
   */
  readonly centerRewardsCoefficient?: number;
}

/** The coefficient c of `params`, checked; `loss` names the loss in the message. */
export function centerCoefficient(loss: string, params: RewardModelParams): number | undefined {
  for (const key of Object.keys(params)) {
    if (key !== 'centerRewardsCoefficient') {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${loss}: unknown parameter '${key}'. Known: centerRewardsCoefficient.`,
      );
    }
  }
  const c = params.centerRewardsCoefficient;
  if (c !== undefined && !(c >= 0 && Number.isFinite(c))) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${loss}: 'centerRewardsCoefficient' must be a non-negative finite number; got ${c}. TRL suggests 0.01.`,
    );
  }
  return c;
}

/**
 * The metrics every reward-model loss logs, of chosen scores r_c (B,), rejected scores r_r (B,)
 * and their difference d = r_c − r_r (B,): rm/accuracy (fraction with r_c > r_r; ties count as
 * wrong), rm/chosen_score, rm/rejected_score, rm/margin (mean d). Call inside a tidy.
 */
export function scoreMetrics(
  chosen: tf.Tensor,
  rejected: tf.Tensor,
  diff: tf.Tensor,
): Record<string, tf.Scalar> {
  return {
    'rm/accuracy': mean(tf.cast(tf.greater(chosen, rejected), 'float32')),
    'rm/chosen_score': mean(chosen),
    'rm/rejected_score': mean(rejected),
    'rm/margin': mean(diff),
  };
}

/**
 * `loss` + c·mean((r_c + r_r)²) when c is set (then also metrics['rm/center_loss']), else
 * `loss`. Call inside a tidy.
 */
export function withCenterTerm(
  loss: tf.Scalar,
  metrics: Record<string, tf.Scalar>,
  chosen: tf.Tensor,
  rejected: tf.Tensor,
  c: number | undefined,
): tf.Scalar {
  if (c === undefined) return loss;
  const center = tf.mul(mean(tf.square(tf.add(chosen, rejected))), c) as tf.Scalar;
  metrics['rm/center_loss'] = center;
  return tf.add(loss, center) as tf.Scalar;
}
