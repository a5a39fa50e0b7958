import { type NativeAddon, nativeKernels } from '../native.js';
import type { KernelFunc, TensorInfo } from '../tf.js';
import * as tf from '../tf.js';
import { type Storage, storageFor } from './native-batch-matmul.js';

/**
 * A native kernel on wasm or cpu whose gradient, if any, is another kernel (the decoder block,
 * the bf16-weight linear, the NF4 linear and its dx): what its body is given when tfjs runs it.
 */
export interface NativeForwardCall<A> {
  readonly inputs: Record<string, TensorInfo>;
  readonly attrs: A;
  readonly addon: NativeAddon;
  /** the backend's tensors as Float32Array views, and its outputs */
  readonly s: Storage;
}

/**
 * Register `kernelName` for `tfBackend` (wasm or cpu) as `run` when the addon is built; the
 * registration's line for the install log (`tfBackend:kernelName(label)`), or none where the
 * addon or the backend does not apply.
 */
export function registerNativeForward<A>(
  tfBackend: string,
  kernelName: string,
  label: string,
  run: (call: NativeForwardCall<A>) => TensorInfo,
): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  const addon = native.addon;
  const backendName = tfBackend;
  tf.registerKernel({
    kernelName,
    backendName,
    kernelFunc: (({
      inputs,
      backend,
      attrs,
    }: {
      inputs: Record<string, TensorInfo>;
      backend: unknown;
      attrs: A;
    }) =>
      run({ inputs, attrs, addon, s: storageFor(backendName, backend) })) as unknown as KernelFunc,
  });
  return [`${tfBackend}:${kernelName}(${label})`];
}
