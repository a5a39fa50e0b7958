import { TroupeError } from '../errors.js';
import type { RandomStream } from '../kernels/random.js';

/** How the next token is chosen from a row of logits. */
export interface SamplingOptions {
  /** Softmax temperature; 0 means greedy (argmax). Default 1. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens; 0 or undefined keeps all. */
  readonly topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all. */
  readonly topP?: number;
}

export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `sampling 'temperature' must be ≥ 0 (0 = greedy), got ${t}`,
    );
  }
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `sampling 'topK' must be an integer ≥ 0 (0 = off), got ${o.topK}`,
    );
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `sampling 'topP' must be in (0, 1] (1 = off), got ${o.topP}`,
    );
  }
}

/**
 * Choose one token from `logits` (one row, length V) and return it with its log-probability
 * under the temperature-scaled distribution softmax(z/T) — before top-k/top-p filtering, which
 * is the distribution a trainer recomputes as log_softmax(logits / T). Greedy (T = 0) returns
 * the argmax with its log-probability under softmax(z).
 */
export function sampleToken(
  logits: ArrayLike<number>,
  o: SamplingOptions,
  rng: RandomStream | undefined,
): { token: number; logprob: number } {
  const V = logits.length;
  const T = o.temperature ?? 1;
  const scale = T === 0 ? 1 : 1 / T;
  let max = -Infinity;
  let arg = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i] > max) {
      max = logits[i];
      arg = i;
    }
  }
  // log Σ exp(z/T) in float64, shifted by the max.
  let total = 0;
  for (let i = 0; i < V; i++) total += Math.exp((logits[i] - max) * scale);
  const logZ = Math.log(total);
  const logprob = (i: number) => (logits[i] - max) * scale - logZ;
  if (T === 0) return { token: arg, logprob: logprob(arg) };
  if (!rng)
    throw new TroupeError('BAD_ARGUMENT', 'sampling with temperature > 0 needs a random stream');

  const probs = new Float64Array(V);
  for (let i = 0; i < V; i++) probs[i] = Math.exp(logprob(i));
  const k = o.topK && o.topK < V ? o.topK : V;
  const p = o.topP ?? 1;
  if (k < V || p < 1) {
    // Most likely first; ties broken by lower id so the result is deterministic.
    const order = Array.from({ length: V }, (_, i) => i).sort(
      (a, b) => probs[b] - probs[a] || a - b,
    );
    let kept = 0;
    let mass = 0;
    while (kept < k && (kept === 0 || mass < p)) mass += probs[order[kept++]];
    for (let r = kept; r < V; r++) probs[order[r]] = 0;
  }
  const token = rng.categorical(probs, 1)[0];
  return { token, logprob: logprob(token) };
}
