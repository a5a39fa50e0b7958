import { TroupeError } from '../../errors.js';
import { type NF4Matrix, nativeNF4Linear } from '../../kernels/custom/native-nf4-linear.js';
import * as tf from '../../kernels/tf.js';
import { type Projection, plainProjection } from '../model/block.js';
import type { CausalLM } from '../model/causal-lm.js';
import { DYNAMIC_CODE, dequantizeNF4, type NF4Tensor, nf4Bytes, quantizeNF4 } from './nf4.js';

/**
 * A model's frozen base stored as NF4 (QLoRA): every projection of every block — attention q, k,
 * v, o and the MLP's gate, up, down — is kept only as its NF4 matrix Q = Wᵀ [out, in] (the HF and
 * bitsandbytes layout) and leaves `model.params`; the embedding, the LM head, the norms, the
 * biases and any value/score head stay fp32 parameters, as bitsandbytes keeps them (transformers'
 * `load_in_4bit` quantises the `nn.Linear` layers and skips `lm_head`).
 *
 * The model's projection becomes x·Qᵀ + b through the native kernel (native/nf4.c: dequantised
 * tile by tile inside the matmul); where it is not registered (no addon, or webgpu) the whole of
 * one Q is dequantised for the call instead (a transient fp32 copy of one matrix).
 */
export class QuantizedBase {
  /** Troupe prefix (`layers.3.attn.q`) → its NF4 matrix [out, in]. */
  readonly matrices = new Map<string, NF4Matrix>();

  /** [in, out] of a quantised projection (the fp32 parameter's shape), or undefined. */
  shape(prefix: string): [number, number] | undefined {
    const q = this.matrices.get(prefix);
    return q ? [q.shape[1], q.shape[0]] : undefined;
  }

  /** Bytes the NF4 matrices hold. */
  get bytes(): number {
    let n = 0;
    for (const q of this.matrices.values()) n += nf4Bytes(q);
    return n;
  }

  /** Weights quantised. */
  get weights(): number {
    let n = 0;
    for (const q of this.matrices.values()) n += q.shape[0] * q.shape[1];
    return n;
  }

  add(prefix: string, q: NF4Tensor): void {
    this.matrices.set(prefix, { ...q, absmaxCode: DYNAMIC_CODE });
  }

  /** The model's projection over this base: x·Qᵀ + b for a quantised prefix, else x·W + b. */
  projection(): Projection {
    return (x, prefix, get) => {
      const q = this.matrices.get(prefix);
      if (!q) return plainProjection(x, prefix, get);
      const y = nf4Linear(x, q);
      const b = get(`${prefix}.bias`);
      return b ? tf.add(y, b) : y;
    };
  }
}

/** x·Qᵀ for x [..., in], Q [out, in] → [..., out]: the native kernel, else a whole dequantised Q. */
export function nf4Linear(x: tf.Tensor, q: NF4Matrix): tf.Tensor {
  const fast = nativeNF4Linear(x, q);
  if (fast) return fast;
  const [outDim, inDim] = q.shape;
  return tf.tidy(() => {
    const w = tf.tensor(dequantizeNF4(q), [outDim, inDim]);
    const y = tf.matMul(tf.reshape(x, [-1, inDim]), w, false, true); // (N, out)
    return tf.reshape(y, [...x.shape.slice(0, -1), outDim]);
  });
}

const BASES = new WeakMap<CausalLM, QuantizedBase>();

/** The NF4 base of a model, when it has one. */
export function quantizedBase(model: CausalLM): QuantizedBase | undefined {
  return BASES.get(model);
}

/** Projections a quantised base stores as NF4, for a block: `layers.{l}.attn.q`, …, `mlp.down`. */
export function quantizedPrefixes(model: Pick<CausalLM, 'config'>): string[] {
  const c = model.config;
  const out: string[] = [];
  for (let l = 0; l < c.layers; l++) {
    for (const p of ['attn.q', 'attn.k', 'attn.v', 'attn.o']) out.push(`layers.${l}.${p}`);
    if (c.mlp !== 'gelu') out.push(`layers.${l}.mlp.gate`);
    out.push(`layers.${l}.mlp.up`, `layers.${l}.mlp.down`);
  }
  return out;
}

/** [in, out] of a projection, fp32 or quantised. */
export function projectionShape(model: CausalLM, prefix: string): [number, number] {
  const shape = quantizedBase(model)?.shape(prefix) ?? model.params.get(`${prefix}.weight`)?.shape;
  if (!shape) throw new TroupeError('BAD_ARGUMENT', `Model has no projection '${prefix}'`);
  return [shape[0], shape[1]];
}

/**
 * Attach an NF4 base to `model`: `quantized` (prefix → Q [out, in]) replaces those projections'
 * fp32 weights, which must already be absent from `model.params` or are removed and disposed
 * here. Returns the base; the model's projection reads it from now on.
 */
export function attachQuantizedBase(model: CausalLM, base: QuantizedBase): QuantizedBase {
  if (BASES.has(model))
    throw new TroupeError('BAD_ARGUMENT', 'The model already has a quantised base');
  if (model.project !== plainProjection)
    throw new TroupeError(
      'BAD_ARGUMENT',
      'Quantise the base before attaching LoRA adapters (they sit on top of the NF4 projections)',
    );
  for (const prefix of base.matrices.keys()) {
    const name = `${prefix}.weight`;
    model.params.get(name)?.dispose();
    model.params.delete(name);
    model.specs.delete(name);
  }
  BASES.set(model, base);
  model.project = base.projection();
  return base;
}

/**
 * Quantise a model's projections in place (`quantizedPrefixes`), one matrix at a time: read it,
 * transpose to [out, in], quantise, dispose the fp32 variable. For a model already in memory
 * (a fresh one, or tests); `loadQuantizedModel` quantises a checkpoint without ever holding all
 * of its fp32 weights.
 */
export async function quantizeModel(model: CausalLM): Promise<QuantizedBase> {
  const base = new QuantizedBase();
  for (const prefix of quantizedPrefixes(model)) {
    const v = model.params.get(`${prefix}.weight`);
    if (!v) throw new TroupeError('BAD_ARGUMENT', `Model has no parameter '${prefix}.weight'`);
    const [inDim, outDim] = v.shape as [number, number];
    base.add(prefix, quantizeNF4(transpose(await readF32(v), inDim, outDim), [outDim, inDim]));
  }
  return attachQuantizedBase(model, base);
}

async function readF32(v: tf.Tensor): Promise<Float32Array> {
  return (await v.data()) as Float32Array;
}

/** [rows, cols] → [cols, rows], row-major. */
export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}
