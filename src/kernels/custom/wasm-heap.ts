import type { DataId, DataType, TensorInfo } from '../tf.js';

/**
 * The parts of tfjs' `BackendWasm` a JS kernel needs. Heap views must be taken *after* every
 * `makeOutput` (an allocation can grow the wasm memory and detach older views).
 */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  disposeData(dataId: DataId): void;
  dataIdMap: { get(dataId: DataId): { memoryOffset: number } };
  wasm: { HEAPU8: Uint8Array };
}

/** A Float32Array view of a tensor's storage in the wasm heap. */
export function f32View(backend: WasmBackendLike, t: TensorInfo): Float32Array {
  const { memoryOffset } = backend.dataIdMap.get(t.dataId);
  const heap = backend.wasm.HEAPU8;
  return new Float32Array(heap.buffer, heap.byteOffset + memoryOffset, sizeOf(t.shape));
}

/** An Int32Array view of a tensor's storage in the wasm heap. */
export function i32View(backend: WasmBackendLike, t: TensorInfo): Int32Array {
  const { memoryOffset } = backend.dataIdMap.get(t.dataId);
  const heap = backend.wasm.HEAPU8;
  return new Int32Array(heap.buffer, heap.byteOffset + memoryOffset, sizeOf(t.shape));
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** BatchMatMul's kernel arguments, as tfjs hands them to a kernel function. */
export interface MatMulArgs {
  inputs: { a: TensorInfo; b: TensorInfo };
  backend: unknown;
  attrs: { transposeA: boolean; transposeB: boolean };
}
export type MatMulFunc = (args: MatMulArgs) => TensorInfo;

/**
 * The sizes of op(A)·op(B) for [..., M, K]·[..., K, N] (either operand transposed): M, N, K (and
 * B's K, to check), each side's batch (product of the leading dims) and whether both have the
 * same leading dims.
 */
export function batchMatMulDims(args: MatMulArgs) {
  const { a, b } = args.inputs;
  const { transposeA, transposeB } = args.attrs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  return {
    M: transposeA ? a.shape[ra - 1] : a.shape[ra - 2],
    K: transposeA ? a.shape[ra - 2] : a.shape[ra - 1],
    Kb: transposeB ? b.shape[rb - 1] : b.shape[rb - 2],
    N: transposeB ? b.shape[rb - 2] : b.shape[rb - 1],
    batchA: sizeOf(a.shape.slice(0, -2)),
    batchB: sizeOf(b.shape.slice(0, -2)),
    sameBatch: ra === rb && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]),
  };
}
