import * as tf from '../../kernels/tf.js';

/**
 * What every loss here returns. `loss` is the scalar to differentiate; `metrics` are scalars
 * for logging (batch means unless the key says otherwise) under namespaced keys
 * (`rewards/chosen`, `rm/accuracy`, …), as in verl and TRL; only `loss` is meant to be
 * differentiated. The caller owns and disposes all of them. Under `tf.variableGrads`, which
 * disposes every tensor its function made except the returned loss, `tf.keep` the metrics to
 * read them afterwards.
 *
 * A type alias rather than an interface so that `tf.tidy` accepts it as a TensorContainer.
 */
export type LossOutput = {
  loss: tf.Scalar;
  metrics: Record<string, tf.Scalar>;
};

/**
 * Identity forward, zero gradient: torch's `.detach()`, which tfjs does not have.
 *   x: any shape → same shape
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad((...args) => {
    const [t] = args as [tf.Tensor, tf.GradSaveFunc];
    return { value: tf.clone(t), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
  });
  return f(x) as T;
}

/** Mean over all elements as a scalar. */
export function mean(x: tf.Tensor): tf.Scalar {
  return tf.mean(x) as tf.Scalar;
}

/** a / n with n = 0 replaced by 1, so an empty response averages to 0 (value and gradient). */
export function perToken(sum: tf.Tensor, count: tf.Tensor): tf.Tensor {
  const n = count.dtype === 'float32' ? count : tf.cast(count, 'float32');
  return tf.div(sum, tf.where(tf.equal(n, 0), tf.onesLike(n), n));
}

/**
 * The reward metrics TRL's DPO/CPO/ORPO trainers log, from per-pair implicit rewards and the
 * log-probs the loss used (sums, or per-token means for the length-normalised losses).
 *   chosenRewards, rejectedRewards, chosenLogps, rejectedLogps: (B,) → scalars
 * `rewards/accuracies` is the fraction of pairs with chosen > rejected (ties count as wrong).
 */
export function pairedMetrics(
  chosenRewards: tf.Tensor,
  rejectedRewards: tf.Tensor,
  chosenLogps: tf.Tensor,
  rejectedLogps: tf.Tensor,
): Record<string, tf.Scalar> {
  return {
    'rewards/chosen': mean(chosenRewards),
    'rewards/rejected': mean(rejectedRewards),
    'rewards/accuracies': mean(tf.cast(tf.greater(chosenRewards, rejectedRewards), 'float32')),
    'rewards/margins': mean(tf.sub(chosenRewards, rejectedRewards)),
    'logps/chosen': mean(chosenLogps),
    'logps/rejected': mean(rejectedLogps),
  };
}

/**
 * −(1 − ε)·log σ(z) − ε·log σ(−z), elementwise: the conservative (label-smoothed) logistic loss
 * of cDPO (Mitchell 2023, https://ericmitchell.ai/cdpo.pdf, eq. 3); ε = 0 is plain −log σ(z).
 * log σ is tfjs' stable −softplus(−z).
 */
export function smoothedLogisticLoss(z: tf.Tensor, labelSmoothing: number): tf.Tensor {
  const hard = tf.softplus(tf.neg(z)); // −log σ(z)
  if (labelSmoothing === 0) return hard;
  const flipped = tf.softplus(z); // −log σ(−z)
  return tf.add(tf.mul(hard, 1 - labelSmoothing), tf.mul(flipped, labelSmoothing));
}

/**
 * log σ(z) = −softplus(−z), elementwise. Not `tf.logSigmoid`: its custom gradient reads its
 * input from a closure without saving it, so inside a `tf.tidy` under `tf.grads` the backward
 * pass finds that input disposed. Softplus's registered gradient saves what it needs.
 */
export function logSigmoid(z: tf.Tensor): tf.Tensor {
  return tf.neg(tf.softplus(tf.neg(z)));
}
