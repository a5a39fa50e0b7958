import { rightPad } from '../data/batching/collate.js';
import { logProbsFromLogits } from '../kernels/numerics/index.js';
import * as tf from '../kernels/tf.js';
import type { CausalLM } from './model/causal-lm.js';

/**
 * Teacher-forced log-probabilities: for each row, log π(x_t | x_<t) of tokens 1..n−1 (the first
 * token has no context). Rows are scored together, right-padded.  → one array of n−1 per row
 */
export async function tokenLogprobs(
  model: CausalLM,
  rows: readonly (readonly number[])[],
): Promise<number[][]> {
  const batch = rightPad(rows, model.config.padTokenId ?? 0);
  const { batch: B, length: T } = batch;
  if (T < 2) return rows.map(() => []);
  const lp = tf.tidy(() => {
    const hidden = model.forward(batch);
    const logits = model.logits(tf.slice(hidden, [0, 0, 0], [B, T - 1, model.config.hidden])); // (B, T-1, V)
    const targets = tf.slice(tf.tensor2d(batch.ids, [B, T], 'int32'), [0, 1], [B, T - 1]); // (B, T-1)
    return logProbsFromLogits(logits, targets); // (B, T-1)
  });
  try {
    const all = await lp.data();
    return rows.map((r, b) =>
      Array.from(all.subarray(b * (T - 1), b * (T - 1) + Math.max(0, r.length - 1))),
    );
  } finally {
    lp.dispose();
  }
}
