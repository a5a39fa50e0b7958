import * as tf from '../../kernels/tf.js';
import { type LossOutput, mean } from './common.js';
import { checkRows } from './inputs.js';
import {
  centerCoefficient,
  type RewardModelParams,
  scoreMetrics,
  withCenterTerm,
} from './reward-model-terms.js';

export interface SoftRewardModelInputs {
  /** (B,) float32: r_θ(x_b, y_c), the score of the response labelled more likely preferred. */
  readonly chosenRewards: tf.Tensor;
  /** (B,) float32: r_θ(x_b, y_r), the score of the other response of the same prompt. */
  readonly rejectedRewards: tf.Tensor;
  /**
   * (B,) float32 in [0, 1]: p_b, the soft label P(y_c ≻ y_r) (Constitutional AI's normalised
   * option probabilities of a feedback model; 1 is a hard label).
   */
  readonly chosenProb: tf.Tensor;
}

/**
 * Bradley–Terry with soft targets: the cross-entropy of the model's preference probability
 * σ(r_c − r_r) against the label p (Bai et al. 2022, "Constitutional AI", arXiv 2212.08073, §4.1:
 * the feedback model's normalised (A)/(B) probabilities are the preference-model targets):
 *
 *   L = mean_b −[p_b log σ(r_c,b − r_r,b) + (1 − p_b) log σ(r_r,b − r_c,b)]  [+ c·mean_b (r_c,b + r_r,b)²]
 *
 * with −log σ(z) = softplus(−z) (stable). p = 1 everywhere is `bradleyTerryLoss` without margin;
 * the minimum over the scores is mean_b H(p_b), logged as rm/label_entropy so that the loss can be
 * read against it. Metrics: rm/accuracy (fraction with r_c > r_r, ties wrong), rm/chosen_score,
 * rm/rejected_score, rm/margin (mean r_c − r_r), rm/label_mean (mean p), rm/label_entropy,
 * rm/center_loss when the coefficient is set.
 */
export function softBradleyTerryLoss(
  inputs: SoftRewardModelInputs,
  params: RewardModelParams = {},
): LossOutput {
  const { chosenRewards, rejectedRewards, chosenProb } = inputs;
  checkRows('softBradleyTerryLoss', { chosenRewards, rejectedRewards, chosenProb });
  const c = centerCoefficient('Soft reward-model loss', params);
  return tf.tidy(() => {
    const d = tf.sub(chosenRewards, rejectedRewards); // (B,) r_c − r_r
    const p = chosenProb; // (B,)
    const q = tf.sub(1, p); // (B,) 1 − p
    // −p log σ(d) − (1 − p) log σ(−d) = p·softplus(−d) + (1 − p)·softplus(d)
    const perPair = tf.add(tf.mul(p, tf.softplus(tf.neg(d))), tf.mul(q, tf.softplus(d))); // (B,)
    // H(p) = −p log p − (1 − p) log(1 − p), with 0 log 0 = 0.
    const xlogx = (x: tf.Tensor) =>
      tf.where(tf.greater(x, 0), tf.mul(x, tf.log(tf.maximum(x, 1e-30))), tf.zerosLike(x));
    const metrics = {
      ...scoreMetrics(chosenRewards, rejectedRewards, d),
      'rm/label_mean': mean(p),
      'rm/label_entropy': mean(tf.neg(tf.add(xlogx(p), xlogx(q)))),
    };
    const loss = withCenterTerm(mean(perPair), metrics, chosenRewards, rejectedRewards, c);
    return { loss, metrics };
  });
}
