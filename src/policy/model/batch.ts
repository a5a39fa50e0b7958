import { TroupeError } from '../../errors.js';

/**
 * A batch of token rows as plain arrays: what the model needs to build positions and masks
 * without reading tensors back. Rows are padded to one length; padding may be on either side.
 *
 *   ids:  [B·T] int32, row-major
 *   mask: [B·T] 1 = real token, 0 = padding
 */
export interface TokenBatch {
  readonly ids: Int32Array;
  readonly mask: Uint8Array;
  readonly batch: number;
  readonly length: number;
}

/** Left-pad rows of different lengths into a batch (what generation wants: the last column is live). */
export function leftPad(rows: readonly (readonly number[])[], padId: number): TokenBatch {
  return pad(rows, padId, 'left');
}

/** Right-pad rows (what training wants: the prompt starts at column 0). */
export function rightPad(rows: readonly (readonly number[])[], padId: number): TokenBatch {
  return pad(rows, padId, 'right');
}

function pad(
  rows: readonly (readonly number[])[],
  padId: number,
  side: 'left' | 'right',
): TokenBatch {
  if (rows.length === 0)
    throw new TroupeError('BAD_ARGUMENT', 'A token batch needs at least one row');
  const T = Math.max(...rows.map((r) => r.length));
  if (T === 0) throw new TroupeError('BAD_ARGUMENT', 'Every row of the token batch is empty');
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Uint8Array(B * T);
  rows.forEach((r, b) => {
    const start = side === 'left' ? T - r.length : 0;
    for (let t = 0; t < r.length; t++) {
      ids[b * T + start + t] = r[t];
      mask[b * T + start + t] = 1;
    }
  });
  return { ids, mask, batch: B, length: T };
}

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
