/*
 * The row loops the cpu kernels (cpu-kernels.ts) and the wasm kernels (wasm-gather.ts,
 * wasm-unsorted-segment-sum.ts) share, over plain typed arrays: each backend brings its own
 * views of its input and output buffers, and its own fallbacks to the stock kernel.
 */

type Rows = Float32Array | Int32Array;

/**
 * out[s, j] += x[i, j] for every i with ids[i] = s (ids < 0 dropped, as TensorFlow's
 * UnsortedSegmentSum); x is [ids.length, inner], out [numSegments, inner], zeroed by the caller.
 */
export function segmentSumInto(
  out: Rows,
  xs: Rows,
  ids: Int32Array,
  inner: number,
  numSegments: number,
): void {
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0) continue;
    if (s >= numSegments) segmentIdError(s, i, numSegments);
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += xs[src + j];
  }
}

function segmentIdError(s: number, i: number, numSegments: number): never {
  throw new Error(`UnsortedSegmentSum: segment id ${s} at ${i} is >= numSegments ${numSegments}`);
}

/** Every segment id < numSegments (negative ones are dropped), else segmentSumInto's error. */
export function checkSegmentIds(ids: Int32Array, numSegments: number): void {
  for (let i = 0; i < ids.length; i++)
    if (ids[i] >= numSegments) segmentIdError(ids[i], i, numSegments);
}

/** Every gather index in [0, dimSize), else GatherV2's error naming the first one that is not. */
export function checkGatherIndices(idx: Int32Array, dimSize: number): void {
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] < 0 || idx[i] >= dimSize) {
      throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${dimSize - 1}]`);
    }
  }
}

/**
 * GatherV2 as row copies, x viewed as [batch, outer, dim, slice] and indices as [batch, n]:
 * out[b, o, i, :] = x[b, o, indices[b, i], :]. Indices checked first (`checkGatherIndices`).
 */
export function gatherRowsInto(
  out: Rows,
  xs: Rows,
  idx: Int32Array,
  shape: {
    readonly batchSize: number;
    readonly outerSize: number;
    readonly dimSize: number;
    readonly sliceSize: number;
  },
): void {
  const { batchSize, outerSize, dimSize, sliceSize } = shape;
  const n = idx.length / batchSize;
  for (let b = 0; b < batchSize; b++) {
    for (let q = 0; q < outerSize; q++) {
      const src = (b * outerSize + q) * dimSize;
      const dst = (b * outerSize + q) * n;
      for (let i = 0; i < n; i++) {
        const from = (src + idx[b * n + i]) * sliceSize;
        out.set(xs.subarray(from, from + sliceSize), (dst + i) * sliceSize);
      }
    }
  }
}
