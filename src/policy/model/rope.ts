import * as tf from '../../kernels/tf.js';
import { layerAttention, type ModelConfig, type RopeScaling, rotaryDim } from '../config.js';

/**
 * Rotary position embeddings: the inverse frequencies of each RoPE variant transformers has
 * (`modeling_rope_utils.py`: default, linear, dynamic NTK, YaRN, Llama-3.1) and the cos/sin tables
 * in the Hugging Face rotate-half layout. PyTorch computes the frequencies in float32; so does this
 * (each step rounded with Math.fround), so the tables agree with transformers' to the last bit or
 * two rather than to float32-vs-float64 noise that grows with the position.
 */

const f = Math.fround;

/** One RoPE: its base, its rescaling, and the cos/sin factor it implies. */
export interface RopeSpec {
  readonly theta: number;
  readonly scaling?: RopeScaling;
}

/** The RoPE of a layer kind: sliding layers have their own base where the config gives one (Gemma 3). */
export function ropeSpecFor(c: ModelConfig, kind: 'full' | 'sliding'): RopeSpec {
  if (kind === 'sliding' && c.ropeLocalTheta !== undefined) return { theta: c.ropeLocalTheta };
  return { theta: c.ropeTheta, scaling: c.ropeScaling };
}

/** base^(−2i/dim) for i < dim/2, as float32: 1 / base ** (arange(0, dim, 2).float() / dim). */
function plainInvFreq(base: number, dim: number): Float64Array {
  const out = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(f(base) ** f((2 * i) / dim)));
  return out;
}

/**
 * Inverse frequencies (dim/2 of them) and the factor cos/sin are multiplied by, for a forward
 * whose longest position is `seqLen − 1` (only dynamic NTK depends on it).
 */
export function ropeFrequencies(
  spec: RopeSpec,
  dim: number,
  maxPositions: number,
  seqLen: number,
): { invFreq: Float64Array; attentionFactor: number } {
  const s = spec.scaling;
  const base = spec.theta;
  if (s === undefined) return { invFreq: plainInvFreq(base, dim), attentionFactor: 1 };
  switch (s.type) {
    case 'linear': {
      // positions divided by factor = frequencies divided by it
      const inv = plainInvFreq(base, dim).map((x) => f(x / s.factor));
      return { invFreq: inv, attentionFactor: 1 };
    }
    case 'dynamic': {
      // NTK-aware: past maxPositions, base·((factor·L/max) − (factor − 1))^(dim/(dim−2))
      const L = Math.max(seqLen, maxPositions);
      const grown = f(
        f(base) * f(f(f(f(s.factor * L) / maxPositions) - f(s.factor - 1)) ** f(dim / (dim - 2))),
      );
      return { invFreq: plainInvFreq(grown, dim), attentionFactor: 1 };
    }
    case 'yarn':
      return yarnFrequencies(s, base, dim);
    case 'llama3':
      return { invFreq: llama3Frequencies(s, base, dim), attentionFactor: 1 };
  }
}

/**
 * YaRN (Peng et al. 2023): frequencies that rotate more than β_fast times over the original
 * context are kept (extrapolation), those below β_slow are divided by `factor`
 * (interpolation), with a linear ramp between; cos/sin are scaled by 0.1·ln(factor) + 1.
 */
function yarnFrequencies(
  s: Extract<RopeScaling, { type: 'yarn' }>,
  base: number,
  dim: number,
): { invFreq: Float64Array; attentionFactor: number } {
  const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  const attentionFactor =
    s.attentionFactor ??
    (s.mscale && s.mscaleAllDim
      ? mscale(s.factor, s.mscale) / mscale(s.factor, s.mscaleAllDim)
      : mscale(s.factor));
  const betaFast = s.betaFast ?? 32;
  const betaSlow = s.betaSlow ?? 1;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (s.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // as transformers: no zero-width ramp
  const half = dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const posFreq = f(f(base) ** f((2 * i) / dim));
    const extrapolation = f(1 / posFreq);
    const interpolation = f(1 / f(s.factor * posFreq));
    const ramp = Math.min(1, Math.max(0, f(f(i - low) / f(high - low))));
    const keep = f(1 - ramp); // weight of the extrapolated frequency
    inv[i] = f(f(interpolation * f(1 - keep)) + f(extrapolation * keep));
  }
  return { invFreq: inv, attentionFactor };
}

