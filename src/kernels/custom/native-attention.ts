import { type NativeAddon, nativeKernels } from '../native.js';
import { bf16Product } from '../precision.js';
import type { KernelFunc, TensorInfo } from '../tf.js';
import * as tf from '../tf.js';
import { storageFor } from './native-batch-matmul.js';

/**
 * Attention's two products with the heads where the projections put them (native/rows.c
 * gemmStrided), for one key/value head per query head (rep 1: GPT-2, most MHA models):
 *
 *   TroupeAttnScores  {q [B, T, H, hd], k [B, H, S, hd]}  → [B, H, T, S] = q·kᵀ per (b, h)
 *   TroupeAttnValues  {p [B, H, T, S], v [B, H, S, hd]}   → [B, T, H, hd] = p·v per (b, h)
 *
 * where the model split q's heads ([B, T, H, hd] → [B, H, T, hd], a Transpose) before q·kᵀ and
 * merged the output's after p·v, and their gradients transposed back. Each product, forward and
 * backward, is the sgemm the BatchMatMul (and its gradient, batch-matmul-grad.ts) runs on the
 * transposed copies, reading or writing the rows in place: the same bits. Under bf16 precision a
 * product of ≥ 32 rows runs on the bf16 kernel the same way (native/bf16.c bf16GemmStrided: its
 * packing reads the rows where they lie), the bits of the bf16 BatchMatMul on the transposed
 * copies. Only at T, S > 16 (the small-M product below orders its sums otherwise); elsewhere the
 * model keeps the transposes (layers.ts attention).
 *
 * Gradients run TroupeHeadsMatMul, the product with every layout an attribute.
 */
export const ATTN_SCORES = 'TroupeAttnScores';
export const ATTN_VALUES = 'TroupeAttnValues';
export const HEADS_MATMUL = 'TroupeHeadsMatMul';

/** The strided products' signature (the addon's bf16GemmStrided; gemmStrided's is the same). */
type StridedGemm = NonNullable<NativeAddon['bf16GemmStrided']>;

interface StridedAddon {
  gemmStrided: StridedGemm;
  /** The same products in bf16 with fp32 sums (an addon built before it has none). */
  bf16GemmStrided?: StridedGemm;
}

/** Whether the registered kernels can run bf16 products (the addon has bf16GemmStrided). */
let bf16Strided = false;

/** A product over B·H heads: op flags, [B, H, M, N, K], each operand's [per b, per h, ld]. */
interface Heads {
  ta: boolean;
  tb: boolean;
  dims: number[];
  la: number[];
  lb: number[];
  lc: number[];
  shape: number[];
}

/** The layouts: [B, T, H, hd] rows (heads in place), and dense per-head [B, H, R, C] blocks. */
const inPlace = (T: number, H: number, hd: number) => [T * H * hd, hd, H * hd];
const dense = (H: number, R: number, C: number) => [H * R * C, R * C, C];

/** scores = q·kᵀ: q [B, T, H, hd] in place, k [B, H, S, hd] → [B, H, T, S] */
function scores(B: number, T: number, H: number, hd: number, S: number): Heads {
  return {
    ta: false,
    tb: true,
    dims: [B, H, T, S, hd],
    la: inPlace(T, H, hd),
    lb: dense(H, S, hd),
    lc: dense(H, T, S),
    shape: [B, H, T, S],
  };
}

/** out = p·v: p [B, H, T, S], v [B, H, S, hd] → [B, T, H, hd] in place */
function values(B: number, T: number, H: number, hd: number, S: number): Heads {
  return {
    ta: false,
    tb: false,
    dims: [B, H, T, hd, S],
    la: dense(H, T, S),
    lb: dense(H, S, hd),
    lc: inPlace(T, H, hd),
    shape: [B, T, H, hd],
  };
}

