import { type NativeAddon, nativeKernels } from '../native.js';
import {
  concat,
  engine,
  type GradConfig,
  getGradient,
  getKernel,
  type KernelFunc,
  mul,
  type NamedAttrMap,
  neg,
  registerGradient,
  registerKernel,
  reshape,
  slice,
  split,
  sum,
  type Tensor,
  type TensorInfo,
} from '../tf.js';
import { type Storage, storageFor } from './native-batch-matmul.js';
import { sizeOf } from './wasm-heap.js';

/**
 * Fused native kernels (native/fused.c) for the wasm and cpu backends: LayerNorm, RMSNorm and the
 * GELU-tanh and SiLU activations, forward and backward, each one C loop instead of a dozen tfjs
 * element-wise kernels (profiled: ~30 % of a small GPT-2's training step). Inputs of any rank are
 * normalised over the last axis. Model code calls them through `tf.engine().runKernel` only where
 * the active backend has them registered (src/policy/model/layers.ts); the composite ops remain
 * for webgpu and machines without the addon.
 *
 *   TroupeLayerNorm      {x, gamma, beta} {eps}       → [y, mean, rstd]
 *   TroupeLayerNormGrad  {dy, x, gamma, mean, rstd}   → [dx, dgamma, dbeta]
 *   TroupeRmsNorm        {x, gamma} {eps}             → [y, rstd]
 *   TroupeRmsNormGrad    {dy, x, gamma, rstd}         → [dx, dgamma]
 *   TroupeActivation     {x} {kind}                   → y        (kind 0 GELU tanh, 1 SiLU)
 *   TroupeActivationGrad {x, dy} {kind}               → dx
 *   TroupeRope           {x, cos, sin} {backward}     → y        (x [B, T, H, hd], cos, sin
 *                                                                  [B, T, 1, dim], dim ≤ hd)
 *
 * mean and rstd ([..., 1]) exist for the backward: gradients flowing into them are ignored.
 */
export const FUSED = {
  layerNorm: 'TroupeLayerNorm',
  layerNormGrad: 'TroupeLayerNormGrad',
  rmsNorm: 'TroupeRmsNorm',
  rmsNormGrad: 'TroupeRmsNormGrad',
  activation: 'TroupeActivation',
  activationGrad: 'TroupeActivationGrad',
  rope: 'TroupeRope',
} as const;

/** `kind` of TroupeActivation. */
export const ACTIVATION = { geluTanh: 0, silu: 1 } as const;

type Inputs = Record<string, TensorInfo>;
type Impl = (inputs: Inputs, attrs: NamedAttrMap, s: Storage) => TensorInfo | TensorInfo[];

/** [rows, cols] of x seen as rows of its last axis, after checking dtypes and parameter sizes. */
function rowsOf(kernel: string, inputs: Inputs, params: string[]): [number, number] {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== 'float32') throw new Error(`${kernel}: ${name} is ${t.dtype}, not float32`);
  }
  const { x } = inputs;
  if (x.shape.length === 0) throw new Error(`${kernel}: x must have at least one axis`);
  const cols = x.shape[x.shape.length - 1];
  for (const p of params) {
    if (sizeOf(inputs[p].shape) !== cols) {
      throw new Error(
        `${kernel}: ${p} has shape [${inputs[p].shape}], expected ${cols} values (x's last axis)`,
      );
    }
  }
  return [cols === 0 ? 0 : sizeOf(x.shape) / cols, cols];
}

/** The shape of one value per row: x's with the last axis 1. */
function rowShape(x: TensorInfo): number[] {
  return [...x.shape.slice(0, -1), 1];
}

