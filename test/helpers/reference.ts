/**
 * Plain-loop references for tests: obvious code over Float64Arrays, no tensors.
 */

/** Row-major strides-free batched matmul reference: C = op(A)·op(B) with broadcasting batch. */
export function refMatMul(
  a: Float64Array,
  aShape: number[],
  b: Float64Array,
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): { data: Float64Array; shape: number[] } {
  const ra = aShape.length;
  const rb = bShape.length;
  const M = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const K = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const N = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  const batchA = aShape.slice(0, -2);
  const batchB = bShape.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const pa = [...Array(rank - batchA.length).fill(1), ...batchA];
  const pb = [...Array(rank - batchB.length).fill(1), ...batchB];
  const batch = pa.map((d, i) => Math.max(d, pb[i]));
  const nBatch = batch.reduce((x, y) => x * y, 1);
  const out = new Float64Array(nBatch * M * N);
  const index = (flat: number, dims: number[]) => {
    // Map an output batch index to an input's batch index under broadcasting.
    let rem = flat;
    let idx = 0;
    let stride = 1;
    for (let i = rank - 1; i >= 0; i--) {
      const coord = rem % batch[i];
      rem = Math.floor(rem / batch[i]);
      idx += (dims[i] === 1 ? 0 : coord) * stride;
      stride *= dims[i];
    }
    return idx;
  };
  for (let t = 0; t < nBatch; t++) {
    const ao = index(t, pa) * M * K;
    const bo = index(t, pb) * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transposeA ? a[ao + k * M + i] : a[ao + i * K + k];
          const bv = transposeB ? b[bo + j * K + k] : b[bo + k * N + j];
          s += av * bv;
        }
        out[t * M * N + i * N + j] = s;
      }
    }
  }
  return { data: out, shape: [...batch, M, N] };
}

/**
 * Central finite-difference gradient of the scalar Σ w ⊙ f(inputs) with respect to input
 * `which`, evaluated in float64 on a plain-loop reference `f`.
 */
export function fdGradient(
  f: (...xs: Float64Array[]) => Float64Array,
  inputs: Float64Array[],
  w: Float64Array,
  which: number,
  eps = 1e-5,
): Float64Array {
  const x = inputs[which];
  const g = new Float64Array(x.length);
  const objective = () => {
    const y = f(...inputs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  };
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + eps;
    const up = objective();
    x[i] = keep - eps;
    const down = objective();
    x[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}
