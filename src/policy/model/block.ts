import {
  DECODE_PARAMS,
  DECODE_PROJECTIONS,
  type HostKV,
  nativeDecodeAvailable,
  nativeDecodeBlock,
} from '../../kernels/custom/native-decode.js';
import { kvExpand } from '../../kernels/custom/native-kv.js';
import { nativeLinear3 } from '../../kernels/custom/native-linear.js';
import type { W16Matrix } from '../../kernels/custom/native-w16-linear.js';
import * as tf from '../../kernels/tf.js';
import type { ModelConfig } from '../config.js';
import {
  applyRope,
  attention,
  geluTanh,
  layerNorm,
  linear,
  permute,
  rmsNorm,
  silu,
} from './layers.js';

/** Looks a parameter up by its full name (`layers.3.attn.q.weight`); undefined if absent. */
export type ParamLookup = (name: string) => tf.Tensor | undefined;

/**
 * A projection by prefix (`layers.3.attn.q`): x·W + b, plus whatever the model adds to it
 * (LoRA adapters). The default is the plain linear layer.
 */
export type Projection = (x: tf.Tensor, prefix: string, get: ParamLookup) => tf.Tensor;

export const plainProjection: Projection = (x, prefix, get) =>
  linear(x, need(get, `${prefix}.weight`), get(`${prefix}.bias`));

/**
 * Inverted-dropout masks for one training forward (values 0 or 1/(1 − rate)), drawn from a
 * seeded stream keyed by `purpose`: the same purpose gives the same mask, so a checkpointed
 * block recomputed in backward drops the same units.
 */
export type DropoutMasks = (purpose: string, shape: number[], rate: number) => tf.Tensor;

/** What every block of one forward pass shares (for the layer being run). */
export interface BlockContext {
  readonly config: ModelConfig;
  /** Additive attention bias [B, 1, 1, T, S] of this layer's kind (causal, or sliding window). */
  readonly bias: tf.Tensor;
  /** RoPE tables [B, T, 1, rotaryDim] of this layer's kind (rope models only). */
  readonly rope?: { readonly cos: tf.Tensor; readonly sin: tf.Tensor };
  readonly project: Projection;
  /** Present while training with dropout. */
  readonly dropout?: DropoutMasks;
  /** A frozen model's matrices held as bf16 (bf16-weights.ts), and its projection over them. */
  readonly weights16?: {
    get(name: string): W16Matrix | undefined;
    readonly projection: Projection;
  };
}

export function need(get: ParamLookup, name: string): tf.Tensor {
  const t = get(name);
  if (!t) throw new Error(`missing parameter '${name}'`);
  return t;
}

/** The model's norm at `prefix` over the last axis (RMSNorm's gain as 1 + γ for Gemma). */
export function norm(x: tf.Tensor, prefix: string, get: ParamLookup, c: ModelConfig): tf.Tensor {
  const gamma = need(get, `${prefix}.weight`);
  if (c.norm === 'layernorm') return layerNorm(x, gamma, need(get, `${prefix}.bias`), c.normEps);
  return rmsNorm(x, c.normUnitOffset ? tf.add(gamma, 1) : gamma, c.normEps);
}

function drop(x: tf.Tensor, ctx: BlockContext, purpose: string, rate: number): tf.Tensor {
  if (!ctx.dropout || rate === 0) return x;
  return tf.mul(x, ctx.dropout(purpose, [...x.shape], rate));
}

/**
 * One pre-norm transformer block: x + attn(norm(x)), then + mlp(norm(·)); with sandwich norms
 * (Gemma) each sub-layer's output is normed again before its residual add.
 *
 *   x: [B, T, d]   past: cached keys/values [B, KV, P, hd], or with `rows` ([B] int32) those of
 *   D prompts [D, KV, P, hd], row b continuing prompt rows[b] (KVCache.expand)
 *   → h: [B, T, d], k, v: [B, KV, P + T, hd] (the keys/values to cache)
 */
export function block(
  x: tf.Tensor,
  layer: number,
  get: ParamLookup,
  ctx: BlockContext,
  past?: { k: tf.Tensor; v: tf.Tensor; rows?: tf.Tensor },
): { h: tf.Tensor; k: tf.Tensor; v: tf.Tensor } {
  const c = ctx.config;
  const [B, T] = x.shape;
  const p = `layers.${layer}`;
  const a = norm(x, `${p}.attn_norm`, get, c);
  const [q0, k0, v0] = qkvProjection(a, p, get, ctx);
  let q = tf.reshape(q0, [B, T, c.heads, c.headDim]);
  let k = tf.reshape(k0, [B, T, c.kvHeads, c.headDim]);
  const vNew = tf.reshape(v0, [B, T, c.kvHeads, c.headDim]);
  if (c.qkNorm) {
    q = norm(q, `${p}.attn.q_norm`, get, c); // per head, over hd
    k = norm(k, `${p}.attn.k_norm`, get, c);
  }
  if (ctx.rope) {
    q = applyRope(q, ctx.rope.cos, ctx.rope.sin);
    k = applyRope(k, ctx.rope.cos, ctx.rope.sin);
  }
  let kAll: tf.Tensor;
  let vAll: tf.Tensor;
  if (past?.rows) {
    // the cached rows of D prompts, each row of this batch continuing past.rows[b]'s
    kAll = expandedKV(past.k, past.rows, k); // (B, KV, P+T, hd)
    vAll = expandedKV(past.v, past.rows, vNew);
  } else {
    kAll = permute(k, [0, 2, 1, 3]); // (B, KV, T, hd)
    vAll = permute(vNew, [0, 2, 1, 3]); // (B, KV, T, hd)
    if (past) {
      kAll = tf.concat([past.k, kAll], 2); // (B, KV, P+T, hd)
      vAll = tf.concat([past.v, vAll], 2);
    }
  }
  const S = kAll.shape[2] as number;
  const rate = c.dropout.attention;
  const att = attention(q, kAll, vAll, ctx.bias, {
    scale: c.queryScale,
    softcap: c.attnSoftcap,
    dropoutMask:
      ctx.dropout && rate > 0
        ? ctx.dropout(`attn/${layer}`, [B, c.kvHeads, (c.heads / c.kvHeads) * T, S], rate)
        : undefined,
  }); // (B, T, H·hd)
  let o = ctx.project(att, `${p}.attn.o`, get); // (B, T, d)
  if (c.sandwichNorms) o = norm(o, `${p}.attn_out_norm`, get, c);
  const h1 = tf.add(x, drop(o, ctx, `resid_attn/${layer}`, c.dropout.residual));
  const m = norm(h1, `${p}.mlp_norm`, get, c);
  const inner =
    c.mlp === 'gelu'
      ? geluTanh(ctx.project(m, `${p}.mlp.up`, get))
      : tf.mul(
          (c.mlp === 'swiglu' ? silu : geluTanh)(ctx.project(m, `${p}.mlp.gate`, get)),
          ctx.project(m, `${p}.mlp.up`, get),
        ); // (B, T, I)
  let out = ctx.project(inner, `${p}.mlp.down`, get); // (B, T, d)
  if (c.sandwichNorms) out = norm(out, `${p}.mlp_out_norm`, get, c);
  const h = tf.add(h1, drop(out, ctx, `resid_mlp/${layer}`, c.dropout.residual));
  return { h, k: kAll, v: vAll };
}

