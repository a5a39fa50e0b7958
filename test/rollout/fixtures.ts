import type { Experience } from '../../src/rollout/index.js';

/** A deterministic stream of floats in [-1, 1) (LCG: tests need fixed values, not good ones). */
export function floats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/**
 * A valid Experience: row b's prompt has P − b pads then tokens, its response A − b tokens then
 * pads (every row a different length), the last real response token of each row masked out of
 * the actions (as a tool-output token would be).
 */
export function makeExperience(
  opts: { batch?: number; promptLength?: number; actions?: number; optional?: boolean } = {},
): Experience {
  const { batch: B = 3, promptLength: P = 4, actions: A = 5, optional = true } = opts;
  const L = P + A;
  const sequences = new Int32Array(B * L);
  const attentionMask = new Uint8Array(B * L);
  const actionMask = new Uint8Array(B * A);
  for (let b = 0; b < B; b++) {
    const promptPads = Math.min(b, P - 1);
    const responseLen = Math.max(1, A - b);
    for (let t = 0; t < L; t++) {
      const real = t < P ? t >= promptPads : t - P < responseLen;
      attentionMask[b * L + t] = real ? 1 : 0;
      sequences[b * L + t] = real ? 10 + ((b * 31 + t * 7) % 90) : 0;
    }
    for (let j = 0; j < A; j++) actionMask[b * A + j] = j < responseLen && j !== A - 1 ? 1 : 0;
  }
  const ba = (seed: number) => floats(B * A, seed);
  return {
    sequences,
    attentionMask,
    actionMask,
    actionLogProbs: ba(1).map((x) => -Math.abs(x) * 3),
    ...(optional
      ? { refLogProbs: ba(2), values: ba(3), returns: ba(4), advantages: ba(5), kl: ba(6) }
      : {}),
    rewards: floats(B, 7),
    promptLength: P,
    shape: { batch: B, length: L, actions: A },
    info: {
      responseLength: Float32Array.from({ length: B }, (_, b) => Math.max(1, A - b)),
      'reward/format': floats(B, 8),
    },
  };
}