function sameShape(kernel: string, a: TensorInfo, b: TensorInfo, names: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${kernel}: ${names} differ in shape: [${a.shape}] and [${b.shape}]`);
  }
}

function layerNorm(addon: NativeAddon): Impl {
  return ({ x, gamma, beta }, attrs, s) => {
    const [rows, cols] = rowsOf(FUSED.layerNorm, { x, gamma, beta }, ['gamma', 'beta']);
    const y = s.output([...x.shape]);
    const mean = s.output(rowShape(x));
    const rstd = s.output(rowShape(x));
    if (rows > 0 && cols > 0) {
      addon.layerNormForward(
        s.view(x),
        s.view(gamma),
        s.view(beta),
        rows,
        cols,
        attrs.eps as number,
        y.values(),
        mean.values(),
        rstd.values(),
      );
    }
    return [y.info, mean.info, rstd.info];
  };
}

function layerNormGrad(addon: NativeAddon): Impl {
  return ({ dy, x, gamma, mean, rstd }, _attrs, s) => {
    const k = FUSED.layerNormGrad;
    const [rows, cols] = rowsOf(k, { x, dy, gamma, mean, rstd }, ['gamma']);
    sameShape(k, x, dy, 'x and dy');
    if (sizeOf(mean.shape) !== rows || sizeOf(rstd.shape) !== rows) {
      throw new Error(`${k}: mean and rstd need ${rows} values, one per row`);
    }
    const dx = s.output([...x.shape]);
    const dgamma = s.output([...gamma.shape]);
    const dbeta = s.output([...gamma.shape]);
    if (rows > 0 && cols > 0) {
      addon.layerNormBackward(
        s.view(dy),
        s.view(x),
        s.view(gamma),
        s.view(mean),
        s.view(rstd),
        rows,
        cols,
        dx.values(),
        dgamma.values(),
        dbeta.values(),
      );
    } else {
      dgamma.values().fill(0); // no rows: nothing summed (wasm outputs start uninitialised)
      dbeta.values().fill(0);
    }
    return [dx.info, dgamma.info, dbeta.info];
  };
}

function rmsNorm(addon: NativeAddon): Impl {
  return ({ x, gamma }, attrs, s) => {
    const [rows, cols] = rowsOf(FUSED.rmsNorm, { x, gamma }, ['gamma']);
    const y = s.output([...x.shape]);
    const rstd = s.output(rowShape(x));
    if (rows > 0 && cols > 0) {
      addon.rmsNormForward(
        s.view(x),
        s.view(gamma),
        rows,
        cols,
        attrs.eps as number,
        y.values(),
        rstd.values(),
      );
    }
    return [y.info, rstd.info];
  };
}

function rmsNormGrad(addon: NativeAddon): Impl {
  return ({ dy, x, gamma, rstd }, _attrs, s) => {
    const k = FUSED.rmsNormGrad;
    const [rows, cols] = rowsOf(k, { x, dy, gamma, rstd }, ['gamma']);
    sameShape(k, x, dy, 'x and dy');
    if (sizeOf(rstd.shape) !== rows)
      throw new Error(`${k}: rstd needs ${rows} values, one per row`);
    const dx = s.output([...x.shape]);
    const dgamma = s.output([...gamma.shape]);
    if (rows > 0 && cols > 0) {
      addon.rmsNormBackward(
        s.view(dy),
        s.view(x),
        s.view(gamma),
        s.view(rstd),
        rows,
        cols,
        dx.values(),
        dgamma.values(),
      );
    } else {
      dgamma.values().fill(0);
    }
    return [dx.info, dgamma.info];
  };
}

function activation(addon: NativeAddon): Impl {
  return ({ x }, attrs, s) => {
    rowsOf(FUSED.activation, { x }, []);
    const y = s.output([...x.shape]);
    addon.activationForward(attrs.kind as number, s.view(x), y.values());
    return y.info;
  };
}

function activationGrad(addon: NativeAddon): Impl {
  return ({ x, dy }, attrs, s) => {
    rowsOf(FUSED.activationGrad, { x, dy }, []);
    sameShape(FUSED.activationGrad, x, dy, 'x and dy');
    const dx = s.output([...x.shape]);
    addon.activationBackward(attrs.kind as number, s.view(x), s.view(dy), dx.values());
    return dx.info;
  };
}

/** [B·T, heads, hd, dim] of a TroupeRope call, after checking dtypes and shapes. */
export function ropeDims(x: TensorInfo, cos: TensorInfo, sin: TensorInfo): number[] {
  const k = FUSED.rope;
  for (const [name, t] of Object.entries({ x, cos, sin })) {
    if (t.dtype !== 'float32') throw new Error(`${k}: ${name} is ${t.dtype}, not float32`);
  }
  if (x.shape.length !== 4)
    throw new Error(`${k}: x must be [B, T, heads, headDim], got [${x.shape}]`);
  const [B, T, H, hd] = x.shape;
  for (const [name, t] of Object.entries({ cos, sin })) {
    const [b, t1, one, dim] = t.shape;
    if (t.shape.length !== 4 || b !== B || t1 !== T || one !== 1 || dim % 2 !== 0 || dim > hd) {
      throw new Error(
        `${k}: ${name} must be [${B}, ${T}, 1, dim] with dim even and ≤ ${hd}, got [${t.shape}]`,
      );
    }
  }
  if (cos.shape[3] !== sin.shape[3]) {
    throw new Error(`${k}: cos and sin differ in shape: [${cos.shape}] and [${sin.shape}]`);
  }
  return [B * T, H, hd, cos.shape[3]];
}

/**
 * x·cos + rotate_half(x)·sin on each head's first dim channels (the rest copied), or with
 * `backward` 1 its transpose (x then the output's gradient): native/fused.c rope, the bits of
 * layers.ts's composite and of its gradient.
 */
function rope(addon: NativeAddon): Impl {
  return ({ x, cos, sin }, attrs, s) => {
    const [rows, heads, hd, dim] = ropeDims(x, cos, sin);
    const y = s.output([...x.shape]);
    if (rows > 0 && heads > 0 && dim > 0) {
      addon.rope(
        s.view(x),
        s.view(cos),
        s.view(sin),
        y.values(),
        rows,
        heads,
        hd,
        dim,
        attrs.backward ? 1 : 0,
      );
    }
    return y.info;
  };
}

const IMPLS: [string, (addon: NativeAddon) => Impl][] = [
  [FUSED.layerNorm, layerNorm],
  [FUSED.layerNormGrad, layerNormGrad],
  [FUSED.rmsNorm, rmsNorm],
  [FUSED.rmsNormGrad, rmsNormGrad],
  [FUSED.activation, activation],
  [FUSED.activationGrad, activationGrad],
  [FUSED.rope, rope],
];

/**
 * The rotated channels' gradients of cos and sin (never needed by a model: its tables are
 * constants), as tfjs ops: Σ over heads of dy·x and dy·rotate_half(x) on the first dim channels.
 */
function ropeTableGrads(dy: Tensor, x: Tensor, dim: number, backward: boolean) {
  const half = dim / 2;
  const rot = (t: Tensor) => slice(t, [0, 0, 0, 0], [-1, -1, -1, dim]);
  // forward: y = x·c + R(x)·s, so dc = Σ_h dy·x, ds = Σ_h dy·R(x) with R(x) = [−x₂, x₁];
  // backward form (x = g): y = g·c + Rᵀ(g·s), so dc = Σ_h dy·g, ds = Σ_h R(dy)·g
  const turn = (t: Tensor) => {
    const [a, b] = split(rot(t), [half, half], 3);
    return concat([neg(b), a], 3);
  };
  return {
    cos: () => sum(mul(rot(dy), rot(x)), 2, true),
    sin: () => sum(backward ? mul(turn(dy), rot(x)) : mul(rot(dy), turn(x)), 2, true),
  };
}

function run(name: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap = {}): Tensor[] {
  const out = engine().runKernel(name, inputs, attrs);
  return Array.isArray(out) ? out : [out];
}

/** `t` reshaped to `like`'s shape (the kernel gives dbeta gamma's shape). */
function as(t: Tensor, like: Tensor): Tensor {
  return t.shape.length === like.shape.length && t.shape.every((d, i) => d === like.shape[i])
    ? t
    : reshape(t, like.shape);
}

// The backward kernel runs once per node, outside the per-input tidies, so that its outputs
// outlive the first input's gradient; the engine's backward scope disposes the unused ones.
const GRADS: GradConfig[] = [
  {
    kernelName: FUSED.layerNorm,
    inputsToSave: ['x', 'gamma', 'beta'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, saved) => {
      const [x, gamma, beta, mean, rstd] = saved;
      const dy = (dys as Tensor[])[0];
      const [dx, dgamma, dbeta] = run(FUSED.layerNormGrad, { dy, x, gamma, mean, rstd });
      return { x: () => dx, gamma: () => dgamma, beta: () => as(dbeta, beta) };
    },
  },
  {
    kernelName: FUSED.rmsNorm,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved) => {
      const [x, gamma, rstd] = saved;
      const dy = (dys as Tensor[])[0];
      const [dx, dgamma] = run(FUSED.rmsNormGrad, { dy, x, gamma, rstd });
      return { x: () => dx, gamma: () => dgamma };
    },
  },
  {
    // the transpose of either form is the other
    kernelName: FUSED.rope,
    inputsToSave: ['x', 'cos', 'sin'],
    gradFunc: (dy, saved, attrs) => {
      const [x, cos, sin] = saved;
      const backward = Boolean(attrs.backward);
      const g = dy as Tensor;
      return {
        x: () => run(FUSED.rope, { x: g, cos, sin }, { backward: backward ? 0 : 1 })[0],
        ...ropeTableGrads(g, x, cos.shape[3] as number, backward),
      };
    },
  },
  {
    kernelName: FUSED.activation,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({
      x: () => run(FUSED.activationGrad, { x: saved[0], dy: dy as Tensor }, attrs)[0],
    }),
  },
];

/**
 * Register the fused kernels for `tfBackend` ('wasm' or 'cpu'; others get none) and their
 * gradients (once per thread). Kernels already registered are kept. Returns what it added.
 */
export function installNativeFused(tfBackend: string): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  for (const g of GRADS) if (!getGradient(g.kernelName)) registerGradient(g);
  const added: string[] = [];
  for (const [name, make] of IMPLS) {
    if (getKernel(name, tfBackend)) continue;
    const impl = make(native.addon);
    const kernelFunc = (({ inputs, backend, attrs }) =>
      impl(inputs as Inputs, attrs ?? {}, storageFor(tfBackend, backend))) as KernelFunc;
    registerKernel({ kernelName: name, backendName: tfBackend, kernelFunc });
    added.push(`${tfBackend}:${name}(native)`);
  }
  return added;
}
