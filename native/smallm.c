/*
 * Matrix products with few rows in op(A) (2–16: a decoding step of a batch, a small batch's
 * projections), where OpenBLAS's sgemm spends its time packing B: every element of op(B) is read
 * once per 8 rows of A, into vector accumulators, and A (small) is packed instead. Measured on
 * this project's EPYC (AVX-512, one thread), [8, 768]·[768, 3072]: sgemm 1.29 ms, this 0.42 ms;
 * [8, 384]·[384, 1536]: 0.166 vs 0.071 ms. Accumulation runs along k in order, per output, in
 * float32 (a BLAS orders its sums differently: float32 rounding apart).
 *
 * Written with GCC/Clang vector types so that it vectorises without -ffast-math; on CPUs without
 * AVX-512 a 16-wide vector is two AVX2 halves.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef float v16 __attribute__((vector_size(64), aligned(4)));

enum { ROWS = 8, LANES = 16 };

static inline v16 load16(const float *p) { return *(const v16 *)p; }
static inline void store16(float *p, v16 v) { *(v16 *)p = v; }

/*
 * Up to 8 rows: C[m, n] = Σ_k A(m, k)·B[k, n], B row-major [K, N] (ldb N). pa is A packed as
 * [K][8] (rows past M zero). Columns in blocks of 32 (two vectors × 8 rows = 16 accumulators).
 */
static void nn_rows(int M, int N, int K, const float *pa, const float *b, float *c, int ldc) {
  int n0 = 0;
  for (; n0 + 2 * LANES <= N; n0 += 2 * LANES) {
    v16 acc[ROWS][2];
    memset(acc, 0, sizeof acc);
    const float *bk = b + n0;
    for (int k = 0; k < K; k++, bk += N) {
      const v16 b0 = load16(bk), b1 = load16(bk + LANES);
      const float *ak = pa + k * ROWS;
      for (int m = 0; m < ROWS; m++) {
        acc[m][0] += ak[m] * b0;
        acc[m][1] += ak[m] * b1;
      }
    }
    for (int m = 0; m < M; m++) {
      store16(c + m * ldc + n0, acc[m][0]);
      store16(c + m * ldc + n0 + LANES, acc[m][1]);
    }
  }
  for (; n0 < N; n0++) { /* the last N mod 32 columns */
    float acc[ROWS] = {0};
    for (int k = 0; k < K; k++)
      for (int m = 0; m < ROWS; m++) acc[m] += pa[k * ROWS + m] * b[(int64_t)k * N + n0];
    for (int m = 0; m < M; m++) c[m * ldc + n0] = acc[m];
  }
}

/*
 * Up to 8 rows: C[m, n] = Σ_k A(m, k)·B[n, k], B row-major [N, K] (a tied LM head, q·kᵀ). pa is
 * A packed as [8][K] (rows past M zero). Two rows of B at a time against all 8 of A.
 */
static void nt_rows(int M, int N, int K, const float *pa, const float *b, float *c, int ldc) {
  const int kv = K - K % LANES;
  int n0 = 0;
  for (; n0 + 2 <= N; n0 += 2) {
    v16 acc[ROWS][2];
    memset(acc, 0, sizeof acc);
    const float *b0 = b + (int64_t)n0 * K, *b1 = b0 + K;
    for (int k = 0; k < kv; k += LANES) {
      const v16 x0 = load16(b0 + k), x1 = load16(b1 + k);
      for (int m = 0; m < ROWS; m++) {
        const v16 a = load16(pa + m * K + k);
        acc[m][0] += a * x0;
        acc[m][1] += a * x1;
      }
    }
    for (int m = 0; m < M; m++) {
      float s0 = 0, s1 = 0;
      for (int l = 0; l < LANES; l++) {
        s0 += acc[m][0][l];
        s1 += acc[m][1][l];
      }
      for (int k = kv; k < K; k++) {
        s0 += pa[m * K + k] * b0[k];
        s1 += pa[m * K + k] * b1[k];
      }
      c[m * ldc + n0] = s0;
      c[m * ldc + n0 + 1] = s1;
    }
  }
  for (; n0 < N; n0++) { /* an odd last row of B */
    const float *bn = b + (int64_t)n0 * K;
    for (int m = 0; m < M; m++) {
      float s = 0;
      for (int k = 0; k < K; k++) s += pa[m * K + k] * bn[k];
      c[m * ldc + n0] = s;
    }
  }
}

bool troupe_small_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                       const float *b, float *c) {
  if (M < 1 || M > SMALL_GEMM_MAX_ROWS || K > 16384) return false;
  float *pa = malloc(sizeof(float) * ROWS * K);
  if (!pa) return false;
  /* A(m, k): a[m·K + k], or a[k·M + m] when A is stored transposed ([K, M]) */
  for (int64_t m0 = 0; m0 < M; m0 += ROWS) {
    const int rows = M - m0 < ROWS ? (int)(M - m0) : ROWS;
    for (int m = 0; m < ROWS; m++)
      for (int64_t k = 0; k < K; k++) {
        const float v = m < rows ? (ta ? a[k * M + m0 + m] : a[(m0 + m) * K + k]) : 0.0f;
        if (tb) pa[m * K + k] = v; /* [8][K] */
        else pa[k * ROWS + m] = v; /* [K][8] */
      }
    if (tb) nt_rows(rows, (int)N, (int)K, pa, b, c + m0 * N, (int)N);
    else nn_rows(rows, (int)N, (int)K, pa, b, c + m0 * N, (int)N);
  }
  free(pa);
  return true;
}
