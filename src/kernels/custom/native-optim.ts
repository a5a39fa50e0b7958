import { type NativeAddon, nativeKernels } from '../native.js';
import type { DataId, KernelConfig, KernelFunc, TensorInfo } from '../tf.js';
import * as tf from '../tf.js';
import { f32View, sizeOf, type WasmBackendLike } from './wasm-heap.js';

/**
 * The optimizer side of a training step on the native addon (native/host.c): host loops for
 * gradient accumulation and clipping, and AdamW as one pass per parameter (the `TroupeAdamW`
 * kernel on the wasm and cpu backends, in place of ~10 tfjs kernels). Each has a plain JS
 * equivalent with the same arithmetic, used without the addon and where `setNativeOptim(false)`
 * asks for it (tests and benchmarks compare the two; TROUPE_NATIVE is read once per process).
 */

/** The fused AdamW kernel: inputs param, grad, m, v; three new outputs param′, m′, v′. */
export const ADAMW_KERNEL = 'TroupeAdamW';

/** AdamW's per-parameter scalars, as `NativeAddon.adamwStep` takes them. */
export interface AdamWScalars {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** 0 for a parameter that is not decayed. */
  readonly weightDecay: number;
  /** 1 − β₁ᵗ and 1 − β₂ᵗ. */
  readonly bc1: number;
  readonly bc2: number;
  /** The gradient is float32(g·gradScale) (the caller's mean and clip factor). */
  readonly gradScale: number;
}

let forcedOff = false;

/** Force the plain JS optimizer paths (false), or allow the native ones again (true). */
export function setNativeOptim(on: boolean): void {
  forcedOff = !on;
}

/** The addon when the native optimizer paths are on: built, loaded, not turned off. */
export function nativeOptim(): NativeAddon | undefined {
  if (forcedOff) return undefined;
  const n = nativeKernels();
  return n.available ? n.addon : undefined;
}

/** Whether `TroupeAdamW` runs on the active backend now (wasm or cpu, addon on). */
export function nativeAdamWKernel(): boolean {
  return nativeOptim() !== undefined && tf.getKernel(ADAMW_KERNEL, tf.getBackend()) !== undefined;
}

/**
 * Host loops over float32 arrays, native or JS (same results but for sumSquares' order): the
 * addon's own signatures (native.ts documents each).
 */
export type HostLoops = Pick<
  NativeAddon,
  'axpy' | 'axpyMany' | 'sumSquares' | 'scale' | 'sumSquaresMany'
>;

const jsLoops: HostLoops = {
  axpy(y, offset, x, alpha) {
    for (let i = 0; i < x.length; i++) y[offset + i] += x[i] * alpha;
  },
  axpyMany(y, offsets, xs, alpha) {
    for (const [k, x] of xs.entries()) jsLoops.axpy(y, offsets[k], x, alpha);
  },
  sumSquares(x) {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    return s;
  },
  scale(x, alpha) {
    for (let i = 0; i < x.length; i++) x[i] *= alpha;
  },
  sumSquaresMany(xs) {
    let s = 0;
    for (const x of xs) s += jsLoops.sumSquares(x);
    return s;
  },
};

/** The native host loops when the addon is on, else the JS ones. */
export function hostLoops(): HostLoops {
  return nativeOptim() ?? jsLoops;
}

