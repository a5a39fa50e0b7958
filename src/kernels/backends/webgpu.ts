import { existsSync } from 'node:fs';
import type { Device } from '../device.js';
import * as tf from '../tf.js';
import { loadOptional } from './load.js';
import type { BackendAdapter, ProbeResult } from './types.js';

interface DawnModule {
  create(flags: string[]): { requestAdapter(): Promise<unknown | null> };
  globals: Record<string, unknown>;
}

const VULKAN_LIBS = [
  '/usr/lib/x86_64-linux-gnu/libvulkan.so.1',
  '/usr/lib/aarch64-linux-gnu/libvulkan.so.1',
  '/usr/lib64/libvulkan.so.1',
  '/usr/lib/libvulkan.so.1',
];

const INSTALL_VULKAN =
  'install the Vulkan loader and a driver (Debian: libvulkan1 plus mesa-vulkan-drivers from ' +
  'bookworm-backports, or the NVIDIA Vulkan ICD on an NVIDIA machine)';

let navigatorReady: Promise<ProbeResult> | undefined;

/** Install Dawn's `navigator.gpu` and WebGPU globals once per thread, and ask for an adapter. */
function setUpNavigator(): Promise<ProbeResult> {
  navigatorReady ??= (async (): Promise<ProbeResult> => {
    if (process.platform === 'linux' && !VULKAN_LIBS.some((p) => existsSync(p))) {
      return { available: false, reason: 'no Vulkan loader (libvulkan.so.1 not found)' };
    }
    const dawn = await loadOptional<DawnModule>('webgpu');
    if (!dawn.ok) return { available: false, reason: dawn.reason };
    Object.assign(globalThis, dawn.module.globals);
    const gpu = dawn.module.create([]);
    const adapter = await gpu.requestAdapter();
    if (adapter === null) {
      return {
        available: false,
        reason: 'Dawn found no WebGPU adapter (no Vulkan driver for a GPU)',
      };
    }
    Object.defineProperty(globalThis, 'navigator', {
      value: { ...(globalThis as { navigator?: object }).navigator, gpu },
      configurable: true,
      writable: true,
    });
    // The tfjs backend registers itself only if `navigator.gpu` exists when it is imported.
    const backendPkg = await loadOptional('@tensorflow/tfjs-backend-webgpu');
    if (!backendPkg.ok) return { available: false, reason: backendPkg.reason };
    const info = (adapter as { info?: { vendor?: string; device?: string; description?: string } })
      .info;
    const name = [info?.vendor, info?.device || info?.description].filter(Boolean).join(' ');
    return { available: true, reason: `Dawn WebGPU adapter${name ? `: ${name}` : ''}` };
  })();
  return navigatorReady;
}

/**
 * WebGPU through Dawn (npm `webgpu`), selectable by name only: it is a real GPU path on the
 * lent GPU machines, but `dataSync()` does not work there, so code must read with `await data()`.
 */
export const webgpuBackend: BackendAdapter = {
  name: 'webgpu',
  tfName: 'webgpu',
  deviceKinds: ['gpu'],
  install: `npm install webgpu @tensorflow/tfjs-backend-webgpu@4.22.0, and ${INSTALL_VULKAN}`,
  probe: setUpNavigator,
  async activate(device: Device) {
    if (device.index !== 0) {
      throw new Error(
        `Dawn exposes one adapter per process; device gpu:${device.index} cannot be placed`,
      );
    }
    const probe = await setUpNavigator();
    if (!probe.available) throw new Error(probe.reason);
    const ok = await tf.setBackend('webgpu');
    if (!ok) throw new Error('tf.setBackend("webgpu") returned false');
    await tf.ready();
    return 'Dawn WebGPU, gpu:0';
  },
};
