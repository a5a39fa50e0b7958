import * as Comlink from 'comlink';
import { type ErrorCode, TroupeError } from '../errors.js';

/**
 * An error as plain data, so it can cross a thread: its class name, message, code, details,
 * stack, the actor it came from, and its cause chain.
 */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly details?: Record<string, unknown>;
  readonly stack?: string;
  readonly actor?: string;
  /** Where the actor ran (`worker thread`, `process 4242`), for the stack. */
  readonly where?: string;
  readonly cause?: SerializedError;
}

const MAX_CAUSE_DEPTH = 8;

/** Plain data for `e` (any thrown value), tagged with the actor it came from and where it ran. */
export function serializeError(
  e: unknown,
  actor?: string,
  depth = 0,
  where?: string,
): SerializedError {
  if (!(e instanceof Error)) {
    return { name: 'NonError', message: typeof e === 'string' ? e : safeJson(e), actor, where };
  }
  const err = e as Error & { code?: unknown; details?: unknown; actor?: unknown };
  const cause =
    err.cause !== undefined && depth < MAX_CAUSE_DEPTH
      ? serializeError(err.cause, undefined, depth + 1)
      : undefined;
  return {
    name: err.name,
    message: err.message,
    code: typeof err.code === 'string' ? err.code : undefined,
    details: isPlain(err.details) ? (err.details as Record<string, unknown>) : undefined,
    stack: err.stack,
    actor: typeof err.actor === 'string' ? err.actor : actor,
    where,
    cause,
  };
}

/**
 * Rebuild an error on this side. A Troupe error comes back as a `TroupeError` with its code; any
 * other keeps its name and code. `actor` says where it was thrown; the remote stack is kept.
 */
export function deserializeError(s: SerializedError): Error & { actor?: string; code?: string } {
  const cause = s.cause ? deserializeError(s.cause) : undefined;
  const opts = cause === undefined ? undefined : { cause };
  const err: Error & { actor?: string; code?: string } =
    s.name === 'TroupeError' && s.code
      ? new TroupeError(s.code as ErrorCode, s.message, { cause, details: s.details })
      : Object.assign(new Error(s.message, opts), s.code ? { code: s.code } : {});
  if (s.name !== 'TroupeError')
    Object.defineProperty(err, 'name', { value: s.name, configurable: true });
  if (s.actor) err.actor = s.actor;
  if (s.stack)
    err.stack = s.actor
      ? `${s.stack}\n    at actor '${s.actor}' (${s.where ?? 'worker thread'})`
      : s.stack;
  return err;
}

function isPlain(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  try {
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

let installedFor: string | undefined;
let installedWhere: string | undefined;

/**
 * Replace comlink's error transfer (which keeps only name, message and stack) with one that
 * keeps code, details, cause and the actor's name (and, on a host, where it runs). Install on
 * both sides of the channel.
 */
export function installErrorTransfer(actor?: string, where?: string): void {
  if (installedFor !== undefined) return;
  installedFor = actor ?? '';
  installedWhere = where;
  const stock = Comlink.transferHandlers.get('throw');
  if (!stock) throw new Error("comlink has no 'throw' transfer handler to replace");
  Comlink.transferHandlers.set('throw', {
    canHandle: stock.canHandle,
    serialize: (thrown: unknown) => {
      const { value } = thrown as { value: unknown };
      return [serializeError(value, installedFor || undefined, 0, installedWhere), []];
    },
    deserialize: (s: unknown) => {
      throw deserializeError(s as SerializedError);
    },
  });
}
