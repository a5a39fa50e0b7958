import { TroupeError } from '../../errors.js';
import * as tf from '../tf.js';

/**
 * The wasm backend's heap is wasm32 linear memory: tfjs' build grows it up to 4 GiB − 64 KiB
 * (`getHeapMax()` in its glue), shared by every tensor of the thread. When it is full, the glue's
 * `malloc` returns 0 and tfjs writes the tensor at address 0, over the heap's own data: the next
 * kernel dies with `memory access out of bounds` or `Aborted()`, and the thread with it. An
 * allocation a kernel makes inside wasm (XNNPACK's packing buffers, the kernels' vectors) that
 * fails aborts the instance too.
 *
 * Troupe's guard wraps the backend's `_malloc`: a tensor that does not fit is refused with an
 * OUT_OF_MEMORY error that says how much was asked for, what the heap holds, and what to change,
 * before anything is written; and once the heap comes within `WASM_HEAP_RESERVE` of its ceiling,
 * a tensor is accepted only if that much is still free behind it, so that in-kernel allocations
 * do not abort. Measured before the guard: a Qwen2-0.5B-shaped LoRA step at batch 2 died with
 * `RuntimeError: memory access out of bounds`.
 */

/** tfjs-backend-wasm 4.22's heap ceiling (its glue's `getHeapMax()`). */
export const WASM_HEAP_MAX = 4294901760;
/** Kept free near the ceiling for allocations inside wasm kernels (which abort when they fail). */
export const WASM_HEAP_RESERVE = 64 * 2 ** 20;

/** The parts of the emscripten module the guard touches. */
export interface WasmModuleLike {
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
}

interface Guarded {
  raw: (bytes: number) => number;
  limit: number;
  /** Bytes of every block handed out through `_malloc` and not yet freed, by address. */
  blocks: Map<number, number>;
  live: number;
  peak: number;
}

const guarded = new WeakMap<WasmModuleLike, Guarded>();

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** What to change when the wasm heap is too small for a job (also used by the predictor). */
export const WASM_HEAP_ADVICE =
  "run this actor on backend 'cpu' (with the native kernels: host memory, no 4 GiB ceiling), " +
  'or need less memory: LoRA (model.lora) or QLoRA (model.quantize: nf4) instead of a full ' +
  'fine-tune, precision: bf16, a smaller batch (with gradient accumulation), gradient ' +
  'checkpointing, or the AdamW moments offloaded to the host';

function refuse(bytes: number, heap: number, limit: number, why: string): never {
  const { numBytes, numTensors } = tf.memory();
  throw new TroupeError(
    'OUT_OF_MEMORY',
    `The wasm heap is full: a tensor of ${mib(bytes)} does not fit (${why}; ${numTensors} ` +
      `live tensors hold ${gib(numBytes)}, the heap has grown to ${gib(heap)} of its ` +
      `${gib(limit)} ceiling, wasm32). To fix it: ${WASM_HEAP_ADVICE}.`,
    {
      details: {
        requestedBytes: bytes,
        tensorBytes: numBytes,
        heapBytes: heap,
        limitBytes: limit,
      },
    },
  );
}

/**
 * Install (or re-limit) the guard on a wasm module. `limit` below the real ceiling makes the
 * guard refuse any tensor that would end past it, as a smaller heap would (tests use a small one).
 */
export function guardWasmHeap(wasm: WasmModuleLike, limit = WASM_HEAP_MAX): void {
  const had = guarded.get(wasm);
  if (had) {
    had.limit = limit;
    return;
  }
  // The glue binds `_malloc` to the wasm export on its first call, replacing the property:
  // call it once so that the wrapper set below stays in place.
  wasm._free(wasm._malloc(8));
  const state: Guarded = {
    raw: wasm._malloc.bind(wasm),
    limit,
    blocks: new Map(),
    live: 0,
    peak: 0,
  };
  guarded.set(wasm, state);
  const rawFree = wasm._free.bind(wasm);
  wasm._malloc = (bytes: number): number => {
    const p = checkedMalloc(wasm, state, rawFree, bytes);
    state.blocks.set(p, bytes);
    state.live += bytes;
    if (state.live > state.peak) state.peak = state.live;
    return p;
  };
  wasm._free = (ptr: number): void => {
    const p = ptr >>> 0;
    const bytes = state.blocks.get(p);
    if (bytes !== undefined) {
      state.blocks.delete(p);
      state.live -= bytes;
    }
    rawFree(ptr);
  };
}

/** malloc through the guard's checks: a block that fits below the ceiling, or OUT_OF_MEMORY. */
function checkedMalloc(
  wasm: WasmModuleLike,
  state: Guarded,
  free: (ptr: number) => void,
  bytes: number,
): number {
  const p = state.raw(bytes) >>> 0;
  const heap = wasm.HEAPU8.length;
  if (bytes > 0 && p === 0) refuse(bytes, heap, state.limit, 'malloc found no free block');
  if (p + bytes > state.limit) {
    // Past 3 GiB the glue's malloc hands out blocks that run off the end of the heap (seen:
    // 1 GiB at 3 GiB); writing one corrupts the heap. Hand it back unused.
    free(p);
    refuse(bytes, heap, state.limit, 'it would end past the ceiling');
  }
  if (p + bytes > state.limit - WASM_HEAP_RESERVE) {
    const probe = state.raw(WASM_HEAP_RESERVE) >>> 0;
    const ok = probe !== 0 && probe + WASM_HEAP_RESERVE <= state.limit;
    if (probe !== 0) free(probe);
    if (!ok) {
      free(p);
      const left = `less than ${mib(WASM_HEAP_RESERVE)} would be left for kernels`;
      refuse(bytes, heap, state.limit, left);
    }
  }
  return p;
}

/**
 * Bytes of tensor storage live in the wasm heap now and at most since the last `reset` (each
 * buffer once: tfjs' own `tf.memory().numBytes` counts a buffer again for every tensor sharing
 * it, reshapes and the clones kept for gradients). Undefined when `wasm` is not guarded.
 */
export function wasmHeapUsage(
  wasm: WasmModuleLike,
  opts: { reset?: boolean } = {},
): { liveBytes: number; peakBytes: number } | undefined {
  const s = guarded.get(wasm);
  if (!s) return undefined;
  const out = { liveBytes: s.live, peakBytes: s.peak };
  if (opts.reset) s.peak = s.live;
  return out;
}

/** The limit the guard enforces on `wasm`, or undefined when it is not guarded. */
export function wasmHeapLimit(wasm: WasmModuleLike): number | undefined {
  return guarded.get(wasm)?.limit;
}
