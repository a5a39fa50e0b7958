import { entropyFromLogits } from '../../kernels/numerics/index.js';
import * as tf from '../../kernels/tf.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';
import type { RolloutLayout } from '../../rollout/assemble.js';
import type { PairBatch } from './preference-learner.js';

/*
 * The model-side log-probabilities the roles share: of a rollout's actions (policy, reference)
 * and of a preference batch's replies (preference learner, reference).
 */

/**
 * log π(a_t|s_t) of every action of a rollout at sampling temperature τ (logits/τ, as verl), and
 * optionally the entropy of π(·|s_t). The hidden state at position P − 1 + t predicts action t.
 *   → logp: (B, A), entropy: (B, A)
 */
export function actionLogProbs(
  model: CausalLM,
  r: RolloutLayout,
  o: { temperature: number; checkpoint?: boolean; entropy?: boolean },
): { logp: tf.Tensor; entropy?: tf.Tensor } {
  const { batch: B, length: L, actions: A } = r.shape;
  const P = r.promptLength;
  const d = model.config.hidden;
  const targets = new Int32Array(B * A);
  for (let b = 0; b < B; b++) targets.set(r.sequences.subarray(b * L + P, (b + 1) * L), b * A);
  const hidden = model.forward(
    { ids: r.sequences, mask: r.attentionMask, batch: B, length: L },
    { checkpoint: o.checkpoint },
  );
  const h = tf.reshape(tf.slice(hidden, [0, P - 1, 0], [B, A, d]), [B * A, d]);
  // log-softmax(z/τ) of the action tokens, z the (soft-capped) logits
  const logp = tf.reshape(model.tokenLogProbs(h, tf.tensor1d(targets, 'int32'), o.temperature), [
    B,
    A,
  ]);
  if (!o.entropy) return { logp };
  const logits = tf.div(model.headLogits(h), o.temperature);
  return { logp, entropy: tf.reshape(entropyFromLogits(logits), [B, A]) };
}

/** Σ and count of log π over each row's reply tokens.  → sum [2B], count [2B] */
export function replyLogps(
  model: CausalLM,
  b: PairBatch,
  checkpoint: boolean,
): { sum: tf.Tensor; count: tf.Tensor } {
  const { batch: R, length: T } = b;
  const d = model.config.hidden;
  const hidden = model.forward(b, { checkpoint });
  const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [R, T - 1, d]), [R * (T - 1), d]);
  const ids = tf.tensor2d(b.ids, [R, T], 'int32');
  const targets = tf.reshape(tf.slice(ids, [0, 1], [R, T - 1]), [R * (T - 1)]);
  const lp = tf.reshape(model.tokenLogProbs(h, targets), [R, T - 1]); // position t predicts t+1
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
