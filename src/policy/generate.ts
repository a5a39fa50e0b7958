import { leftPad, type TokenBatch } from '../data/batching/collate.js';
import { TroupeError } from '../errors.js';
import type { RandomStream } from '../kernels/random.js';
import * as tf from '../kernels/tf.js';
import type { CausalLM } from './model/causal-lm.js';
import { KVCache } from './model/kv-cache.js';
import { checkSampling, type SamplingOptions, sampleToken } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate per row. */
  readonly maxNewTokens: number;
  /** Tokens that end a row (EOS and any stop ids); the stop token is kept in the response. */
  readonly stopTokenIds?: readonly number[];
  /** Fills padding positions; defaults to the config's pad, then EOS, then 0. */
  readonly padTokenId?: number;
  /** Draws for sampling; required unless temperature is 0. */
  readonly rng?: RandomStream;
}

/**
 * What a generation returns. `sequences` is the batch an RL step scores: each row is its prompt,
 * left-padded to the longest prompt P, then its response, right-padded to the longest response R.
 *
 *   sequences: B rows of P + R tokens (mask 1 on real prompt and response tokens)
 *   actionMask: [B·(P+R)] 1 on response tokens (the actions), 0 elsewhere
 *   responses[b], logprobs[b]: the generated ids and log π_T(token) of each (length ≤ maxNewTokens)
 */
export interface Generation {
  readonly sequences: TokenBatch;
  readonly actionMask: Uint8Array;
  readonly promptLength: number;
  readonly responses: number[][];
  readonly logprobs: number[][];
  /** True where the row ended on a stop token (not on the length limit). */
  readonly stopped: boolean[];
}

/**
 * Batched sampling with a KV cache: prompts of different lengths are left-padded, prefilled in
 * one forward, then decoded one token per step; finished rows feed padding (masked out) until
 * every row has stopped or reached `maxNewTokens`.
 */
export async function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  o: GenerateOptions,
): Promise<Generation> {
  checkSampling(o);
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `generate: 'maxNewTokens' must be an integer ≥ 1, got ${o.maxNewTokens}`,
    );
  }
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new TroupeError('BAD_ARGUMENT', `generate: prompt ${i} is empty`);
  });
  const c = model.config;
  const pad = o.padTokenId ?? c.padTokenId ?? c.eosTokenId ?? 0;
  const stops = new Set(
    o.stopTokenIds ?? c.eosTokenIds ?? (c.eosTokenId === undefined ? [] : [c.eosTokenId]),
  );
  const B = prompts.length;
  const responses: number[][] = prompts.map(() => []);
  const logprobs: number[][] = prompts.map(() => []);
  const stopped = prompts.map(() => false);
  // Room for the prompt and the new tokens (up to 512: rows may stop early, and a long reservation
  // for a large batch would be gigabytes; past it the host store doubles as it fills).
  const cache = new KVCache(B, {
    capacity: Math.max(...prompts.map((p) => p.length)) + Math.min(o.maxNewTokens, 512),
  });
  try {
    let step: TokenBatch = leftPad(prompts, pad);
    for (let t = 0; t < o.maxNewTokens; t++) {
      const rows = await lastLogits(model, step, cache);
      const next = new Int32Array(B).fill(pad);
      const live = new Uint8Array(B);
      for (let b = 0; b < B; b++) {
        if (stopped[b]) continue;
        const V = c.vocabSize;
        const { token, logprob } = sampleToken(rows.subarray(b * V, (b + 1) * V), o, o.rng);
        responses[b].push(token);
        logprobs[b].push(logprob);
        if (stops.has(token)) stopped[b] = true;
        next[b] = token;
        live[b] = 1;
      }
      if (stopped.every(Boolean) || t === o.maxNewTokens - 1) break;
      // Rows that just stopped still feed their stop token; rows stopped earlier feed padding.
      step = { ids: next, mask: live, batch: B, length: 1 };
    }
  } finally {
    cache.dispose();
  }
  return assemble(prompts, responses, logprobs, stopped, pad);
}

/** Forward `step` through the cache and read the last position's logits.  → [B·V] */
async function lastLogits(
  model: CausalLM,
  step: TokenBatch,
  cache: KVCache,
): Promise<Float32Array> {
  const hidden = model.forward(step, { cache });
  const logits = tf.tidy(() => {
    const [B, T, d] = hidden.shape;
    const last = tf.slice(hidden, [0, T - 1, 0], [B, 1, d]); // (B, 1, d)
    return model.logits(last); // (B, 1, V)
  });
  hidden.dispose();
  try {
    return (await logits.data()) as Float32Array;
  } finally {
    logits.dispose();
  }
}

function assemble(
  prompts: readonly (readonly number[])[],
  responses: number[][],
  logprobs: number[][],
  stopped: boolean[],
  pad: number,
): Generation {
  const B = prompts.length;
  const P = Math.max(...prompts.map((p) => p.length));
  const R = Math.max(1, ...responses.map((r) => r.length));
  const L = P + R;
  const ids = new Int32Array(B * L).fill(pad);
  const mask = new Uint8Array(B * L);
  const actionMask = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) {
    const p = prompts[b];
    for (let i = 0; i < p.length; i++) {
      ids[b * L + P - p.length + i] = p[i];
      mask[b * L + P - p.length + i] = 1;
    }
    responses[b].forEach((tok, i) => {
      ids[b * L + P + i] = tok;
      mask[b * L + P + i] = 1;
      actionMask[b * L + P + i] = 1;
    });
  }
  return {
    sequences: { ids, mask, batch: B, length: L },
    actionMask,
    promptLength: P,
    responses,
    logprobs,
    stopped,
  };
}
