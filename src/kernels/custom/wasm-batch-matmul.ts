import { getKernel, type KernelConfig, type KernelFunc, type TensorInfo } from '../tf.js';
import {
  batchMatMulDims,
  f32View,
  type MatMulArgs,
  type MatMulFunc,
  type WasmBackendLike,
} from './wasm-heap.js';

/**
 * Stock wasm `BatchMatMul` reaches XNNPACK only for batch 1 with no transpose; every other form
 * (all gradient matmuls `dy·Bᵀ`, `Aᵀ·dy`, and attention's batched products) falls to a scalar
 * loop at 1–3 GFLOP/s. This kernel reduces every form to the fast one:
 *   1. a transposed operand is transposed once, explicitly (memory-bound, cheap);
 *   2. when B is shared by the batch, the batch folds into rows: [b·M, K]·[K, N];
 *   3. otherwise each batch is copied out and multiplied on the fast path.
 * Forms it cannot reduce (non-float32, general broadcasting, empty) go to the stock kernel.
 */
export function makeFastBatchMatMul(stock: MatMulFunc): MatMulFunc {
  const transpose = getKernel('Transpose', 'wasm')!.kernelFunc as unknown as (args: {
    inputs: { x: TensorInfo };
    backend: unknown;
    attrs: { perm: number[] };
  }) => TensorInfo;

  return function fastBatchMatMul(args: MatMulArgs): TensorInfo {
    const { a, b } = args.inputs;
    const { transposeA, transposeB } = args.attrs;
    const backend = args.backend as WasmBackendLike;
    const ra = a.shape.length;
    const rb = b.shape.length;
    const { M, K, Kb, N, batchA, batchB, sameBatch } = batchMatMulDims(args);
    const reducible =
      a.dtype === 'float32' &&
      b.dtype === 'float32' &&
      K === Kb &&
      M * N * K > 0 &&
      (sameBatch || batchB === 1);
    // Batch 1 without transposes is the stock kernel's own fast path.
    const alreadyFast = !transposeA && !transposeB && batchA === 1 && batchB === 1;
    if (!reducible || alreadyFast) return stock(args);

    const temps: TensorInfo[] = [];
    // Contiguous row-major operands: A3 [batchA, M, K], B3 [batchB, K, N].
    const asRows = (t: TensorInfo, batch: number, r: number, c: number, tr: boolean) => {
      const view = { dataId: t.dataId, dtype: t.dtype, shape: tr ? [batch, c, r] : [batch, r, c] };
      if (!tr) return view;
      const out = transpose({ inputs: { x: view }, backend, attrs: { perm: [0, 2, 1] } });
      temps.push(out);
      return out;
    };
    const A3 = asRows(a, batchA, M, K, transposeA);
    const B3 = asRows(b, batchB, K, N, transposeB);
    const noT = { transposeA: false, transposeB: false };
    const outShape = [...(ra >= rb ? a.shape : b.shape).slice(0, -2), M, N];
    try {
      if (batchB === 1) {
        // Batch folds into rows: [1, batchA·M, K] · [1, K, N] → [batchA, M, N] in memory.
        const rows = { dataId: A3.dataId, dtype: A3.dtype, shape: [1, batchA * M, K] };
        const out = stock({ inputs: { a: rows, b: B3 }, backend, attrs: noT });
        return { ...out, shape: outShape };
      }
      return perBatch(stock, backend, A3, B3, batchA, M, K, N, outShape);
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/** C[i] = A[i]·B[i] for each batch i, each on the fast batch-1 path. */
function perBatch(
  stock: MatMulFunc,
  backend: WasmBackendLike,
  A3: TensorInfo,
  B3: TensorInfo,
  batch: number,
  M: number,
  K: number,
  N: number,
  outShape: number[],
): TensorInfo {
  const out = backend.makeOutput(outShape, 'float32');
  const noT = { transposeA: false, transposeB: false };
  for (let i = 0; i < batch; i++) {
    // Fresh operands each time: XNNPACK caches packed weights by tensor id, so a reused
    // (mutated) B would be read stale.
    const ai = backend.makeOutput([1, M, K], 'float32');
    const bi = backend.makeOutput([1, K, N], 'float32');
    try {
      f32View(backend, ai).set(f32View(backend, A3).subarray(i * M * K, (i + 1) * M * K));
      f32View(backend, bi).set(f32View(backend, B3).subarray(i * K * N, (i + 1) * K * N));
      const ci = stock({ inputs: { a: ai, b: bi }, backend, attrs: noT });
      f32View(backend, out).set(f32View(backend, ci), i * M * N);
      backend.disposeData(ci.dataId);
    } finally {
      backend.disposeData(ai.dataId);
      backend.disposeData(bi.dataId);
    }
  }
  return out;
}

let stockConfig: KernelConfig | undefined;

/** The stock wasm kernel, captured before the fast one replaces it (for benchmarks and tests). */
export function stockWasmBatchMatMul(): KernelConfig {
  stockConfig ??= getKernel('BatchMatMul', 'wasm');
  if (!stockConfig) throw new Error('wasm BatchMatMul kernel is not registered');
  return stockConfig;
}

/** The fast kernel config; the stock kernel must already have been set up by the wasm backend. */
export function fastWasmBatchMatMul(): KernelConfig {
  const stock = stockWasmBatchMatMul();
  return {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: makeFastBatchMatMul(
      stock.kernelFunc as unknown as MatMulFunc,
    ) as unknown as KernelFunc,
  };
}