/** dk = dSᵀ·q and dv = pᵀ·dout: a dense [T, S] per head, transposed, by in-place [T, hd] rows. */
const keyGrad = (B: number, T: number, H: number, hd: number, S: number): Heads => ({
  ta: true,
  tb: false,
  dims: [B, H, S, hd, T],
  la: dense(H, T, S),
  lb: inPlace(T, H, hd),
  lc: dense(H, S, hd),
  shape: [B, H, S, hd],
});

/** The gradients, as batch-matmul-grad.ts forms them for the dense products. */
const GRADS = {
  // scores = q·kᵀ: dq = dS·k (in place), dk = dSᵀ·q
  dq: (B: number, T: number, H: number, hd: number, S: number): Heads => ({
    ta: false,
    tb: false,
    dims: [B, H, T, hd, S],
    la: dense(H, T, S),
    lb: dense(H, S, hd),
    lc: inPlace(T, H, hd),
    shape: [B, T, H, hd],
  }),
  dk: keyGrad,
  // out = p·v: dp = dout·vᵀ (dout in place), dv = pᵀ·dout
  dp: (B: number, T: number, H: number, hd: number, S: number): Heads => ({
    ta: false,
    tb: true,
    dims: [B, H, T, S, hd],
    la: inPlace(T, H, hd),
    lb: dense(H, S, hd),
    lc: dense(H, T, S),
    shape: [B, H, T, S],
  }),
  // the same product's form: a dense [T, S] per head, transposed, by the in-place [T, hd] rows
  dv: keyGrad,
};

function product(addon: StridedAddon, backendName: 'wasm' | 'cpu') {
  return (a: TensorInfo, b: TensorInfo, h: Heads, backend: unknown): TensorInfo => {
    const s = storageFor(backendName, backend);
    const out = s.output(h.shape);
    // bf16 precision: a product of ≥ 32 rows (M) on the bf16 kernel, as the BatchMatMul decides
    const bf16 = addon.bf16GemmStrided !== undefined && bf16Product(h.dims[2]);
    (bf16 ? (addon.bf16GemmStrided as StridedGemm) : addon.gemmStrided).call(
      addon,
      h.ta,
      h.tb,
      Int32Array.from(h.dims),
      s.view(a),
      Int32Array.from(h.la),
      s.view(b),
      Int32Array.from(h.lb),
      out.values(),
      Int32Array.from(h.lc),
    );
    return out.info;
  };
}

type Call = {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs: Record<string, unknown>;
};

/** [B, T, H, hd, S] of a forward's inputs, checked (a clear error naming them). */
function dimsOf(kernel: string, x: TensorInfo, kv: TensorInfo, q: boolean): number[] {
  const bad = (why: string) => {
    throw new Error(`${kernel}: ${why}; got [${x.shape}] and [${kv.shape}]`);
  };
  if (x.dtype !== 'float32' || kv.dtype !== 'float32') bad('inputs must be float32');
  if (x.shape.length !== 4 || kv.shape.length !== 4) bad('inputs must have 4 axes');
  const [B, H, S, hd] = kv.shape;
  if (q) {
    const [Bq, T, Hq, hdq] = x.shape; // q [B, T, H, hd]
    if (Bq !== B || Hq !== H || hdq !== hd) bad('q [B, T, H, hd] and k [B, H, S, hd] do not fit');
    return [B, T, H, hd, S];
  }
  const [Bp, Hp, T, Sp] = x.shape; // p [B, H, T, S]
  if (Bp !== B || Hp !== H || Sp !== S) bad('p [B, H, T, S] and v [B, H, S, hd] do not fit');
  return [B, T, H, hd, S];
}

function kernels(addon: StridedAddon, backendName: 'wasm' | 'cpu'): [string, KernelFunc][] {
  const run = product(addon, backendName);
  return [
    [
      ATTN_SCORES,
      (({ inputs, backend }: Call) => {
        const d = dimsOf(ATTN_SCORES, inputs.q, inputs.k, true);
        return run(inputs.q, inputs.k, scores(d[0], d[1], d[2], d[3], d[4]), backend);
      }) as unknown as KernelFunc,
    ],
    [
      ATTN_VALUES,
      (({ inputs, backend }: Call) => {
        const d = dimsOf(ATTN_VALUES, inputs.p, inputs.v, false);
        return run(inputs.p, inputs.v, values(d[0], d[1], d[2], d[3], d[4]), backend);
      }) as unknown as KernelFunc,
    ],
    [
      HEADS_MATMUL,
      (({ inputs, backend, attrs }: Call) =>
        run(inputs.a, inputs.b, attrs as unknown as Heads, backend)) as unknown as KernelFunc,
    ],
  ];
}

