/*
 * Matrix products with few rows in op(A) (2–16: a decoding step of a batch, a small batch's
 * projections), where OpenBLAS's sgemm spends its time packing B: every element of op(B) is read
 * once per 8 rows of A, into vector accumulators, and A (small) is packed instead. Measured on
 * this project's EPYC (AVX-512, one thread), [8, 768]·[768, 3072]: sgemm 1.29 ms, this 0.42 ms;
 * [8, 384]·[384, 1536]: 0.166 vs 0.071 ms. Sums are float32, in an order of their own (a BLAS
 * orders its sums differently too: float32 rounding apart).
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
 * [K][8] (rows past M zero). Columns in blocks of 32 (two vectors × 8 rows = 16 accumulators),
 * rows of B in blocks of KB, the partial sums kept in C between blocks: walking one column block
 * down all K rows touched a new page per row (a 3072-wide B: 12 KB apart), which the hardware
 * prefetcher does not follow; 8 rows at a time it streams ([8,768]·[768,3072] from DRAM: 1.00 →
 * 0.65 ms, 14.5 GB/s of a 24 GB/s read ceiling; sgemm 1.4 ms).
 */
enum { KB = 8 };

static void nn_rows(int M, int N, int K, const float *pa, const float *b, int64_t ldb, float *c,
                    int ldc, float *acc8) {
  /* acc8: [8][nv] partial sums for all 8 rows, so every loop over rows has a constant bound and
   * the accumulators stay in registers (a loop to M spilled them: 1.5× slower) */
  const int nv = N - N % (2 * LANES);
  for (int k0 = 0; k0 < K; k0 += KB) {
    const int k1 = k0 + KB < K ? k0 + KB : K;
    for (int n0 = 0; n0 < nv; n0 += 2 * LANES) {
      v16 acc[ROWS][2];
      for (int m = 0; m < ROWS; m++) {
        acc[m][0] = k0 > 0 ? load16(acc8 + m * nv + n0) : (v16){0};
        acc[m][1] = k0 > 0 ? load16(acc8 + m * nv + n0 + LANES) : (v16){0};
      }
      const float *bk = b + (int64_t)k0 * ldb + n0;
      for (int k = k0; k < k1; k++, bk += ldb) {
        const v16 b0 = load16(bk), b1 = load16(bk + LANES);
        const float *ak = pa + k * ROWS;
        for (int m = 0; m < ROWS; m++) {
          acc[m][0] += ak[m] * b0;
          acc[m][1] += ak[m] * b1;
        }
      }
      for (int m = 0; m < ROWS; m++) {
        store16(acc8 + m * nv + n0, acc[m][0]);
        store16(acc8 + m * nv + n0 + LANES, acc[m][1]);
      }
    }
  }
  for (int m = 0; m < M; m++) memcpy(c + m * ldc, acc8 + m * nv, sizeof(float) * nv);
  for (int n0 = nv; n0 < N; n0++) { /* the last N mod 32 columns */
    float acc[ROWS] = {0};
    for (int k = 0; k < K; k++)
      for (int m = 0; m < ROWS; m++) acc[m] += pa[k * ROWS + m] * b[(int64_t)k * ldb + n0];
    for (int m = 0; m < M; m++) c[m * ldc + n0] = acc[m];
  }
}

/* Σ of a vector's 16 lanes by halving (4 adds; a lane-by-lane loop was 16 dependent adds). */
static inline float hsum16(v16 v) {
  v = v + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3);
  v = v + __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1);
  return v[0] + v[1];
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
      float s0 = hsum16(acc[m][0]), s1 = hsum16(acc[m][1]);
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

/*
 * Threads: memory-bound (each weight read once per 8 rows), so the BLAS thread count
 * (setThreads), one thread per 2^18 elements of B at most, each a range of whole 32-column blocks
 * of C with its own partial sums; a sum's order does not depend on the split (1 and n threads
 * give the same bits). [8, 768]·[768, 3072] on one thread ran at 14.5 GB/s, half the machine's
 * read bandwidth, so a second BLAS thread gained nothing in decoding at batch 8 (#17).
 */
typedef struct {
  bool tb;
  int M, N, K;
  const float *pa; /* A in blocks of 8 rows: [K][8] each (nn) or [8][K] (tb) */
  const float *b;
  float *c;
  bool failed;
} Small;

static void task_small(void *ctx, int t, int n) {
  Small *s = ctx;
  const int64_t units = (s->N + 2 * LANES - 1) / (2 * LANES);
  int lo = (int)(units * t / n * 2 * LANES), hi = (int)(units * (t + 1) / n * 2 * LANES);
  if (hi > s->N) hi = s->N;
  if (lo >= hi) return;
  float *acc8 = s->tb ? NULL : malloc(sizeof(float) * ROWS * (size_t)(hi - lo));
  if (!s->tb && !acc8) {
    s->failed = true;
    return;
  }
  for (int m0 = 0; m0 < s->M; m0 += ROWS) {
    const int rows = s->M - m0 < ROWS ? s->M - m0 : ROWS;
    const float *pa = s->pa + (int64_t)(m0 / ROWS) * ROWS * s->K;
    float *c = s->c + (int64_t)m0 * s->N + lo;
    if (s->tb) nt_rows(rows, hi - lo, s->K, pa, s->b + (int64_t)lo * s->K, c, s->N);
    else nn_rows(rows, hi - lo, s->K, pa, s->b + lo, s->N, c, s->N, acc8);
  }
  free(acc8);
}

bool troupe_small_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                       const float *b, float *c) {
  if (M < 1 || M > SMALL_GEMM_MAX_ROWS || K > 16384) return false;
  const int64_t blocks = (M + ROWS - 1) / ROWS;
  float *pa = malloc(sizeof(float) * ROWS * K * blocks);
  if (!pa) return false;
  /* A(m, k): a[m·K + k], or a[k·M + m] when A is stored transposed ([K, M]) */
  for (int64_t m0 = 0; m0 < M; m0 += ROWS) {
    const int rows = M - m0 < ROWS ? (int)(M - m0) : ROWS;
    float *p = pa + (m0 / ROWS) * ROWS * K;
    for (int m = 0; m < ROWS; m++)
      for (int64_t k = 0; k < K; k++) {
        const float v = m < rows ? (ta ? a[k * M + m0 + m] : a[(m0 + m) * K + k]) : 0.0f;
        if (tb) p[m * K + k] = v; /* [8][K] */
        else p[k * ROWS + m] = v; /* [K][8] */
      }
  }
  const int64_t work = K * N >> 18, units = (N + 2 * LANES - 1) / (2 * LANES);
  const int want = troupe_threads();
  int threads = work < 1 ? 1 : work < want ? (int)work : want;
  if (threads > units) threads = (int)units;
  Small s = {tb, (int)M, (int)N, (int)K, pa, b, c, false};
  if (threads <= 1) task_small(&s, 0, 1);
  else troupe_parallel(threads, task_small, &s);
  free(pa);
  return !s.failed;
}
