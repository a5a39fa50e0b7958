import {
  backend_util,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  util,
} from '../tf.js';
import { checkGatherIndices, gatherRowsInto } from './row-loops.js';
import { f32View, i32View, type WasmBackendLike } from './wasm-heap.js';

interface GatherArgs {
  inputs: { x: TensorInfo; indices: TensorInfo };
  backend: unknown;
  attrs: { axis: number; batchDims: number };
}
type GatherFunc = (args: GatherArgs) => TensorInfo;

/**
 * wasm `GatherV2` returns wrong values when `batchDims > 0` (found by the coverage test: a
 * per-row label pick, `gather(x [B,V], ids [B,1], axis 1, batchDims 1)`). With batch dims, and
 * for gathers of whole rows (an embedding lookup: slices of ≥ 16 values), this kernel copies
 * slices in JS over the heap; the stock kernel first reshapes and copies through the engine
 * (profiled: 12 ms per embedding lookup of 1024 rows of 384 in a small model's step). Element
 * gathers without batch dims keep the stock kernel.
 *
 *   x viewed as [batch, outer, dim, slice], indices as [batch, n]
 *   out[b, o, i, s] = x[b, o, indices[b, i], s]
 */
export function makeWasmGather(stock: GatherFunc): GatherFunc {
  return function gather(args: GatherArgs): TensorInfo {
    const { x, indices } = args.inputs;
    const { batchDims } = args.attrs;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return stock(args);
    const backend = args.backend as WasmBackendLike;
    const axis = util.parseAxisParam(args.attrs.axis, x.shape)[0];
    const info = backend_util.segment_util.collectGatherOpShapeInfo(
      x as never,
      indices as never,
      axis,
      batchDims,
    );
    if (batchDims === 0 && info.sliceSize < 16) return stock(args);
    checkGatherIndices(i32View(backend, indices), info.dimSize);
    const out = backend.makeOutput(info.outputShape, x.dtype);
    // Views after the allocation: it can grow (move) the wasm heap.
    const view = x.dtype === 'float32' ? f32View : i32View;
    gatherRowsInto(view(backend, out), view(backend, x), i32View(backend, indices), info);
    return out;
  };
}

let stockGather: KernelConfig | undefined;

export function wasmGatherV2(): KernelConfig {
  stockGather ??= getKernel('GatherV2', 'wasm');
  if (!stockGather) throw new Error('wasm GatherV2 kernel is not registered');
  return {
    kernelName: 'GatherV2',
    backendName: 'wasm',
    kernelFunc: makeWasmGather(
      stockGather.kernelFunc as unknown as GatherFunc,
    ) as unknown as KernelFunc,
  };
}
