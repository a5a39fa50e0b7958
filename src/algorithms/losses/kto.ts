import { TroupeError } from '../../errors.js';
import { maskedMean } from '../../kernels/numerics/index.js';
import * as tf from '../../kernels/tf.js';
import { type LossOutput, mean, stopGradient } from './common.js';
import {
  checkParams,
  checkRows,
  checkScalar,
  type PreferenceLossSpec,
  type PreferenceParams,
  type UnpairedInputs,
} from './inputs.js';

/** What `ktoLoss` reads: unpaired examples with reference log-probs, summed (no lengths). */
export const KTO: PreferenceLossSpec = {
  layout: 'unpaired',
  needsReference: true,
  lengths: false,
  params: ['desirableWeight', 'undesirableWeight'],
};

/**
 * KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization",
 * eq. 7) on unpaired examples, each desirable (d_i = 1) or undesirable (d_i = 0).
 *
 *   ρ_i = log π_θ(y_i|x_i) − log π_ref(y_i|x_i)                            (N,)
 *   z0  = stop_grad(max(0, mean_j(log π_θ(y'_j|x_j) − log π_ref(y'_j|x_j))))  ()
 *   ℓ_i = λ_D·(1 − σ(β(ρ_i − z0)))   if d_i = 1
 *         λ_U·(1 − σ(β(z0 − ρ_i)))   if d_i = 0                            (N,)
 *   L   = mean_i ℓ_i                                                        ()
 *
 * TRL conventions followed: log-probs are sums over completion tokens; z0 is the batch mean
 * over mismatched pairs (completions shifted by one row, TRL `_get_kl_dataset`), clamped at 0
 * and detached; the mean runs over all N examples (TRL concatenates both kinds, then
 * `nanmean`). Give either `policyKlLogps` + `refKlLogps` or a precomputed `kl` (TRL averages
 * the estimate across processes before clamping: do that and pass it as `kl`). The label is a
 * mask, not a split, so shapes do not depend on the data; 1 − σ(z) is computed as σ(−z).
 * After TRL `trl/trainer/kto_trainer.py` (`kto_loss`, loss_type "kto"; `get_batch_loss_metrics`)
 * and OpenRLHF `openrlhf/models/loss.py` (`KTOLoss`).
 * Params: beta, desirableWeight, undesirableWeight (default 1 each).
 * Metrics: kto/kl (z0), rewards/chosen and rewards/rejected (mean β·ρ over desirable and over
 * undesirable examples, 0 when there are none), logps/chosen and logps/rejected (likewise for
 * log π_θ), count/chosen and count/rejected (how many of each, to weight means across ranks).
 */
export function ktoLoss(inputs: UnpairedInputs, params: PreferenceParams): LossOutput {
  checkParams('kto', params, KTO.params);
  checkKtoInputs(inputs);
  const { beta, desirableWeight = 1, undesirableWeight = 1 } = params;
  return tf.tidy(() => {
    const d = tf.cast(inputs.desirable, 'float32'); // (N,) 1 desirable, 0 undesirable
    const u = tf.sub(1, d); // (N,)
    const z0 = stopGradient(tf.relu(klEstimate(inputs))); // () clamp(min=0).detach()
    const rho = tf.sub(inputs.policyLogps, inputs.refLogps); // (N,) log π_θ/π_ref
    const desirableLoss = tf.sigmoid(tf.mul(tf.sub(z0, rho), beta)); // 1 − σ(β(ρ − z0)), eq. 7
    const undesirableLoss = tf.sigmoid(tf.mul(tf.sub(rho, z0), beta)); // 1 − σ(β(z0 − ρ))
    const perExample = tf.add(
      tf.mul(desirableLoss, tf.mul(d, desirableWeight)),
      tf.mul(undesirableLoss, tf.mul(u, undesirableWeight)),
    ); // (N,)
    const loss = mean(perExample);
    const rewards = tf.mul(rho, beta); // (N,)
    const metrics: Record<string, tf.Scalar> = {
      'kto/kl': z0 as tf.Scalar,
      'rewards/chosen': maskedMean(rewards, d) as tf.Scalar,
      'rewards/rejected': maskedMean(rewards, u) as tf.Scalar,
      'logps/chosen': maskedMean(inputs.policyLogps, d) as tf.Scalar,
      'logps/rejected': maskedMean(inputs.policyLogps, u) as tf.Scalar,
      'count/chosen': tf.sum(d) as tf.Scalar,
      'count/rejected': tf.sum(u) as tf.Scalar,
    };
    return { loss, metrics };
  });
}

/** () mean_j(π_KL − ref_KL), or the given `kl`, before clamping. */
function klEstimate(inputs: UnpairedInputs): tf.Tensor {
  if (inputs.kl !== undefined) return tf.reshape(inputs.kl, []);
  return tf.mean(tf.sub(inputs.policyKlLogps!, inputs.refKlLogps!));
}

function checkKtoInputs(inputs: UnpairedInputs): void {
  checkRows(
    'kto',
    { policyLogps: inputs.policyLogps, refLogps: inputs.refLogps, desirable: inputs.desirable },
    ['desirable'],
  );
  const pair = inputs.policyKlLogps !== undefined || inputs.refKlLogps !== undefined;
  if (inputs.kl !== undefined) {
    if (pair) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `'kto' takes either 'kl' or 'policyKlLogps' + 'refKlLogps', not both: the KL reference ` +
          `point z0 would be defined twice`,
      );
    }
    checkScalar('kto', 'kl', inputs.kl);
    return;
  }
  if (inputs.policyKlLogps === undefined || inputs.refKlLogps === undefined) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `'kto' needs its KL reference point z0: pass 'policyKlLogps' and 'refKlLogps' (log-probs ` +
        `of mismatched prompt/completion pairs under π_θ and π_ref) or a precomputed 'kl'`,
    );
  }
  checkRows('kto', { policyKlLogps: inputs.policyKlLogps, refKlLogps: inputs.refKlLogps });
}
