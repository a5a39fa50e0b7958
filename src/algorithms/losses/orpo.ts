import * as tf from '../../kernels/tf.js';
import { type LossOutput, logSigmoid, mean, pairedMetrics, perToken } from './common.js';
import {
  checkPairedInputs,
  checkParams,
  type PairedInputs,
  type PreferenceLossSpec,
  type PreferenceParams,
} from './inputs.js';
import { chosenNll } from './simpo.js';

/** What `orpoLoss` reads: no reference, per-token means (and the chosen NLL, always). */
export const ORPO: PreferenceLossSpec = {
  layout: 'paired',
  needsReference: false,
  lengths: true,
  params: [],
};

/**
 * Largest per-token mean log-prob the odds are taken at: ā = 0 (every token predicted with
 * float32 certainty, which happens once a logit leads by ~17) would give odds 1/0. Above it the
 * value is held (gradient 0) and log odds stays finite (≈ 16.1); TRL's formula gives an
 * infinite log odds and non-finite gradients there.
 */
export const ORPO_MAX_MEAN_LOGP = -1e-7;

/** Below this |x| log1mexp uses a series: −expm1(x) = −x·(1 + x/2 + x²/6 + …). */
const LOG1MEXP_SERIES = 0.1;

/**
 * log(1 − eˣ) for x < 0, without cancellation (Mächler 2012, "Accurately Computing
 * log(1 − exp(−|a|))"): log(−expm1(x)) for x > −ln 2, log1p(−eˣ) below. Near 0 (|x| < 0.1)
 * −expm1(x) is taken from its series, log(−x) + log1p(x/2 + x²/6 + x³/24 + x⁴/120 + x⁵/720)
 * (truncation ≈ x⁶/5040): WebGPU's expm1 is exp(x) − 1, which at x = −1e-7 in float32 gives
 * log(1.19e-7) = −15.94 for −16.12. Each branch gets its input clamped to its own side, so the
 * branch `where` drops is finite and so is its gradient.
 *   x: any shape, ≤ ORPO_MAX_MEAN_LOGP → same shape
 */
export function log1mexp(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.clipByValue(x, -LOG1MEXP_SERIES, -1e-30); // x ∈ [−0.1, 0)
    // x/2 + x²/6 + x³/24 + x⁴/120 + x⁵/720 by Horner: x·(1/2 + x·(1/6 + x·(…)))
    let poly: tf.Tensor = tf.mul(t, 1 / 720);
    for (const c of [1 / 120, 1 / 24, 1 / 6, 1 / 2]) poly = tf.mul(t, tf.add(c, poly));
    const tiny = tf.add(tf.log(tf.neg(t)), tf.log1p(poly));
    const near = tf.log(tf.neg(tf.expm1(tf.clipByValue(x, -Math.LN2, -LOG1MEXP_SERIES)))); // [−ln 2, −0.1)
    const far = tf.log1p(tf.neg(tf.exp(tf.minimum(x, -Math.LN2)))); // x ≤ −ln 2
    return tf.where(
      tf.greater(x, -LOG1MEXP_SERIES),
      tiny,
      tf.where(tf.greater(x, -Math.LN2), near, far),
    );
  });
}

/**
 * ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model",
 * eqs. 4–7), reference-free: an NLL term plus λ times an odds-ratio term, on per-token means.
 *
 *   ā(y)       = min(log π_θ(y)/|y|, −1e-7)                                 (B,)
 *   log odds y = ā(y) − log(1 − exp(ā(y)))                                   (B,)
 *   r_b        = log odds(y_c) − log odds(y_r)                                (B,)
 *   L          = NLL(y_c) − λ·mean_b log σ(r_b)                               ()
 *
 * NLL(y_c) is `chosenNll` when given, else −Σ_b log π_θ(y_c) / Σ_b |y_c|, the token mean over
 * response tokens as in the paper's L_SFT; TRL's ORPOTrainer (≥ 0.12) takes it over prompt and
 * response tokens, so pass `chosenNll` to match it. λ is `beta`, as in TRL.
 * Rewards are λ·ā (TRL `odds_ratio_loss`), logps metrics per-token means.
 * After TRL `trl/trainer/orpo_trainer.py` (`odds_ratio_loss`, `concatenated_forward` with
 * average_log_prob=True, `get_batch_loss_metrics`).
 * Params: beta. Metrics: rewards/{chosen,rejected,accuracies,margins}, logps/{chosen,rejected},
 * loss/nll, orpo/log_odds_ratio (mean log σ(r)), orpo/log_odds_chosen (mean r).
 */
export function orpoLoss(inputs: PairedInputs, params: PreferenceParams): LossOutput {
  checkParams('orpo', params, ORPO.params);
  checkPairedInputs('orpo', inputs, { ...ORPO, nll: true });
  const { beta } = params;
  return tf.tidy(() => {
    const pc = perToken(inputs.policyChosenLogps, inputs.chosenLengths!); // (B,) ā(y_c)
    const pr = perToken(inputs.policyRejectedLogps, inputs.rejectedLengths!); // (B,) ā(y_r)
    const xc = tf.minimum(pc, ORPO_MAX_MEAN_LOGP);
    const xr = tf.minimum(pr, ORPO_MAX_MEAN_LOGP);
    const logOdds = tf.sub(tf.sub(xc, xr), tf.sub(log1mexp(xc), log1mexp(xr))); // (B,) eq. 4, 7
    const ratio = mean(logSigmoid(logOdds)); // () mean log σ(r), eq. 7
    const nll = chosenNll(inputs); // () eq. 6 (L_SFT)
    const loss = tf.sub(nll, tf.mul(ratio, beta)) as tf.Scalar; // eq. 6: L_SFT + λ·L_OR
    const metrics = pairedMetrics(tf.mul(pc, beta), tf.mul(pr, beta), pc, pr);
    metrics['loss/nll'] = nll;
    metrics['orpo/log_odds_ratio'] = ratio;
    metrics['orpo/log_odds_chosen'] = mean(logOdds);
    return { loss, metrics };
  });
}
