import type { TokenBatch } from '../data/batching/collate.js';
import { TroupeError } from '../errors.js';
import * as tf from '../kernels/tf.js';
import type { CausalLM, ForwardOptions } from './model/causal-lm.js';
import { targetLogProbs } from './target-logprobs.js';

/**
 * Next-token cross-entropy, averaged over the target tokens that count: position t predicts
 * token t+1, which counts when it is a real token and (if given) `lossMask` selects it.
 *
 *   batch: B rows of T tokens   lossMask: [B·T] over targets (SFT: 1 on response tokens)
 *   → loss: scalar mean NLL, tokens: how many targets counted
 */
export function lmLoss(
  model: CausalLM,
  batch: TokenBatch,
  opts: ForwardOptions & { lossMask?: Uint8Array } = {},
): { loss: tf.Scalar; tokens: number } {
  const { batch: B, length: T, mask } = batch;
  if (T < 2) throw new TroupeError('BAD_ARGUMENT', `lmLoss: rows need at least 2 tokens, got ${T}`);
  if (opts.lossMask && opts.lossMask.length !== B * T) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `lmLoss: lossMask has ${opts.lossMask.length} entries, the batch ${B}×${T}`,
    );
  }
  // Weights over targets t = 1..T-1 of each row.
  const w = new Float32Array(B * (T - 1));
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 1; t < T; t++) {
      const i = b * T + t;
      const on = mask[i] && mask[i - 1] && (!opts.lossMask || opts.lossMask[i]) ? 1 : 0;
      w[b * (T - 1) + t - 1] = on;
      tokens += on;
    }
  }
  if (tokens === 0)
    throw new TroupeError('BAD_ARGUMENT', 'lmLoss: no target token is selected by the masks');
  const loss = tf.tidy(() => {
    const lp = tf.reshape(targetLogProbs(model, batch, {}, opts).logp, [B * (T - 1)]); // (N,)
    return tf.div(tf.neg(tf.sum(tf.mul(lp, tf.tensor1d(w)))), tokens) as tf.Scalar;
  });
  return { loss, tokens };
}
