import { nativeKernels } from '../native.js';
import {
  backend_util,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  slice_util,
  type TensorInfo,
  util,
} from '../tf.js';
import { f32View, type WasmBackendLike } from './wasm-heap.js';

interface SliceArgs {
  inputs: { x: TensorInfo };
  backend: unknown;
  attrs: { begin: number | number[]; size: number | number[] };
}
type SliceFunc = (args: SliceArgs) => TensorInfo;

const VIEWS = {
  float32: Float32Array,
  int32: Int32Array,
  bool: Uint8Array,
} as const;

/**
 * `Slice` on wasm over views of the heap. The stock kernel first copies the *whole* input out of
 * the heap (`readSync`): slicing a 4k-row block of GPT-2's [50257, 768] embedding copied 154 MB
 * per slice, profiled at 2.3 s of a 2-layer GPT-2 step. Here a contiguous slice is one copy and
 * any other is copied run by run (the innermost sliced axis and everything after it).
 * Strings go to the stock kernel.
 */
export function makeWasmSlice(stock: SliceFunc): SliceFunc {
  return function wasmSlice(args: SliceArgs): TensorInfo {
    const { x } = args.inputs;
    const View = VIEWS[x.dtype as keyof typeof VIEWS];
    if (!View) return stock(args);
    const backend = args.backend as WasmBackendLike;
    const [begin, size] = slice_util.parseSliceParams(
      x as never,
      args.attrs.begin,
      args.attrs.size,
    );
    const out = backend.makeOutput(size, x.dtype);
    const n = util.sizeFromShape(size);
    if (n === 0) return out;
    const heap = backend.wasm.HEAPU8;
    const view = (t: TensorInfo, len: number) =>
      new View(
        heap.buffer as ArrayBuffer,
        heap.byteOffset + backend.dataIdMap.get(t.dataId).memoryOffset,
        len,
      );
    const src = view(x, util.sizeFromShape(x.shape));
    const dst = view(out, n);
    const strides = util.computeStrides(x.shape);
    if (slice_util.isSliceContinous(x.shape, begin, size)) {
      const at = slice_util.computeFlatOffset(begin, strides);
      dst.set(src.subarray(at, at + n));
      return out;
    }
    // Runs: from the last axis whose slice is partial, everything inside is contiguous.
    const rank = x.shape.length;
    let inner = rank - 1;
    while (inner > 0 && size[inner] === x.shape[inner]) inner--;
    const run = util.sizeFromShape(size.slice(inner));
    const outer = size.slice(0, inner);
    const count = util.sizeFromShape(outer);
    const index = new Array<number>(inner).fill(0);
    let base = slice_util.computeFlatOffset(begin, strides);
    for (let r = 0; r < count; r++) {
      dst.set(src.subarray(base, base + run), r * run);
      // next index of the outer axes, odometer-style, moving `base` along the strides
      for (let a = inner - 1; a >= 0; a--) {
        index[a]++;
        base += strides[a];
        if (index[a] < outer[a]) break;
        base -= strides[a] * outer[a];
        index[a] = 0;
      }
    }
    return out;
  };
}

/** The wasm `Slice` over heap views; the stock kernel must already be registered. */
export function wasmSlice(): KernelConfig {
  const stock = getKernel('Slice', 'wasm');
  if (!stock) throw new Error('wasm Slice kernel is not registered');
  return {
    kernelName: 'Slice',
    backendName: 'wasm',
    kernelFunc: makeWasmSlice(stock.kernelFunc as unknown as SliceFunc) as unknown as KernelFunc,
  };
}

interface SplitVArgs {
  inputs: { x: TensorInfo };
  backend: unknown;
  attrs: { numOrSizeSplits: number | number[]; axis: number | number[] };
}

/**
 * `SplitV` on wasm through the `Slice` registered now (the heap-view one above). The stock
 * SplitV calls the stock slice directly, which copies the whole input out of the heap for every
 * piece: the gradient of a KV-cache concatenation ([64, 4, 64, 32] split in two along the
 * sequence axis) took 2.8 ms a split, 23 ms of a shared-prefix GRPO update's backward.
 */
