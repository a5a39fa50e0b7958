import type { DataId, KernelConfig, KernelFunc, TensorInfo } from '../tf.js';

interface IdentityBackend {
  incRef(dataId: DataId): void;
}

/** x itself under a new tensor: a reference on its heap block, as wasm's Reshape returns. */
function shareInput(x: TensorInfo, backend: IdentityBackend): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/**
 * `Identity` on wasm without a copy: the output shares the input's heap block and takes a
 * reference on it, as wasm's own Reshape does. tfjs runs Identity for every tensor it keeps for a
 * gradient (`saveTensorsForBackwardMode` clones each one) and stock wasm copies each of them:
 * profiled at 627 copies, 9 % of a small model's training step, and a second copy of every saved
 * activation. Safe because no wasm kernel writes into its inputs. Strings keep the stock kernel.
 */
export function wasmIdentity(stock: KernelConfig): KernelConfig {
  const stockFunc = stock.kernelFunc as unknown as (args: unknown) => TensorInfo;
  return {
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: ((args: { inputs: { x: TensorInfo }; backend: IdentityBackend }) => {
      const { x } = args.inputs;
      return x.dtype === 'string' ? stockFunc(args) : shareInput(x, args.backend);
    }) as unknown as KernelFunc,
  };
}

/**
 * `Cast` on wasm: to the same dtype it shares the input like Identity (tfjs' Identity gradient
 * is a float32 → float32 cast, one per saved tensor); other casts keep the stock kernel.
 */
export function wasmCast(stock: KernelConfig): KernelConfig {
  const stockFunc = stock.kernelFunc as unknown as (args: unknown) => TensorInfo;
  return {
    kernelName: 'Cast',
    backendName: 'wasm',
    kernelFunc: ((args: {
      inputs: { x: TensorInfo };
      attrs: { dtype: string };
      backend: IdentityBackend;
    }) => {
      const { x } = args.inputs;
      if (x.dtype !== args.attrs.dtype || x.dtype === 'string') return stockFunc(args);
      return shareInput(x, args.backend);
    }) as unknown as KernelFunc,
  };
}
