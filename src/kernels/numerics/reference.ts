/*
 * Slow, obvious references for the numerics in this folder: plain loops over typed arrays in
 * float64. Tests compare the tfjs versions against these, and differentiate these by finite
 * differences to check the tfjs gradients. Not for production use.
 */
import type { KlEstimatorName } from './kl.js';

type Arr = ArrayLike<number>;

/** (outer, n, inner) for reducing `shape` along `axis`: element (o, i, k) is at (o·n + i)·inner + k. */
function split(shape: readonly number[], axis: number) {
  const ax = axis < 0 ? axis + shape.length : axis;
  const outer = shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  return { outer, n: shape[ax], inner };
}

/** log-softmax of x (of `shape`) along `axis`. */
export function logSoftmax(x: Arr, shape: readonly number[], axis = -1): Float64Array {
  const { outer, n, inner } = split(shape, axis);
  const out = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < inner; k++) {
      const at = (i: number) => (o * n + i) * inner + k;
      let m = -Infinity;
      for (let i = 0; i < n; i++) m = Math.max(m, x[at(i)]);
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(x[at(i)] - m);
      for (let i = 0; i < n; i++) out[at(i)] = x[at(i)] - m - Math.log(s);
    }
  }
  return out;
}

/** log softmax(logits[r])[labels[r]] for each of the rows of `logits` ([rows, V] flat). */
export function logProbsFromLogits(logits: Arr, labels: Arr, V: number): Float64Array {
  const lsm = logSoftmax(logits, [labels.length, V]);
  return Float64Array.from(labels, (y, r) => lsm[r * V + y]);
}

/** −Σ_v p_v log p_v of softmax(logits[r]) for each row of `logits` ([rows, V] flat). */
export function entropyFromLogits(logits: Arr, V: number): Float64Array {
  const rows = logits.length / V;
  const lsm = logSoftmax(logits, [rows, V]);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < V; v++) out[r] -= Math.exp(lsm[r * V + v]) * lsm[r * V + v];
  }
  return out;
}

/** Σ x·m along `axis` of `shape`, or over everything when `axis` is unset. mask: x's shape. */
export function maskedSum(x: Arr, mask: Arr, shape: readonly number[], axis?: number) {
  const { outer, n, inner } =
    axis === undefined ? { outer: 1, n: x.length, inner: 1 } : split(shape, axis);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < inner; k++)
        out[o * inner + k] += x[(o * n + i) * inner + k] * mask[(o * n + i) * inner + k];
    }
  }
  return out;
}

/** Σ x·m / Σ m along `axis` (everything when unset); 0 where Σ m = 0. */
export function maskedMean(x: Arr, mask: Arr, shape: readonly number[], axis?: number) {
  const num = maskedSum(x, mask, shape, axis);
  const den = maskedSum(new Float64Array(x.length).fill(1), mask, shape, axis);
  return num.map((s, i) => (den[i] === 0 ? 0 : s / den[i]));
}

/** Masked variance over everything; × n/(n − 1) when `unbiased` and n = Σ m > 1. */
export function maskedVar(x: Arr, mask: Arr, unbiased = true): number {
  let n = 0;
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    n += mask[i];
    sum += x[i] * mask[i];
  }
  if (n === 0) return 0;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += (x[i] - mean) ** 2 * mask[i];
  const biased = ss / n;
  return unbiased && n > 1 ? (biased * n) / (n - 1) : biased;
}

/** (x − mean)/sqrt(var + 1e-8) (+ mean when !shiftMean), masked mean and unbiased variance. */
export function maskedWhiten(x: Arr, mask: Arr, shiftMean = true): Float64Array {
  const mean = maskedMean(x, mask, [x.length])[0];
  const scale = 1 / Math.sqrt(maskedVar(x, mask, true) + 1e-8);
  return Float64Array.from(x, (v) => (v - mean) * scale + (shiftMean ? 0 : mean));
}

/** Schulman's k1/k2/k3 per element, clamped to [−clamp, clamp] when given. */
export function klEstimate(
  name: KlEstimatorName,
  logp: Arr,
  logq: Arr,
  clamp?: number,
): Float64Array {
  return Float64Array.from(logp, (p, i) => {
    const logR = logq[i] - p; // log π_ref/π
    const k = name === 'k1' ? -logR : name === 'k2' ? 0.5 * logR * logR : Math.expm1(logR) - logR;
    return clamp === undefined ? k : Math.min(clamp, Math.max(-clamp, k));
  });
}
