import { type NativeAddon, nativeKernels } from '../native.js';
import {
  engine,
  type GradConfig,
  getBackend,
  getGradient,
  getKernel,
  type KernelFunc,
  registerGradient,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '../tf.js';
import { storageFor } from './native-batch-matmul.js';
import { sizeOf } from './wasm-heap.js';

/**
 * The shared-prefix forward's keys and values in one native pass (native/rows.c): D distinct
 * prompts ran once into a KV cache, B rows continue them (`KVCache.expand` says which row copies
 * which prompt), and each block joins the prompt's cached keys or values with the row's own new
 * ones. As tfjs kernels that was a GatherV2 (every prompt row copied B/D times), the head split's
 * Transpose and a Concat forward, and a SplitV, an UnsortedSegmentSum (the gather's gradient)
 * and a Transpose backward, each a pass over the [B, KV, P + T, hd] keys:
 *
 *   TroupeKvExpand      {past [D, G, P, hd], rows [B] int32, fresh [B, T, G, hd]} → [B, G, P + T, hd]
 *     out[b, g, p] = past[rows[b], g, p]   out[b, g, P + t] = fresh[b, t, g]
 *   TroupeKvExpandGrad  {dy, past, rows} → [dpast, dfresh]
 *     dpast[d] = Σ_{b: rows[b] = d} dy[b, :, :P] (summed in order of b, from 0: the segment sum's
 *     order, so the same bits)   dfresh[b, t, g] = dy[b, g, P + t]
 *
 * = concat([gather(past, rows), transpose(fresh, [0, 2, 1, 3])], 2), the values moved, never
 * computed. Registered for wasm and cpu with the addon; elsewhere `kvExpand` returns null and the
 * model runs the composite (block.ts).
 */
export const KV_EXPAND = 'TroupeKvExpand';
export const KV_EXPAND_GRAD = 'TroupeKvExpandGrad';

/** The native calls this file makes (rows.c); typed here, the addon's other calls in native.ts. */
interface KvAddon {
  kvExpand(
    past: Float32Array,
    rows: Int32Array,
    fresh: Float32Array,
    D: number,
    B: number,
    G: number,
    P: number,
    T: number,
    hd: number,
    out: Float32Array,
  ): void;
  kvExpandBackward(
    dy: Float32Array,
    rows: Int32Array,
    D: number,
    B: number,
    G: number,
    P: number,
    T: number,
    hd: number,
    dpast: Float32Array,
    dfresh: Float32Array,
  ): void;
}

/** [D, B, G, P, T, hd] after checking the inputs' dtypes and shapes (a clear error naming them). */
function dims(
  kernel: string,
  past: TensorInfo,
  rows: TensorInfo,
  fresh: { shape: number[] } | TensorInfo,
): [number, number, number, number, number, number] {
  if (past.dtype !== 'float32') throw new Error(`${kernel}: past is ${past.dtype}, not float32`);
  if (rows.dtype !== 'int32') throw new Error(`${kernel}: rows is ${rows.dtype}, not int32`);
  if (past.shape.length !== 4 || rows.shape.length !== 1 || fresh.shape.length !== 4) {
    throw new Error(
      `${kernel}: past must be [D, G, P, hd], rows [B] and fresh [B, T, G, hd]; got past [${past.shape}], rows [${rows.shape}], fresh [${fresh.shape}]`,
    );
  }
  const [D, G, P, hd] = past.shape;
  const [B, T, Gf, hdf] = fresh.shape;
  if (rows.shape[0] !== B || Gf !== G || hdf !== hd) {
    throw new Error(
      `${kernel}: rows [${rows.shape}] and fresh [${fresh.shape}] do not fit past [${past.shape}] (rows [B], fresh [B, T, G, hd])`,
    );
  }
  return [D, B, G, P, T, hd];
}

function expand(addon: KvAddon, backendName: 'wasm' | 'cpu'): KernelFunc {
  return (({ inputs, backend }: { inputs: Record<string, TensorInfo>; backend: unknown }) => {
    const { past, rows, fresh } = inputs;
    if (fresh.dtype !== 'float32') throw new Error(`${KV_EXPAND}: fresh is ${fresh.dtype}`);
    const [D, B, G, P, T, hd] = dims(KV_EXPAND, past, rows, fresh);
    const s = storageFor(backendName, backend);
    const out = s.output([B, G, P + T, hd]);
    if (sizeOf(out.info.shape) > 0) {
      // views after the output's allocation (it can grow the wasm heap)
      addon.kvExpand(s.view(past), s.viewInt(rows), s.view(fresh), D, B, G, P, T, hd, out.values());
    }
    return out.info;
  }) as unknown as KernelFunc;
}

function expandGrad(addon: KvAddon, backendName: 'wasm' | 'cpu'): KernelFunc {
  return (({ inputs, backend }: { inputs: Record<string, TensorInfo>; backend: unknown }) => {
    const { dy, past, rows } = inputs;
    const [D, G, P, hd] = past.shape;
    const B = rows.shape[0] ?? 0;
    const T = (dy.shape[2] ?? 0) - P;
    const want = [B, G, P + T, hd];
    if (dy.dtype !== 'float32' || dy.shape.length !== 4 || dy.shape.some((d, i) => d !== want[i])) {
      throw new Error(
        `${KV_EXPAND_GRAD}: dy must be float32 [B, G, P + T, hd] = [${want}], got ${dy.dtype} [${dy.shape}]`,
      );
    }
    dims(KV_EXPAND_GRAD, past, rows, { shape: [B, T, G, hd] });
    const s = storageFor(backendName, backend);
    const dpast = s.output([...past.shape]);
    const dfresh = s.output([B, T, G, hd]);
    if (D > 0) {
      addon.kvExpandBackward(
        s.view(dy),
        s.viewInt(rows),
        D,
        B,
        G,
        P,
        T,
        hd,
        dpast.values(),
        dfresh.values(),
      );
    }
    return [dpast.info, dfresh.info];
  }) as unknown as KernelFunc;
}

// The backward kernel runs once per node (both gradients from one pass), outside the per-input
// tidies, so that its outputs outlive the first input's gradient; the engine's backward scope
// disposes the unused one.
const GRAD: GradConfig = {
  kernelName: KV_EXPAND,
  inputsToSave: ['past', 'rows'],
  gradFunc: (dy, saved) => {
    const [past, rows] = saved;
    const [dpast, dfresh] = engine().runKernel(KV_EXPAND_GRAD, {
      dy: dy as Tensor,
      past,
      rows,
    }) as Tensor[];
    return { past: () => dpast, rows: () => rows, fresh: () => dfresh };
  },
};

/**
 * concat([gather(past, rows), transpose(fresh, [0, 2, 1, 3])], 2) as the native kernel where the
 * active backend has it (float32 keys, int32 rows); null where not (the caller runs the
 * composite).   past [D, G, P, hd]   rows [B]   fresh [B, T, G, hd]  →  [B, G, P + T, hd]
 */
export function kvExpand(past: Tensor, rows: Tensor, fresh: Tensor): Tensor | null {
  if (
    getKernel(KV_EXPAND, getBackend()) === undefined ||
    past.dtype !== 'float32' ||
    fresh.dtype !== 'float32' ||
    rows.dtype !== 'int32'
  ) {
    return null;
  }
  return engine().runKernel(KV_EXPAND, { past, rows, fresh }) as Tensor;
}

/**
 * Register the two kernels for `tfBackend` ('wasm' or 'cpu' with the addon; others get none) and
 * the gradient (once per thread). Returns what it added.
 */
export function installNativeKv(tfBackend: string): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  const addon = native.addon as NativeAddon & Partial<KvAddon>;
  if (typeof addon.kvExpand !== 'function' || typeof addon.kvExpandBackward !== 'function') {
    return []; // an addon built before these calls: the composite runs
  }
  if (!getGradient(KV_EXPAND)) registerGradient(GRAD);
  const added: string[] = [];
  for (const [name, make] of [
    [KV_EXPAND, expand],
    [KV_EXPAND_GRAD, expandGrad],
  ] as const) {
    if (getKernel(name, tfBackend)) continue;
    registerKernel({
      kernelName: name,
      backendName: tfBackend,
      kernelFunc: make(addon as NativeAddon & KvAddon, tfBackend),
    });
    added.push(`${tfBackend}:${name}(native)`);
  }
  return added;
}
