import { TroupeError } from '../errors.js';
import { BACKENDS, backendAdapter } from '../kernels/backends/index.js';
import { formatDevice, parseDevice } from '../kernels/device.js';
import type { RuntimeSpec } from '../kernels/runtime.js';
import { startProcess } from './process.js';
import { startThread } from './spawn.js';
import { ISOLATIONS, type Isolation, type Launcher } from './transport.js';

/** Where a host runs, and why. */
export interface HostPlacement {
  readonly isolation: Isolation;
  /** The child's extra environment (processes only). */
  readonly env?: Readonly<Record<string, string>>;
  readonly launch: Launcher;
  /** Why this isolation (for logs and errors). */
  readonly why: string;
}

export interface PlacementRequest {
  readonly isolation?: Isolation;
  readonly runtime?: RuntimeSpec;
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * The environment a device needs when the backend that would run it picks devices per process
 * (`BackendAdapter.processEnv`) and the device names a GPU index; undefined otherwise. For
 * `auto`, such a backend counts when its package is installed (auto would try it first).
 */
function pinnedDevice(
  runtime: RuntimeSpec,
  inherited: Readonly<Record<string, string | undefined>>,
): { backend: string; device: string; env: Record<string, string> } | undefined {
  if (runtime.device === undefined || !/:\s*\d+\s*$/.test(runtime.device)) return undefined;
  const device = parseDevice(runtime.device);
  if (device.kind !== 'gpu') return undefined;
  const name = runtime.backend ?? 'auto';
  const adapter =
    name === 'auto'
      ? [...BACKENDS.values()].find(
          (a) => a.processEnv && a.deviceKinds.includes('gpu') && a.installed?.() === true,
        )
      : backendAdapter(name);
  if (!adapter?.processEnv) return undefined;
  return {
    backend: adapter.name,
    device: formatDevice(device),
    env: adapter.processEnv(device, inherited),
  };
}

/**
 * Thread or process for host `name`. Default: a thread, except for a `gpu:N` device on a backend
 * that picks its device per process (tensorflow-gpu), which gets a process with the environment
 * that pins it (CUDA_VISIBLE_DEVICES). Asking for a thread there is refused with the reason, and
 * so is an `env` for a thread (a thread shares the controller's environment).
 */
export function placeHost(
  name: string,
  request: PlacementRequest,
  inherited: Readonly<Record<string, string | undefined>> = process.env,
): HostPlacement {
  const asked = request.isolation;
  if (asked !== undefined && !ISOLATIONS.includes(asked)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Actor '${name}': unknown isolation ${JSON.stringify(asked)}. Known: ${ISOLATIONS.join(', ')}.`,
      { details: { actor: name, isolation: asked } },
    );
  }
  const pinned = pinnedDevice(request.runtime ?? {}, inherited);
  if (asked === 'thread' && pinned) {
    throw new TroupeError(
      'BAD_DEVICE',
      `Actor '${name}': backend '${pinned.backend}' picks its GPU once per process ` +
        '(libtensorflow reads CUDA_VISIBLE_DEVICES when it loads), and a worker thread shares the ' +
        `controller's process, so device '${pinned.device}' cannot be honoured in a thread. ` +
        `Use isolation 'process' (the default for this device), or device 'gpu' for whichever GPU the process sees.`,
      { details: { actor: name, backend: pinned.backend, device: pinned.device } },
    );
  }
  if (asked !== 'process' && !pinned && request.env !== undefined) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Actor '${name}': 'env' needs isolation 'process' (a thread shares the controller's environment)`,
      { details: { actor: name } },
    );
  }
  const env = { ...request.env };
  for (const [k, v] of Object.entries(pinned?.env ?? {})) {
    if (env[k] !== undefined && env[k] !== v) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Actor '${name}': env.${k}=${JSON.stringify(env[k])} contradicts device '${pinned!.device}', which sets ${k}=${JSON.stringify(v)}; remove one`,
        { details: { actor: name, variable: k } },
      );
    }
    env[k] = v;
  }
  if (asked === 'thread' || (asked === undefined && !pinned)) {
    return { isolation: 'thread', launch: startThread, why: asked ? 'asked for' : 'default' };
  }
  return {
    isolation: 'process',
    env,
    launch: startProcess,
    why: asked
      ? 'asked for'
      : `backend '${pinned!.backend}' picks its device per process (${Object.entries(pinned!.env)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')})`,
  };
}
