import { deserializeError, type SerializedError, serializeError } from './errors.js';

/** What the pool sends a worker: which function to run, and its input. */
export interface PoolTask {
  readonly module: string;
  readonly exportName: string;
  readonly input: unknown;
}

export type PoolOutcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: SerializedError };

const modules = new Map<string, Promise<Record<string, unknown>>>();

/**
 * Runs in a pool thread: import the task's module once per thread, call the function, and
 * return its value or its error as plain data (so code and cause survive the trip).
 */
export default async function runPoolTask(task: PoolTask): Promise<PoolOutcome> {
  try {
    let mod = modules.get(task.module);
    if (!mod) {
      mod = importModule(task.module);
      modules.set(task.module, mod);
    }
    const fn = (await mod)[task.exportName];
    if (typeof fn !== 'function') {
      throw new TypeError(`module ${task.module} has no function export '${task.exportName}'`);
    }
    return { ok: true, value: await fn(task.input) };
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  }
}

/**
 * Import a task module. TypeScript modules (a user's reward function in `.ts`) go through tsx's
 * `tsImport`, which must then be installed.
 */
async function importModule(href: string): Promise<Record<string, unknown>> {
  if (!/\.(ts|mts|cts)$/.test(href)) return import(href);
  let api: { tsImport: (specifier: string, parent: string) => Promise<Record<string, unknown>> };
  try {
    api = await import('tsx/esm/api');
  } catch (e) {
    throw new Error(
      `${href} is TypeScript: install tsx (npm install tsx) or point at compiled JavaScript`,
      { cause: e },
    );
  }
  return api.tsImport(href, import.meta.url);
}

export function unwrapOutcome(o: PoolOutcome): unknown {
  if (o.ok) return o.value;
  throw deserializeError(o.error);
}
