import { fileURLToPath } from 'node:url';
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
