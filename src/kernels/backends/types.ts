import type { Device } from '../device.js';

/**
 * The backends Troupe knows, in Troupe's names (not tfjs' registry names): the one list every
 * other place reads (the adapters in `BACKENDS`, the config's and the topology's backend fields,
 * `troupe doctor`). A new backend is its adapter file plus its name here and its line there.
 */
export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'webgpu', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What a config or a topology may name: a backend, or `auto` (the best available here). */
export const BACKEND_CHOICES = ['auto', ...BACKEND_NAMES] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface ProbeResult {
  readonly available: boolean;
  /** Why it is or is not available, written for a person. */
  readonly reason: string;
}

/**
 * One adapter per backend. `probe` says whether this thread could run it (it may load the
 * package); `activate` makes it the thread's tfjs backend on `device` and returns a short note
 * on what it set up. Algorithm code never sees an adapter: `startRuntime` does.
 */
export interface BackendAdapter {
  readonly name: BackendName;
  /** Name of the backend in tfjs' registry (`tf.setBackend(tfName)`). */
  readonly tfName: string;
  /** Device kinds this backend can place tensors on. */
  readonly deviceKinds: readonly Device['kind'][];
  /** What a user installs to make it available. */
  readonly install: string;
  probe(): Promise<ProbeResult>;
  activate(device: Device): Promise<string>;
  /**
   * Set for a backend whose native library chooses its devices once per process, as it loads
   * (libtensorflow reads CUDA_VISIBLE_DEVICES then): the environment a fresh process needs to
   * place this backend's tensors on `device`, given the environment it would inherit. A worker
   * thread shares the controller's process and cannot honour such a device; the supervisor
   * starts the actor in a child process with this environment instead.
   */
  processEnv?(
    device: Device,
    inherited: Readonly<Record<string, string | undefined>>,
  ): Record<string, string>;
  /** Whether the backend's package is installed, checked without loading it. */
  installed?(): boolean;
}
