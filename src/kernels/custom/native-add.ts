import { nativeKernels } from '../native.js';
import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '../tf.js';
import { storageFor } from './native-batch-matmul.js';
import { sizeOf } from './wasm-heap.js';

/**
 * `Add` of two float32 tensors of one shape, at least MIN_ELEMENTS of them, in the native addon
 * (native/fused.c `add`: one pass shared between the BLAS threads) on wasm and cpu; any other
 * Add (broadcasting, other dtypes, small tensors) goes to the backend's own kernel. Every element
 * is the same IEEE float32 sum as before (the addon runs it without flushing subnormals), so no
 * result changes, only the time: a tied GPT-2's LM-head and embedding gradients ([50257, 768]
 * each) took 47 ms to add on wasm's one thread, the residual adds and gradient sums of a step
 * the rest of the 76 ms `Add` held in its profile (bench/profile-step.ts gpt2 bf16).
 */
const MIN_ELEMENTS = 1 << 15;

interface AddArgs {
  inputs: { a: TensorInfo; b: TensorInfo };
  backend: unknown;
  attrs?: unknown;
}

const installed = new Set<string>();

/** Replace `tfBackend`'s Add (wasm or cpu) when the addon is built; the label, or none. */
export function installNativeAdd(tfBackend: string): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  if (installed.has(tfBackend)) return [`${tfBackend}:Add(native, one shape)`];
  const stock = getKernel('Add', tfBackend);
  if (!stock) return [];
  const addon = native.addon;
  const backendName = tfBackend;
  const config: KernelConfig = {
    kernelName: 'Add',
    backendName,
    kernelFunc: ((args: AddArgs) => {
      const { a, b } = args.inputs;
      const n = sizeOf(a.shape);
      if (
        a.dtype !== 'float32' ||
        b.dtype !== 'float32' ||
        n < MIN_ELEMENTS ||
        a.shape.length !== b.shape.length ||
        a.shape.some((d, i) => d !== b.shape[i])
      ) {
        return stock.kernelFunc(args as never);
      }
      const s = storageFor(backendName, args.backend);
      const y = s.output([...a.shape]);
      addon.add(s.view(a), s.view(b), y.values());
      return y.info;
    }) as unknown as KernelFunc,
  };
  unregisterKernel('Add', tfBackend);
  registerKernel(config);
  installed.add(tfBackend);
  return [`${tfBackend}:Add(native, one shape)`];
}
