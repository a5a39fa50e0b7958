import { TroupeError } from '../errors.js';

/*
 * Batch normalisations of rollout values over plain typed arrays, used before and inside the
 * advantage estimators (advantages.ts): masked whitening after verl
 * `verl/utils/torch_functional.py` (masked_whiten), reward clipping and normalisation after
 * OpenRLHF. Arithmetic in float64, results float32.
 */

/**
 * The count n of the positions the mask keeps, their mean, and the sum of their squared
 * deviations from it, Σ (x − mean)² (two passes, float64). mean is 0 where n is 0.
 */
export function maskedMoments(
  x: ArrayLike<number>,
  mask: Uint8Array,
): { n: number; mean: number; ss: number } {
  let n = 0;
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    if (mask[i]) {
      n++;
      sum += x[i];
    }
  }
  const mean = n > 0 ? sum / n : 0;
  let ss = 0;
  for (let i = 0; i < x.length; i++) if (mask[i]) ss += (x[i] - mean) ** 2;
  return { n, mean, ss };
}

/** ε of the variance in whitening, as verl masked_whiten. */
const WHITEN_EPS = 1e-8;

/**
 * (x − mean)/sqrt(var + 1e-8) with the masked mean and unbiased masked variance over the whole
 * batch (verl masked_whiten; the Bessel correction is skipped when fewer than 2 tokens count).
 * 0 where the mask is 0.
 *   values: (B·A) float, mask: (B·A) 0/1 → (B·A)
 */
export function whiten(values: ArrayLike<number>, mask: Uint8Array): Float32Array {
  if (values.length !== mask.length) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `Arguments 'values' and 'mask' passed to 'whiten' must have one length; got ` +
        `${values.length} and ${mask.length}`,
    );
  }
  const { n, mean, ss } = maskedMoments(values, mask);
  const variance = n > 1 ? ss / (n - 1) : 0; // n ≤ 1: biased, 0
  const scale = 1 / Math.sqrt(variance + WHITEN_EPS);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = mask[i] ? (values[i] - mean) * scale : 0;
  return out;
}

/** Rewards clamped to [low, high] (OpenRLHF reward_clip_range). (B) → (B) */
export function clipRewards(rewards: ArrayLike<number>, low: number, high: number): Float32Array {
  if (!(low <= high)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Arguments 'low' and 'high' passed to 'clipRewards' must satisfy low ≤ high; got ${low} and ${high}`,
    );
  }
  return Float32Array.from(rewards, (r) => Math.min(high, Math.max(low, r)));
}

/**
 * (r − mean)/(std + eps) over the batch, std unbiased (torch.std); a batch of one gives r − r = 0.
 *   rewards: (B) → (B)
 */
export function normalizeRewards(rewards: ArrayLike<number>, eps = 1e-6): Float32Array {
  const n = rewards.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += rewards[i];
  const mean = n > 0 ? sum / n : 0;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (rewards[i] - mean) ** 2;
  const std = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  return Float32Array.from(rewards, (r) => (r - mean) / (std + eps));
}
