import { type AdamWScalars, hostView, nativeOptim } from '../../kernels/custom/native-optim.js';
import { stockWasmBatchMatMul } from '../../kernels/custom/wasm-batch-matmul.js';
import { f32View, type WasmBackendLike } from '../../kernels/custom/wasm-heap.js';
import * as tf from '../../kernels/tf.js';

/*
 * AdamW in place on the cpu backend. The fused kernel (TroupeAdamW) returns a new parameter and
 * new moments, and the variables take them: right on wasm, whose malloc reuses a freed block at
 * once, but on the cpu backend every step leaves the old arrays (3 × the trainable weights) to
 * V8's garbage collector, which does not run inside the optimizer's loop. Measured on a
 * Qwen2.5-shaped model (166 M parameters, full fine-tune, cpu backend): peak RSS 5.0 GB against
 * 3.0 GB of live tensors; a 1.1 B model would need ~13 GB more than its tensors. Where no other
 * tensor shares a variable's array (tfjs shares storage between a tensor and its reshapes and
 * clones, counted by the backend's refCount), writing it in place is invisible to everything but
 * that variable, so the update writes the parameter and both moments where they are: the same
 * native loop (adamwStep), the same numbers.
 *
 * On wasm the same holds (the backend counts references too) and pays for another reason: a fresh
 * output is three more streams of writes to memory that is not in cache. `adamwInPlaceMany` takes
 * every such parameter of a step in one native call (adamwSteps, on the BLAS threads): measured
 * on the 10.9 M-parameter bench model (wasm, 1 thread, Intel Xeon VM): 43 ms for the per-tensor
 * kernels with fresh outputs, 24 ms in place in one call.
 */

interface CpuBackendLike {
  refCount(dataId: object): number;
  data: { get(dataId: object): { values?: unknown } | undefined };
}

/**
 * The cpu backend's own float32 array of `t` when nothing else shares it, so it may be written in
 * place; undefined on other backends or when another tensor holds the same storage.
 */
export function ownCpuArray(t: tf.Tensor | Float32Array): Float32Array | undefined {
  if (t instanceof Float32Array) return t;
  if (t.dtype !== 'float32' || t.isDisposed) return undefined;
  const engine = tf.engine();
  const backend = engine.state.tensorInfo.get(t.dataId)?.backend as unknown;
  if (backend === undefined || backend !== engine.registry.cpu) return undefined;
  const cpu = backend as CpuBackendLike;
  if (cpu.refCount(t.dataId) !== 1) return undefined;
  const values = cpu.data.get(t.dataId)?.values;
  return values instanceof Float32Array ? values : undefined;
}

interface WasmOwnerLike extends WasmBackendLike {
  refCount(dataId: object): number;
}

/**
 * `ownCpuArray` on the wasm backend: a view of `t`'s storage in the wasm heap when nothing else
 * shares it (the backend's refCount), valid until the next wasm allocation. Undefined elsewhere,
 * and while tfjs' stock wasm BatchMatMul is the registered one: XNNPACK caches the packed right
 * operand by tensor id (docs/runtime.md), so it would go on reading a weight written in place.
 * Troupe's wasm kernels (installed with the backend) replace it; its fast fallback copies each
 * operand into a fresh tensor. (tfjs' _FusedMatMul and convolutions cache the same way; Troupe
 * calls neither.)
 */
export function ownWasmArray(t: tf.Tensor | Float32Array): Float32Array | undefined {
  if (t instanceof Float32Array) return t;
  if (t.dtype !== 'float32' || t.isDisposed) return undefined;
  if (tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc === stockWasmBatchMatMul().kernelFunc) {
    return undefined;
  }
  const engine = tf.engine();
  const backend = engine.state.tensorInfo.get(t.dataId)?.backend as unknown;
  if (backend === undefined || backend !== engine.registry.wasm) return undefined;
  const wasm = backend as WasmOwnerLike;
  if (wasm.refCount(t.dataId) !== 1) return undefined;
  return f32View(wasm, { dataId: t.dataId, shape: [...t.shape], dtype: 'float32' });
}

/** The host storage of `t` that an update may write: its own cpu array or wasm heap view. */
const ownArray = (t: tf.Tensor | Float32Array) => ownCpuArray(t) ?? ownWasmArray(t);

/** One parameter's update for `adamwInPlaceMany`. */
export interface InPlaceUpdate {
  readonly param: tf.Tensor;
  readonly grad: tf.Tensor | Float32Array;
  readonly m: tf.Tensor | Float32Array;
  readonly v: tf.Tensor | Float32Array;
  readonly scalars: AdamWScalars;
}

/**
 * `adamwInPlace` of every update that can be written where it is (cpu arrays nothing shares, wasm
 * tensors nothing shares, host arrays), in one native call (adamwSteps: on the BLAS threads, no
 * per-parameter dispatch): the same bits as one adamwStep each. Returns, for each update, whether
 * it was done; the caller takes its other path for the rest. Nothing allocates between taking the
 * wasm views and the call.
 */
export function adamwInPlaceMany(updates: readonly InPlaceUpdate[]): boolean[] {
  const addon = nativeOptim();
  const done = updates.map(() => false);
  if (!addon) return done;
  const ps: Float32Array[] = [];
  const gs: Float32Array[] = [];
  const ms: Float32Array[] = [];
  const vs: Float32Array[] = [];
  const picked: InPlaceUpdate[] = [];
  for (const [i, u] of updates.entries()) {
    const p = ownArray(u.param);
    const m = ownArray(u.m);
    const v = ownArray(u.v);
    const g = u.grad instanceof Float32Array ? u.grad : hostView(u.grad);
    if (!p || !m || !v || !g) continue;
    if (g.length !== p.length || m.length !== p.length || v.length !== p.length) continue;
    ps.push(p);
    gs.push(g);
    ms.push(m);
    vs.push(v);
    picked.push(u);
    done[i] = true;
  }
  if (picked.length === 0) return done;
  const scalars = new Float64Array(8 * picked.length);
  for (const [k, { scalars: s }] of picked.entries()) {
    scalars.set([s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.bc1, s.bc2, s.gradScale], 8 * k);
  }
  addon.adamwSteps(ps, gs, ms, vs, scalars);
  return done;
}

/**
 * One AdamW update of `param` with `grad`, written into param, m and v where they are (each a
 * cpu-backend tensor nothing shares, or a host array). False, with nothing done, when any of them
 * is elsewhere or shared, the gradient is not float32 on the cpu backend or the host, or the
 * addon is off: the caller then takes its other path.
 */
export function adamwInPlace(
  param: tf.Tensor,
  grad: tf.Tensor | Float32Array,
  m: tf.Tensor | Float32Array,
  v: tf.Tensor | Float32Array,
  s: AdamWScalars,
): boolean {
  const addon = nativeOptim();
  if (!addon) return false;
  const p = ownCpuArray(param);
  const mm = ownCpuArray(m);
  const vv = ownCpuArray(v);
  const g = grad instanceof Float32Array ? grad : hostView(grad);
  if (!p || !mm || !vv || !g || g.length !== p.length) return false;
  if (mm.length !== p.length || vv.length !== p.length) return false;
  const args = [s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.bc1, s.bc2, s.gradScale] as const;
  addon.adamwStep(p, g, mm, vv, ...args, p, mm, vv);
  return true;
}
