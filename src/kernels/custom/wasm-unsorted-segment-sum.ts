import { type NativeAddon, nativeKernels } from '../native.js';
import type { KernelConfig, KernelFunc, TensorInfo } from '../tf.js';
import { checkSegmentIds, segmentSumInto } from './row-loops.js';
import { f32View, i32View, sizeOf, type WasmBackendLike } from './wasm-heap.js';

/**
 * `UnsortedSegmentSum` for wasm (stock wasm has none; it is the gradient of `gather`, i.e. the
 * embedding backward). out[s, ...] = Σ_{i : ids[i] = s} x[i, ...]; ids < 0 are dropped, as in
 * TensorFlow.
 *
 * x: [...ids.shape, ...inner]   ids: int32   out: [numSegments, ...inner]
 *
 * float32 with the addon: native/rows.c segmentSum (the same sums in the same order, so the same
 * bits; the JavaScript loop took 3.8 ms of the GRPO bench update's backward); else the loop.
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
  const ids = i32View(backend, segmentIds);
  const addon = nativeSegmentSum();
  if (x.dtype === 'float32' && addon) {
    checkSegmentIds(ids, numSegments);
    addon.segmentSum(
      f32View(backend, x),
      ids,
      ids.length,
      inner,
      numSegments,
      f32View(backend, out),
    );
    return out;
  }
  const view = x.dtype === 'float32' ? f32View : i32View;
  const o = view(backend, out);
  o.fill(0);
  segmentSumInto(o, view(backend, x), ids, inner, numSegments);
  return out;
}

/** rows.c segmentSum (typed here; the addon's other calls are in native.ts), if the addon has it. */
interface SegmentSumAddon {
  segmentSum(
    x: Float32Array,
    ids: Int32Array,
    rows: number,
    inner: number,
    numSegments: number,
    out: Float32Array,
  ): void;
}

function nativeSegmentSum(): SegmentSumAddon | undefined {
  const native = nativeKernels();
  if (!native.available) return undefined;
  const addon = native.addon as NativeAddon & Partial<SegmentSumAddon>;
  return typeof addon.segmentSum === 'function' ? (addon as SegmentSumAddon) : undefined;
}

export const wasmUnsortedSegmentSum: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as unknown as KernelFunc,
};
