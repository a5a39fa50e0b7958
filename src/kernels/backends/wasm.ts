import * as tf from '../tf.js';
import { loadOptional } from './load.js';
import type { BackendAdapter } from './types.js';
import {
  guardWasmHeap,
  WASM_HEAP_MAX,
  type WasmModuleLike,
  wasmHeapUsage,
} from './wasm-heap-limit.js';

type Listener = (...args: unknown[]) => void;
const TRAPPED = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * The wasm glue registers `process.on('uncaughtException', e => { throw e })` when it starts,
 * which turns any unhandled worker error into a process crash (RUNTIME-NOTES). We remove the
 * handlers it adds so that a supervisor in the same thread keeps control of its own errors.
 */
async function withoutGlueHandlers<T>(fn: () => Promise<T>): Promise<T> {
  const listeners = (ev: (typeof TRAPPED)[number]) =>
    process.listeners(ev as 'uncaughtException') as unknown as Listener[];
  const before = new Map(TRAPPED.map((ev) => [ev, new Set(listeners(ev))]));
  try {
    return await fn();
  } finally {
    for (const ev of TRAPPED) {
      for (const l of listeners(ev)) {
        if (!before.get(ev)!.has(l)) process.removeListener(ev, l);
      }
    }
  }
}

/** The emscripten module behind this thread's wasm backend. */
function wasmModule(): WasmModuleLike {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: WasmModuleLike } | null;
  if (!backend?.wasm) throw new Error('the wasm backend is not initialised');
  return backend.wasm;
}

/**
 * The ceiling this thread's wasm heap is held to (bytes; default and most: wasm32's 4 GiB − 64 KiB).
 * A lower one refuses tensors past it as a smaller heap would: the tests' out-of-memory cases.
 */
export function setWasmHeapLimit(bytes = WASM_HEAP_MAX): void {
  guardWasmHeap(wasmModule(), Math.min(bytes, WASM_HEAP_MAX));
}

/**
 * Tensor bytes live in this thread's wasm heap, and their most since the last reset (each buffer
 * counted once). Undefined when the wasm backend has not started in this thread.
 */
export function wasmTensorBytes(
  opts: { reset?: boolean } = {},
): { liveBytes: number; peakBytes: number } | undefined {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: WasmModuleLike } | null;
  return backend?.wasm ? wasmHeapUsage(backend.wasm, opts) : undefined;
}

/**
 * WebAssembly backend (XNNPACK, SIMD): the CPU default; single-threaded under Node. Its heap is
 * wasm32's (4 GiB for every tensor of the thread), guarded so that running out is an
 * OUT_OF_MEMORY error, never an abort (wasm-heap-limit.ts).
 */
export const wasmBackend: BackendAdapter = {
  name: 'wasm',
  tfName: 'wasm',
  deviceKinds: ['cpu'],
  install: 'npm install @tensorflow/tfjs-backend-wasm@4.22.0 (a dependency of troupe)',
  async probe() {
    const loaded = await withoutGlueHandlers(() => loadOptional('@tensorflow/tfjs-backend-wasm'));
    if (!loaded.ok) return { available: false, reason: loaded.reason };
    if (typeof (globalThis as { WebAssembly?: unknown }).WebAssembly !== 'object') {
      return { available: false, reason: 'this JavaScript runtime has no WebAssembly' };
    }
    return { available: true, reason: 'binaries ship in the npm package' };
  },
  async activate() {
    await withoutGlueHandlers(async () => {
      await loadOptional('@tensorflow/tfjs-backend-wasm');
      const ok = await tf.setBackend('wasm');
      if (!ok) throw new Error('tf.setBackend("wasm") returned false');
      await tf.ready();
    });
    guardWasmHeap(wasmModule());
    const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'SIMD' : 'no SIMD';
    return `XNNPACK, ${simd}, 1 thread`;
  },
};