/**
 * The attention's q, k and v projections of the normed a [..., d]: with the plain projections
 * under bf16 products one native call (nativeLinear3: a rounded to bf16 and packed once, each
 * output the bits its own projection gives it); otherwise (fp32, LoRA, no addon) three.
 */
function qkvProjection(
  a: tf.Tensor,
  p: string,
  get: ParamLookup,
  ctx: BlockContext,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const [nq, nk, nv] = [`${p}.attn.q`, `${p}.attn.k`, `${p}.attn.v`];
  if (ctx.project === plainProjection) {
    const one = nativeLinear3(
      a,
      [need(get, `${nq}.weight`), need(get, `${nk}.weight`), need(get, `${nv}.weight`)],
      [get(`${nq}.bias`), get(`${nk}.bias`), get(`${nv}.bias`)],
    );
    if (one) return one;
  }
  return [ctx.project(a, nq, get), ctx.project(a, nk, get), ctx.project(a, nv, get)];
}

/**
 * The cached keys (or values) of D prompts joined with a batch's new ones, row b continuing
 * prompt rows[b]: one native pass on wasm/cpu (kvExpand), else the copy of the prompt rows, the
 * head split and the concatenation. The same values either way (moved, never computed).
 *   past [D, KV, P, hd]   rows [B] int32   fresh [B, T, KV, hd]  →  [B, KV, P + T, hd]
 */
function expandedKV(past: tf.Tensor, rows: tf.Tensor, fresh: tf.Tensor): tf.Tensor {
  return (
    kvExpand(past, rows, fresh) ??
    tf.concat([tf.gather(past, rows), permute(fresh, [0, 2, 1, 3])], 2)
  );
}

/**
 * Whether a cached forward can run each block as the native decoder block (native-decode.ts):
 * registered for the active backend, plain projections (LoRA adds its own) or those over bf16
 * weights, float32 input.
 */
export function canDecodeNatively(x: tf.Tensor, ctx: BlockContext): boolean {
  return (
    x.dtype === 'float32' &&
    (ctx.project === plainProjection || ctx.project === ctx.weights16?.projection) &&
    nativeDecodeSupports(ctx.config) &&
    nativeDecodeAvailable()
  );
}

/** The config switches the native decoder block implements (the others run block()). */
export function nativeDecodeSupports(c: ModelConfig): boolean {
  return c.norm === 'rmsnorm' || (!c.qkNorm && !c.sandwichNorms && !c.normUnitOffset);
}

/**
 * block() for the new tokens of a cached forward as one native kernel, reading and extending the
 * host cache `kv` (its first `past` positions filled).  x: [B, T, d] → [B, T, d]
 */
export function nativeBlock(
  x: tf.Tensor,
  layer: number,
  get: ParamLookup,
  ctx: BlockContext,
  kv: HostKV,
  past: number,
): tf.Tensor {
  const c = ctx.config;
  const params: Partial<Record<(typeof DECODE_PARAMS)[number], tf.Tensor>> = {};
  for (const n of DECODE_PARAMS) params[n] = get(`layers.${layer}.${n}`);
  const held = ctx.weights16;
  const w16 = held && ctx.project === held.projection ? held : undefined;
  const weights16: Partial<Record<(typeof DECODE_PARAMS)[number], W16Matrix>> = {};
  for (const n of DECODE_PROJECTIONS) {
    const w = w16?.get(`layers.${layer}.${n}`);
    if (w) weights16[n] = w;
  }
  return nativeDecodeBlock(x, params, {
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    intermediate: c.intermediate,
    norm: c.norm,
    normUnitOffset: c.normUnitOffset,
    mlp: c.mlp,
    eps: c.normEps,
    queryScale: c.queryScale,
    attnSoftcap: c.attnSoftcap,
    qkNorm: c.qkNorm,
    sandwichNorms: c.sandwichNorms,
    bias: ctx.bias,
    rope: ctx.rope,
    past,
    cache: kv,
    weights16: Object.keys(weights16).length > 0 ? weights16 : undefined,
  });
}
