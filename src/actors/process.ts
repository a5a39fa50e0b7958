import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Endpoint } from 'comlink';
import { TroupeError } from '../errors.js';
import { hostStart } from './built.js';
import { checkCrossable } from './crossing.js';
import { deserializeError } from './errors.js';
import { RoleChannels } from './ipc.js';
import type { ControlMessage, HostCommand, ProcessEnvelope } from './protocol.js';
import { tsxLoader } from './spawn.js';
import type { HostExit, HostTransport, Launcher } from './transport.js';

/** How long a child may take to exit after SIGTERM before it gets SIGKILL. */
const KILL_GRACE_MS = 2_000;

/**
 * Start a child process running the actor host (`process-entry`), with the controller's
 * environment plus `env`. One IPC channel carries everything, as `ProcessEnvelope`s serialised
 * with V8's structured serialisation (`serialization: 'advanced'`): typed arrays and
 * ArrayBuffers arrive as copies, a transfer list is ignored, and SharedArrayBuffers or
 * MessagePorts are refused by name before they are sent (`crossing.ts`). The child exits when
 * the channel closes, so a controller that dies leaves no child behind.
 */
export const startProcess: Launcher = (asked, { env }) => {
  for (const r of asked.roles) {
    checkCrossable(r.args, 'args', `The arguments of role '${r.name}'`, asked.thread);
  }
  const { boot, entry, needsLoader } = hostStart(asked, 'process-entry', {
    ...process.env,
    ...env,
  });
  const child = fork(fileURLToPath(entry), [], {
    env: { ...process.env, ...env },
    execArgv: childExecArgv(needsLoader),
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const t = new ProcessTransport(child, boot.thread);
  t.send({ kind: 'boot', boot });
  return t;
};

/**
 * The child's Node flags: this process's (as `fork` and worker threads inherit them, so a
 * controller run with `--import tsx` gives its role modules the same loader), less the
 * inspector's (a second process cannot listen on the same port), plus tsx's loader when the
 * child runs Troupe's TypeScript sources.
 */
function childExecArgv(needsLoader: boolean): string[] {
  const own = process.execArgv.filter((a) => !/^--inspect/.test(a));
  return needsLoader ? [...own, '--import', tsxLoader()] : own;
}

class ProcessTransport implements HostTransport {
  readonly isolation = 'process';
  readonly threadId = undefined;
  private exit: HostExit | undefined;
  private lastError: unknown;
  private readonly exitListeners: Array<(exit: HostExit) => void> = [];
  private readonly controlListeners: Array<(m: ControlMessage) => void> = [];
  private readonly channels = new RoleChannels((role, data) => this.postCall(role, data));
  private readonly exited: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    private readonly name: string,
  ) {
    child.on('message', (e: ProcessEnvelope) => this.receive(e));
    this.exited = new Promise((resolve) => {
      const ended = (code: number | null, signal?: string) => {
        if (this.exit) return;
        this.exit = { code, signal, error: this.lastError };
        for (const l of this.exitListeners.splice(0)) l(this.exit);
        resolve();
      };
      child.on('exit', (code, signal) => ended(code, signal ?? undefined));
      child.on('error', (e) => {
        this.lastError = e;
        // A child that never started (no pid) emits no 'exit'.
        if (child.pid === undefined) ended(null);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private receive(e: ProcessEnvelope): void {
    if (e.kind === 'control') {
      if (e.message.type === 'fatal') this.lastError = deserializeError(e.message.error);
      for (const l of this.controlListeners) l(e.message);
    } else if (e.kind === 'call') {
      if (e.busyUs !== undefined) {
        for (const l of this.controlListeners) l({ type: 'busy', us: e.busyUs });
      }
      this.channels.deliver(e.role, e.data);
    }
  }

  /**
   * Post an envelope (throws if it cannot be serialised); a closed channel is not an error here
   * (the exit handler reports it).
   */
  send(e: ProcessEnvelope): void {
    if (!this.child.connected) return;
    this.child.send(e, (err) => {
      if (err) this.lastError ??= err;
    });
  }

  private readonly endpoints = new Map<string, ReturnType<RoleChannels['endpoint']>>();

  endpoint(role: string): Endpoint {
    const ep = this.channels.endpoint(role);
    this.endpoints.set(role, ep);
    return ep;
  }

  release(role: string): void {
    this.endpoints.get(role)?.close();
  }

  /** Send one comlink message of `role` to the child, refusing what cannot cross. */
  private postCall(role: string, data: unknown): void {
    const method = (data as { path?: string[] }).path?.join('.') ?? '?';
    checkCrossable(data, 'call', `Call ${role}.${method}()`, this.name);
    // A message to a child that is gone is dropped, as a closed MessagePort drops it: its
    // exit fails the calls pending on it (and comlink's own release messages need no answer).
    if (!this.child.connected) return;
    try {
      this.send({ kind: 'call', role, data });
    } catch (e) {
      throw new TroupeError(
        'UNSUPPORTED',
        `Call ${role}.${method}() cannot cross to actor process '${this.name}': ${(e as Error).message} ` +
          '(a process receives a structured-clone copy: no functions; class instances arrive as plain objects)',
        { cause: e, details: { actor: role, method } },
      );
    }
  }

  onControl(listener: (m: ControlMessage) => void): void {
    this.controlListeners.push(listener);
  }

  command(c: HostCommand): void {
    this.send({ kind: 'command', command: c });
  }

  onExit(listener: (exit: HostExit) => void): void {
    if (this.exit) listener(this.exit);
    else this.exitListeners.push(listener);
  }

  /**
   * SIGTERM (whose default action ends even a process stuck in a loop), then SIGKILL if it has
   * not exited within a grace period; resolves once it has.
   */
  async close(): Promise<void> {
    this.channels.clear();
    if (this.exit) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), KILL_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}
