import { TroupeError } from '../../errors.js';
import { logSoftmaxPick, logSoftmaxPickGrad } from '../custom/native-rows.js';
import * as tf from '../tf.js';

/**
 * log π(label) = logit[label] − logsumexp(logits), per position, without materialising the
 * full log-softmax: the picked logit is gathered and logsumexp is subtracted.
 *
 *   logits: [B, T, V] float32   (any leading shape; [B, T] below stands for it)
 *   labels: [B, T]    int32 in [0, V) (checked by the native kernel, which throws a RangeError
 *                     naming the row; tfjs' cpu gather throws too, webgpu returns garbage)
 *   →       [B, T]    float32 log-probabilities (≤ 0)
 *
 * Backward (custom): dlogits = dy[..., None] · (onehot(labels) − softmax(logits)).
 */
export function logProbsFromLogits(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor {
  checkArgs(logits, labels);
  const lead = logits.shape.slice(0, -1); // [B, T]
  const V = logits.shape[logits.rank - 1];
  const N = lead.reduce((a, b) => a * b, 1);
  const f = tf.customGrad((...args) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const x2 = tf.reshape(x, [N, V]); // (N, V)
    const y = tf.reshape(labels, [N]); // (N,)
    const [lp, lse] = logSoftmaxPick(x2, y); // (N,), (N,): one native pass where available
    save([x2, lse, y]);
    return {
      value: tf.reshape(lp, lead), // (B, T)
      gradFunc: (dy: tf.Tensor, [xs, lses, ys]: tf.Tensor[]) =>
        tf.reshape(logSoftmaxPickGrad(xs, lses, ys, tf.reshape(dy, [N])), logits.shape),
    };
  });
  return f(logits);
}

function checkArgs(logits: tf.Tensor, labels: tf.Tensor): void {
  const ls = `[${logits.shape.join(',')}]`;
  if (logits.dtype !== 'float32' || logits.rank < 2) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'logits' passed to 'logProbsFromLogits' must be float32 of shape [B,T,V]; ` +
        `got ${logits.dtype} ${ls}`,
    );
  }
  const lead = logits.shape.slice(0, -1);
  const sameLead = labels.rank === lead.length && labels.shape.every((d, i) => d === lead[i]);
  if (labels.dtype !== 'int32' || !sameLead) {
    throw new TroupeError(
      labels.dtype !== 'int32' ? 'BAD_ARGUMENT' : 'SHAPE_MISMATCH',
      `Argument 'labels' passed to 'logProbsFromLogits' must be int32 of shape [B,T] matching ` +
        `logits [B,T,V]=${ls}, i.e. [${lead.join(',')}]; got ${labels.dtype} ` +
        `[${labels.shape.join(',')}]`,
      { details: { logits: logits.shape, labels: labels.shape, dtype: labels.dtype } },
    );
  }
  if (logits.size >= 2 ** 31) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'logits' passed to 'logProbsFromLogits' has ${logits.size} elements; the flat ` +
        `int32 gather index (row·V + label) needs fewer than 2^31. Split the batch.`,
    );
  }
}
