import { nativeKernels } from '../native.js';
import * as tf from '../tf.js';
import { storageFor } from './native-batch-matmul.js';
import { registerNativeForward } from './native-forward.js';
import { type W16Matrix, w16AsF32 } from './native-w16-linear.js';
import type { WasmBackendLike } from './wasm-heap.js';

/**
 * `TroupeDecodeBlock`: one decoder block over the new tokens of a cached forward as one native
 * call (native/decode.c), on wasm and cpu with the addon. Decoding one token of the small model
 * ran ~26 tfjs kernels per layer (norms, projections, reshapes, cache concats, attention,
 * residuals), each a few µs of engine bookkeeping around less than that of arithmetic: the
 * dispatch was half of a batch-1 decoding step. The keys and values live in host buffers the
 * cache owns (`HostKV`), written in place at positions P.., so nothing is concatenated per step.
 * Forward only (generation): the kernel has no gradient.
 */
export const DECODE_BLOCK = 'TroupeDecodeBlock';

/** The block parameters the kernel takes, in its order (names after `layers.{l}.`). */
export const DECODE_PARAMS = [
  'attn_norm.weight',
  'attn_norm.bias',
  'attn.q.weight',
  'attn.q.bias',
  'attn.k.weight',
  'attn.k.bias',
  'attn.v.weight',
  'attn.v.bias',
  'attn.o.weight',
  'attn.o.bias',
  'mlp_norm.weight',
  'mlp_norm.bias',
  'mlp.gate.weight',
  'mlp.gate.bias',
  'mlp.up.weight',
  'mlp.up.bias',
  'mlp.down.weight',
  'mlp.down.bias',
  'attn.q_norm.weight',
  'attn.k_norm.weight',
  'attn_out_norm.weight',
  'mlp_out_norm.weight',
] as const;

/** One layer's cached keys and values on the host: [B, KV, capacity, hd] each, row-major. */
export interface HostKV {
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly capacity: number;
}

/** What the block computes with, besides its input and parameters. */
export interface DecodeBlockArgs {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly norm: 'layernorm' | 'rmsnorm';
  /** RMSNorm gains as 1 + γ (Gemma). */
  readonly normUnitOffset?: boolean;
  readonly mlp: 'gelu' | 'swiglu' | 'geglu';
  readonly eps: number;
  /** Attention scores q·k·scale; default 1/√headDim. */
  readonly queryScale?: number;
  /** Attention soft-cap c (scores c·tanh(s/c)); absent: none. */
  readonly attnSoftcap?: number;
  /** RMSNorm over each query and key head (`attn.q_norm`, `attn.k_norm` params). */
  readonly qkNorm?: boolean;
  /** Norms on the attention and MLP outputs before their residual adds. */
  readonly sandwichNorms?: boolean;
  /** Additive attention bias, [B, T, P+T] in any shape of that size. */
  readonly bias: tf.Tensor;
  /** RoPE tables, [B·T, rot] in any shape of that size (rot ≤ hd: partial rotary); absent with learned positions. */
  readonly rope?: { readonly cos: tf.Tensor; readonly sin: tf.Tensor };
  /** Tokens already in the cache. */
  readonly past: number;
  readonly cache: HostKV;
  /**
   * The seven projection weights stored as bf16 (native-w16-linear.ts), by DECODE_PARAMS name
   * (`attn.q.weight`, …): all of them or none; their float32 params are then not passed.
   */
  readonly weights16?: Partial<Record<(typeof DECODE_PARAMS)[number], W16Matrix>>;
}

/** The projection weights of a block, which `weights16` may give as bf16. */
export const DECODE_PROJECTIONS = [
  'attn.q.weight',
  'attn.k.weight',
  'attn.v.weight',
  'attn.o.weight',
  'mlp.gate.weight',
  'mlp.up.weight',
  'mlp.down.weight',
] as const;

const EMPTY = new Float32Array(0);

/** Register `TroupeDecodeBlock` for `tfBackend` (wasm or cpu) when the addon is built. */
export function installNativeDecode(tfBackend: string): string[] {
  return registerNativeForward<{
    dims: Int32Array;
    floats: Float64Array;
    cache: HostKV;
    weights16?: Partial<Record<string, Float32Array>>;
  }>(tfBackend, DECODE_BLOCK, 'native', ({ inputs, attrs, addon, s }) => {
    const { x, bias, cos, sin } = inputs;
    const y = s.output([...x.shape]); // views after the allocation (it can move the wasm heap)
    const { dims, floats, cache, weights16 } = attrs;
    const params = DECODE_PARAMS.map(
      (n) => weights16?.[n] ?? (inputs[n] ? s.view(inputs[n]) : EMPTY),
    );
    addon.decodeBlock(
      dims,
      floats,
      s.view(x),
      params,
      cos ? s.view(cos) : EMPTY,
      sin ? s.view(sin) : EMPTY,
      s.view(bias),
      cache.k,
      cache.v,
      y.values(),
    );
    return y.info;
  });
}

/** Whether the native decoder block is registered for the active backend. */
export function nativeDecodeAvailable(): boolean {
  return tf.getKernel(DECODE_BLOCK, tf.getBackend()) !== undefined;
}

/**
 * One block over x [B, T, d] with the cache `a.cache` (its first `a.past` positions filled; the
 * new keys and values are written after them).  `params` by DECODE_PARAMS name, float32; the
 * projections bf16 instead where `a.weights16` gives them.
 */
