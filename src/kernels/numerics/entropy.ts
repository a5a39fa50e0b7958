import { TroupeError } from '../../errors.js';
import * as tf from '../tf.js';

/**
 * Entropy of softmax(logits) per position: H = logsumexp(z) − Σ_v softmax(z)_v · z_v, computed
 * on z = logits − max (shift-invariant) so that logits of magnitude 1e4 do not cancel
 * catastrophically. Logits must be finite (a −inf logit gives 0·−inf = NaN).
 *
 *   logits: [B, T, V] float32 (any leading shape)  →  [B, T] entropy in nats, in [0, log V]
 *
 * Backward (custom): dlogits = dy[..., None] · −p ⊙ (log p + H).
 */
export function entropyFromLogits(logits: tf.Tensor): tf.Tensor {
  if (logits.dtype !== 'float32' || logits.rank < 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'logits' passed to 'entropyFromLogits' must be float32 of shape [B,T,V]; ` +
        `got ${logits.dtype} [${logits.shape.join(',')}]`,
    );
  }
  const lead = logits.shape.slice(0, -1); // [B, T]
  const V = logits.shape[logits.rank - 1];
  const N = lead.reduce((a, b) => a * b, 1);
  const f = tf.customGrad((...args) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const x2 = tf.reshape(x, [N, V]); // (N, V)
    const m = tf.max(x2, 1, true); // (N, 1)
    const z = tf.sub(x2, m); // (N, V) ≤ 0
    const e = tf.exp(z); // (N, V)
    const s = tf.sum(e, 1, true); // (N, 1)
    const logS = tf.log(s); // (N, 1)
    const h = tf.sub(logS, tf.sum(tf.mul(tf.div(e, s), z), 1, true)); // (N, 1)
    save([x2, tf.add(m, logS), h]);
    return {
      value: tf.reshape(h, lead), // (B, T)
      gradFunc: (dy: tf.Tensor, [xs, lse, hs]: tf.Tensor[]) => {
        const logp = tf.sub(xs, lse); // (N, V)
        const g = tf.mul(tf.exp(logp), tf.add(logp, hs)); // (N, V) p ⊙ (log p + H)
        return tf.reshape(tf.mul(tf.neg(tf.reshape(dy, [N, 1])), g), logits.shape);
      },
    };
  });
  return f(logits);
}
