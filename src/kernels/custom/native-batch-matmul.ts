import type { NativeAddon } from '../native.js';
import { bf16Product } from '../precision.js';
import type { DataId, KernelConfig, KernelFunc, TensorInfo } from '../tf.js';
import {
  batchMatMulDims,
  f32View,
  i32View,
  type MatMulArgs,
  type MatMulFunc,
  sizeOf,
  type WasmBackendLike,
} from './wasm-heap.js';

/**
 * How a backend stores float32 data: views of inputs, and a fresh output to write. On wasm a view
 * is into the heap, so take every view after the last `output` (an allocation can grow the heap
 * and detach older views).
 */
export interface Storage {
  view(t: TensorInfo): Float32Array;
  /** An int32 input's values. */
  viewInt(t: TensorInfo): Int32Array;
  output(shape: number[]): { info: TensorInfo; values: () => Float32Array };
}

/** The storage of `backend`, the wasm or cpu backend a native kernel runs on. */
export function storageFor(backendName: 'wasm' | 'cpu', backend: unknown): Storage {
  return backendName === 'wasm'
    ? wasmStorage(backend as WasmBackendLike)
    : cpuStorage(backend as CpuBackendLike);
}

/** The wasm backend: views into its heap (taken after the output is allocated). */
export function wasmStorage(backend: WasmBackendLike): Storage {
  return {
    view: (t) => f32View(backend, t),
    viewInt: (t) => i32View(backend, t),
    output: (shape) => {
      const info = backend.makeOutput(shape, 'float32');
      return { info, values: () => f32View(backend, info) };
    },
  };
}

export interface CpuBackendLike {
  data: { get(dataId: DataId): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

/** The cpu backend: its own typed arrays. */
export function cpuStorage(backend: CpuBackendLike): Storage {
  return {
    view: (t) => backend.data.get(t.dataId).values as Float32Array,
    viewInt: (t) => backend.data.get(t.dataId).values as Int32Array,
    output: (shape) => {
      const values = new Float32Array(sizeOf(shape));
      return { info: backend.makeTensorInfo(shape, 'float32', values), values: () => values };
    },
  };
}

/**
 * BatchMatMul on a BLAS: each batch of [.., M, K]·[.., K, N] (either operand transposed) is one
 * sgemm, with a batch of one on either side broadcast (stride 0); under bf16 precision
 * (precision.ts) the bf16 kernel's product instead. Other forms (non-float32, general
 * broadcasting, empty) go to `fallback`.
 */
export function makeNativeBatchMatMul(
  addon: NativeAddon,
  backendName: 'wasm' | 'cpu',
  fallback: MatMulFunc,
): MatMulFunc {
  return function nativeBatchMatMul(args: MatMulArgs): TensorInfo {
    const { a, b } = args.inputs;
    const { transposeA, transposeB } = args.attrs;
    const dims = batchMatMulDims(args);
    const { M, K, Kb, N, batchA, batchB } = dims;
    const sameBatch = dims.sameBatch && batchA === batchB;
    const ok =
      a.dtype === 'float32' &&
      b.dtype === 'float32' &&
      K === Kb &&
      M * N * K > 0 &&
      (sameBatch || batchA === 1 || batchB === 1);
    if (!ok) return fallback(args);
    const batch = Math.max(batchA, batchB);
    const outShape = [...broadcastDims(a.shape.slice(0, -2), b.shape.slice(0, -2)), M, N];
    const storage = storageFor(backendName, args.backend);
    const out = storage.output(outShape);
    // bf16 mixed precision (precision.ts): the same call on the bf16 kernel
    const gemm = bf16Product(M) ? addon.bf16GemmBatched : addon.sgemmBatched;
    gemm(
      transposeA,
      transposeB,
      batch,
      M,
      N,
      K,
      storage.view(a),
      batchA === 1 ? 0 : M * K,
      storage.view(b),
      batchB === 1 ? 0 : K * N,
      out.values(),
    );
    return out.info;
  };
}

/** Batch dimensions broadcast NumPy-style (right-aligned; a 1 takes the other's size). */
function broadcastDims(da: readonly number[], db: readonly number[]): number[] {
  const n = Math.max(da.length, db.length);
  return Array.from({ length: n }, (_, i) => {
    const x = da[da.length - n + i] ?? 1;
    const y = db[db.length - n + i] ?? 1;
    return x === 1 ? y : x;
  });
}

/** The native kernel config for `backendName`, falling back to the kernel registered now. */
export function nativeBatchMatMul(
  addon: NativeAddon,
  backendName: 'wasm' | 'cpu',
  fallback: KernelConfig,
): KernelConfig {
  return {
    kernelName: 'BatchMatMul',
    backendName,
    kernelFunc: makeNativeBatchMatMul(
      addon,
      backendName,
      fallback.kernelFunc as unknown as MatMulFunc,
    ) as unknown as KernelFunc,
  };
}