export function nativeDecodeBlock(
  x: tf.Tensor,
  params: Partial<Record<(typeof DECODE_PARAMS)[number], tf.Tensor>>,
  a: DecodeBlockArgs,
): tf.Tensor {
  const [B, T, d] = x.shape as [number, number, number];
  const dims = Int32Array.of(
    B,
    T,
    d,
    a.heads,
    a.kvHeads,
    a.headDim,
    a.intermediate,
    a.past,
    a.cache.capacity,
    a.norm === 'rmsnorm' ? (a.normUnitOffset ? 2 : 1) : 0,
    { gelu: 0, swiglu: 1, geglu: 2 }[a.mlp],
    a.rope ? a.rope.cos.size / (B * T) : a.headDim,
    a.qkNorm ? 1 : 0,
    a.sandwichNorms ? 1 : 0,
    a.weights16 ? 1 : 0,
  );
  const floats = Float64Array.of(
    a.eps,
    a.queryScale ?? 1 / Math.sqrt(a.headDim),
    a.attnSoftcap ?? 0,
  );
  const inputs: tf.NamedTensorMap = { x, bias: a.bias };
  if (a.rope) {
    inputs.cos = a.rope.cos;
    inputs.sin = a.rope.sin;
  }
  let weights16: Partial<Record<string, Float32Array>> | undefined;
  if (a.weights16) {
    weights16 = {};
    for (const n of DECODE_PROJECTIONS) {
      const w = a.weights16[n];
      if (w) weights16[n] = w16AsF32(w);
      else if (params[n])
        throw new Error(`nativeDecodeBlock: '${n}' is float32, the other projections bf16`);
    }
  }
  for (const n of DECODE_PARAMS) {
    const p = params[n];
    if (p && !weights16?.[n]) inputs[n] = p;
  }
  const attrs = { dims, floats, cache: a.cache, weights16 } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(DECODE_BLOCK, inputs, attrs) as tf.Tensor;
}

/**
 * `decodeStep` (native/decode.c): one decode step of a whole model (embedding, every block, the
 * final norm, the LM head) as one call, for T = 1 new token a row with float32 weights. Its
 * arguments, in order (see decode.c):
 *   dims [decodeBlock's 15 dims (T 1, w16 0), layers, vocab, tied (0/1), learned positions (0/1)]
 *   floats [eps, query scale, soft-cap (0: none), embedScale]
 *   ids, pos [B]; embed [V, d]; posEmbed [maxPositions, d] or empty; params: L·22 (DECODE_PARAMS
 *   per layer, empty where absent); finalW, finalB [d] (finalB empty: none); head [V, d] tied or
 *   [d, V]; keyMask [B, P+1] (1: a real key; the attention bias is built from it); cos, sin
 *   [B, rot] RoPE tables (rot: dims[11]) or both empty; cachesK, cachesV: L caches; logits [B, V]
 *   (written)
 */
export type DecodeStepFn = (
  dims: Int32Array,
  floats: Float64Array,
  ids: Int32Array,
  pos: Int32Array,
  embed: Float32Array,
  posEmbed: Float32Array,
  params: Float32Array[],
  finalW: Float32Array,
  finalB: Float32Array,
  head: Float32Array,
  keyMask: Uint8Array,
  cos: Float32Array,
  sin: Float32Array,
  cachesK: Float32Array[],
  cachesV: Float32Array[],
  logits: Float32Array,
) => void;

/**
 * The addon's decodeStep where it has one and the active backend is wasm or cpu (looked up at
 * each call, so that a profiler's wrapper of the addon's function is the one called).
 */
export function nativeDecodeStep(): DecodeStepFn | undefined {
  const backend = tf.getBackend();
  if (backend !== 'wasm' && backend !== 'cpu') return undefined;
  const n = nativeKernels();
  if (!n.available) return undefined;
  const f = (n.addon as unknown as { decodeStep?: DecodeStepFn }).decodeStep;
  return typeof f === 'function' ? f : undefined;
}

/**
 * Float32Array views of a fixed list of tensors' storage on the active backend (wasm or cpu),
 * taken once and re-taken only where they may have gone stale: another backend, the wasm heap
 * grown (which detaches every view of it), or a tensor's storage replaced (a variable assigned:
 * a new dataId) or disposed. An absent tensor's view is empty. Checking is one comparison a
 * tensor: what a decode step pays instead of looking 22 parameters up by name per layer.
 */
export class TensorViews {
  private views: Float32Array[] = [];
  private ids: unknown[] = [];
  private backend: unknown;
  private heap: ArrayBufferLike | undefined;

  constructor(private readonly tensors: readonly (tf.Tensor | undefined)[]) {}

  /** The views, in the order of the tensors. */
  get(): Float32Array[] {
    const backend = tf.backend();
    const heap = (backend as Partial<WasmBackendLike>).wasm?.HEAPU8.buffer;
    let fresh = this.backend === backend && this.heap === heap && this.views.length > 0;
    for (let i = 0; fresh && i < this.tensors.length; i++) {
      const t = this.tensors[i];
      if (t && (t.isDisposed || t.dataId !== this.ids[i])) fresh = false;
    }
    if (fresh) return this.views;
    const name = tf.getBackend();
    if (name !== 'wasm' && name !== 'cpu')
      throw new Error(`TensorViews: backend '${name}' keeps no host storage`);
    const s = storageFor(name, backend);
    this.views = this.tensors.map((t) => {
      if (!t) return EMPTY;
      if (t.isDisposed) throw new Error('TensorViews: a tensor was disposed');
      if (t.dtype !== 'float32')
        throw new Error(`TensorViews: a tensor is ${t.dtype}, not float32`);
      return s.view(t);
    });
    this.ids = this.tensors.map((t) => t?.dataId);
    this.backend = backend;
    this.heap = (backend as Partial<WasmBackendLike>).wasm?.HEAPU8.buffer;
    return this.views;
  }
}
