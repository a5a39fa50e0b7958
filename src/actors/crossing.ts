import { TroupeError } from '../errors.js';

/**
 * What may cross a process boundary. A process host's messages are serialised (V8's structured
 * serialisation over the IPC channel): typed arrays, ArrayBuffers, Maps, plain objects and
 * BigInts are copied, and transfer lists mean nothing. Two things cannot cross at all:
 *
 * - a SharedArrayBuffer (SharedWeights, all-reduce, the busy counter): V8 refuses a bare one, and
 *   silently copies a typed array over one — the receiver would read a private snapshot the
 *   writer never updates, so both are refused here by name before anything is sent;
 * - a MessagePort (a comlink proxy, a channel): it is bound to this process.
 */

const MAX_DEPTH = 64;

export interface Uncrossable {
  /** Where it sits, as a path from the root (`args[0].weights.buffer`). */
  readonly path: string;
  readonly what: 'SharedArrayBuffer' | 'MessagePort';
}

/** The first SharedArrayBuffer or MessagePort reachable from `value`, or undefined. */
export function findUncrossable(value: unknown, root: string): Uncrossable | undefined {
  const keys: (string | number)[] = [];
  const seen = new Set<object>();
  const at = (): string =>
    keys.reduce<string>(
      (p, k) =>
        typeof k === 'number'
          ? `${p}[${k}]`
          : /^[A-Za-z_$][\w$]*$/.test(k)
            ? `${p}.${k}`
            : `${p}[${JSON.stringify(k)}]`,
      root,
    );
  const visit = (v: unknown, depth: number): Uncrossable['what'] | undefined => {
    if (typeof v !== 'object' || v === null || depth > MAX_DEPTH) return undefined;
    if (seen.has(v)) return undefined;
    seen.add(v);
    if (v instanceof SharedArrayBuffer) return 'SharedArrayBuffer';
    if (v instanceof ArrayBuffer) return undefined;
    if (ArrayBuffer.isView(v)) {
      return v.buffer instanceof SharedArrayBuffer ? 'SharedArrayBuffer' : undefined;
    }
    if (v.constructor?.name === 'MessagePort') return 'MessagePort';
    const entries: Iterable<[string | number, unknown]> =
      v instanceof Map
        ? [...v.entries()].map(
            ([k, x], i) => [typeof k === 'string' ? k : i, x] as [string | number, unknown],
          )
        : v instanceof Set
          ? [...v].map((x, i) => [i, x] as [number, unknown])
          : Array.isArray(v)
            ? v.map((x, i) => [i, x] as [number, unknown])
            : Object.entries(v);
    for (const [k, x] of entries) {
      if (typeof x !== 'object' || x === null) continue;
      keys.push(k);
      const found = visit(x, depth + 1);
      if (found) return found;
      keys.pop();
    }
    return undefined;
  };
  const what = visit(value, 0);
  return what ? { path: at(), what } : undefined;
}

/**
 * Throws UNSUPPORTED when `value` holds something that cannot cross to process host `host`,
 * naming it, where it sits, and what to do instead. `what` says what is being sent.
 */
export function checkCrossable(value: unknown, root: string, what: string, host: string): void {
  const found = findUncrossable(value, root);
  if (!found) return;
  const why =
    found.what === 'SharedArrayBuffer'
      ? 'shared memory (SharedWeights, all-reduce) works only between threads of one process'
      : 'a MessagePort (a comlink proxy or channel) belongs to its process';
  throw new TroupeError(
    'UNSUPPORTED',
    `${what} holds a ${found.what} at ${found.path}, which cannot cross the boundary of actor process '${host}': ` +
      `${why}. Run this actor with isolation 'thread', or send plain data (weights as a packed ` +
      'ArrayBuffer, not a SharedWeights handle).',
    { details: { actor: host, path: found.path, kind: found.what } },
  );
}

/** Every ArrayBuffer reachable from `value` with its length now (to tell later if one moved). */
export function buffersOf(value: unknown): Array<{ buffer: ArrayBuffer; bytes: number }> {
  const out: Array<{ buffer: ArrayBuffer; bytes: number }> = [];
  const seen = new Set<object>();
  const visit = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || depth > MAX_DEPTH || seen.has(v)) return;
    seen.add(v);
    if (v instanceof ArrayBuffer) {
      out.push({ buffer: v, bytes: v.byteLength });
      return;
    }
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof ArrayBuffer) visit(v.buffer, depth + 1);
      return;
    }
    const items = v instanceof Map || v instanceof Set ? [...v.values()] : Object.values(v);
    for (const x of items) visit(x, depth + 1);
  };
  visit(value, 0);
  return out;
}

/** True when a buffer `buffersOf` saw with bytes has since been detached (transferred away). */
export function anyDetached(seen: ReadonlyArray<{ buffer: ArrayBuffer; bytes: number }>): boolean {
  return seen.some((b) => b.bytes > 0 && b.buffer.byteLength === 0);
}
