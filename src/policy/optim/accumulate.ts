import { TroupeError } from '../../errors.js';
import * as tf from '../../kernels/tf.js';

/**
 * Gradient accumulation over micro-batches: running sums Σ_k w_k·g_k per parameter, and their
 * weighted mean Σ_k w_k·g_k / Σ_k w_k.
 *
 * With the default weight 1 and micro-batches of equal size, where g_k is the gradient of the
 * micro-batch's mean loss, the mean is exactly the gradient of the mean loss over the full batch
 * (∇ (1/K)·Σ_k L_k = (1/K)·Σ_k ∇L_k). When micro-batches hold different numbers of samples or
 * tokens, pass that count as the weight: the result is then the gradient of the full batch's
 * per-token mean, not a mean of means (the bug HF Transformers fixed in 4.46, "gradient
 * accumulation loss", October 2024).
 *
 * Every micro-batch must carry the same parameter names and shapes. The input grads are only
 * read (the caller disposes them); the sums are tensors this object owns, kept out of any
 * enclosing `tf.tidy`.
 */
export class GradAccumulator {
  private readonly sums = new Map<string, tf.Tensor>();
  private weightSum = 0;
  private micro = 0;

  /** Micro-batches added since the last `mean()` / `reset()`. */
  get count(): number {
    return this.micro;
  }

  /** Add one micro-batch's grads, with weight `weight` (> 0; default 1). */
  add(grads: ReadonlyMap<string, tf.Tensor>, weight = 1): void {
    if (!(weight > 0) || !Number.isFinite(weight)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `GradAccumulator.add: weight must be a finite number > 0 (the micro-batch's sample or ` +
          `token count), got ${weight}`,
        { details: { weight } },
      );
    }
    if (grads.size === 0) {
      throw new TroupeError('BAD_ARGUMENT', 'GradAccumulator.add: the micro-batch has no grads');
    }
    if (this.micro > 0) this.checkSameLayout(grads);
    for (const [name, g] of grads) {
      const prev = this.sums.get(name);
      const next = tf.tidy(() => {
        const wg = weight === 1 ? g.clone() : tf.mul(g, weight); // w_k·g_k
        return tf.keep(prev ? tf.add(prev, wg) : wg);
      });
      prev?.dispose();
      this.sums.set(name, next);
    }
    this.weightSum += weight;
    this.micro++;
  }

  /**
   * Σ_k w_k·g_k / Σ_k w_k for each parameter, as fresh tensors the caller owns; then reset.
   */
  mean(): Map<string, tf.Tensor> {
    if (this.micro === 0) {
      throw new TroupeError('BAD_ARGUMENT', 'GradAccumulator.mean: no micro-batch was added');
    }
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.sums) out.set(name, tf.keep(tf.div(s, this.weightSum)));
    this.reset();
    return out;
  }

  /** Drop the running sums. */
  reset(): void {
    tf.dispose([...this.sums.values()]);
    this.sums.clear();
    this.weightSum = 0;
    this.micro = 0;
  }

  /** Same as `reset()`: frees every tensor this object holds. */
  dispose(): void {
    this.reset();
  }

  private checkSameLayout(grads: ReadonlyMap<string, tf.Tensor>): void {
    for (const [name, g] of grads) {
      const s = this.sums.get(name);
      if (s === undefined) {
        throw new TroupeError(
          'UNKNOWN_NAME',
          `GradAccumulator.add: micro-batch ${this.micro + 1} has a grad for '${name}', which the ` +
            `earlier micro-batches did not`,
          { details: { param: name } },
        );
      }
      if (s.shape.length !== g.shape.length || s.shape.some((d, i) => d !== g.shape[i])) {
        throw new TroupeError(
          'SHAPE_MISMATCH',
          `GradAccumulator.add: grad for '${name}' has shape [${g.shape}], earlier micro-batches [${s.shape}]`,
          { details: { param: name, shape: g.shape, expected: s.shape } },
        );
      }
    }
    for (const name of this.sums.keys()) {
      if (!grads.has(name)) {
        throw new TroupeError(
          'UNKNOWN_NAME',
          `GradAccumulator.add: micro-batch ${this.micro + 1} has no grad for '${name}', which the ` +
            `earlier micro-batches had`,
          { details: { param: name } },
        );
      }
    }
  }
}
