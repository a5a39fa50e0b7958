import * as tf from '../../kernels/tf.js';
import { type LossOutput, mean, pairedMetrics, perToken, smoothedLogisticLoss } from './common.js';
import {
  checkPairedInputs,
  checkParams,
  type PairedInputs,
  type PreferenceLossSpec,
  type PreferenceParams,
} from './inputs.js';

/** What `dpoSigmoidLoss` reads (its registry entry, and its checks). */
export const SIGMOID: PreferenceLossSpec = {
  layout: 'paired',
  needsReference: true,
  lengths: false,
  params: ['labelSmoothing'],
};

/** What `ipoLoss` reads: per-token means of policy and reference log-probs. */
export const IPO: PreferenceLossSpec = {
  layout: 'paired',
  needsReference: true,
  lengths: true,
  params: [],
};

/**
 * DPO (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7), with the conservative
 * cDPO label smoothing ε of Mitchell (2023, eq. 3) as TRL writes it.
 *
 *   h_b = (log π_θ(y_c) − log π_ref(y_c)) − (log π_θ(y_r) − log π_ref(y_r))     (B,)
 *   L   = mean_b [ −(1 − ε)·log σ(β·h_b) − ε·log σ(−β·h_b) ]                     ()
 *
 * Inputs are summed log-probs with references; no lengths. Rewards β·(log π_θ − log π_ref).
 * After TRL `trl/trainer/dpo_trainer.py` (`dpo_loss`, loss_type "sigmoid") and OpenRLHF
 * `openrlhf/models/loss.py` (`DPOLoss`, ipo=False).
 * Params: beta, labelSmoothing. Metrics: rewards/{chosen,rejected,accuracies,margins},
 * logps/{chosen,rejected}.
 */
export function dpoSigmoidLoss(inputs: PairedInputs, params: PreferenceParams): LossOutput {
  checkParams('sigmoid', params, SIGMOID.params);
  checkPairedInputs('sigmoid', inputs, { ...SIGMOID, nll: false });
  const { beta, labelSmoothing = 0 } = params;
  return tf.tidy(() => {
    const chosen = tf.sub(inputs.policyChosenLogps, inputs.refChosenLogps!); // (B,) log π/π_ref (y_c)
    const rejected = tf.sub(inputs.policyRejectedLogps, inputs.refRejectedLogps!); // (B,)
    const h = tf.sub(chosen, rejected); // (B,)
    const loss = mean(smoothedLogisticLoss(tf.mul(h, beta), labelSmoothing)); // eq. 7 / cDPO eq. 3
    const metrics = pairedMetrics(
      tf.mul(chosen, beta),
      tf.mul(rejected, beta),
      inputs.policyChosenLogps,
      inputs.policyRejectedLogps,
    );
    return { loss, metrics };
  });
}

/**
 * IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
 * Preferences", eq. 17): regress the log-ratio margin to 1/(2τ), with τ = β.
 *
 *   ā   = log π(y)/|y|, per-token mean log-prob, for π_θ and π_ref alike     (B,)
 *   h̄_b = (ā_θ(y_c) − ā_ref(y_c)) − (ā_θ(y_r) − ā_ref(y_r))                  (B,)
 *   L   = mean_b (h̄_b − 1/(2β))²                                              ()
 *
 * TRL divides both policy and reference log-probs by the completion length for "ipo" (its
 * `concatenated_forward` runs for both models, `if self.loss_type == "ipo": all_logps /= length`),
 * so this takes summed log-probs plus chosenLengths/rejectedLengths and does the same; rewards
 * and logps metrics are then per-token too. Label smoothing does not apply.
 * After TRL `trl/trainer/dpo_trainer.py` (`dpo_loss`, loss_type "ipo") and OpenRLHF
 * `openrlhf/models/loss.py` (`DPOLoss`, ipo=True, which leaves the normalisation to the caller).
 * Params: beta. Metrics as `dpoSigmoidLoss`.
 */
export function ipoLoss(inputs: PairedInputs, params: PreferenceParams): LossOutput {
  checkParams('ipo', params, IPO.params);
  checkPairedInputs('ipo', inputs, { ...IPO, nll: false });
  const { beta } = params;
  return tf.tidy(() => {
    const nc = inputs.chosenLengths!;
    const nr = inputs.rejectedLengths!;
    const pc = perToken(inputs.policyChosenLogps, nc); // (B,) ā_θ(y_c)
    const pr = perToken(inputs.policyRejectedLogps, nr); // (B,)
    const chosen = tf.sub(pc, perToken(inputs.refChosenLogps!, nc)); // (B,)
    const rejected = tf.sub(pr, perToken(inputs.refRejectedLogps!, nr)); // (B,)
    const h = tf.sub(chosen, rejected); // (B,)
    const loss = mean(tf.square(tf.sub(h, 1 / (2 * beta)))); // eq. 17
    const metrics = pairedMetrics(tf.mul(chosen, beta), tf.mul(rejected, beta), pc, pr);
    return { loss, metrics };
  });
}
