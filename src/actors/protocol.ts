import type { RuntimeInfo } from '../kernels/runtime.js';
import type { SerializedError } from './errors.js';
import type { HostBoot } from './transport.js';

/**
 * Control messages from an actor's host (thread or process) to the controller, on the control
 * channel (comlink calls travel on their own channels). One discriminated union: the whole wire
 * protocol of control, with `HostCommand` for the other direction.
 */
export type ControlMessage =
  | { readonly type: 'ready'; readonly runtime: RuntimeInfo; readonly roles: readonly string[] }
  | { readonly type: 'start-failed'; readonly error: SerializedError }
  | { readonly type: 'log'; readonly record: LogRecord }
  | { readonly type: 'metric'; readonly record: MetricRecord }
  /**
   * Microseconds the roles spent in methods since the last report (process hosts, where it
   * travels on the answer's envelope and is handed on as this message before the answer; a
   * thread adds them to a SharedArrayBuffer instead), so a call's time is counted when it settles.
   */
  | { readonly type: 'busy'; readonly us: number }
  /** Answer to `stop-role`: the role's channel is closed and its `dispose()` (if any) ran. */
  | { readonly type: 'role-stopped'; readonly role: string; readonly error?: SerializedError }
  /** An uncaught error in a process host, sent just before it exits (a thread's reaches `error`). */
  | { readonly type: 'fatal'; readonly error: SerializedError };

/** Commands from the controller to a host, on the same control channel. */
export type HostCommand =
  /** Stop one role of a host that keeps running for its other roles (colocation). */
  { readonly type: 'stop-role'; readonly role: string };

/**
 * What travels over a process host's single IPC channel, in both directions: the boot data
 * (controller → child, first), control messages (child → controller), commands (controller →
 * child), and each role's comlink messages tagged with the role's name.
 */
export type ProcessEnvelope =
  | { readonly kind: 'boot'; readonly boot: HostBoot }
  | { readonly kind: 'control'; readonly message: ControlMessage }
  | { readonly kind: 'command'; readonly command: HostCommand }
  /**
   * A comlink message of `role`. From the child, `busyUs` carries the microseconds its roles
   * spent in methods since the last one (the `busy` control message, folded into the answer it
   * precedes so that a call costs two IPC messages, not three).
   */
  | {
      readonly kind: 'call';
      readonly role: string;
      readonly data: unknown;
      readonly busyUs?: number;
    };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogRecord {
  readonly actor: string;
  readonly level: LogLevel;
  readonly message: string;
  readonly data?: Record<string, unknown>;
  /** Milliseconds since the epoch. */
  readonly time: number;
}

export interface MetricRecord {
  readonly actor: string;
  /** Namespaced key (`actor/pg_loss`, `time/generate_s`). */
  readonly name: string;
  readonly value: number;
  readonly step?: number;
  readonly time: number;
}
