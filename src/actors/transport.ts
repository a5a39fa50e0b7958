import type { Endpoint } from 'comlink';
import type { RuntimeSpec } from '../kernels/runtime.js';
import type { ControlMessage, HostCommand } from './protocol.js';

/**
 * How an actor is isolated: a worker thread of the controller's process (the default: cheap to
 * start, buffers transferred, SharedArrayBuffers shared), or a child process of its own (for
 * backends that pick their device per process, and the first step toward other machines).
 */
export type Isolation = 'thread' | 'process';

export const ISOLATIONS: readonly Isolation[] = ['thread', 'process'];

/** One role a host builds: its factory's module and export, and the factory's arguments. */
export interface RoleBoot {
  readonly name: string;
  readonly module: string;
  readonly exportName: string;
  readonly args: unknown;
}

/** What a host is started with, whichever transport carries it. */
export interface HostBoot {
  /** The host's name (the actor's, or the colocated group's). */
  readonly thread: string;
  readonly runtime: RuntimeSpec;
  readonly roles: readonly RoleBoot[];
}

/** How a host ended: an exit code, or the signal that killed it (processes), and its last error. */
export interface HostExit {
  readonly code: number | null;
  readonly signal?: string;
  readonly error?: unknown;
}

/**
 * The controller's side of one host, whatever runs it: a comlink endpoint per role, the control
 * channel both ways, exit notification and an end. `LiveHost` and the supervisor see only this,
 * so a host on another machine is one more implementation.
 */
export interface HostTransport {
  readonly isolation: Isolation;
  /** The worker's thread id (threads), or the child's process id (processes). */
  readonly threadId: number | undefined;
  readonly pid: number;
  /** The comlink endpoint on which role `name`'s calls travel. */
  endpoint(name: string): Endpoint;
  /** Close role `name`'s channel on this side (the role was stopped; its host runs on). */
  release(name: string): void;
  onControl(listener: (m: ControlMessage) => void): void;
  command(c: HostCommand): void;
  /** Called once, when the host is gone (crash, kill or `close`). */
  onExit(listener: (exit: HostExit) => void): void;
  /** End the host and release its channels; resolves once it has exited. Idempotent. */
  close(): Promise<void>;
}

/** Options a launcher gets beside the boot data. */
export interface LaunchOptions {
  /** In-method time counter shared with the host (threads only; a process reports `busy`). */
  readonly busy?: SharedArrayBuffer;
  /** Environment of the child (processes only), on top of the controller's. */
  readonly env?: Readonly<Record<string, string>>;
}

export type Launcher = (boot: HostBoot, options: LaunchOptions) => HostTransport;
