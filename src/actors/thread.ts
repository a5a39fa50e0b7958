import * as Comlink from 'comlink';
import { TroupeError } from '../errors.js';
import type { RuntimeInfo, RuntimeSpec } from '../kernels/runtime.js';
import { deserializeError, installErrorTransfer } from './errors.js';
import type { ControlMessage, LogRecord, MetricRecord } from './protocol.js';
import type { RoleRef } from './role.js';
import type { HostExit, HostTransport, Launcher, LaunchOptions } from './transport.js';

/** One role of a host, as the controller describes it. */
export interface RoleSpec {
  readonly name: string;
  readonly role: RoleRef<unknown, unknown>;
  readonly args: unknown;
}

export interface ThreadEvents {
  log(record: LogRecord): void;
  metric(record: MetricRecord): void;
}

/** "exit code 3", "killed by SIGKILL": how a host ended, for messages. */
export function describeExit(exit: HostExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * One live host — a worker thread or a child process, whichever transport it came from —
 * hosting one or more roles (colocated roles share its tensor runtime). Owns the transport and
 * one comlink proxy per role; `stop` leaves nothing behind.
 */
export class LiveThread {
  readonly remotes = new Map<string, Comlink.Remote<Record<string, unknown>>>();
  runtime: RuntimeInfo | undefined;
  private exit: HostExit | undefined;
  private readonly exitListeners: Array<(exit: HostExit) => void> = [];
  private readonly roleStops = new Map<string, (error: unknown) => void>();

  private constructor(
    readonly name: string,
    private readonly transport: HostTransport,
    roles: readonly string[],
    private readonly events: ThreadEvents,
    private readonly busy: SharedArrayBuffer | undefined,
  ) {
    for (const r of roles) this.remotes.set(r, Comlink.wrap(transport.endpoint(r)));
    transport.onControl((m) => this.control(m));
    transport.onExit((exit) => {
      this.exit = exit;
      for (const settle of this.roleStops.values()) settle(undefined);
      for (const l of this.exitListeners.splice(0)) l(exit);
    });
  }

  private control(m: ControlMessage): void {
    if (m.type === 'log') this.events.log(m.record);
    else if (m.type === 'metric') this.events.metric(m.record);
    else if (m.type === 'busy' && this.busy) {
      Atomics.add(new BigInt64Array(this.busy, 0, 1), 0, BigInt(m.us));
    } else if (m.type === 'role-stopped') {
      this.roleStops.get(m.role)?.(m.error ? deserializeError(m.error) : undefined);
    }
  }

  /** Start a host with `launch` and wait for its ready handshake (or its failure, or the timeout). */
  static async start(
    name: string,
    launch: Launcher,
    runtime: RuntimeSpec,
    roles: readonly RoleSpec[],
    events: ThreadEvents,
    timeoutMs: number,
    options: LaunchOptions = {},
  ): Promise<LiveThread> {
    installErrorTransfer();
    const boot = {
      thread: name,
      runtime,
      roles: roles.map((r) => ({
        name: r.name,
        module: r.role.module,
        exportName: r.role.exportName,
        args: r.args,
      })),
    };
    const t = new LiveThread(
      name,
      launch(boot, options),
      roles.map((r) => r.name),
      events,
      options.busy,
    );
    try {
      t.runtime = await t.handshake(timeoutMs);
      return t;
    } catch (e) {
      await t.stop();
      throw e;
    }
  }

  private handshake(timeoutMs: number): Promise<RuntimeInfo> {
    const kind = this.isolation === 'process' ? 'process' : 'thread';
    return new Promise((resolve, reject) => {
      const fail = (message: string, cause?: unknown) =>
        reject(
          new TroupeError('ACTOR_START_FAILED', `Actor ${kind} '${this.name}' ${message}`, {
            cause,
            details: { actor: this.name },
          }),
        );
      const timer = setTimeout(
        () => fail(`did not become ready within ${timeoutMs} ms`),
        timeoutMs,
      );
      let settled = false;
      this.transport.onControl((m) => {
        if (settled) return;
        if (m.type === 'ready') {
          done();
          resolve(m.runtime);
        } else if (m.type === 'start-failed') {
          done();
          const cause = deserializeError(m.error);
          fail(`failed to start: ${cause.message}`, cause);
        }
      });
      this.onExit((exit) => {
        if (settled) return;
        done();
        const error = exit.error as Error | undefined;
        fail(
          `exited (${describeExit(exit)}) before it was ready${error ? `: ${error.message}` : ''}`,
          error,
        );
      });
      const done = () => {
        settled = true;
        clearTimeout(timer);
      };
    });
  }

  get isolation(): HostTransport['isolation'] {
    return this.transport.isolation;
  }

  get exited(): boolean {
    return this.exit !== undefined;
  }

  /** Called once when the host exits (crash, kill or stop), with how and its last error. */
  onExit(listener: (exit: HostExit) => void): void {
    if (this.exit !== undefined) listener(this.exit);
    else this.exitListeners.push(listener);
  }

  /** The worker's thread id (threads; undefined for a process), for diagnostics and tests. */
  get threadId(): number | undefined {
    return this.transport.threadId;
  }

  /** The process the roles run in: the child's for a process host, this one's for a thread. */
  get pid(): number {
    return this.transport.pid;
  }

  /**
   * Stop one role while the host runs on for the others: its channel closes and its `dispose()`
   * runs there. Resolves when the host says so (or has exited); rejects with dispose's error.
   */
  stopRole(role: string): Promise<void> {
    this.remotes.delete(role);
    this.transport.release(role);
    if (this.exit) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.roleStops.set(role, (error) => {
        this.roleStops.delete(role);
        if (error) reject(error);
        else resolve();
      });
      this.transport.command({ type: 'stop-role', role });
    });
  }

  /** End the host and release its channels. Idempotent. */
  async stop(): Promise<void> {
    // Closing the channels is enough: comlink proxies over a closed port hold nothing.
    this.remotes.clear();
    await this.transport.close();
  }
}
