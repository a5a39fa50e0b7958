import { TroupeError } from '../../errors.js';
import * as tf from '../tf.js';

/**
 * Log-softmax along `axis` (default: the last), max-subtracted so that logits of any magnitude
 * stay finite: log softmax(x)_i = (x_i − m) − log Σ_j exp(x_j − m), with m = max_j x_j.
 *
 *   logits: [..., V, ...] float32  →  [..., V, ...] (same shape)
 *
 * Backward (custom, one expression): dx = dy − softmax(x) · Σ_axis dy, with softmax(x) recovered
 * as exp(output), so no second reduction over V is needed.
 */
export function logSoftmax(logits: tf.Tensor, axis = -1): tf.Tensor {
  const ax = checkAxis(logits, axis);
  const f = tf.customGrad((...args) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const z = tf.sub(x, tf.max(x, ax, true)); // (..., V, ...) x − m ≤ 0
    const out = tf.sub(z, tf.log(tf.sum(tf.exp(z), ax, true)));
    save([out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, [y]: tf.Tensor[]) =>
        tf.sub(dy, tf.mul(tf.exp(y), tf.sum(dy, ax, true))),
    };
  });
  return f(logits); // customGrad runs its forward in a tidy: only the output survives
}

/** The non-negative form of `axis` (negative axes break some tfjs reductions), or a TroupeError. */
function checkAxis(logits: tf.Tensor, axis: number): number {
  if (logits.dtype !== 'float32') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'logits' passed to 'logSoftmax' must be float32; got ${logits.dtype} ` +
        `[${logits.shape.join(',')}]`,
    );
  }
  const r = logits.rank;
  if (!Number.isInteger(axis) || axis < -r || axis >= r || r === 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Argument 'axis' passed to 'logSoftmax' must be an integer in [${-r}, ${r}) for logits ` +
        `of shape [${logits.shape.join(',')}]; got ${axis}`,
    );
  }
  return axis < 0 ? axis + r : axis;
}
