import { nativeKernels } from '../native.js';
import { getKernel, registerGradient, registerKernel, unregisterKernel } from '../tf.js';
import { batchMatMulGrad } from './batch-matmul-grad.js';
import { BROADCAST_SAFE_GRADS } from './broadcast-grads.js';
import { setCpuKernels } from './cpu-kernels.js';
import { embeddingGatherGrad } from './gather-grad.js';
import { setLeanBackprop } from './lean-backprop.js';
import { installNativeAdd } from './native-add.js';
import { installNativeAttention } from './native-attention.js';
import { nativeBatchMatMul } from './native-batch-matmul.js';
import { installNativeDecode } from './native-decode.js';
import { installNativeFused } from './native-fused.js';
import { installNativeKv } from './native-kv.js';
import { installNativeLinear } from './native-linear.js';
import { installNativeNF4Linear } from './native-nf4-linear.js';
import { installNativeOptim } from './native-optim.js';
import { installNativeRows } from './native-rows.js';
import { installNativeW16Linear } from './native-w16-linear.js';
import { fastWasmBatchMatMul, stockWasmBatchMatMul } from './wasm-batch-matmul.js';
import { wasmGatherV2 } from './wasm-gather.js';
import { wasmCast, wasmIdentity } from './wasm-identity.js';
import { wasmSlice, wasmSplitV, wasmTranspose } from './wasm-slice.js';
import { wasmSum } from './wasm-sum.js';
import { wasmUnsortedSegmentSum } from './wasm-unsorted-segment-sum.js';
import { missingZeroGradients } from './zero-gradients.js';

const installedFor = new Set<string>();
let gradientsFixed = false;

/**
 * Register the kernels and gradients Troupe adds to tfjs, for the backend now active in this
 * thread (named as in tfjs' registry). Idempotent. Must run after the backend is initialised:
 * the fast wasm BatchMatMul wraps the stock kernel, whose setup runs at backend start.
 * Returns what it added, for the runtime report.
 */
export function installCustomKernels(tfBackend: string): string[] {
  const added: string[] = [];
  if (!gradientsFixed) {
    gradientsFixed = true;
    for (const g of [batchMatMulGrad, ...BROADCAST_SAFE_GRADS]) {
      registerGradient(g);
      added.push(`grad:${g.kernelName}(broadcast-safe)`);
    }
    registerGradient(embeddingGatherGrad());
    added.push('grad:GatherV2(axis 0 without transposes)');
  }
  if (setLeanBackprop(true))
    added.push('engine:gradients(saved tensors and gradients freed as backward goes)');
  for (const g of missingZeroGradients()) {
    registerGradient(g);
    added.push(`grad:${g.kernelName}`);
  }
  if (installedFor.has(tfBackend)) return added;
  installedFor.add(tfBackend);
  if (tfBackend === 'wasm') {
    if (!getKernel('UnsortedSegmentSum', 'wasm')) {
      registerKernel(wasmUnsortedSegmentSum);
      added.push('wasm:UnsortedSegmentSum');
    }
    const identity = getKernel('Identity', 'wasm');
    if (identity) {
      unregisterKernel('Identity', 'wasm');
      registerKernel(wasmIdentity(identity));
      added.push('wasm:Identity(shares its input)');
    }
    const cast = getKernel('Cast', 'wasm');
    if (cast) {
      unregisterKernel('Cast', 'wasm');
      registerKernel(wasmCast(cast));
      added.push('wasm:Cast(to its own dtype: shares its input)');
    }
    const gather = wasmGatherV2(); // captures the stock kernel before it is replaced
    unregisterKernel('GatherV2', 'wasm');
    registerKernel(gather);
    added.push('wasm:GatherV2(batchDims)');
    const slice = wasmSlice(); // captures the stock kernel before it is replaced
    unregisterKernel('Slice', 'wasm');
    registerKernel(slice);
    added.push('wasm:Slice(heap views, no copy of the input)');
    unregisterKernel('SplitV', 'wasm');
    registerKernel(wasmSplitV());
    added.push('wasm:SplitV(through the heap-view Slice)');
    const transpose = wasmTranspose(); // captures the stock kernel before it is replaced
    unregisterKernel('Transpose', 'wasm');
    registerKernel(transpose);
    added.push('wasm:Transpose(native runs of the last axis)');
    const sum = wasmSum(); // captures the stock kernel before it is replaced
    unregisterKernel('Sum', 'wasm');
    registerKernel(sum);
    added.push('wasm:Sum(leading axes in one pass)');
    const native = nativeKernels().available;
    setWasmBatchMatMul(native ? 'native' : 'fast');
    added.push(`wasm:BatchMatMul(${native ? 'native BLAS' : 'fast'})`);
  }
  if (tfBackend === 'cpu') added.push(...setCpuKernels(true));
  if (tfBackend === 'cpu' && nativeKernels().available) {
    setCpuBatchMatMul('native');
    added.push('cpu:BatchMatMul(native BLAS)');
  }
  if (nativeKernels().available && (tfBackend === 'wasm' || tfBackend === 'cpu')) {
    added.push(
      ...installNativeLinear(tfBackend),
      ...installNativeNF4Linear(tfBackend),
      ...installNativeW16Linear(tfBackend),
      ...installNativeRows(tfBackend),
      ...installNativeFused(tfBackend),
      ...installNativeOptim(tfBackend),
      ...installNativeDecode(tfBackend),
      ...installNativeAdd(tfBackend),
      ...installNativeKv(tfBackend),
      ...installNativeAttention(tfBackend),
    );
  }
  return added;
}

export type WasmMatMulImpl = 'stock' | 'fast' | 'native';

/**
 * Which wasm BatchMatMul runs: tfjs' own, Troupe's XNNPACK-based one, or the native BLAS (which
 * falls back to the fast one for forms it does not take). Benchmarks compare them.
 */
export function setWasmBatchMatMul(impl: WasmMatMulImpl): void {
  const stock = stockWasmBatchMatMul();
  const native = nativeKernels();
  if (impl === 'native' && !native.available) {
    throw new Error(`native BatchMatMul is not available: ${native.reason}`);
  }
  unregisterKernel('BatchMatMul', 'wasm');
  registerKernel(
    impl === 'stock'
      ? stock
      : impl === 'fast' || !native.available
        ? fastWasmBatchMatMul()
        : nativeBatchMatMul(native.addon, 'wasm', fastWasmBatchMatMul()),
  );
}

/** Switch between the fast and the stock wasm BatchMatMul (benchmarks compare the two). */
export function setFastWasmBatchMatMul(fast: boolean): void {
  setWasmBatchMatMul(fast ? 'fast' : 'stock');
}

let stockCpu: ReturnType<typeof getKernel>;

/** The cpu backend's BatchMatMul: tfjs' own, or the native BLAS. */
export function setCpuBatchMatMul(impl: 'stock' | 'native'): void {
  stockCpu ??= getKernel('BatchMatMul', 'cpu');
  if (!stockCpu) throw new Error('cpu BatchMatMul kernel is not registered');
  const native = nativeKernels();
  if (impl === 'native' && !native.available) {
    throw new Error(`native BatchMatMul is not available: ${native.reason}`);
  }
  unregisterKernel('BatchMatMul', 'cpu');
  registerKernel(
    impl === 'native' && native.available
      ? nativeBatchMatMul(native.addon, 'cpu', stockCpu)
      : stockCpu,
  );
}
