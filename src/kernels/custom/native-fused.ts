/**
 * Fused native kernels (native/fused.c) registered for the wasm and cpu backends.
 */
export function installNativeFused(_tfBackend: string): string[] {
  return [];
}
