import { nativeKernels } from '../native.js';
import {
  backend_util,
  type DataId,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  slice_util,
  type TensorInfo,
  unregisterKernel,
  util,
} from '../tf.js';
import { checkGatherIndices, gatherRowsInto, segmentSumInto } from './row-loops.js';

/**
 * Kernels for tfjs' pure-JS `cpu` backend where its own are per-element index arithmetic
 * (`indexToLoc`/`locToIndex` with an array allocated per element) or worse. Profiled on a 2-layer
 * GPT-2 training step (d 256, 2×128 tokens): the stock embedding gradient (UnsortedSegmentSum,
 * one masked pass over the input per segment) took 30 s a call, Transpose, Sum over leading
 * axes, broadcast Add/Multiply, Slice and PadV2 another ~0.5 s; the step took 56 s (369 ms on
 * wasm). These are plain loops over the backend's own typed arrays (Sum in C with the addon):
 * each walks its output once with an odometer over the outer axes and a strided inner loop.
 * Other dtypes and forms go to the stock kernel. A model too big for wasm32's 4 GiB heap trains
 * on this backend (docs/memory.md).
 *
 * (Past 300 lines: nine small kernels of 20-50 lines, one registration list (`setCpuKernels`),
 * and the typed-array accessors and stock fallbacks they share; loops also used by the wasm
 * kernels are in row-loops.ts.)
 */

interface CpuBackendLike {
  data: { get(dataId: DataId): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array | Int32Array): TensorInfo;
}

type Args = {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs: Record<string, unknown>;
};
type Func = (args: Args) => TensorInfo;

function f32(backend: CpuBackendLike, t: TensorInfo): Float32Array | undefined {
  const v = backend.data.get(t.dataId)?.values;
  return t.dtype === 'float32' && v instanceof Float32Array ? v : undefined;
}

function i32(backend: CpuBackendLike, t: TensorInfo): Int32Array | undefined {
  const v = backend.data.get(t.dataId)?.values;
  return t.dtype === 'int32' && v instanceof Int32Array ? v : undefined;
}

/**
 * Copies `src` into `dst` along a strided walk: for each index i of `shape` (row-major),
 * dst[dstBase + Σ i_a·dstStrides[a]] = src[srcBase + Σ i_a·srcStrides[a]]. The last axis is the
 * inner loop; the others advance odometer-style.
 */
export function stridedCopy(
  shape: readonly number[],
  src: Float32Array | Int32Array,
  srcBase: number,
  srcStrides: readonly number[],
  dst: Float32Array | Int32Array,
  dstBase: number,
  dstStrides: readonly number[],
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[dstBase] = src[srcBase];
    return;
  }
  if (util.sizeFromShape(shape as number[]) === 0) return;
  const n = shape[rank - 1];
  const ss = srcStrides[rank - 1];
  const ds = dstStrides[rank - 1];
  const outer = rank - 1;
  const index = new Array<number>(outer).fill(0);
  let s = srcBase;
  let d = dstBase;
  for (;;) {
    if (ss === 1 && ds === 1) dst.set(src.subarray(s, s + n), d);
    else for (let j = 0; j < n; j++) dst[d + j * ds] = src[s + j * ss];
    let a = outer - 1;
    for (; a >= 0; a--) {
      index[a]++;
      s += srcStrides[a];
      d += dstStrides[a];
      if (index[a] < shape[a]) break;
      s -= srcStrides[a] * shape[a];
      d -= dstStrides[a] * shape[a];
      index[a] = 0;
    }
    if (a < 0) return;
  }
}

/** Fewest elements a kernel here hands to the addon (native/fused.c binary, permuteRuns). */
const NATIVE_MIN = 1 << 15;

/**
 * x transposed by `perm`: out[i] = x[perm⁻¹ i], as one strided copy; float32 with the last axis
 * kept in place (attention's head splits and merges) and at least NATIVE_MIN values, as runs of
 * that axis copied by the addon (native/fused.c permuteRuns, as wasm-slice.ts does on wasm).
 */
