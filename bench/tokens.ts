/*
 * Deterministic token ids for the benches and profiling scripts: the values do not matter, only
 * the shapes, but a fixed stream keeps runs (and the hashes some scripts print) comparable.
 */

/** xorshift32 from `seed` (not 0): each call the next state as an unsigned 32-bit integer. */
export function xorshift32(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** Token ids in [0, vocab) from xorshift32(seed). */
export function tokenStream(vocab: number, seed = 1): () => number {
  const next = xorshift32(seed);
  return () => next() % vocab;
}

/**
 * GRPO's update rows: `rows` rows of `length` tokens drawn row by row, then each group of
 * `samples` consecutive rows given its first row's first `prompt` tokens (a prompt and its
 * samples' responses).
 */
export function sharedPrefixRows(
  token: () => number,
  rows: number,
  length: number,
  samples: number,
  prompt = length / 2,
): number[][] {
  const out = Array.from({ length: rows }, () => Array.from({ length }, token));
  for (let b = 0; b < rows; b++)
    out[b].splice(0, prompt, ...out[b - (b % samples)].slice(0, prompt));
  return out;
}
