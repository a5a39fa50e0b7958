import { logSoftmaxPick } from '../../kernels/custom/native-rows.js';
import {
  W16_PANEL,
  type W16Matrix,
  w16Buffer,
  w16Linear,
} from '../../kernels/custom/native-w16-linear.js';
import { nativeKernels } from '../../kernels/native.js';
import * as tf from '../../kernels/tf.js';
import type { Projection } from './block.js';
import { plainProjection } from './block.js';

/**
 * A frozen model's matrices held as bfloat16 (precision bf16: the generator, the reference and
 * the reward model): every block projection (attention q, k, v, o, the MLP's gate, up, down), the
 * embedding and an untied LM head, each in the panels native/bf16.c bf16LinearW reads (half the
 * bytes of float32); the norms, biases, learned positions and the value / score heads stay fp32
 * parameters. The embedding is kept as Eᵀ [d, V], which is the tied LM head's weight as it is;
 * a token's row is gathered from its column. Everything reads it through the model
 * (CausalLM.weights16): the projections and the head through the bf16 kernel (TroupeW16Linear),
 * a cached forward through the native decoder block with bf16 weights.
 */
export class Bf16Weights {
  /** Parameter name (`layers.3.attn.q.weight`, `embed.weight` as Eᵀ, `lm_head.weight`) → bits. */
  readonly matrices = new Map<string, W16Matrix>();

  readonly projection: Projection = (x, prefix, get) => {
    const w = this.matrices.get(`${prefix}.weight`);
    return w ? w16Linear(x, w, get(`${prefix}.bias`)) : plainProjection(x, prefix, get);
  };

  get(name: string): W16Matrix | undefined {
    return this.matrices.get(name);
  }

  /** Bytes the bf16 matrices hold (their panels' padding included). */
  get bytes(): number {
    let n = 0;
    for (const w of this.matrices.values()) n += w.bits.byteLength;
    return n;
  }

  /** The head's weight [d, V]: the embedding's Eᵀ when tied, else `lm_head.weight`. */
  head(tied: boolean): W16Matrix | undefined {
    return this.matrices.get(tied ? 'embed.weight' : 'lm_head.weight');
  }

  /** Rows of the embedding for ids [B, T] → [B, T, d] (exact: every bf16 value is a float32). */
  embed(ids: Int32Array, shape: readonly [number, number]): tf.Tensor {
    const e = this.matrices.get('embed.weight');
    if (!e) throw new Error('Bf16Weights: no embedding held');
    const [d, V] = e.shape;
    const out = new Float32Array(ids.length * d);
    const u = new Uint32Array(out.buffer);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(id >= 0 && id < V)) throw new RangeError(`token id ${id} is outside [0, ${V})`);
      const base = Math.floor(id / W16_PANEL) * d * W16_PANEL + (id % W16_PANEL);
      for (let j = 0; j < d; j++) u[t * d + j] = e.bits[base + j * W16_PANEL] << 16;
    }
    return tf.tensor(out, [shape[0], shape[1], d], 'float32');
  }

  /**
   * Round `data` into the matrix `name` already held (a weight sync), as `holdBf16` stored it:
   * [in, out] for a projection or the LM head, [V, d] for the embedding (stored as Eᵀ).
   */
  assign(name: string, shape: readonly number[], data: Float32Array): void {
    const w = this.matrices.get(name);
    if (!w) throw new Error(`Bf16Weights: '${name}' is not held as bf16`);
    const [inDim, outDim] = w.shape;
    const want = name === 'embed.weight' ? [outDim, inDim] : [inDim, outDim];
    if (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1]) {
      throw new RangeError(`Bf16Weights: '${name}' is [${want}], got [${shape}]`);
    }
    if (name === 'embed.weight') embeddingToPanels(data, outDim, inDim, w.bits);
    else toPanels(data, inDim, outDim, w.bits);
  }

  /** A held matrix as the float32 parameter it stands for ([V, d] for the embedding). */
  widen(name: string): { shape: number[]; data: Float32Array } {
    const w = this.matrices.get(name);
    if (!w) throw new Error(`Bf16Weights: '${name}' is not held as bf16`);
    const [inDim, outDim] = w.shape;
    const data = new Float32Array(inDim * outDim);
    const u = new Uint32Array(data.buffer);
    const embed = name === 'embed.weight';
    for (let k = 0; k < inDim; k++)
      for (let n = 0; n < outDim; n++) {
        const bits = w.bits[(Math.floor(n / W16_PANEL) * inDim + k) * W16_PANEL + (n % W16_PANEL)];
        u[embed ? n * inDim + k : k * outDim + n] = bits << 16;
      }
    return { shape: embed ? [outDim, inDim] : [inDim, outDim], data };
  }

  /** Hold `name` ([in, out], or the embedding [V, d]) from its float32 data. */
  add(name: string, shape: readonly [number, number], data: Float32Array): void {
    const embed = name === 'embed.weight';
    const [inDim, outDim] = embed ? [shape[1], shape[0]] : shape;
    const w: W16Matrix = { shape: [inDim, outDim], bits: w16Buffer(inDim, outDim) };
    this.matrices.set(name, w);
    this.assign(name, shape, data);
  }
}