function transpose(stock: Func): Func {
  const native = nativeKernels();
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x } = args.inputs;
    const xs = f32(backend, x) ?? i32(backend, x);
    if (!xs) return stock(args);
    const perm = args.attrs.perm as number[];
    const outShape = perm.map((p) => x.shape[p]);
    const rank = perm.length;
    if (
      native.available &&
      xs instanceof Float32Array &&
      xs.length >= NATIVE_MIN &&
      rank >= 2 &&
      rank <= 9 &&
      perm[rank - 1] === rank - 1
    ) {
      const out = new Float32Array(xs.length);
      native.addon.permuteRuns(xs, out, Int32Array.from(x.shape), Int32Array.from(perm));
      return backend.makeTensorInfo(outShape, 'float32', out);
    }
    const inStrides = [...util.computeStrides(x.shape), 1];
    const out = x.dtype === 'float32' ? new Float32Array(xs.length) : new Int32Array(xs.length);
    stridedCopy(
      outShape,
      xs,
      0,
      perm.map((p) => inStrides[p]),
      out,
      0,
      [...util.computeStrides(outShape), 1],
    );
    return backend.makeTensorInfo(outShape, x.dtype, out);
  };
}

/** A slice, as one strided copy (contiguous runs as `set`). */
function slice(stock: Func): Func {
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x } = args.inputs;
    const xs = f32(backend, x) ?? i32(backend, x);
    if (!xs) return stock(args);
    const [begin, size] = slice_util.parseSliceParams(
      x as never,
      args.attrs.begin as number[],
      args.attrs.size as number[],
    );
    const n = util.sizeFromShape(size);
    const out = x.dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
    const strides = [...util.computeStrides(x.shape), 1];
    if (n > 0) {
      const base = x.shape.length === 0 ? 0 : slice_util.computeFlatOffset(begin, strides);
      stridedCopy(size, xs, base, strides, out, 0, [...util.computeStrides(size), 1]);
    }
    return backend.makeTensorInfo(size, x.dtype, out);
  };
}

/** Constant padding: the output filled, then the input copied into its place. */
function padV2(stock: Func): Func {
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x } = args.inputs;
    const xs = f32(backend, x);
    if (!xs) return stock(args);
    const paddings = args.attrs.paddings as [number, number][];
    const outShape = x.shape.map((d, i) => paddings[i][0] + d + paddings[i][1]);
    const out = new Float32Array(util.sizeFromShape(outShape));
    const value = Number(args.attrs.constantValue ?? 0);
    if (value !== 0) out.fill(value);
    const outStrides = [...util.computeStrides(outShape), 1];
    const base = paddings.reduce((s, [lo], i) => s + lo * outStrides[i], 0);
    stridedCopy(
      x.shape,
      xs,
      0,
      [...util.computeStrides(x.shape), 1],
      out,
      base,
      outStrides.slice(0, x.shape.length),
    );
    return backend.makeTensorInfo(outShape, 'float32', out);
  };
}

/** out[o + j] = x ∘ y for j < n, x = as[pa + j·ia], y = bs[pb + j·ib] (a stride 0 broadcasts). */
type RowKernel = (
  out: Float32Array,
  o: number,
  as: Float32Array,
  pa: number,
  ia: number,
  bs: Float32Array,
  pb: number,
  ib: number,
  n: number,
) => void;

/**
 * A row loop for one operator, compiled as its own function: one loop calling a shared `op`
 * closure was a polymorphic call per element (the four operators share its code), measured
 * ~5× slower on RoPE's broadcast products.
 */
function rowKernel(expr: string): RowKernel {
  return new Function(
    'out',
    'o',
    'as',
    'pa',
    'ia',
    'bs',
    'pb',
    'ib',
    'n',
    `for (let j = 0; j < n; j++) { const x = as[pa + j * ia]; const y = bs[pb + j * ib]; out[o + j] = ${expr}; }`,
  ) as RowKernel;
}

