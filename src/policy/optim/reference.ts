/*
 * Slow, obvious references for this folder: plain loops over Float64Arrays, one element at a
 * time, straight from the equations. Tests compare the tensor versions against these.
 * Not for production use.
 */

/** One parameter's AdamW state: values, moments and update count, all float64. */
export interface AdamWRefState {
  readonly p: Float64Array;
  readonly m: Float64Array;
  readonly v: Float64Array;
  t: number;
}

export function adamwState(p: ArrayLike<number>): AdamWRefState {
  const n = p.length;
  return { p: Float64Array.from(p), m: new Float64Array(n), v: new Float64Array(n), t: 0 };
}

/** One AdamW update of `s` in place (Loshchilov & Hutter Alg. 2; PyTorch AdamW). */
export function adamwStep(
  s: AdamWRefState,
  g: ArrayLike<number>,
  o: { lr: number; betas: readonly [number, number]; eps: number; weightDecay: number },
  decay: boolean,
): void {
  const [b1, b2] = o.betas;
  s.t += 1;
  for (let i = 0; i < s.p.length; i++) {
    if (decay) s.p[i] -= o.lr * o.weightDecay * s.p[i];
    s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
    s.v[i] = b2 * s.v[i] + (1 - b2) * g[i] * g[i];
    const mHat = s.m[i] / (1 - b1 ** s.t);
    const vHat = s.v[i] / (1 - b2 ** s.t);
    s.p[i] -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
  }
}

/** PyTorch clip_grad_norm_ (L2): the total norm, and the grads scaled when coef < 1. */
export function clipGradNorm(
  grads: ReadonlyArray<ArrayLike<number>>,
  maxNorm: number,
): { grads: Float64Array[]; totalNorm: number } {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const totalNorm = Math.sqrt(sq);
  const coef = maxNorm / (totalNorm + 1e-6);
  const scale = Number.isFinite(totalNorm) && coef < 1 ? coef : 1;
  return { grads: grads.map((g) => Float64Array.from(g, (x) => x * scale)), totalNorm };
}
