import * as tf from '../../kernels/tf.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';
import { targetLogProbs } from '../../policy/target-logprobs.js';
import type { RolloutLayout } from '../../rollout/assemble.js';
import type { PairBatch } from './preference-learner.js';

/*
 * The model-side log-probabilities the roles share: of a rollout's actions (policy, reference)
 * and of a preference batch's replies (preference learner, reference).
 */

/**
 * log π(a_t|s_t) of every action of a rollout at sampling temperature τ (logits/τ, as verl), and
 * optionally the entropy of π(·|s_t). The hidden state at position P − 1 + t predicts action t.
 * With `sharePrefix` (the scoring passes: reference, π_old; the update where its forward is
 * deterministic) GRPO's n samples of a prompt run its tokens once.
 *   → logp: (B, A), entropy: (B, A)
 */
export function actionLogProbs(
  model: CausalLM,
  r: RolloutLayout,
  o: {
    temperature: number;
    checkpoint?: boolean;
    entropy?: boolean | 'metric';
    /** Run each distinct prompt once (targetLogProbs' `sharePrefix`). */
    sharePrefix?: boolean;
  },
): { logp: tf.Tensor; entropy?: tf.Tensor } {
  const { batch, length } = r.shape;
  return targetLogProbs(
    model,
    { ids: r.sequences, mask: r.attentionMask, batch, length },
    {
      start: r.promptLength,
      temperature: o.temperature,
      entropy: o.entropy,
      sharePrefix: o.sharePrefix,
    },
    { checkpoint: o.checkpoint },
  );
}

/** Σ and count of log π over each row's reply tokens.  → sum [2B], count [2B] */
export function replyLogps(
  model: CausalLM,
  b: PairBatch,
  checkpoint: boolean,
): { sum: tf.Tensor; count: tf.Tensor } {
  const { batch: R, length: T } = b;
  const { logp: lp } = targetLogProbs(model, b, {}, { checkpoint }); // position t predicts t+1
  const mask = tf.slice(tf.tensor2d(b.lossMask, [R, T], 'float32'), [0, 1], [R, T - 1]);
  return { sum: tf.sum(tf.mul(lp, mask), 1), count: tf.sum(mask, 1) };
}

/** A tensor's values, the tensor disposed. */
export async function read(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}
