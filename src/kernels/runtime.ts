import { TroupeError } from '../errors.js';
import {
  AUTO_ORDER,
  BACKENDS,
  type BackendAdapter,
  type BackendChoice,
  type BackendName,
  backendAdapter,
} from './backends/index.js';
import { installCustomKernels } from './custom/index.js';
import { type Device, formatDevice, parseDevice } from './device.js';
import { threadBlasThreads, useThreadBlasThreads } from './native.js';
import { BF16_BACKENDS, checkPrecision, type Precision, usePrecision } from './precision.js';
import * as tf from './tf.js';

/** What an actor asks for: a backend (or `auto`) and, optionally, a device. */
export interface RuntimeSpec {
  readonly backend?: BackendChoice;
  /** `cpu`, `gpu` or `gpu:N`. Unset: the chosen backend's own device. */
  readonly device?: string;
  /** BLAS threads per call of this thread's native kernels. Unset: the process's default. */
  readonly blasThreads?: number;
  /**
   * Matrix-product precision of this thread (precision.ts); default fp32. bf16 on a backend that
   * cannot compute it is refused; with backend `auto` only the backends that can are tried.
   */
  readonly precision?: Precision;
}

export interface BackendAttempt {
  readonly backend: BackendName;
  readonly available: boolean;
  readonly reason: string;
}

/** What a thread's runtime is running on, and why. */
export interface RuntimeInfo {
  readonly backend: BackendName;
  readonly device: string;
  /** What the backend set up (e.g. `XNNPACK, SIMD, 1 thread`). */
  readonly note: string;
  /** Why this backend: the explicit choice, or what `auto` tried before it. */
  readonly reason: string;
  readonly attempts: readonly BackendAttempt[];
  /** Kernels and gradients Troupe registered on top of tfjs. */
  readonly customKernels: readonly string[];
  /** BLAS threads per call of this thread's native kernels; absent without them. */
  readonly blasThreads?: number;
  /** Matrix-product precision of this thread (precision.ts). */
  readonly precision: Precision;
}

let current: RuntimeInfo | undefined;

/** The runtime this thread started, if any. */
export function currentRuntime(): RuntimeInfo | undefined {
  return current;
}

function defaultDevice(adapter: BackendAdapter): Device {
  return { kind: adapter.deviceKinds[0], index: 0 };
}

function candidates(device: Device | undefined): BackendAdapter[] {
  if (device?.kind === 'gpu')
    return [...BACKENDS.values()].filter((a) => a.deviceKinds.includes('gpu'));
  const order = AUTO_ORDER.map((n) => backendAdapter(n));
  return device?.kind === 'cpu' ? order.filter((a) => a.deviceKinds.includes('cpu')) : order;
}

async function activate(
  adapter: BackendAdapter,
  device: Device,
  reason: string,
  attempts: BackendAttempt[],
  precision: Precision,
): Promise<RuntimeInfo> {
  const note = await adapter.activate(device);
  const customKernels = installCustomKernels(adapter.tfName);
  usePrecision(adapter.name, precision);
  const blasThreads = threadBlasThreads();
  current = {
    backend: adapter.name,
    device: formatDevice(device),
    note,
    reason,
    attempts,
    customKernels,
    ...(blasThreads === undefined ? {} : { blasThreads }),
    precision,
  };
  return current;
}

async function startExplicit(
  adapter: BackendAdapter,
  device: Device | undefined,
  precision: Precision,
) {
  checkPrecision(adapter.name, precision);
  const dev = device ?? defaultDevice(adapter);
  if (!adapter.deviceKinds.includes(dev.kind)) {
    const alternatives = [...BACKENDS.values()]
      .filter((b) => b.deviceKinds.includes(dev.kind))
      .map((b) => b.name);
    throw new TroupeError(
      'BAD_DEVICE',
      `Backend '${adapter.name}' cannot place tensors on '${formatDevice(dev)}': it runs on ` +
        `${adapter.deviceKinds.join('/')}. For ${dev.kind}, use one of: ${alternatives.join(', ')}.`,
      { details: { backend: adapter.name, device: formatDevice(dev) } },
    );
  }
  const probe = await adapter.probe();
  const attempts = [{ backend: adapter.name, ...probe }];
  if (!probe.available) {
    throw new TroupeError(
      'BACKEND_UNAVAILABLE',
      `Backend '${adapter.name}' is not available: ${probe.reason}. To use it: ${adapter.install}. ` +
        `Or choose backend 'auto'.`,
      { details: { backend: adapter.name, reason: probe.reason, install: adapter.install } },
    );
  }
  return activate(adapter, dev, `chosen by name (${probe.reason})`, attempts, precision);
}

async function startAuto(device: Device | undefined, precision: Precision): Promise<RuntimeInfo> {
  const attempts: BackendAttempt[] = [];
  const skipped: string[] = [];
  const can = (a: BackendAdapter) =>
    precision === 'fp32' || (BF16_BACKENDS as readonly string[]).includes(a.name);
  for (const adapter of candidates(device).filter(can)) {
    const probe = await adapter.probe();
    attempts.push({ backend: adapter.name, ...probe });
    if (!probe.available) {
      skipped.push(`${adapter.name}: ${probe.reason}`);
      continue;
    }
    try {
      const why = skipped.length ? `; skipped ${skipped.join('; ')}` : '';
      return await activate(
        adapter,
        device ?? defaultDevice(adapter),
        `auto: first available${precision === 'fp32' ? '' : ` for precision ${precision}`}${why}`,
        attempts,
        precision,
      );
    } catch (e) {
      const reason = `failed to start: ${(e as Error).message}`;
      attempts[attempts.length - 1] = { backend: adapter.name, available: false, reason };
      skipped.push(`${adapter.name}: ${reason}`);
    }
  }
  throw new TroupeError(
    'BACKEND_UNAVAILABLE',
    `No backend could start${device ? ` on ${formatDevice(device)}` : ''}: ${skipped.join('; ')}.`,
    { details: { attempts } },
  );
}

/**
 * Start (or switch) this thread's tensor runtime: choose the backend, place it on the device,
 * register Troupe's kernels and gradients. `auto` tries tensorflow-gpu → tensorflow → wasm → cpu
 * (only GPU backends for a `gpu` device, only CPU ones for `cpu`) and reports why it picked one;
 * an explicit backend that cannot run fails with the reason and what to install.
 */
export async function startRuntime(spec: RuntimeSpec = {}): Promise<RuntimeInfo> {
  // tfjs prints "install our node backend" banners to the console; Troupe reports instead.
  tf.env().set('PROD', true);
  if (spec.blasThreads !== undefined) useThreadBlasThreads(spec.blasThreads);
  const device = spec.device === undefined ? undefined : parseDevice(spec.device);
  const name = spec.backend ?? 'auto';
  const precision = spec.precision ?? 'fp32';
  return name === 'auto'
    ? startAuto(device, precision)
    : startExplicit(backendAdapter(name), device, precision);
}

/** Probe every backend without switching to it (for `troupe doctor`). */
export async function probeBackends(): Promise<BackendAttempt[]> {
  const out: BackendAttempt[] = [];
  for (const adapter of BACKENDS.values())
    out.push({ backend: adapter.name, ...(await adapter.probe()) });
  return out;
}
