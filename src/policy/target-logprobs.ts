import type { TokenBatch } from '../data/batching/collate.js';
import { TroupeError } from '../errors.js';
import { entropyFromLogits } from '../kernels/numerics/index.js';
import * as tf from '../kernels/tf.js';
import type { CausalLM, ForwardOptions } from './model/causal-lm.js';

/** Which targets `targetLogProbs` scores, and how. */
export interface TargetOptions {
  /**
   * The first target column: tokens [start, T) of each row are scored, each by the hidden state
   * just before it. 1 (the default) scores every next token (LM loss, teacher-forced scores,
   * preference replies); a rollout's prompt width P scores its A = T − P actions.
   */
  readonly start?: number;
  /** Sampling temperature τ: log-softmax(z/τ), z the (soft-capped) logits. Default 1. */
  readonly temperature?: number;
  /** Also the entropy of π(·|x_<t) at each target (needs the [N, V] logits). */
  readonly entropy?: boolean;
}

/**
 * log π(x_t | x_<t) of the target tokens of every row: the one function every log-prob of a
 * label goes through (the LM loss, `tokenLogprobs`, the RL roles' action log-probs, the
 * preference roles' reply log-probs). The hidden state at column t − 1 predicts token t, and the
 * LM head runs chunked (`CausalLM.tokenLogProbs`: never all [N, V] logits) unless the entropy is
 * asked for. Padding targets are scored too; callers mask them. Not tidied: call it inside the
 * caller's tidy or gradient.
 *   batch: B rows of T tokens  →  logp [B, T − start], entropy [B, T − start]
 */
export function targetLogProbs(
  model: CausalLM,
  batch: TokenBatch,
  o: TargetOptions = {},
  forward: ForwardOptions = {},
): { logp: tf.Tensor2D; entropy?: tf.Tensor2D } {
  const { batch: B, length: T, ids } = batch;
  const start = o.start ?? 1;
  const temperature = o.temperature ?? 1;
  if (!Number.isSafeInteger(start) || start < 1 || start >= T) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `targetLogProbs: start must be an integer in [1, ${T - 1}] for rows of ${T} tokens, got ${start}`,
    );
  }
  const n = T - start;
  const d = model.config.hidden;
  const targets = new Int32Array(B * n);
  for (let b = 0; b < B; b++) targets.set(ids.subarray(b * T + start, (b + 1) * T), b * n);
  const hidden = model.forward(batch, forward);
  const h = tf.reshape(tf.slice(hidden, [0, start - 1, 0], [B, n, d]), [B * n, d]); // (N, d)
  const lp = model.tokenLogProbs(h, tf.tensor1d(targets, 'int32'), temperature); // (N,)
  const logp = tf.reshape(lp, [B, n]) as tf.Tensor2D;
  if (!o.entropy) return { logp };
  const logits = model.headLogits(h);
  const scaled = temperature === 1 ? logits : tf.div(logits, temperature);
  return { logp, entropy: tf.reshape(entropyFromLogits(scaled), [B, n]) as tf.Tensor2D };
}
