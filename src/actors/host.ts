import * as Comlink from 'comlink';
import { TroupeError } from '../errors.js';
import { startRuntime } from '../kernels/runtime.js';
import { checkCrossable } from './crossing.js';
import { installErrorTransfer, serializeError } from './errors.js';
import type { ControlMessage, HostCommand } from './protocol.js';
import type { ActorContext, RoleFactory } from './role.js';
import type { HostBoot, Isolation } from './transport.js';

/**
 * The host side of a transport: what the actor host needs from the thread or process it runs in.
 * `worker-entry.ts` builds it from MessagePorts, `process-entry.ts` from the IPC channel.
 */
export interface HostIO {
  readonly isolation: Isolation;
  /** The endpoint on which role `name`'s calls arrive; `close` stops them arriving. */
  endpoint(name: string): Comlink.Endpoint & { close(): void };
  send(m: ControlMessage): void;
  onCommand(listener: (c: HostCommand) => void): void;
  /** Add microseconds the roles spent inside methods. */
  addBusy(us: number): void;
  /** How the host names itself in a remote error's stack (`worker thread`, `process 4242`). */
  readonly where: string;
}

/**
 * `role` with every method timed (call to settle, awaits included) and, in a process host, its
 * results checked for what cannot cross (a SharedWeights handle), so the caller gets an error
 * naming the method instead of comlink's "Unserializable return value".
 */
function instrument(role: object, name: string, host: string, io: HostIO): object {
  const add = (t0: number) => io.addBusy(Math.round((performance.now() - t0) * 1000));
  const crossing = io.isolation === 'process';
  return new Proxy(role, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      const method = String(prop);
      const check = (out: unknown) => {
        if (crossing) checkCrossable(out, 'result', `${name}.${method}()'s result`, host);
        return out;
      };
      return (...args: unknown[]) => {
        const t0 = performance.now();
        let out: unknown;
        try {
          out = v.apply(target, args);
        } catch (e) {
          add(t0);
          throw e;
        }
        if (out instanceof Promise) return out.then(check).finally(() => add(t0));
        add(t0);
        return check(out);
      };
    },
  });
}

function context(name: string, runtime: ActorContext['runtime'], io: HostIO): ActorContext {
  return {
    name,
    runtime,
    log: (level, message, data) =>
      io.send({ type: 'log', record: { actor: name, level, message, data, time: Date.now() } }),
    metric: (metric, value, step) =>
      io.send({
        type: 'metric',
        record: { actor: name, name: metric, value, step, time: Date.now() },
      }),
  };
}

/** A role may free what it holds (its tensors) when it is stopped while its host runs on. */
interface Disposable {
  dispose?(): unknown;
}

/**
 * The host side of an actor: start the tensor runtime for the host's device, build each role
 * from its factory, expose it with comlink on its own endpoint, then say ready (or why not) on
 * the control channel. Afterwards it answers `stop-role`: the role's endpoint is closed, its
 * `dispose()` runs, and its tensors (if it disposed them) are gone while the others carry on.
 */
export async function boot(data: HostBoot, io: HostIO): Promise<void> {
  const built = new Map<string, { role: Disposable; close(): void }>();
  io.onCommand((c) => {
    if (c.type !== 'stop-role') return;
    void stopRole(c.role).then(
      () => io.send({ type: 'role-stopped', role: c.role }),
      (e: unknown) =>
        io.send({ type: 'role-stopped', role: c.role, error: serializeError(e, c.role) }),
    );
  });
  const stopRole = async (name: string) => {
    const r = built.get(name);
    if (!r) return;
    built.delete(name);
    r.close();
    await r.role.dispose?.();
  };
  try {
    installErrorTransfer(data.thread, io.where);
    const runtime = await startRuntime(data.runtime);
    for (const r of data.roles) {
      const mod = (await import(r.module)) as Record<string, unknown>;
      const factory = mod[r.exportName];
      if (typeof factory !== 'function') {
        throw new TroupeError(
          'ACTOR_START_FAILED',
          `Role module ${r.module} has no factory '${r.exportName}' (exports: ${Object.keys(mod).join(', ')})`,
        );
      }
      const role = (await (factory as RoleFactory<object, unknown>)(
        r.args,
        context(r.name, runtime, io),
      )) as Disposable;
      const ep = io.endpoint(r.name);
      Comlink.expose(instrument(role, r.name, data.thread, io), ep);
      built.set(r.name, { role, close: () => ep.close() });
    }
    io.send({ type: 'ready', runtime, roles: data.roles.map((r) => r.name) });
  } catch (e) {
    io.send({ type: 'start-failed', error: serializeError(e, data.thread) });
  }
}