export function wasmSplitV(): KernelConfig {
  return {
    kernelName: 'SplitV',
    backendName: 'wasm',
    kernelFunc: ((args: SplitVArgs): TensorInfo[] => {
      const slice = getKernel('Slice', 'wasm');
      if (!slice) throw new Error('wasm Slice kernel is not registered');
      const { x } = args.inputs;
      const axis = util.parseAxisParam(args.attrs.axis, x.shape)[0];
      const sizes = backend_util.prepareSplitSize(x as never, args.attrs.numOrSizeSplits, axis);
      const begin = new Array<number>(x.shape.length).fill(0);
      return sizes.map((s) => {
        const size = [...x.shape];
        size[axis] = s;
        const piece = slice.kernelFunc({
          inputs: { x },
          backend: args.backend,
          attrs: { begin: [...begin], size },
        } as never) as TensorInfo;
        begin[axis] += s;
        return piece;
      });
    }) as unknown as KernelFunc,
  };
}

interface TransposeArgs {
  inputs: { x: TensorInfo };
  backend: unknown;
  attrs: { perm: number[] };
}
type TransposeFunc = (args: TransposeArgs) => TensorInfo;

/** Runs shorter than this go to the stock kernel (its element loop is as fast there). */
const MIN_TRANSPOSE_RUN = 16;

/**
 * `Transpose` on wasm for permutations that keep the last axis in place (attention's head
 * split and merge, [B, T, H, hd] ↔ [B, H, T, hd], and their gradients): the native addon copies
 * the output run by run, each run the last axis's values, shared between the BLAS threads
 * (native/fused.c permuteRuns). The stock kernel moves element by element in wasm (30–37 ms of
 * a GPT-2-124M training step's kernels, bench/profile-step.ts); the same copy in JavaScript, a
 * `set` per run, was slower still (69 ms). Other permutations, runs under 16, other dtypes than
 * float32 and int32, or no addon: the stock kernel.
 */
export function makeWasmTranspose(stock: TransposeFunc): TransposeFunc {
  const native = nativeKernels();
  return function wasmTranspose(args: TransposeArgs): TensorInfo {
    const { x } = args.inputs;
    // the axes longer than 1, in the permuted order, as the stock kernel reduces them
    const shape: number[] = [];
    const axisOf = new Map<number, number>();
    x.shape.forEach((d, i) => {
      if (d !== 1) {
        axisOf.set(i, shape.length);
        shape.push(d);
      }
    });
    const perm = args.attrs.perm.filter((a) => x.shape[a] !== 1).map((a) => axisOf.get(a)!);
    const r = shape.length;
    if (
      !native.available ||
      (x.dtype !== 'float32' && x.dtype !== 'int32') ||
      r < 2 ||
      r > 9 ||
      perm[r - 1] !== r - 1 ||
      shape[r - 1] < MIN_TRANSPOSE_RUN ||
      perm.every((a, i) => a === i)
    ) {
      return stock(args);
    }
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(
      args.attrs.perm.map((a) => x.shape[a]),
      x.dtype,
    );
    // int32 values are moved as the same 4 bytes
    native.addon.permuteRuns(
      f32View(backend, x),
      f32View(backend, out),
      Int32Array.from(shape),
      Int32Array.from(perm),
    );
    return out;
  };
}

/** The wasm `Transpose` by runs; the stock kernel must already be registered. */
export function wasmTranspose(): KernelConfig {
  const stock = getKernel('Transpose', 'wasm');
  if (!stock) throw new Error('wasm Transpose kernel is not registered');
  return {
    kernelName: 'Transpose',
    backendName: 'wasm',
    kernelFunc: makeWasmTranspose(
      stock.kernelFunc as unknown as TransposeFunc,
    ) as unknown as KernelFunc,
  };
}
