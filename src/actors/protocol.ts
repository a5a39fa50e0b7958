import type { RuntimeInfo } from '../kernels/runtime.js';
import type { SerializedError } from './errors.js';

/**
 * Control messages from an actor's thread to the controller, on the control port (comlink calls
 * travel on their own ports). One discriminated union: the whole wire protocol of control.
 */
export type ControlMessage =
  | { readonly type: 'ready'; readonly runtime: RuntimeInfo; readonly roles: readonly string[] }
  | { readonly type: 'start-failed'; readonly error: SerializedError }
  | { readonly type: 'log'; readonly record: LogRecord }
  | { readonly type: 'metric'; readonly record: MetricRecord };

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
