import { TroupeError } from '../../errors.js';
import * as tf from '../../kernels/tf.js';

export interface ClippedGrads {
  /** The grads, scaled by `coef` where clipped; fresh tensors the caller owns and disposes. */
  readonly grads: Map<string, tf.Tensor>;
  /**
   * ‖g‖₂ over all grads before clipping. NaN or ±Infinity when a grad is not finite: then the
   * grads are returned unscaled and the caller should skip the optimizer step.
   */
  readonly totalNorm: number;
  /** The factor applied: maxNorm / (totalNorm + 1e-6) when that is below 1, else 1. */
  readonly coef: number;
}

/**
 * Clip gradients by their global L2 norm, as PyTorch `torch.nn.utils.clip_grad_norm_`
 * (norm_type 2, foreach): total = √(Σ_g Σ_i g_i²) over every grad, coef = maxNorm/(total + 1e-6),
 * and every grad is multiplied by coef only when coef < 1.
 *
 *   grads: name → tensor of any shape   →   same names and shapes
 *
 * Async because the decision needs the norm as a number: it is read once with `await data()`
 * (so it works on webgpu), which is also the value a trainer logs. Unlike PyTorch, a non-finite
 * norm never scales the grads (PyTorch would multiply them by NaN): it is reported in
 * `totalNorm` so the caller can skip the step. The input grads are not modified or disposed.
 */
export async function clipGradNorm(
  grads: ReadonlyMap<string, tf.Tensor>,
  maxNorm: number,
): Promise<ClippedGrads> {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `clipGradNorm: maxNorm must be a finite number > 0, got ${maxNorm}`,
      { details: { maxNorm } },
    );
  }
  const totalNorm = await readTotalNorm([...grads.values()]);
  const coef = maxNorm / (totalNorm + 1e-6);
  const scale = Number.isFinite(totalNorm) && coef < 1;
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, scale ? tf.mul(g, coef) : tf.clone(g));
  return { grads: out, totalNorm, coef: scale ? coef : 1 };
}

/** √(Σ_g Σ_i g_i²) as a number; 0 for no grads. */
async function readTotalNorm(grads: tf.Tensor[]): Promise<number> {
  if (grads.length === 0) return 0;
  // Σ‖g‖² accumulated pairwise, not with one `addN`: an addN over many inputs exceeds WebGPU's
  // storage-buffer limit per pipeline (lavapipe allows 8) and silently returns a wrong norm.
  const norm = tf.tidy(() => {
    let acc: tf.Tensor = tf.scalar(0);
    for (const g of grads) acc = tf.add(acc, tf.sum(tf.square(g)));
    return tf.sqrt(acc);
  });
  try {
    return (await norm.data())[0];
  } finally {
    norm.dispose();
  }
}
