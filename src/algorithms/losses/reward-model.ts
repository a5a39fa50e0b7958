import { TroupeError } from '../../errors.js';
import * as tf from '../../kernels/tf.js';
import { type LossOutput, mean } from './common.js';
import { checkRows } from './inputs.js';
import {
  centerCoefficient,
  type RewardModelParams,
  scoreMetrics,
  withCenterTerm,
} from './reward-model-terms.js';
import { type SoftRewardModelInputs, softBradleyTerryLoss } from './soft-reward-model.js';

export type { RewardModelParams };

export interface RewardModelInputs {
  /** (B,) float32: r_θ(x_b, y_c), the scalar score of each chosen sequence. */
  readonly chosenRewards: tf.Tensor;
  /** (B,) float32: r_θ(x_b, y_r), the score of the rejected sequence of the same prompt. */
  readonly rejectedRewards: tf.Tensor;
  /**
   * (B,) float32, optional: per-pair margin m_b by which r_c should exceed r_r (Llama 2,
   * Touvron et al. 2023, §3.2.2; TRL's `margin` column).
   */
  readonly margin?: tf.Tensor;
}

/**
 * Bradley–Terry pairwise reward-model loss (Ouyang et al. 2022, "Training language models to
 * follow instructions with human feedback", eq. 1, one pair per prompt):
 *
 *   L = mean_b −log σ(r_c,b − r_r,b − m_b)  [+ c·mean_b (r_c,b + r_r,b)²]      ()
 *
 * After TRL `trl/trainer/reward_trainer.py` (`compute_loss`) and OpenRLHF
 * `openrlhf/models/loss.py` (`PairWiseLoss`).
 * Metrics: rm/accuracy (fraction of pairs with r_c > r_r; ties count as wrong; the margin is
 * not subtracted), rm/chosen_score, rm/rejected_score, rm/margin (mean r_c − r_r), and
 * rm/center_loss (the added term) when the coefficient is set.
 */
export function bradleyTerryLoss(
  inputs: RewardModelInputs,
  params: RewardModelParams = {},
): LossOutput {
  const { chosenRewards, rejectedRewards, margin } = inputs;
  checkRows('bradleyTerryLoss', { chosenRewards, rejectedRewards, margin });
  const c = centerCoefficient('Reward-model loss', params);
  return tf.tidy(() => {
    const diff = tf.sub(chosenRewards, rejectedRewards); // (B,) r_c − r_r
    const z = margin === undefined ? diff : tf.sub(diff, margin); // (B,)
    const metrics = scoreMetrics(chosenRewards, rejectedRewards, diff);
    const bt = mean(tf.softplus(tf.neg(z))); // −log σ(z), eq. 1
    const loss = withCenterTerm(bt, metrics, chosenRewards, rejectedRewards, c);
    return { loss, metrics };
  });
}

/** What a reward-model loss reads: the scores of each pair, and per-pair margins or soft labels. */
export interface RewardModelLossInputs {
  /** (B,) scores of the chosen and of the rejected sequences. */
  readonly chosenRewards: tf.Tensor;
  readonly rejectedRewards: tf.Tensor;
  /** (B,) margins m_b (bradley-terry only). */
  readonly margin?: tf.Tensor;
  /** (B,) soft labels p_b = P(chosen ≻ rejected) in [0, 1] (soft-bradley-terry). */
  readonly chosenProb?: tf.Tensor;
}

/** A registered reward-model loss: the function, and what the trainer needs to know of it. */
export interface RewardModelLoss {
  (inputs: RewardModelLossInputs, p: RewardModelParams): LossOutput;
  /** It reads soft labels (`chosenProb`, the pairs' `chosen_prob`) and takes no margin. */
  readonly softLabels: boolean;
  /** One line for the docs. */
  readonly summary: string;
}

const entry = (
  fn: (inputs: RewardModelLossInputs, p: RewardModelParams) => LossOutput,
  about: { readonly softLabels: boolean; readonly summary: string },
): RewardModelLoss => Object.assign(fn, about);

/**
 * The reward-model loss registry (`rm.loss`): a new loss is its file plus one line here; an
 * unknown name lists these.
 */
export const REWARD_MODEL_LOSSES: ReadonlyMap<string, RewardModelLoss> = new Map<
  string,
  RewardModelLoss
>([
  [
    'bradley-terry',
    entry((x, p) => bradleyTerryLoss(x, p), {
      softLabels: false,
      summary: 'Bradley–Terry −log σ(r_c − r_r − m) on hard labels (Ouyang et al. 2022)',
    }),
  ],
  [
    'soft-bradley-terry',
    entry((x, p) => softBradleyTerryLoss(softInputs(x), p), {
      softLabels: true,
      summary:
        "cross-entropy of σ(r_c − r_r) against each pair's P(chosen ≻ rejected) (Constitutional AI)",
    }),
  ],
]);

/** The soft loss's inputs: a missing label is a hard one (p = 1); a margin is refused. */
function softInputs(x: RewardModelLossInputs): SoftRewardModelInputs {
  if (x.margin !== undefined) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      "Reward-model loss 'soft-bradley-terry' takes soft labels, not margins: set rm.margin 0",
    );
  }
  const B = x.chosenRewards.shape[0] as number;
  return { ...x, chosenProb: x.chosenProb ?? tf.ones([B]) };
}
