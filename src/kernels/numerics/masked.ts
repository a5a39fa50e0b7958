import { TroupeError } from '../../errors.js';
import * as tf from '../tf.js';

/*
 * Masked reductions over per-token values, after verl `verl/utils/torch_functional.py`
 * (masked_sum, masked_mean, masked_var, masked_whiten) and OpenRLHF
 * `openrlhf/models/utils.py` (masked_mean).
 *
 * `mask` is float 0/1 (int32 and bool are cast), of x's shape or broadcastable to it over
 * leading dims ([T] for x [B, T]). Masked-out entries of x must be finite: they are multiplied
 * by 0, as in verl, and NaN · 0 = NaN.
 */

/**
 * Σ x·m over `axis` (all axes when unset).
 *   x: [B, T], mask: [B, T] → [] (or x's shape without `axis`)
 */
export function maskedSum(x: tf.Tensor, mask: tf.Tensor, axis?: number | number[]): tf.Tensor {
  return tf.tidy(() => tf.sum(tf.mul(x, expandMask(x, mask, 'maskedSum')), axis));
}

/**
 * Σ x·m / Σ m over `axis` (all axes when unset). Where Σ m = 0 (an all-masked row) the result
 * is 0, not NaN (verl and OpenRLHF divide by 0 there), and its gradient is 0.
 *   x: [B, T], mask: [B, T] → [] (or x's shape without `axis`)
 */
export function maskedMean(x: tf.Tensor, mask: tf.Tensor, axis?: number | number[]): tf.Tensor {
  return tf.tidy(() => {
    const m = expandMask(x, mask, 'maskedMean');
    return tf.div(tf.sum(tf.mul(x, m), axis), nonZero(tf.sum(m, axis)));
  });
}

/**
 * Variance of the unmasked entries, over all axes: mean_m((x − mean_m(x))²), times the Bessel
 * correction n/(n − 1) with n = Σ m when `unbiased` (verl masked_var).
 *   x: [B, T], mask: [B, T] → []
 * verl raises when n ≤ 1; checking n here would need a blocking read, so instead the correction
 * is skipped when n ≤ 1 (the biased variance is returned: 0 for n = 1) and n = 0 gives 0.
 */
export function maskedVar(x: tf.Tensor, mask: tf.Tensor, unbiased = true): tf.Tensor {
  return tf.tidy(() => moments(x, expandMask(x, mask, 'maskedVar'), unbiased).variance);
}

/**
 * (x − mean) · rsqrt(var + 1e-8), with the masked mean and unbiased masked variance over all
 * axes; `shiftMean = false` adds the mean back (verl masked_whiten, used to normalise
 * advantages). Masked-out entries are transformed too, as in verl.
 *   x: [B, T], mask: [B, T] → [B, T]
 */
export function maskedWhiten(x: tf.Tensor, mask: tf.Tensor, shiftMean = true): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = moments(x, expandMask(x, mask, 'maskedWhiten'), true); // (), ()
    const whitened = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-8)));
    return shiftMean ? whitened : tf.add(whitened, mean);
  });
}

/**
 * Masked mean and variance over all axes, m of x's shape: mean = Σ x·m / n and
 * var = Σ (x − mean)²·m / n, times n/(n − 1) where n = Σ m > 1 when `unbiased`.
 */
function moments(x: tf.Tensor, m: tf.Tensor, unbiased: boolean) {
  const n = tf.sum(m); // ()
  const safeN = nonZero(n);
  const mean = tf.div(tf.sum(tf.mul(x, m)), safeN); // ()
  const biased = tf.div(tf.sum(tf.mul(tf.square(tf.sub(x, mean)), m)), safeN); // ()
  if (!unbiased) return { mean, variance: biased };
  const many = tf.greater(n, 1);
  const one = tf.onesLike(n);
  const bessel = tf.where(many, tf.div(n, tf.where(many, tf.sub(n, 1), one)), one); // n/(n − 1)
  return { mean, variance: tf.mul(biased, bessel) };
}

/** `d` with zeros replaced by ones, so that 0/d is 0 (value and gradient) instead of NaN. */
function nonZero(d: tf.Tensor): tf.Tensor {
  return tf.where(tf.equal(d, 0), tf.onesLike(d), d);
}

/** The mask as float32 of x's shape, or a TroupeError naming `op`. */
function expandMask(x: tf.Tensor, mask: tf.Tensor, op: string): tf.Tensor {
  const xs = x.shape;
  const ms = mask.shape;
  const off = xs.length - ms.length;
  const fits = off >= 0 && ms.every((d, i) => d === xs[off + i] || d === 1);
  if (x.dtype !== 'float32' || !fits) {
    throw new TroupeError(
      x.dtype !== 'float32' ? 'BAD_ARGUMENT' : 'SHAPE_MISMATCH',
      `Arguments 'x' and 'mask' passed to '${op}' must be float32 x and a mask of x's shape or ` +
        `broadcastable to it over leading dims; got x ${x.dtype} [${xs.join(',')}], ` +
        `mask ${mask.dtype} [${ms.join(',')}]`,
      { details: { x: xs, mask: ms } },
    );
  }
  const m = mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32');
  return off === 0 && ms.every((d, i) => d === xs[i]) ? m : tf.broadcastTo(m, xs);
}
