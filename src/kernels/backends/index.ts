import { lookup } from '../../errors.js';
import { cpuBackend } from './cpu.js';
import { tensorflowBackend, tensorflowGpuBackend } from './tensorflow.js';
import { BACKEND_NAMES, type BackendAdapter, type BackendName } from './types.js';
import { wasmBackend } from './wasm.js';
import { webgpuBackend } from './webgpu.js';

export {
  BACKEND_CHOICES,
  BACKEND_NAMES,
  type BackendAdapter,
  type BackendChoice,
  type BackendName,
  type ProbeResult,
} from './types.js';

/** Each backend's adapter (the type refuses a name of `BACKEND_NAMES` without one). */
const ADAPTERS = {
  'tensorflow-gpu': tensorflowGpuBackend,
  tensorflow: tensorflowBackend,
  wasm: wasmBackend,
  webgpu: webgpuBackend,
  cpu: cpuBackend,
} as const satisfies Record<BackendName, BackendAdapter>;

/** Every backend Troupe can run on, by Troupe name, in the order of `BACKEND_NAMES`. */
export const BACKENDS: ReadonlyMap<BackendName, BackendAdapter> = new Map(
  BACKEND_NAMES.map((n) => [n, ADAPTERS[n]]),
);

/** The order `auto` tries. `webgpu` is chosen only by name (see RUNTIME-NOTES: lavapipe is slow). */
export const AUTO_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export function backendAdapter(name: string): BackendAdapter {
  return lookup(BACKENDS as ReadonlyMap<string, BackendAdapter>, name, 'backend');
}