/** float32 → bfloat16 bits, round to nearest even (a NaN stays a NaN): native/bf16.c's to_bf16. */
export function bf16Bits(x: number, scratch = new Float32Array(1)): number {
  scratch[0] = x;
  const u = new Uint32Array(scratch.buffer, scratch.byteOffset, 1)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** W [inDim, outDim] rounded into bf16LinearW's panels: natively where the addon is built. */
function toPanels(src: Float32Array, inDim: number, outDim: number, dst: Uint16Array): void {
  const native = nativeKernels();
  if (native.available) {
    native.addon.toBf16Panels(src, inDim, outDim, dst);
    return;
  }
  const scratch = new Float32Array(1);
  dst.fill(0);
  for (let k = 0; k < inDim; k++)
    for (let n = 0; n < outDim; n++) {
      const at = (Math.floor(n / W16_PANEL) * inDim + k) * W16_PANEL + (n % W16_PANEL);
      dst[at] = bf16Bits(src[k * outDim + n], scratch);
    }
}

/**
 * The embedding E [V, d] rounded into the panels of Eᵀ [d, V], one panel (32 tokens) at a time:
 * each panel's [d, 32] block of Eᵀ is gathered and rounded alone (panel p is the d · 32 values
 * from p · d · 32), so no [d, V] transposed copy of the embedding is made (545 MB at Qwen's
 * 151936 × 896).
 */
function embeddingToPanels(e: Float32Array, V: number, d: number, dst: Uint16Array): void {
  const block = new Float32Array(d * W16_PANEL);
  for (let n0 = 0; n0 < V; n0 += W16_PANEL) {
    const w = Math.min(W16_PANEL, V - n0);
    for (let j = 0; j < w; j++) {
      const row = (n0 + j) * d;
      for (let k = 0; k < d; k++) block[k * w + j] = e[row + k];
    }
    const at = (n0 / W16_PANEL) * d * W16_PANEL;
    toPanels(block.subarray(0, d * w), d, w, dst.subarray(at, at + d * W16_PANEL));
  }
}

/** Rows of the LM head's logits per chunk (≈ 8M logits, 32 MB, as lm-head.ts). */
const CHUNK_LOGITS = 1 << 23;

/**
 * log-softmax(h·W)[label] per row for a bf16 head W [d, V] (forward only: a frozen model's
 * head), never more than a chunk of the [N, V] logits at once.
 *   h: [N, d]   labels: [N] int32  →  [N]
 */
export function bf16HeadLogProbs(h: tf.Tensor, w: W16Matrix, labels: tf.Tensor): tf.Tensor {
  const N = h.shape[0] as number;
  const V = w.shape[1];
  const rows = Math.max(32, Math.floor(CHUNK_LOGITS / V));
  return tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    for (let b = 0; b < N; b += rows) {
      const c = Math.min(rows, N - b);
      // each chunk in its own tidy: its [c, V] logits go before the next chunk's are made
      parts.push(
        tf.tidy(() => {
          const hc = c === N ? h : tf.slice(h, [b, 0], [c, -1]);
          const y = c === N ? labels : tf.slice(labels, [b], [c]);
          return logSoftmaxPick(w16Linear(hc, w), y)[0];
        }),
      );
    }
    return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
  });
}
