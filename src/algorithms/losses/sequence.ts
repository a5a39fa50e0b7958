import { TroupeError } from '../../errors.js';
import { logProbsFromLogits, maskedSum } from '../../kernels/numerics/index.js';
import * as tf from '../../kernels/tf.js';
import { perToken } from './common.js';

/** Per-sequence log-probs of a batch, the inputs the preference losses take. */
export interface SequenceLogps {
  /** (B,) Σ_t m_t·log π(labels_t): log π(y|x) over the selected tokens. */
  readonly sum: tf.Tensor1D;
  /** (B,) sum / count: the per-token mean; 0 for a row with no selected token. */
  readonly mean: tf.Tensor1D;
  /** (B,) float32 Σ_t m_t: how many tokens were counted (the |y| of ipo, simpo and orpo). */
  readonly count: tf.Tensor1D;
}

/**
 * Per-sequence log-probs from a causal LM's logits, after TRL `get_batch_logps`.
 *
 *   logits:   (B, T, V) float32, ALREADY SHIFTED: logits[b, t] is the model's distribution for
 *             labels[b, t]. For a sequence of ids [B, L] and model logits [B, L, V], pass
 *             logits[:, :L−1] and labels ids[:, 1:] (position t predicts token t + 1; TRL does
 *             `logits[:, :-1]`, `labels[:, 1:]` inside).
 *   labels:   (B, T) int32 in [0, V), also at masked positions (where TRL has −100, put any
 *             valid id such as 0, as TRL does before its gather).
 *   lossMask: (B, T) float32/int32/bool, 1 on the tokens to count (the response tokens),
 *             0 on prompt and padding; aligned with `labels`.
 *   → { sum, mean, count }: (B,) each, owned by the caller.
 *
 * Gradients flow to `logits` through `sum` and `mean` (logProbsFromLogits' fused backward).
 */
export function sequenceLogps(
  logits: tf.Tensor,
  labels: tf.Tensor,
  lossMask: tf.Tensor,
): SequenceLogps {
  const sameShape =
    labels.rank === 2 &&
    lossMask.rank === 2 &&
    labels.shape[0] === lossMask.shape[0] &&
    labels.shape[1] === lossMask.shape[1];
  if (logits.rank !== 3 || !sameShape) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `Arguments passed to 'sequenceLogps' must be logits [B,T,V], labels [B,T] and lossMask ` +
        `[B,T]; got logits [${logits.shape.join(',')}], labels [${labels.shape.join(',')}], ` +
        `lossMask [${lossMask.shape.join(',')}]`,
      { details: { logits: logits.shape, labels: labels.shape, lossMask: lossMask.shape } },
    );
  }
  return tf.tidy(() => {
    const lp = logProbsFromLogits(logits, labels); // (B, T) log π(labels_t)
    const m = lossMask.dtype === 'float32' ? lossMask : tf.cast(lossMask, 'float32'); // (B, T)
    const sum = maskedSum(lp, m, 1) as tf.Tensor1D; // (B,)
    const count = tf.sum(m, 1) as tf.Tensor1D; // (B,)
    return { sum, mean: perToken(sum, count) as tf.Tensor1D, count };
  });
}

/**
 * Split a batch laid out as [chosen rows; rejected rows] (TRL's `concatenated_forward`: rows
 * 0..B−1 chosen, B..2B−1 rejected, one forward pass for both) into its halves.
 *   x: (2B, ...) → [x[:B], x[B:]], each (B, ...), owned by the caller
 */
export function splitChosenRejected<T extends tf.Tensor>(x: T): [T, T] {
  const rows = x.rank > 0 ? x.shape[0] : 0;
  if (rows === 0 || rows % 2 !== 0) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `Argument 'x' passed to 'splitChosenRejected' must have an even, non-zero first dimension ` +
        `2B (chosen rows then rejected rows); got [${x.shape.join(',')}]`,
      { details: { shape: x.shape } },
    );
  }
  const [chosen, rejected] = tf.split(x, 2, 0);
  return [chosen as T, rejected as T];
}
