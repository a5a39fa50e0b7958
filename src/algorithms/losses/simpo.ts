import * as tf from '../../kernels/tf.js';
import { type LossOutput, mean, pairedMetrics, perToken, smoothedLogisticLoss } from './common.js';
import {
  checkPairedInputs,
  checkParams,
  type PairedInputs,
  type PreferenceLossSpec,
  type PreferenceParams,
} from './inputs.js';

/** What `simpoLoss` reads: no reference, per-token means. */
export const SIMPO: PreferenceLossSpec = {
  layout: 'paired',
  needsReference: false,
  lengths: true,
  params: ['gamma', 'labelSmoothing', 'cpoAlpha'],
};

/**
 * SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free
 * Reward", eq. 6), reference-free, with TRL's optional label smoothing and CPO NLL term.
 *
 *   ā(y) = log π_θ(y)/|y|                                                   (B,)
 *   z_b  = β·(ā(y_c) − ā(y_r)) − γ                                           (B,)
 *   L    = mean_b [ −(1 − ε)·log σ(z_b) − ε·log σ(−z_b) ] + α·NLL(y_c)        ()
 *
 * TRL writes z as β·((ā_c − ā_r) − γ/β), the same number. NLL(y_c) is `chosenNll` when given,
 * else −Σ_b log π_θ(y_c) / Σ_b |y_c|, the token mean over the chosen responses (what TRL's
 * `cross_entropy_loss` on the chosen half computes); it is only read when α > 0.
 * Rewards are β·ā (TRL `cpo_loss`), logps metrics per-token means.
 * After TRL `trl/trainer/cpo_trainer.py` (`cpo_loss`, loss_type "simpo"; `get_batch_loss_metrics`).
 * Params: beta, gamma (default 0.5, TRL `simpo_gamma`), labelSmoothing, cpoAlpha (default 0).
 * Metrics: rewards/{chosen,rejected,accuracies,margins}, logps/{chosen,rejected}, and loss/nll
 * when α > 0.
 */
export function simpoLoss(inputs: PairedInputs, params: PreferenceParams): LossOutput {
  checkParams('simpo', params, SIMPO.params);
  const { beta, gamma = 0.5, labelSmoothing = 0, cpoAlpha = 0 } = params;
  checkPairedInputs('simpo', inputs, { ...SIMPO, nll: cpoAlpha > 0 });
  return tf.tidy(() => {
    const pc = perToken(inputs.policyChosenLogps, inputs.chosenLengths!); // (B,) ā(y_c)
    const pr = perToken(inputs.policyRejectedLogps, inputs.rejectedLengths!); // (B,) ā(y_r)
    const z = tf.sub(tf.mul(tf.sub(pc, pr), beta), gamma); // (B,) eq. 6
    let loss = mean(smoothedLogisticLoss(z, labelSmoothing));
    const metrics = pairedMetrics(tf.mul(pc, beta), tf.mul(pr, beta), pc, pr);
    if (cpoAlpha > 0) {
      const nll = chosenNll(inputs);
      loss = tf.add(loss, tf.mul(nll, cpoAlpha)) as tf.Scalar;
      metrics['loss/nll'] = nll;
    }
    return { loss, metrics };
  });
}

/**
 * The chosen responses' mean token NLL: `inputs.chosenNll` as a scalar, or
 * −Σ_b log π_θ(y_c) / Σ_b |y_c| (0 when no chosen token is counted).
 */
export function chosenNll(inputs: PairedInputs): tf.Scalar {
  if (inputs.chosenNll !== undefined) return tf.reshape(inputs.chosenNll, []) as tf.Scalar;
  const tokens = tf.sum(tf.cast(inputs.chosenLengths!, 'float32'));
  return tf.neg(perToken(tf.sum(inputs.policyChosenLogps), tokens)) as tf.Scalar;
}
