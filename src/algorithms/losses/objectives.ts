import { lookup, TroupeError } from '../../errors.js';
import { type KlEstimatorName, klEstimate } from '../../kernels/numerics/index.js';
import * as tf from '../../kernels/tf.js';
import type { LossOutput } from './common.js';
import type { PreferenceParams } from './inputs.js';
import { type AggMode, aggLoss, entropyBonus, type PolicyLossName, policyLoss } from './ppo.js';
import { preferenceLossEntry } from './preference.js';
import { REWARD_MODEL_LOSSES } from './reward-model.js';

/*
 * What each learner role minimises, composed from the registered losses: pure and synchronous
 * over the tensors the role computed from its model (for use under tf.variableGrads). A role
 * decodes its batch, runs its model and calls one of these; nothing here knows of threads.
 */

/**
 * The RL policy's loss: a registered policy loss (POLICY_LOSSES; `vanilla` is PPO's clipped
 * surrogate), plus a KL term (GRPO) and an entropy bonus.
 */
export interface PolicyLossConfig {
  /** The POLICY_LOSSES entry (`rl.policyLoss`; default `vanilla`); unknown: UNKNOWN_NAME. */
  readonly name?: string;
  readonly clipLow: number;
  readonly clipHigh: number;
  readonly dualClip?: number;
  readonly aggMode: AggMode;
  /** Entropy bonus coefficient (0: none; the entropy is still measured). */
  readonly entropyCoef: number;
  /** A KL(π‖π_ref) loss term, as GRPO: coef · aggLoss(KL estimate). */
  readonly klLoss?: { readonly coef: number; readonly estimator: KlEstimatorName };
}

export interface PolicyObjectiveInputs {
  /** (B, A) log π_θ(a|s) at the sampling temperature (differentiated). */
  readonly logp: tf.Tensor;
  /** (B, A) log π_old(a|s). */
  readonly oldLogp: tf.Tensor;
  /** (B, A) Â_t. */
  readonly advantages: tf.Tensor;
  /** (B, A) float32 action mask. */
  readonly mask: tf.Tensor;
  /** (B, A) H(π_θ(·|s_t)), given when `entropyCoef` > 0. */
  readonly entropy?: tf.Tensor;
  /** (B, A) log π_ref(a|s), given when `klLoss` is set. */
  readonly refLogp?: tf.Tensor;
}

/**
 * L = L_pg − c_H · aggLoss(H) + β · aggLoss(KL(π‖π_ref)), each term only when configured; L_pg
 * is the policy loss `c.name` looks up in POLICY_LOSSES (`vanilla`: PPO's clipped surrogate,
 * ppoPolicyLoss), the KL term GRPO's (arXiv 2402.03300 eq. 3: the KL as a loss term, k3 with the
 * ratio clamped at 10 as verl). Metrics: the policy loss's, actor/entropy, actor/kl_loss.
 */
export function policyObjective(inputs: PolicyObjectiveInputs, c: PolicyLossConfig): LossOutput {
  const { logp, mask, entropy } = inputs;
  const pg = policyLoss(
    (c.name ?? 'vanilla') as PolicyLossName,
    { logp, oldLogp: inputs.oldLogp, advantages: inputs.advantages, mask },
    { clipLow: c.clipLow, clipHigh: c.clipHigh, dualClip: c.dualClip, aggMode: c.aggMode },
  );
  let loss: tf.Scalar = pg.loss;
  const metrics: Record<string, tf.Scalar> = { ...pg.metrics };
  if (entropy) {
    const eb = entropyBonus({ entropy, mask }, { coef: c.entropyCoef, aggMode: c.aggMode });
    metrics['actor/entropy'] = eb.metrics['actor/entropy'];
    loss = tf.add(loss, eb.loss) as tf.Scalar;
  }
  if (c.klLoss) {
    const kl = klEstimate(c.klLoss.estimator, logp, inputs.refLogp!, { clamp: 10 });
    const term = aggLoss(kl, mask, c.aggMode);
    metrics['actor/kl_loss'] = term;
    loss = tf.add(loss, tf.mul(term, c.klLoss.coef)) as tf.Scalar;
  }
  return { loss, metrics };
}

/** Rows [0, B) and [B, 2B) of a (2B,) tensor: chosen and rejected (KTO: examples and KL rows). */
function halves(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const B = (x.shape[0] as number) / 2;
  return [tf.slice(x, [0], [B]), tf.slice(x, [B], [B])];
}

export interface PairObjectiveInputs {
  /**
   * (2B,) Σ log π_θ over each row's reply: the B chosen rows then the B rejected ones (KTO: the
   * B examples then their B mismatched KL rows). Differentiated.
   */
  readonly sum: tf.Tensor;
  /** (2B,) float32 reply tokens counted in each row. */
  readonly count: tf.Tensor;
  /** (B,) each: Σ log π_ref of the first and second half's rows, for losses that read them. */
  readonly refChosen?: tf.Tensor;
  readonly refRejected?: tf.Tensor;
  /** (B,) float32, KTO: 1 where the example is desirable. */
  readonly desirable?: tf.Tensor;
}

/**
 * A DPO-family loss from per-row reply log-probs: the registered loss `name` on their halves,
 * laid out as its entry says (paired: chosen and rejected, with the reply lengths if it reads
 * them; unpaired: the examples and their mismatched KL rows) and with the reference log-probs
 * if it reads them. An unknown `name` is UNKNOWN_NAME listing the registered ones.
 */
export function preferenceObjective(
  name: string,
  inputs: PairObjectiveInputs,
  params: PreferenceParams,
): LossOutput {
  const loss = preferenceLossEntry(name);
  const [first, second] = halves(inputs.sum);
  if (loss.layout === 'unpaired') {
    if (!inputs.desirable || !inputs.refChosen) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Preference loss '${name}' (unpaired) needs each example's desirable label and the reference log-probs of its rows`,
        { details: { loss: name } },
      );
    }
    return loss(
      {
        policyLogps: first,
        policyKlLogps: second,
        refLogps: inputs.refChosen!,
        refKlLogps: inputs.refRejected!,
        desirable: inputs.desirable!,
      },
      params,
    );
  }
  const [chosenLengths, rejectedLengths] = halves(inputs.count);
  return loss(
    {
      policyChosenLogps: first,
      policyRejectedLogps: second,
      ...(loss.needsReference
        ? { refChosenLogps: inputs.refChosen!, refRejectedLogps: inputs.refRejected! }
        : {}),
      ...(loss.lengths ? { chosenLengths, rejectedLengths } : {}),
    },
    params,
  );
}

/**
 * A reward-model loss (`REWARD_MODEL_LOSSES`, default bradley-terry) on a reward model's scores
 * of 2B rows (chosen, then rejected): margin m for bradley-terry, soft labels p (B,) for
 * soft-bradley-terry.
 */
export function rewardModelObjective(
  scores: tf.Tensor,
  p: {
    readonly loss?: string;
    readonly margin?: number;
    readonly centerRewardsCoefficient?: number;
  },
  chosenProb?: Float32Array,
): LossOutput {
  const [chosenRewards, rejectedRewards] = halves(scores);
  const margin = p.margin ? tf.fill([chosenRewards.shape[0] as number], p.margin) : undefined;
  const loss = lookup(REWARD_MODEL_LOSSES, p.loss ?? 'bradley-terry', 'reward-model loss');
  return loss(
    {
      chosenRewards,
      rejectedRewards,
      margin,
      chosenProb: chosenProb ? tf.tensor1d(chosenProb, 'float32') : undefined,
    },
    { centerRewardsCoefficient: p.centerRewardsCoefficient },
  );
}