/**
 * Element-wise a ∘ b with NumPy broadcasting on float32: both inputs are walked with strides in
 * the output's index space (0 along a broadcast axis), one row of the last axis at a time. Two
 * inputs of one shape with at least NATIVE_MIN elements go to the addon's loop (`kind`: 0 +,
 * 1 −, 2 ·, 3 /; vectorised and on the BLAS threads, where this loop took 2.3 ns an element:
 * 3.3 ms for a Llama-1.1B MLP's [256, 5632] product); the same float32 results, since JS's
 * double arithmetic on two floats rounds to the float32 result.
 */
function binary(stock: Func, row: RowKernel, kind: number): Func {
  const native = nativeKernels();
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { a, b } = args.inputs;
    const as = f32(backend, a);
    const bs = f32(backend, b);
    if (!as || !bs) return stock(args);
    const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const out = new Float32Array(util.sizeFromShape(shape));
    const rank = shape.length;
    if (out.length === 0) return backend.makeTensorInfo(shape, 'float32', out);
    if (rank === 0 || (as.length === out.length && bs.length === out.length)) {
      // one shape: the addon's loop where it pays (the same IEEE float32 results)
      if (native.available && out.length >= NATIVE_MIN) native.addon.binary(kind, as, bs, out);
      else row(out, 0, as, 0, 1, bs, 0, 1, out.length);
      return backend.makeTensorInfo(shape, 'float32', out);
    }
    const strides = (s: readonly number[]) => {
      const own = [...util.computeStrides(s as number[]), 1];
      return shape.map((_d, i) => {
        const j = i - (rank - s.length);
        return j < 0 || s[j] === 1 ? 0 : own[j];
      });
    };
    const sa = strides(a.shape);
    const sb = strides(b.shape);
    const n = shape[rank - 1];
    const index = new Array<number>(rank - 1).fill(0);
    let pa = 0;
    let pb = 0;
    for (let o = 0; o < out.length; o += n) {
      row(out, o, as, pa, sa[rank - 1], bs, pb, sb[rank - 1], n);
      for (let ax = rank - 2; ax >= 0; ax--) {
        index[ax]++;
        pa += sa[ax];
        pb += sb[ax];
        if (index[ax] < shape[ax]) break;
        pa -= sa[ax] * shape[ax];
        pb -= sb[ax] * shape[ax];
        index[ax] = 0;
      }
    }
    return backend.makeTensorInfo(shape, 'float32', out);
  };
}

/** Σ over leading axes (every broadcast gradient: [B·T, d] → [d]) in one pass; others: stock. */
function sum(stock: Func): Func {
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x } = args.inputs;
    const xs = f32(backend, x);
    const rank = x.shape.length;
    const raw = args.attrs.axis as number | number[];
    const axes = [
      ...new Set((Array.isArray(raw) ? raw : [raw]).map((a) => (a < 0 ? a + rank : a))),
    ].sort((p, q) => p - q);
    if (!xs || axes.length === 0 || axes.length >= rank || !axes.every((a, i) => a === i)) {
      return stock(args);
    }
    const kept = x.shape.slice(axes.length);
    const outer = util.sizeFromShape(x.shape.slice(0, axes.length));
    const inner = util.sizeFromShape(kept);
    const out = new Float32Array(inner);
    const native = nativeKernels();
    if (native.available && outer > 0) native.addon.columnSums(xs, outer, inner, out);
    else {
      for (let i = 0; i < outer; i++) {
        const row = i * inner;
        for (let j = 0; j < inner; j++) out[j] += xs[row + j];
      }
    }
    const shape = args.attrs.keepDims ? [...axes.map(() => 1), ...kept] : kept;
    return backend.makeTensorInfo(shape, 'float32', out);
  };
}