interface CpuBackendLike {
  data: { get(dataId: DataId): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

type Kind = 'wasm' | 'cpu';

/** Which of the two backends with host memory holds `t`'s data (undefined: another one). */
function kindOf(t: tf.Tensor): { kind: Kind; backend: unknown } | undefined {
  const engine = tf.engine();
  const backend = engine.state.tensorInfo.get(t.dataId)?.backend;
  if (backend === undefined) return undefined;
  const kind = (['wasm', 'cpu'] as const).find((k) => engine.registry[k] === backend);
  return kind && { kind, backend };
}

function view(kind: Kind, backend: unknown, t: TensorInfo): Float32Array | undefined {
  if (kind === 'wasm') return f32View(backend as WasmBackendLike, t);
  const values = (backend as CpuBackendLike).data.get(t.dataId)?.values;
  return values instanceof Float32Array ? values : undefined;
}

/**
 * A float32 tensor's own storage, without the copy `data()` makes: a view into the wasm heap
 * (valid until the next wasm allocation: use it at once) or the cpu backend's array. Read only:
 * tensors share storage. Undefined on other backends.
 */
export function hostView(t: tf.Tensor): Float32Array | undefined {
  if (t.dtype !== 'float32' || t.isDisposed) return undefined;
  const at = kindOf(t);
  return at && view(at.kind, at.backend, t);
}

/** A new float32 output on `kind`'s backend, and a way to its storage (after every allocation). */
function output(kind: Kind, backend: unknown, shape: number[]) {
  if (kind === 'wasm') {
    const info = (backend as WasmBackendLike).makeOutput(shape, 'float32');
    return { info, values: () => f32View(backend as WasmBackendLike, info) };
  }
  const values = new Float32Array(sizeOf(shape));
  const info = (backend as CpuBackendLike).makeTensorInfo(shape, 'float32', values);
  return { info, values: () => values };
}

function adamwArgs(s: AdamWScalars) {
  return [s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.bc1, s.bc2, s.gradScale] as const;
}

/**
 * AdamW for one parameter whose moments live on the host (the offloaded optimizer): writes the
 * new parameter into a new tensor (the variable's storage may be shared, so it is never written)
 * and updates `m` and `v` in place. The gradient is a host array or a float32 tensor on the
 * parameter's backend. Undefined, with nothing done, where either is not on the wasm or cpu
 * backend or the addon is off.
 */
export function adamwHost(
  param: tf.Tensor,
  grad: Float32Array | tf.Tensor,
  m: Float32Array,
  v: Float32Array,
  s: AdamWScalars,
): tf.Tensor | undefined {
  const addon = nativeOptim();
  const host = grad instanceof Float32Array ? grad : undefined;
  const at = hostView(param) && kindOf(param);
  if (!addon || !at || (!host && hostView(grad as tf.Tensor) === undefined)) return undefined;
  if (!host && kindOf(grad as tf.Tensor)?.backend !== at.backend) return undefined;
  const out = output(at.kind, at.backend, [...param.shape]);
  // Views after the allocation, which may have moved the wasm heap.
  const p = view(at.kind, at.backend, param)!;
  const g = host ?? view(at.kind, at.backend, grad as tf.Tensor)!;
  addon.adamwStep(p, g, m, v, ...adamwArgs(s), out.values(), m, v);
  return tf.engine().makeTensorFromTensorInfo(out.info, at.backend as tf.KernelBackend);
}

interface AdamWKernelArgs {
  inputs: { param: TensorInfo; grad: TensorInfo; m: TensorInfo; v: TensorInfo };
  backend: unknown;
  attrs: AdamWScalars;
}

function adamwKernel(addon: NativeAddon, kind: Kind): KernelConfig {
  return {
    kernelName: ADAMW_KERNEL,
    backendName: kind,
    kernelFunc: ((args: AdamWKernelArgs) => {
      const { param, grad, m, v } = args.inputs;
      for (const [name, t] of Object.entries(args.inputs)) {
        if (t.dtype !== 'float32' || sizeOf(t.shape) !== sizeOf(param.shape)) {
          throw new Error(
            `${ADAMW_KERNEL}: ${name} must be float32 of param's size ${sizeOf(param.shape)}`,
          );
        }
      }
      const shape = [...param.shape];
      const outs = [0, 1, 2].map(() => output(kind, args.backend, shape));
      const at = (t: TensorInfo) => {
        const x = view(kind, args.backend, t);
        if (!x) throw new Error(`${ADAMW_KERNEL}: an input has no float32 storage`);
        return x;
      };
      addon.adamwStep(
        at(param),
        at(grad),
        at(m),
        at(v),
        ...adamwArgs(args.attrs),
        outs[0].values(),
        outs[1].values(),
        outs[2].values(),
      );
      return outs.map((o) => o.info);
    }) as unknown as KernelFunc,
  };
}

/**
 * AdamW on the device in one kernel per parameter: `[param′, m′, v′]`, new tensors (never
 * written into the inputs). The caller assigns them to its variables.
 */
export function adamwDevice(
  param: tf.Tensor,
  grad: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  s: AdamWScalars,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(ADAMW_KERNEL, { param, grad, m, v }, { ...s }) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
}

/** Registers `TroupeAdamW` for the wasm or cpu backend (the addon is available). */
export function installNativeOptim(tfBackend: string): string[] {
  const n = nativeKernels();
  if (!n.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  if (!tf.getKernel(ADAMW_KERNEL, tfBackend)) tf.registerKernel(adamwKernel(n.addon, tfBackend));
  return [`${tfBackend}:${ADAMW_KERNEL}(native fused AdamW)`];
}
