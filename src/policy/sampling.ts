import { TroupeError } from '../errors.js';
import { type NativeAddon, nativeKernels } from '../kernels/native.js';
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
 *
 * A Float32Array row goes through the native addon when it is loaded (native/sample.c: the max,
 * the V exponentials and their sum, and the draw's walk), which gives the bits `sampleTokenJs`
 * gives: its exp is V8's Math.exp algorithm, its sums run in the same order. Measured on GPT-2's
 * V = 50,257 (Intel Xeon, AVX-512, one thread): see docs/runtime.md.
 */
export function sampleToken(
  logits: ArrayLike<number>,
  o: SamplingOptions,
  rng: RandomStream | undefined,
): { token: number; logprob: number } {
  const n = logits instanceof Float32Array ? rowKernels() : undefined;
  return n ? sampleNative(n, logits as Float32Array, o, rng) : sampleTokenJs(logits, o, rng);
}

/** The addon's sampling rows, if it is loaded and has them. */
let kernels: NativeAddon | null | undefined;
function rowKernels(): NativeAddon | undefined {
  if (kernels === undefined) {
    const n = nativeKernels();
    kernels = n.available && typeof n.addon.sampleExpRow === 'function' ? n.addon : null;
  }
  return kernels ?? undefined;
}

/** A row's exponentials: one buffer per length, reused (sampleToken keeps none of it). */
let scratch = new Float64Array(0);
const sums = new Float64Array(3);
/** Rows of sampleRows a native call (a multiple of the BLAS threads that share them). */
const SAMPLE_CHUNK = 8;
let rowsScratch = new Float64Array(0);
let rowsSums = new Float64Array(0);

/**
 * sampleToken of each row b of `logits` [B, V] that `skip` does not mark, in order of b (the
 * stream's draws in that order): the same tokens, log-probabilities and draws as sampleToken
 * row by row. Through the addon the rows' exponentials are one call, the rows shared out among
 * this thread's BLAS threads; skipped rows are computed there too, and not used.
 */
export function sampleRows(
  logits: Float32Array,
  B: number,
  skip: readonly boolean[],
  o: SamplingOptions,
  rng: RandomStream | undefined,
): ({ token: number; logprob: number } | undefined)[] {
  const V = logits.length / B;
  const n = rowKernels();
  const out: ({ token: number; logprob: number } | undefined)[] = [];
  if (!n || typeof n.sampleExpRows !== 'function' || !Number.isInteger(V) || V === 0) {
    for (let b = 0; b < B; b++)
      out.push(skip[b] ? undefined : sampleToken(logits.subarray(b * V, (b + 1) * V), o, rng));
    return out;
  }
  const T = o.temperature ?? 1;
  const scale = T === 0 ? 1 : 1 / T;
  // At most SAMPLE_CHUNK rows a call: the buffer kept is SAMPLE_CHUNK·V float64s (9.7 MB at
  // Qwen's V = 151,936), not B·V.
  const rows = Math.min(B, SAMPLE_CHUNK);
  if (rowsScratch.length !== rows * V) rowsScratch = new Float64Array(rows * V);
  if (rowsSums.length !== 3 * rows) rowsSums = new Float64Array(3 * rows);
  for (let b0 = 0; b0 < B; b0 += rows) {
    const m = Math.min(rows, B - b0);
    const e = m === rows ? rowsScratch : rowsScratch.subarray(0, m * V);
    n.sampleExpRows(logits.subarray(b0 * V, (b0 + m) * V), m, scale, e, rowsSums);
    for (let r = 0; r < m; r++) {
      const b = b0 + r;
      if (skip[b]) {
        out.push(undefined);
        continue;
      }
      const z = logits.subarray(b * V, (b + 1) * V);
      const row = rowsScratch.subarray(r * V, (r + 1) * V);
      out.push(draw(n, z, row, rowsSums[3 * r], rowsSums[3 * r + 1], rowsSums[3 * r + 2], o, rng));
    }
  }
  return out;
}

function sampleNative(
  n: NativeAddon,
  logits: Float32Array,
  o: SamplingOptions,
  rng: RandomStream | undefined,
): { token: number; logprob: number } {
  const V = logits.length;
  if (V === 0) return sampleTokenJs(logits, o, rng);
  const T = o.temperature ?? 1;
  const scale = T === 0 ? 1 : 1 / T;
  if (scratch.length !== V) scratch = new Float64Array(V);
  const e = scratch;
  n.sampleExpRow(logits, scale, e, sums);
  return draw(n, logits, e, sums[0], sums[1], sums[2], o, rng);
}

/** The rest of sampleToken from a row's exponentials e, their max, its index and their sum. */
function draw(
  n: NativeAddon,
  logits: Float32Array,
  e: Float64Array,
  max: number,
  arg: number,
  total: number,
  o: SamplingOptions,
  rng: RandomStream | undefined,
): { token: number; logprob: number } {
  return choose(logits, e, max, arg, total, o, rng, (r) => {
    // rng.categorical(e, 1) in one pass: its total is this total (the same sum in the same
    // order); a row it refuses (a NaN logit) goes to it, to throw its error.
    if (!(total > 0) || !Number.isFinite(total)) r.categorical(e, 1);
    return n.categoricalRow(e, r.nextDouble() * total);
  });
}

/**
 * The token and its log-probability under softmax(z/T) from a row's exponentials e (their max,
 * its index, their sum): greedy, top-k/top-p through `nucleus`, or `full`, the draw from all of e.
 */
function choose(
  logits: ArrayLike<number>,
  e: Float64Array,
  max: number,
  arg: number,
  total: number,
  o: SamplingOptions,
  rng: RandomStream | undefined,
  full: (rng: RandomStream) => number,
): { token: number; logprob: number } {
  const V = logits.length;
  const T = o.temperature ?? 1;
  const scale = T === 0 ? 1 : 1 / T;
  const logZ = Math.log(total);
  const logprob = (i: number) => (logits[i] - max) * scale - logZ;
  if (T === 0) return { token: arg, logprob: logprob(arg) };
  if (!rng)
    throw new TroupeError('BAD_ARGUMENT', 'sampling with temperature > 0 needs a random stream');
  const k = o.topK && o.topK < V ? o.topK : V;
  const p = o.topP ?? 1;
  const token = k < V || p < 1 ? rng.categorical(nucleus(e, total, k, p), 1)[0] : full(rng);
  return { token, logprob: logprob(token) };
}

/** sampleToken in JavaScript alone: what it computes where the addon is not loaded. */
export function sampleTokenJs(
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
  // log Σ exp(z/T) in float64, shifted by the max; the exponentials are kept for the draw.
  const e = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) {
    e[i] = Math.exp((logits[i] - max) * scale);
    total += e[i];
  }
  return choose(logits, e, max, arg, total, o, rng, (r) => r.categorical(e, 1)[0]); // it normalises
}

