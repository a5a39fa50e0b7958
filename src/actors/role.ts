import { fileURLToPath } from 'node:url';
import * as Comlink from 'comlink';
import { TroupeError } from '../errors.js';
import type { RuntimeInfo } from '../kernels/runtime.js';
import type { LogLevel } from './protocol.js';

/** What a role gets from the thread hosting it. */
export interface ActorContext {
  /** The actor's name (`policy`, `policy/1`, `critic`). */
  readonly name: string;
  readonly runtime: RuntimeInfo;
  /** A log record for the controller (library code never prints). */
  log(level: LogLevel, message: string, data?: Record<string, unknown>): void;
  /** A metric for the controller (`name` namespaced, e.g. `policy/loss`). */
  metric(name: string, value: number, step?: number): void;
}

/**
 * A role's module exports a factory that builds the role object in the actor's thread, after
 * the thread's tensor runtime has started. The object's async methods are what the controller
 * calls (typed: the controller holds a `Remote<R>`).
 */
export type RoleFactory<R, A> = (args: A, ctx: ActorContext) => R | Promise<R>;

/**
 * Names a role by the module that exports its factory and the export's name, so a fresh thread
 * can import it. The type parameters carry the role's interface and its arguments to the
 * controller; nothing at run time.
 */
export interface RoleRef<R, A> {
  readonly module: string;
  readonly exportName: string;
  /** Phantom (never set): carries the role and argument types, covariantly. */
  readonly __types?: { readonly role: R; readonly args: A };
}

/**
 * `roleRef<PolicyRole, PolicyArgs>(import.meta.url, 'createPolicy')` in the role's own module.
 * Accepts a file URL or path.
 */
export function roleRef<R, A>(module: string | URL, exportName: string): RoleRef<R, A> {
  const href =
    module instanceof URL
      ? module.href
      : module.startsWith('file:')
        ? module
        : new URL(`file://${module}`).href;
  void fileURLToPath(href); // throws early on a malformed URL
  return { module: href, exportName };
}

/**
 * `value`, marked so that the message carrying it (a role method's result, or an argument of a
 * call to a role) moves the buffers of `owned` to the receiver instead of copying them. The sender
 * gives each of them up (its arrays read as empty afterwards), so name only buffers that nothing
 * on this side still reads; a typed array stands for its whole buffer. Across a process boundary
 * (`isolation: process`) a transfer list means nothing and the value is copied. Roles and
 * trainers call this, never comlink itself: comlink stays inside src/actors.
 */
export function transfer<T>(value: T, owned: Iterable<ArrayBufferLike | ArrayBufferView>): T {
  const buffers = new Set<ArrayBuffer>();
  for (const x of owned) {
    const b = ArrayBuffer.isView(x) ? x.buffer : x;
    if (!(b instanceof ArrayBuffer)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        'transfer: a SharedArrayBuffer is shared, not moved; leave it out of the transfer list',
      );
    }
    buffers.add(b);
  }
  return Comlink.transfer(value, [...buffers]);
}
