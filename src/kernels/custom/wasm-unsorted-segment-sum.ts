import type { KernelConfig, KernelFunc, TensorInfo } from '../tf.js';
import { segmentSumInto } from './row-loops.js';
import { f32View, i32View, sizeOf, type WasmBackendLike } from './wasm-heap.js';

/**
 * `UnsortedSegmentSum` for wasm (stock wasm has none; it is the gradient of `gather`, i.e. the
 * embedding backward). out[s, ...] = Σ_{i : ids[i] = s} x[i, ...]; ids < 0 are dropped, as in
 * TensorFlow.
 *
 * x: [...ids.shape, ...inner]   ids: int32   out: [numSegments, ...inner]
 */
function unsortedSegmentSum(args: {
  inputs: { x: TensorInfo; segmentIds: TensorInfo };
  backend: unknown;
  attrs: { numSegments: number };
}): TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, segmentIds } = args.inputs;
  const { numSegments } = args.attrs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum on wasm: x must be float32 or int32, got ${x.dtype}`);
  }
  const idRank = segmentIds.shape.length;
  const inner = sizeOf(x.shape.slice(idRank));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(idRank)], x.dtype);
  const view = x.dtype === 'float32' ? f32View : i32View;
  const o = view(backend, out);
  o.fill(0);
  segmentSumInto(o, view(backend, x), i32View(backend, segmentIds), inner, numSegments);
  return out;
}

export const wasmUnsortedSegmentSum: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as unknown as KernelFunc,
};
