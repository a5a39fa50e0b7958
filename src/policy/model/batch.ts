import type { TokenBatch } from '../../data/batching/collate.js';
import { TroupeError } from '../../errors.js';

/**
 * Position ids: the count of real tokens before each one, continuing from `past` (tokens already
 * in the KV cache, per row). Padding gets position 0 (it is never attended to).  → [B·T]
 */
export function positionIds(batch: TokenBatch, past?: Int32Array): Int32Array {
  const { batch: B, length: T, mask } = batch;
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let p = past ? past[b] : 0;
    for (let t = 0; t < T; t++) {
      if (mask[b * T + t]) out[b * T + t] = p++;
    }
  }
  return out;
}

/**
 * Additive attention bias for T new queries over S = P + T keys (P cached): query t of row b
 * may see key j iff key j is a real token and j ≤ P + t (causal), and, with a sliding `window`,
 * the key is fewer than `window` real tokens back (position(query) − position(key) < window,
 * positions counting real tokens, so a row's window does not depend on its padding). 0 where
 * allowed, −1e9 where not (finite, so a fully masked padding row gives a uniform, not NaN, softmax).
 *
 *   keyMask: [B·S] (the cached tokens' mask, then the new ones')  →  [B·T·S]
 */
export function attentionBias(
  keyMask: Uint8Array,
  B: number,
  T: number,
  S: number,
  window?: number,
): Float32Array {
  const P = S - T;
  const bias = new Float32Array(B * T * S);
  const before = new Int32Array(S + 1); // real keys before index j of the row
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < S; j++) before[j + 1] = before[j] + keyMask[b * S + j];
    for (let t = 0; t < T; t++) {
      const q = P + t;
      for (let j = 0; j < S; j++) {
        const outside = window !== undefined && before[q] - before[j] >= window;
        if (!keyMask[b * S + j] || j > q || outside) bias[(b * T + t) * S + j] = -1e9;
      }
    }
  }
  return bias;
}

/** Index of the last real token of each row (where a reward head reads).  → [B] */
export function lastTokenIndex(batch: TokenBatch): Int32Array {
  const { batch: B, length: T, mask } = batch;
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let last = -1;
    for (let t = 0; t < T; t++) if (mask[b * T + t]) last = t;
    if (last < 0)
      throw new TroupeError('BAD_ARGUMENT', `Row ${b} of the token batch has no real tokens`);
    out[b] = last;
  }
  return out;
}
