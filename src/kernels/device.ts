import { TroupeError } from '../errors.js';

/** Where an actor's tensors live. Parsed from `cpu`, `gpu`, `gpu:N` (and `cpu:0`). */
export interface Device {
  readonly kind: 'cpu' | 'gpu';
  readonly index: number;
}

const DEVICE_RE = /^(cpu|gpu)(?::(\d+))?$/;

export function parseDevice(spec: string): Device {
  const m = DEVICE_RE.exec(spec.trim().toLowerCase());
  if (!m) {
    throw new TroupeError(
      'BAD_DEVICE',
      `Invalid device '${spec}'. Use 'cpu', 'gpu' or 'gpu:N' (N = GPU index, e.g. 'gpu:0').`,
      { details: { device: spec } },
    );
  }
  const index = m[2] === undefined ? 0 : Number(m[2]);
  if (m[1] === 'cpu' && index !== 0) {
    throw new TroupeError(
      'BAD_DEVICE',
      `Invalid device '${spec}': the CPU is one device, write 'cpu'. ` +
        'Threads per actor are set by the topology, not the device string.',
      { details: { device: spec } },
    );
  }
  return { kind: m[1] as Device['kind'], index };
}

export function formatDevice(d: Device): string {
  return d.kind === 'cpu' ? 'cpu' : `gpu:${d.index}`;
}
