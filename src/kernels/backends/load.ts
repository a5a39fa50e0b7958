/** Outcome of importing an optional package. */
export type Loaded<T> =
  | { readonly ok: true; readonly module: T }
  | { readonly ok: false; readonly missing: boolean; readonly reason: string };

const cache = new Map<string, Promise<Loaded<unknown>>>();

function describe(pkg: string, e: unknown): Loaded<never> {
  const err = e as { code?: string; message?: string };
  const missing =
    (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') &&
    String(err.message).includes(pkg);
  const reason = missing
    ? `package '${pkg}' is not installed`
    : `package '${pkg}' failed to load: ${String(err.message ?? e).split('\n')[0]}`;
  return { ok: false, missing, reason };
}

/**
 * Import an optional dependency once per thread. A package that is absent or whose native
 * part fails to load is reported, never thrown: optional backends are detected at run time.
 */
export function loadOptional<T = unknown>(pkg: string): Promise<Loaded<T>> {
  let p = cache.get(pkg);
  if (!p) {
    p = import(pkg).then(
      (module: unknown) => ({ ok: true, module }) as const,
      (e: unknown) => describe(pkg, e),
    );
    cache.set(pkg, p);
  }
  return p as Promise<Loaded<T>>;
}