const heads = (a: tf.Tensor, b: tf.Tensor, h: Heads): tf.Tensor =>
  tf.engine().runKernel(HEADS_MATMUL, { a, b }, h as unknown as tf.NamedAttrMap) as tf.Tensor;

const GRAD_CONFIGS: tf.GradConfig[] = [
  {
    kernelName: ATTN_SCORES,
    inputsToSave: ['q', 'k'],
    gradFunc: (dy, [q, k]) => {
      const [B, T, H, hd] = q.shape as [number, number, number, number];
      const S = k.shape[2] as number;
      const dS = dy as tf.Tensor;
      return {
        q: () => heads(dS, k, GRADS.dq(B, T, H, hd, S)),
        k: () => heads(dS, q, GRADS.dk(B, T, H, hd, S)),
      };
    },
  },
  {
    kernelName: ATTN_VALUES,
    inputsToSave: ['p', 'v'],
    gradFunc: (dy, [p, v]) => {
      const [B, H, T, S] = p.shape as [number, number, number, number];
      const hd = v.shape[3] as number;
      const dout = dy as tf.Tensor;
      return {
        p: () => heads(dout, v, GRADS.dp(B, T, H, hd, S)),
        v: () => heads(p, dout, GRADS.dv(B, T, H, hd, S)),
      };
    },
  },
];

/**
 * Whether attention over q [B, T, H, hd] and keys [B, KV, S, hd] can run on these kernels here:
 * registered for the active backend, one key/value head per query head, T and S past the
 * small-M product's 16 rows, and, where some product would be bf16, the addon's bf16 kernel.
 */
export function attentionInPlace(q: tf.Tensor, k: tf.Tensor): boolean {
  const [, T, H] = q.shape as number[];
  const [, KV, S] = k.shape as number[];
  return (
    H === KV &&
    T > 16 &&
    S > 16 &&
    (bf16Strided || !bf16Product(Math.max(T, S))) &&
    q.dtype === 'float32' &&
    k.dtype === 'float32' &&
    tf.getKernel(ATTN_SCORES, tf.getBackend()) !== undefined
  );
}

/** q·kᵀ per head, q [B, T, H, hd] as the projection made it, k [B, H, S, hd] → [B, H, T, S] */
export function attnScores(q: tf.Tensor, k: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(ATTN_SCORES, { q, k }) as tf.Tensor;
}

/** p·v per head, p [B, H, T, S], v [B, H, S, hd] → [B, T, H, hd] (the heads merged in place) */
export function attnValues(p: tf.Tensor, v: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(ATTN_VALUES, { p, v }) as tf.Tensor;
}

/** Register the kernels for `tfBackend` ('wasm' or 'cpu' with the addon) and the gradients. */
export function installNativeAttention(tfBackend: string): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  const addon = native.addon as NativeAddon & Partial<StridedAddon>;
  if (typeof addon.gemmStrided !== 'function') return []; // an older addon: the transposes run
  bf16Strided = typeof addon.bf16GemmStrided === 'function';
  for (const g of GRAD_CONFIGS) if (!tf.getGradient(g.kernelName)) tf.registerGradient(g);
  const added: string[] = [];
  for (const [name, kernelFunc] of kernels(addon as StridedAddon, tfBackend)) {
    if (tf.getKernel(name, tfBackend)) continue;
    tf.registerKernel({ kernelName: name, backendName: tfBackend, kernelFunc });
    added.push(`${tfBackend}:${name}(native)`);
  }
  return added;
}
