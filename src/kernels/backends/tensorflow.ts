import type { Device } from '../device.js';
import * as tf from '../tf.js';
import { loadOptional } from './load.js';
import type { BackendAdapter, BackendName, ProbeResult } from './types.js';

/** Fields the libtensorflow backend exposes (`NodeJSKernelBackend`). */
interface NodeBackendFlags {
  isGPUPackage?: boolean;
  isUsingGpuDevice?: boolean;
}

const PKG = { cpu: '@tensorflow/tfjs-node', gpu: '@tensorflow/tfjs-node-gpu' } as const;

async function probeNative(kind: 'cpu' | 'gpu'): Promise<ProbeResult> {
  const loaded = await loadOptional(PKG[kind]);
  if (!loaded.ok) {
    const fix = loaded.missing
      ? `; its install step downloads libtensorflow${kind === 'gpu' ? ' (CUDA build)' : ''}`
      : '';
    return { available: false, reason: loaded.reason + fix };
  }
  if (tf.findBackend('tensorflow') === null) {
    return {
      available: false,
      reason: `${PKG[kind]} loaded but registered no 'tensorflow' backend`,
    };
  }
  if (kind === 'gpu') {
    const flags = tf.findBackend('tensorflow') as unknown as NodeBackendFlags;
    if (!flags.isGPUPackage || !flags.isUsingGpuDevice) {
      return { available: false, reason: 'libtensorflow (GPU build) found no CUDA device' };
    }
  }
  return { available: true, reason: `${PKG[kind]} loaded libtensorflow` };
}

/**
 * libtensorflow places work on the process' GPUs; worker threads share the process, so
 * `gpu:N` is honoured by exposing only GPU N before the library first loads in this process.
 */
function pinCudaDevice(device: Device): void {
  if (device.kind === 'gpu' && process.env['CUDA_VISIBLE_DEVICES'] === undefined) {
    process.env['CUDA_VISIBLE_DEVICES'] = String(device.index);
  }
}

function nativeAdapter(name: BackendName, kind: 'cpu' | 'gpu'): BackendAdapter {
  return {
    name,
    tfName: 'tensorflow',
    deviceKinds: kind === 'gpu' ? ['gpu'] : ['cpu'],
    install:
      `npm install ${PKG[kind]}@4.22.0 (optional: needs network access to download libtensorflow` +
      (kind === 'gpu' ? ', an NVIDIA driver, CUDA 11.2 and cuDNN 8.1)' : ')'),
    async probe() {
      return probeNative(kind);
    },
    async activate(device) {
      pinCudaDevice(device);
      const probe = await probeNative(kind);
      if (!probe.available) throw new Error(probe.reason);
      await tf.setBackend('tensorflow');
      await tf.ready();
      return kind === 'gpu'
        ? `libtensorflow CUDA, ${device.kind}:${device.index}`
        : 'libtensorflow';
    },
  };
}

export const tensorflowGpuBackend = nativeAdapter('tensorflow-gpu', 'gpu');
export const tensorflowBackend = nativeAdapter('tensorflow', 'cpu');
