/**
 * bfloat16 references for the tests of the bf16 products: the rounding and a float64 plain loop
 * over the rounded operands (the products of two bf16 values are exact in fp32, so a kernel
 * differs from it only by the order of its fp32 sums).
 */

/** float32 → the nearest bfloat16 value (ties to even, as PyTorch's `.to(torch.bfloat16)`), as a number; NaN stays NaN. */
export function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if ((u[0] & 0x7fffffff) > 0x7f800000) return Number.NaN;
  u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) << 16;
  return f[0];
}

/**
 * The float64 Σ_k round(op(A)[m, k])·round(op(B)[k, n]) (A [M, K], or [K, M] with ta; B [K, N], or
 * [N, K] with tb) and Σ_k |products| (the error scale). `round` defaults to bf16; the identity
 * gives the fp32 operands' product.
 */
export function bf16Product(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  ta = false,
  tb = false,
  round: (x: number) => number = bf16,
): { sum: Float64Array; scale: Float64Array } {
  const ra = Float64Array.from(a, round);
  const rb = Float64Array.from(b, round);
  const sum = new Float64Array(M * N);
  const scale = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      let z = 0;
      for (let k = 0; k < K; k++) {
        const p = (ta ? ra[k * M + m] : ra[m * K + k]) * (tb ? rb[n * K + k] : rb[k * N + n]);
        s += p;
        z += Math.abs(p);
      }
      sum[m * N + n] = s;
      scale[m * N + n] = z;
    }
  return { sum, scale };
}