/**
 * Llama 3.1: wavelengths shorter than original/highFreqFactor are kept, longer than
 * original/lowFreqFactor divided by `factor`, and those between blended smoothly.
 */
function llama3Frequencies(
  s: Extract<RopeScaling, { type: 'llama3' }>,
  base: number,
  dim: number,
): Float64Array {
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return plainInvFreq(base, dim).map((inv) => {
    const wavelen = f(f(2 * Math.PI) / inv);
    const scaled = wavelen > lowWavelen ? f(inv / s.factor) : inv;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f(
      f(f(s.originalMaxPositions / wavelen) - s.lowFreqFactor) /
        (s.highFreqFactor - s.lowFreqFactor),
    );
    return f(f(f(1 - smooth) * f(scaled / s.factor)) + f(smooth * scaled));
  });
}

/**
 * cos and sin tables for positions [B·T] (rotate-half layout: the dim/2 angles p·invFreq, twice),
 * each multiplied by the attention factor. `freq(b)` gives row b's frequencies (they differ by row
 * only for dynamic NTK, whose base depends on the row's length).  → cos, sin: [B, T, 1, dim]
 */
export function ropeTables(
  positions: Int32Array,
  B: number,
  T: number,
  dim: number,
  freq: (row: number) => { invFreq: Float64Array; attentionFactor: number },
): { cos: tf.Tensor; sin: tf.Tensor } {
  const half = dim / 2;
  const cos = new Float32Array(B * T * dim);
  const sin = new Float32Array(B * T * dim);
  for (let b = 0; b < B; b++) {
    const { invFreq, attentionFactor } = freq(b);
    const scale = f(attentionFactor);
    for (let n = b * T; n < (b + 1) * T; n++) {
      for (let i = 0; i < half; i++) {
        const angle = f(positions[n] * invFreq[i]);
        const c = scale === 1 ? Math.cos(angle) : f(Math.cos(angle)) * scale;
        const s = scale === 1 ? Math.sin(angle) : f(Math.sin(angle)) * scale;
        cos[n * dim + i] = c;
        cos[n * dim + i + half] = c;
        sin[n * dim + i] = s;
        sin[n * dim + i + half] = s;
      }
    }
  }
  return { cos: tf.tensor(cos, [B, T, 1, dim]), sin: tf.tensor(sin, [B, T, 1, dim]) };
}

/** The highest position a config's model may be run at + 1 (dynamic NTK extends it by `factor`). */
export function positionLimit(c: ModelConfig): number {
  if (c.positions === 'rope' && c.ropeScaling?.type === 'dynamic')
    return Math.floor(c.maxPositions * c.ropeScaling.factor);
  return c.maxPositions;
}

/**
 * The RoPE tables of one forward for each layer kind it has (one pair when every layer shares
 * one RoPE): positions [B·T] → tables [B, T, 1, rotaryDim].
 */
export function forwardRope(
  c: ModelConfig,
  positions: Int32Array,
  B: number,
  T: number,
): { full?: { cos: tf.Tensor; sin: tf.Tensor }; sliding?: { cos: tf.Tensor; sin: tf.Tensor } } {
  if (c.positions !== 'rope') return {};
  const dim = rotaryDim(c);
  // Dynamic NTK's base follows each row's own length (transformers: the batch's longest), so a
  // row's outputs do not depend on the other rows of its batch.
  const rowLength = (b: number) => {
    let m = 0;
    for (let t = 0; t < T; t++) m = Math.max(m, positions[b * T + t]);
    return m + 1;
  };
  const kinds = new Set(Array.from({ length: c.layers }, (_, l) => layerAttention(c, l)));
  const table = (kind: 'full' | 'sliding') => {
    const spec = ropeSpecFor(c, kind);
    const fixed =
      spec.scaling?.type === 'dynamic'
        ? undefined
        : ropeFrequencies(spec, dim, c.maxPositions, c.maxPositions);
    return ropeTables(
      positions,
      B,
      T,
      dim,
      (b) => fixed ?? ropeFrequencies(spec, dim, c.maxPositions, rowLength(b)),
    );
  };
  const full = kinds.has('full') ? table('full') : undefined;
  const sharesOne = c.ropeLocalTheta === undefined;
  const sliding = kinds.has('sliding') ? (sharesOne && full ? full : table('sliding')) : undefined;
  return { full, sliding };
}