/** out[s, …] = Σ_{i: ids[i] = s} x[i, …] (ids < 0 dropped, as TensorFlow): the embedding gradient. */
function unsortedSegmentSum(stock: Func): Func {
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x, segmentIds } = args.inputs;
    const xs = f32(backend, x);
    const ids = i32(backend, segmentIds);
    if (!xs || !ids) return stock(args);
    const numSegments = args.attrs.numSegments as number;
    const inner = util.sizeFromShape(x.shape.slice(segmentIds.shape.length));
    const out = new Float32Array(numSegments * inner);
    segmentSumInto(out, xs, ids, inner, numSegments);
    return backend.makeTensorInfo(
      [numSegments, ...x.shape.slice(segmentIds.shape.length)],
      'float32',
      out,
    );
  };
}

/** Row gathers (an embedding lookup: slices of ≥ 16 values) as slice copies; others: stock. */
function gatherV2(stock: Func): Func {
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x, indices } = args.inputs;
    const xs = f32(backend, x);
    const idx = i32(backend, indices);
    if (!xs || !idx) return stock(args);
    const axis = util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const batchDims = (args.attrs.batchDims as number) ?? 0;
    const info = backend_util.segment_util.collectGatherOpShapeInfo(
      x as never,
      indices as never,
      axis,
      batchDims,
    );
    if (batchDims !== 0 || info.sliceSize < 16) return stock(args);
    checkGatherIndices(idx, info.dimSize);
    const out = new Float32Array(util.sizeFromShape(info.outputShape));
    gatherRowsInto(out, xs, idx, info);
    return backend.makeTensorInfo(info.outputShape, 'float32', out);
  };
}

/** SplitV as one slice per part (the stock kernel slices through tfjs' per-element slice). */
function splitV(stock: Func): Func {
  const sliceOf = slice(stock);
  return (args) => {
    const backend = args.backend as CpuBackendLike;
    const { x } = args.inputs;
    if (!f32(backend, x) && !i32(backend, x)) return stock(args);
    const axis = util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const sizes = backend_util.prepareSplitSize(
      x as never,
      args.attrs.numOrSizeSplits as number | number[],
      axis,
    );
    const begin = x.shape.map(() => 0);
    return sizes.map((n) => {
      const size = [...x.shape];
      size[axis] = n;
      const part = sliceOf({ ...args, attrs: { begin: [...begin], size } });
      begin[axis] += n;
      return part;
    }) as unknown as TensorInfo;
  };
}

const REPLACEMENTS: [string, (stock: Func) => Func][] = [
  ['Transpose', transpose],
  ['Slice', slice],
  ['PadV2', padV2],
  ['Add', (s) => binary(s, rowKernel('x + y'), 0)],
  ['Sub', (s) => binary(s, rowKernel('x - y'), 1)],
  ['Multiply', (s) => binary(s, rowKernel('x * y'), 2)],
  ['RealDiv', (s) => binary(s, rowKernel('x / y'), 3)],
  ['SplitV', splitV],
  ['Sum', sum],
  ['UnsortedSegmentSum', unsortedSegmentSum],
  ['GatherV2', gatherV2],
];

const stockKernels = new Map<string, KernelConfig>();

/**
 * Replace the cpu backend's kernels above with these (`on`), or put the stock ones back (tests
 * and benchmarks compare the two). Returns what it registered.
 */
export function setCpuKernels(on: boolean): string[] {
  const added: string[] = [];
  for (const [name, make] of REPLACEMENTS) {
    const current = getKernel(name, 'cpu');
    if (!stockKernels.has(name)) {
      if (!current) continue;
      stockKernels.set(name, current);
    }
    const stock = stockKernels.get(name)!;
    if (current) unregisterKernel(name, 'cpu');
    const kernelFunc = on
      ? (make(stock.kernelFunc as unknown as Func) as unknown as KernelFunc)
      : stock.kernelFunc;
    registerKernel({ ...stock, kernelFunc });
    if (on) added.push(`cpu:${name}(strided loops)`);
  }
  return added;
}
