import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { hostStart } from './built.js';
import type { ControlMessage, HostCommand } from './protocol.js';
import type { HostBoot, HostExit, HostTransport, Launcher, RoleBoot } from './transport.js';

/** A role as a thread receives it: its boot data and the port its calls arrive on. */
export interface HostedRole extends RoleBoot {
  readonly port: MessagePort;
}

/** What a thread is started with (its `workerData`). */
export interface ThreadBootData extends Omit<HostBoot, 'roles'> {
  readonly roles: readonly HostedRole[];
  /** Control channel, both ways (messages up, commands down). */
  readonly control: MessagePort;
  /**
   * Microseconds the thread's roles spent inside their methods (BigInt64 slot 0, summed with
   * Atomics.add as each call settles): the controller compares it with its round trips.
   */
  readonly busy?: SharedArrayBuffer;
}

/**
 * Start a worker thread running the actor host: one MessageChannel per role and one for control,
 * all transferred to the worker. From the built package the entry is plain JS; from TypeScript
 * sources the thread first registers tsx's loader, since Node 20 workers cannot load `.ts` files
 * by themselves (RUNTIME-NOTES), unless a compiled copy of the sources can host it (`hostStart`).
 */
export const startThread: Launcher = (asked, { busy }) => {
  const { boot, entry, needsLoader } = hostStart(asked, 'worker-entry');
  const control = new MessageChannel();
  const ports = new Map<string, MessagePort>();
  const roles: HostedRole[] = boot.roles.map((r) => {
    const ch = new MessageChannel();
    ports.set(r.name, ch.port1);
    return { ...r, port: ch.port2 };
  });
  const data: ThreadBootData = { ...boot, roles, control: control.port2, busy };
  const transferList = [control.port2, ...roles.map((r) => r.port)];
  const options = { workerData: data, transferList, name: boot.thread };
  let worker: Worker;
  if (!needsLoader) worker = new Worker(entry, options);
  else {
    const code =
      `import(${JSON.stringify(tsxEsmApi())}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })` +
      '.catch((e) => { setImmediate(() => { throw e; }); });';
    worker = new Worker(code, { ...options, eval: true });
  }
  return new ThreadTransport(worker, control.port1, ports);
};

class ThreadTransport implements HostTransport {
  readonly isolation = 'thread';
  readonly pid = process.pid;
  private exit: HostExit | undefined;
  private lastError: unknown;
  private readonly exitListeners: Array<(exit: HostExit) => void> = [];

  constructor(
    private readonly worker: Worker,
    private readonly control: MessagePort,
    private readonly ports: ReadonlyMap<string, MessagePort>,
  ) {
    // Always listen for errors: an unhandled worker error would otherwise kill the process.
    worker.on('error', (e) => {
      this.lastError = e;
    });
    worker.on('exit', (code) => {
      this.exit = { code, error: this.lastError };
      for (const l of this.exitListeners.splice(0)) l(this.exit);
    });
  }

  get threadId(): number {
    return this.worker.threadId;
  }

  endpoint(name: string) {
    return nodeEndpoint(this.ports.get(name)!);
  }

  release(name: string): void {
    this.ports.get(name)?.close();
  }

  onControl(listener: (m: ControlMessage) => void): void {
    this.control.on('message', listener);
  }

  command(c: HostCommand): void {
    this.control.postMessage(c);
  }

  onExit(listener: (exit: HostExit) => void): void {
    if (this.exit) listener(this.exit);
    else this.exitListeners.push(listener);
  }

  async close(): Promise<void> {
    // Closing the ports is enough: comlink proxies over a closed port hold nothing.
    for (const p of this.ports.values()) p.close();
    this.control.close();
    if (this.exit === undefined) await this.worker.terminate();
  }
}

/** The ESM build of tsx's loader API (its CJS build cannot register the ESM loader). */
function tsxEsmApi(): string {
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  return pathToFileURL(join(dirname(pkgJson), pkg.exports['./esm/api'].import.default)).href;
}

/** tsx's loader (`--import` it to run `.ts` in a child process). */
export function tsxLoader(): string {
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { exports: Record<string, unknown> };
  return pathToFileURL(join(dirname(pkgJson), pkg.exports['.'] as string)).href;
}
