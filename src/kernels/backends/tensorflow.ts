import { createRequire } from 'node:module';
import { TroupeError } from '../../errors.js';
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
 * libtensorflow places work on the process' GPUs and reads CUDA_VISIBLE_DEVICES once, when it
 * first loads in the process. An actor on `gpu:N` runs in its own process, whose environment the
 * supervisor set from `processEnv`, so this leaves it alone; in a process that runs the backend
 * on its main thread (a script), it exposes only GPU N if nothing chose yet.
 */
function pinCudaDevice(device: Device): void {
  if (device.kind === 'gpu' && process.env['CUDA_VISIBLE_DEVICES'] === undefined) {
    process.env['CUDA_VISIBLE_DEVICES'] = String(device.index);
  }
}

/**
 * The environment a process needs to see GPU `device.index` as its only GPU. Indices count the
 * GPUs this process can see: with CUDA_VISIBLE_DEVICES=4,6 inherited, `gpu:1` is physical GPU 6.
 */
function cudaEnv(
  device: Device,
  inherited: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const visible = inherited['CUDA_VISIBLE_DEVICES'];
  if (visible === undefined) return { CUDA_VISIBLE_DEVICES: String(device.index) };
  const ids = visible
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (device.index >= ids.length) {
    throw new TroupeError(
      'BAD_DEVICE',
      `Device 'gpu:${device.index}' is not visible: CUDA_VISIBLE_DEVICES=${JSON.stringify(visible)} ` +
        `exposes ${ids.length} GPU${ids.length === 1 ? '' : 's'}` +
        (ids.length > 0 ? ` (gpu:0 to gpu:${ids.length - 1})` : ''),
      { details: { device: `gpu:${device.index}`, visible } },
    );
  }
  return { CUDA_VISIBLE_DEVICES: ids[device.index] };
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
    installed() {
      try {
        createRequire(import.meta.url).resolve(PKG[kind]);
        return true;
      } catch {
        return false;
      }
    },
    ...(kind === 'gpu' ? { processEnv: cudaEnv } : {}),
  };
}

export const tensorflowGpuBackend = nativeAdapter('tensorflow-gpu', 'gpu');
export const tensorflowBackend = nativeAdapter('tensorflow', 'cpu');
