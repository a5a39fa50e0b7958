import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { TroupeError } from '../errors.js';
import type { RuntimeInfo, RuntimeSpec } from '../kernels/runtime.js';
import { deserializeError, installErrorTransfer } from './errors.js';
import type { HostedRole } from './host.js';
import type { ControlMessage, LogRecord, MetricRecord } from './protocol.js';
import type { RoleRef } from './role.js';
import { startThread } from './spawn.js';

/** One role of a thread, as the controller describes it. */
export interface RoleSpec {
  readonly name: string;
  readonly role: RoleRef<unknown, unknown>;
  readonly args: unknown;
}

export interface ThreadEvents {
  log(record: LogRecord): void;
  metric(record: MetricRecord): void;
}

/**
 * One live worker thread hosting one or more roles (colocated roles share its tensor runtime).
 * Owns the worker, the control port and one comlink port per role; `stop` leaves nothing behind.
 */
export class LiveThread {
  readonly remotes = new Map<string, Comlink.Remote<Record<string, unknown>>>();
  runtime: RuntimeInfo | undefined;
  private readonly worker: Worker;
  private readonly ports: MessagePort[] = [];
  private readonly control: MessagePort;
  private exitCode: number | undefined;
  private lastError: unknown;
  private readonly exitListeners: Array<(code: number, error: unknown) => void> = [];

  private constructor(
    readonly name: string,
    runtime: RuntimeSpec,
    roles: readonly RoleSpec[],
    private readonly events: ThreadEvents,
    busy: SharedArrayBuffer | undefined,
  ) {
    installErrorTransfer();
    const control = new MessageChannel();
    this.control = control.port1;
    const hosted: HostedRole[] = [];
    for (const r of roles) {
      const ch = new MessageChannel();
      this.ports.push(ch.port1);
      this.remotes.set(r.name, Comlink.wrap(nodeEndpoint(ch.port1)));
      hosted.push({
        name: r.name,
        module: r.role.module,
        exportName: r.role.exportName,
        args: r.args,
        port: ch.port2,
      });
    }
    this.worker = startThread(
      { thread: name, runtime, roles: hosted, control: control.port2, busy },
      [control.port2, ...hosted.map((h) => h.port)],
    );
    // Always listen for errors: an unhandled worker error would otherwise kill the process.
    this.worker.on('error', (e) => {
      this.lastError = e;
    });
    this.worker.on('exit', (code) => {
      this.exitCode = code;
      for (const l of this.exitListeners) l(code, this.lastError);
    });
    this.control.on('message', (m: ControlMessage) => {
      if (m.type === 'log') this.events.log(m.record);
      else if (m.type === 'metric') this.events.metric(m.record);
    });
  }

  /** Start a thread and wait for its ready handshake (or its failure, or the timeout). */
  static async start(
    name: string,
    runtime: RuntimeSpec,
    roles: readonly RoleSpec[],
    events: ThreadEvents,
    timeoutMs: number,
    busy?: SharedArrayBuffer,
  ): Promise<LiveThread> {
    const t = new LiveThread(name, runtime, roles, events, busy);
    try {
      t.runtime = await t.handshake(timeoutMs);
      return t;
    } catch (e) {
      await t.stop();
      throw e;
    }
  }

  private handshake(timeoutMs: number): Promise<RuntimeInfo> {
    return new Promise((resolve, reject) => {
      const fail = (message: string, cause?: unknown) =>
        reject(
          new TroupeError('ACTOR_START_FAILED', `Actor thread '${this.name}' ${message}`, {
            cause,
            details: { actor: this.name },
          }),
        );
      const timer = setTimeout(
        () => fail(`did not become ready within ${timeoutMs} ms`),
        timeoutMs,
      );
      const onMessage = (m: ControlMessage) => {
        if (m.type === 'ready') {
          done();
          resolve(m.runtime);
        } else if (m.type === 'start-failed') {
          done();
          const cause = deserializeError(m.error);
          fail(`failed to start: ${cause.message}`, cause);
        }
      };
      const onExit = (code: number, error: unknown) => {
        done();
        fail(
          `exited with code ${code} before it was ready${error ? `: ${(error as Error).message}` : ''}`,
          error,
        );
      };
      const done = () => {
        clearTimeout(timer);
        this.control.off('message', onMessage);
        const i = this.exitListeners.indexOf(onExit);
        if (i >= 0) this.exitListeners.splice(i, 1);
      };
      this.control.on('message', onMessage);
      this.exitListeners.push(onExit);
    });
  }

  get exited(): boolean {
    return this.exitCode !== undefined;
  }

  /** Called once when the thread exits (crash, kill or stop), with the last worker error. */
  onExit(listener: (code: number, error: unknown) => void): void {
    if (this.exitCode !== undefined) listener(this.exitCode, this.lastError);
    else this.exitListeners.push(listener);
  }

  /** The OS-level thread id, for tests that kill it. */
  get threadId(): number {
    return this.worker.threadId;
  }

  /** Terminate the worker and close every port. Idempotent. */
  async stop(): Promise<void> {
    // Closing the ports is enough: comlink proxies over a closed port hold nothing.
    this.remotes.clear();
    for (const p of this.ports) p.close();
    this.control.close();
    if (this.exitCode === undefined) await this.worker.terminate();
  }
}
