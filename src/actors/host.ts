import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { TroupeError } from '../errors.js';
import { type RuntimeSpec, startRuntime } from '../kernels/runtime.js';
import { installErrorTransfer, serializeError } from './errors.js';
import type { ControlMessage } from './protocol.js';
import type { ActorContext, RoleFactory } from './role.js';

/** One role hosted by a thread, with the port its comlink calls arrive on. */
export interface HostedRole {
  readonly name: string;
  readonly module: string;
  readonly exportName: string;
  readonly args: unknown;
  readonly port: MessagePort;
}

/** What a thread is started with (its `workerData`). */
export interface BootData {
  /** The thread's name (the actor's, or the colocated group's). */
  readonly thread: string;
  readonly runtime: RuntimeSpec;
  readonly roles: readonly HostedRole[];
  readonly control: MessagePort;
  /**
   * Microseconds the thread's roles spent inside their methods (BigInt64 slot 0, summed with
   * Atomics.add as each call settles): the controller compares it with its round trips.
   */
  readonly busy?: SharedArrayBuffer;
}

/** `role` with every method timed into `busy` (call to settle, awaits included). */
function timed(role: object, busy: SharedArrayBuffer | undefined): object {
  if (!busy) return role;
  const total = new BigInt64Array(busy, 0, 1);
  const add = (t0: number) =>
    Atomics.add(total, 0, BigInt(Math.round((performance.now() - t0) * 1000)));
  return new Proxy(role, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const t0 = performance.now();
        let out: unknown;
        try {
          out = v.apply(target, args);
        } catch (e) {
          add(t0);
          throw e;
        }
        if (out instanceof Promise) return out.finally(() => add(t0));
        add(t0);
        return out;
      };
    },
  });
}

function context(
  name: string,
  runtime: ActorContext['runtime'],
  control: MessagePort,
): ActorContext {
  const send = (m: ControlMessage) => control.postMessage(m);
  return {
    name,
    runtime,
    log: (level, message, data) =>
      send({ type: 'log', record: { actor: name, level, message, data, time: Date.now() } }),
    metric: (metric, value, step) =>
      send({
        type: 'metric',
        record: { actor: name, name: metric, value, step, time: Date.now() },
      }),
  };
}

/**
 * The thread side of an actor: start the tensor runtime for the thread's device, build each
 * hosted role from its factory, expose it with comlink on its own port, then say ready (or why
 * not) on the control port.
 */
export async function boot(data: BootData): Promise<void> {
  const { control } = data;
  try {
    installErrorTransfer(data.thread);
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
      const role = await (factory as RoleFactory<object, unknown>)(
        r.args,
        context(r.name, runtime, control),
      );
      Comlink.expose(timed(role, data.busy), nodeEndpoint(r.port));
    }
    control.postMessage({
      type: 'ready',
      runtime,
      roles: data.roles.map((r) => r.name),
    } satisfies ControlMessage);
  } catch (e) {
    control.postMessage({
      type: 'start-failed',
      error: serializeError(e, data.thread),
    } satisfies ControlMessage);
  }
}
