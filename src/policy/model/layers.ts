import { attentionInPlace, attnScores, attnValues } from '../../kernels/custom/native-attention.js';
import { ACTIVATION, FUSED } from '../../kernels/custom/native-fused.js';
import { nativeLinear } from '../../kernels/custom/native-linear.js';
import { scaledSoftmax } from '../../kernels/custom/native-rows.js';
import * as tf from '../../kernels/tf.js';

/**
 * The transformer's building blocks as pure functions over tensors. Shapes: B batch, T new tokens,
 * S keys (cached + new), d width, H query heads, KV key/value heads, hd head width.
 */

/**
 * tf.transpose(x, perm), as a reshape (no copy, no kernel) when it moves only axes of size 1
 * relative to the others: decoding one token (T = 1) made each layer's four head transposes
 * copies of what was already in order.
 */
export function permute(x: tf.Tensor, perm: readonly number[]): tf.Tensor {
  const moved = perm.filter((a) => (x.shape[a] as number) > 1);
  if (moved.every((a, i) => i === 0 || a > moved[i - 1])) {
    return tf.reshape(
      x,
      perm.map((a) => x.shape[a] as number),
    );
  }
  return tf.transpose(x, [...perm]);
}

/** y = x·W (+ b).  x: [..., in]  W: [in, out]  b: [out]  →  [..., out] */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const fused = nativeLinear(x, w, b); // one native kernel on wasm/cpu with the addon
  if (fused) return fused;
  const [inDim, outDim] = w.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const y = tf.matMul(tf.reshape(x, [-1, inDim]), w); // (N, out): 2-D, the fast form
  const out = b ? tf.add(y, b) : y;
  return tf.reshape(out, [...lead, outDim]);
}

/**
 * Whether Troupe's fused native `kernel` (src/kernels/custom/native-fused.ts) can take x and its
 * per-column parameters: registered for the active backend (wasm or cpu with the native addon),
 * everything float32, each parameter d values. Otherwise the composite ops below run.
 */
function fused(kernel: string, x: tf.Tensor, ...params: tf.Tensor[]): boolean {
  const d = x.shape[x.rank - 1];
  return (
    x.dtype === 'float32' &&
    params.every((p) => p.dtype === 'float32' && p.size === d) &&
    tf.getKernel(kernel, tf.getBackend()) !== undefined
  );
}

/** Whether TroupeRope takes these: registered here, float32, cos and sin [B, T, 1, dim]. */
function fusedRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): boolean {
  const [B, T, , hd] = x.shape as number[];
  const ok = (t: tf.Tensor) => {
    const [b, t1, one, dim] = t.shape as number[];
    return (
      t.dtype === 'float32' &&
      t.rank === 4 &&
      b === B &&
      t1 === T &&
      one === 1 &&
      dim % 2 === 0 &&
      dim <= hd
    );
  };
  return (
    x.dtype === 'float32' &&
    x.rank === 4 &&
    ok(cos) &&
    ok(sin) &&
    cos.shape[3] === sin.shape[3] &&
    tf.getKernel(FUSED.rope, tf.getBackend()) !== undefined
  );
}

/** Run a fused kernel and keep its first output (the others, row statistics, feed its gradient). */
function runFused(kernel: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap): tf.Tensor {
  const out = tf.engine().runKernel(kernel, inputs, attrs);
  if (!Array.isArray(out)) return out;
  tf.dispose(out.slice(1));
  return out[0];
}

/** LayerNorm over the last axis: (x − μ)/√(σ² + ε)·γ + β.  x: [..., d] */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  if (fused(FUSED.layerNorm, x, gamma, beta))
    return runFused(FUSED.layerNorm, { x, gamma, beta }, { eps });
  const axis = x.rank - 1;
  const mean = tf.mean(x, axis, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), axis, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

