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
