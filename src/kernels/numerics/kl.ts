import { lookup, TroupeError } from '../../errors.js';
import * as tf from '../tf.js';

/*
 * Per-token KL(π ‖ π_ref) estimators from samples a ~ π, after J. Schulman, "Approximating KL
 * Divergence" (2020, http://joschu.net/blog/kl-approx.html), as in OpenRLHF
 * `openrlhf/models/utils.py` (compute_approx_kl) and verl `core_algos.py` (kl_penalty).
 * With logp = log π(a), logq = log π_ref(a), and r = π_ref(a)/π(a):
 */

export type KlEstimatorName = 'k1' | 'k2' | 'k3';
/** logp, logq: [B, T] (same shape) → [B, T] per-token estimate. */
export type KlEstimator = (logp: tf.Tensor, logq: tf.Tensor) => tf.Tensor;

/** k1 = −log r = logp − logq: unbiased, high variance, can be negative. */
function k1(logp: tf.Tensor, logq: tf.Tensor): tf.Tensor {
  return tf.sub(logp, logq);
}

/** k2 = ½ (log r)²: biased, low variance, ≥ 0. */
function k2(logp: tf.Tensor, logq: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.square(tf.sub(logp, logq)), 0.5));
}

/** Below this |log r| k3 is taken from its series (see k3). */
const K3_SERIES = 0.1;

/**
 * k3 = (r − 1) − log r = exp(logq − logp) − (logq − logp) − 1: unbiased, low variance, ≥ 0
 * (verl 'low_var_kl'). Written expm1(d) − d so that d ≈ 0 does not cancel to float32 noise; for
 * |d| < 0.1 as its series d²·(1/2 + d/6 + d²/24 + d³/120 + d⁴/720) (truncation ≈ d⁷/5040),
 * because WebGPU's expm1 is exp(d) − 1, which made k3 at d = −1e-4 −6e-8 instead of 5e-9.
 */
function k3(logp: tf.Tensor, logq: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = tf.sub(logq, logp); // log r
    const t = tf.clipByValue(d, -K3_SERIES, K3_SERIES);
    let series: tf.Tensor = tf.mul(t, 1 / 720); // Horner: 1/2 + t·(1/6 + t·(1/24 + t·(…)))
    for (const c of [1 / 120, 1 / 24, 1 / 6]) series = tf.mul(t, tf.add(c, series));
    series = tf.mul(tf.square(t), tf.add(0.5, series));
    return tf.where(tf.less(tf.abs(d), K3_SERIES), series, tf.sub(tf.expm1(d), d));
  });
}

export const KL_ESTIMATORS: ReadonlyMap<KlEstimatorName, KlEstimator> = new Map([
  ['k1', k1],
  ['k2', k2],
  ['k3', k3],
]);

export interface KlOptions {
  /** Clamp the estimate to [−clamp, clamp] (verl clamps k3 to [−10, 10]); gradient 0 outside. */
  readonly clamp?: number;
}

/**
 * The `name` estimate of KL(π ‖ π_ref) per token.
 *   logp: [B, T] log π(a), logq: [B, T] log π_ref(a), a ~ π  →  [B, T]
 */
export function klEstimate(
  name: KlEstimatorName,
  logp: tf.Tensor,
  logq: tf.Tensor,
  { clamp }: KlOptions = {},
): tf.Tensor {
  const estimator = lookup(KL_ESTIMATORS as ReadonlyMap<string, KlEstimator>, name, 'KL estimator');
  if (!logp.shape.every((d, i) => d === logq.shape[i]) || logp.rank !== logq.rank) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `Arguments 'logp' and 'logq' passed to 'klEstimate' must have the same shape; got ` +
        `[${logp.shape.join(',')}] and [${logq.shape.join(',')}]`,
      { details: { logp: logp.shape, logq: logq.shape } },
    );
  }
  if (clamp !== undefined && !(clamp > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Option 'clamp' passed to 'klEstimate' must be a positive number; got ${clamp}`,
    );
  }
  if (clamp === undefined) return estimator(logp, logq);
  return tf.tidy(() => tf.clipByValue(estimator(logp, logq), -clamp, clamp));
}