/** RMSNorm (Llama): x/√(mean(x²) + ε)·γ.  x: [..., d] */
export function rmsNorm(x: tf.Tensor, gamma: tf.Tensor, eps: number): tf.Tensor {
  if (fused(FUSED.rmsNorm, x, gamma)) return runFused(FUSED.rmsNorm, { x, gamma }, { eps });
  const ms = tf.mean(tf.square(x), x.rank - 1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), gamma);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation (GPT-2's `gelu_new`): ½x(1 + tanh(√(2/π)(x + 0.044715x³))), computed
 * as x·σ(2√(2/π)(x + 0.044715x³)) (½(1 + tanh u) = σ(2u)) with x³ as x·x·x. The same function;
 * on wasm it is ~8× cheaper than `pow` and `tanh` (profiled: those two were 31 % of a small
 * model's training step).
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  if (fused(FUSED.activation, x))
    return runFused(FUSED.activation, { x }, { kind: ACTIVATION.geluTanh });
  const x3 = tf.mul(tf.mul(x, x), x);
  return tf.mul(x, tf.sigmoid(tf.mul(tf.add(x, tf.mul(x3, 0.044715)), 2 * GELU_C)));
}

/** SiLU (swish): x·σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  if (fused(FUSED.activation, x))
    return runFused(FUSED.activation, { x }, { kind: ACTIVATION.silu });
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁] on the first `dim` = cos.shape[3]
 * channels of each head; the rest pass through (partial rotary, Phi-4-mini).
 *   x: [B, T, heads, hd]   cos, sin: [B, T, 1, dim]
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const hd = x.shape[3] as number;
  const dim = cos.shape[3] as number;
  const half = dim / 2;
  // one native pass (native-fused.ts TroupeRope: the same bits, forward and backward)
  if (fusedRope(x, cos, sin)) return runFused(FUSED.rope, { x, cos, sin }, { backward: 0 });
  if (dim < hd) {
    const [rot, pass] = tf.split(x, [dim, hd - dim], 3);
    return tf.concat([applyRope(rot, cos, sin), pass], 3);
  }
  const [x1, x2] = tf.split(x, [half, half], 3); // (B, T, heads, hd/2) each
  const rotated = tf.concat([tf.neg(x2), x1], 3); // (B, T, heads, hd)
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** How attention scores are formed and what is done to the probabilities. */
export interface AttentionOptions {
  /** Scores are q·k·scale (1/√hd by default). */
  readonly scale?: number;
  /** Soft-cap c: scores c·tanh(s/c) before the mask (Gemma 2). */
  readonly softcap?: number;
  /** Multiplies the probabilities (inverted dropout): [B, KV, rep·T, S]. */
  readonly dropoutMask?: tf.Tensor;
}

/**
 * Scaled dot-product attention with grouped-query heads, without repeating K/V: the `rep = H/KV`
 * query heads that share a key/value head are stacked along the query axis.
 *
 *   q: [B, T, H, hd]   k, v: [B, KV, S, hd]   bias: [B, 1, 1, T, S] (0 or −1e9)
 *   → [B, T, H·hd]
 */
export function attention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  bias: tf.Tensor,
  opts: AttentionOptions = {},
): tf.Tensor {
  const [B, T, H, hd] = q.shape as [number, number, number, number];
  const KV = k.shape[1] as number;
  const rep = H / KV;
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  // One key/value head per query head, on wasm/cpu with the addon: the products read q and
  // write the output with the heads where the projections put them (native-attention.ts), no
  // head split or merge; the same bits.
  const inPlace = attentionInPlace(q, k);
  // Head h = g·rep + r uses key/value head g (the order of HF's repeat_kv).
  const qg = inPlace
    ? q
    : tf.reshape(permute(tf.reshape(q, [B, T, KV, rep, hd]), [0, 2, 3, 1, 4]), [
        B,
        KV,
        rep * T,
        hd,
      ]);
  // softmax(q·kᵀ·scale + bias), the bias [B, T, S] broadcast over the KV·rep heads: one native
  // kernel on wasm/cpu with the addon (scale, add and softmax as one pass; 3 tfjs kernels forward
  // and 6 backward otherwise). A soft-cap goes between the scale and the bias.
  const scores = inPlace ? attnScores(q, k) : tf.matMul(qg, k, false, true); // (B, KV, rep·T, S)
  let probs: tf.Tensor;
  if (opts.softcap !== undefined) {
    const c = opts.softcap;
    const capped = tf.mul(tf.tanh(tf.mul(scores, scale / c)), c);
    probs = scaledSoftmax(capped, 1, bias, B);
  } else {
    probs = scaledSoftmax(scores, scale, bias, B);
  }
  if (opts.dropoutMask) probs = tf.mul(probs, opts.dropoutMask);
  if (inPlace) return tf.reshape(attnValues(probs, v), [B, T, H * hd]); // (B, T, H, hd) merged
  const out = tf.matMul(probs, v); // (B, KV, rep·T, hd)
  return tf.reshape(permute(tf.reshape(out, [B, KV, rep, T, hd]), [0, 3, 1, 2, 4]), [B, T, H * hd]);
}