/**
 * The top-k / top-p filter: of the tokens in order of probability (ties: lower id first), keep
 * while fewer than k are kept and (none is, or their mass is below p); the rest get 0.
 * Sorting all V tokens per draw cost 23 ms at GPT-2's 50,257; the kept tokens are always the
 * most likely, so only the candidates above a threshold are sorted: all tokens ≥ t, t lowered
 * 16× at a time until they number k or weigh p (one pass over V each, usually one or two).
 *
 *   e: [V] unnormalised probabilities (e/total sums to 1)  →  [V] the kept ones, others 0
 */
export function nucleus(e: Float64Array, total: number, k: number, p: number): Float64Array {
  const V = e.length;
  let best = 0;
  for (let i = 0; i < V; i++) best = Math.max(best, e[i]);
  for (let t = best / 16; ; t = t < 1e-300 ? 0 : t / 16) {
    const candidates: number[] = [];
    let mass = 0;
    for (let i = 0; i < V; i++) {
      if (e[i] >= t) {
        candidates.push(i);
        mass += e[i] / total;
      }
    }
    const all = candidates.length === V;
    if (!all && candidates.length < k && mass < p) continue;
    candidates.sort((a, b) => e[b] - e[a] || a - b);
    const out = new Float64Array(V);
    let kept = 0;
    let sum = 0;
    while (kept < candidates.length && kept < k && (kept === 0 || sum < p)) {
      const i = candidates[kept++];
      out[i] = e[i];
      sum += e[i] / total;
    }
    // Stopped inside the candidates, by k, or over all V: the set a full sort keeps. (Otherwise
    // their mass reached p summed by id but not in order, a rounding difference: look further.)
    if (all || kept < candidates.length || kept === k) return out;
  }
}
