import { rightPad } from '../data/batching/collate.js';
import * as tf from '../kernels/tf.js';
import type { CausalLM } from './model/causal-lm.js';
import { targetLogProbs } from './target-logprobs.js';

/**
 * Teacher-forced log-probabilities: for each row, log π(x_t | x_<t) of tokens 1..n−1 (the first
 * token has no context). Rows are scored together, right-padded.  → one array of n−1 per row
 */
export async function tokenLogprobs(
  model: CausalLM,
  rows: readonly (readonly number[])[],
): Promise<number[][]> {
  const batch = rightPad(rows, model.config.padTokenId ?? 0);
  const T = batch.length;
  if (T < 2) return rows.map(() => []);
  const lp = tf.tidy(() => targetLogProbs(model, batch).logp); // (B, T-1)
  try {
    const all = await lp.data();
    return rows.map((r, b) =>
      Array.from(all.subarray(b * (T - 1), b * (T - 1) + Math.max(0, r.length - 1))),
    );
  } finally {
    lp.dispose();
  }
}
