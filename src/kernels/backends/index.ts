import { lookup } from '../../errors.js';
import { cpuBackend } from './cpu.js';
import { tensorflowBackend, tensorflowGpuBackend } from './tensorflow.js';
import type { BackendAdapter, BackendName } from './types.js';
import { wasmBackend } from './wasm.js';
import { webgpuBackend } from './webgpu.js';

export type { BackendAdapter, BackendName, ProbeResult } from './types.js';

/** Every backend Troupe can run on, by Troupe name. */
export const BACKENDS: ReadonlyMap<BackendName, BackendAdapter> = new Map(
  [tensorflowGpuBackend, tensorflowBackend, wasmBackend, webgpuBackend, cpuBackend].map((b) => [
    b.name,
    b,
  ]),
);

/** The order `auto` tries. `webgpu` is chosen only by name (see RUNTIME-NOTES: lavapipe is slow). */
export const AUTO_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export function backendAdapter(name: string): BackendAdapter {
  return lookup(BACKENDS as ReadonlyMap<string, BackendAdapter>, name, 'backend');
}
