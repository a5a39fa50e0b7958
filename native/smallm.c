/*
 * Matrix products with few rows in op(A) (2–16: a decoding step of a batch, a small batch's
 * projections), where OpenBLAS's sgemm spends its time packing B: every element of op(B) is read
 * once per 8 rows of A, into vector accumulators, and A (small) is packed instead. Measured on
 * this project's EPYC (AVX-512, one thread), [8, 768]·[768, 3072]: sgemm 1.29 ms, this 0.42 ms;
 * [8, 384]·[384, 1536]: 0.166 vs 0.071 ms. Sums are float32, in an order of their own (a BLAS
 * orders its sums differently too: float32 rounding apart).
 *
 * Written with GCC/Clang vector types so that it vectorises without -ffast-math: 16-wide with
 * AVX-512, 8-wide elsewhere, and register blocks that fit each one's registers (below).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

/*
 * What differs by vector width, in one place. The vector: 16 floats with AVX-512, 8 elsewhere (GCC
 * split a 64-byte vector on AVX2 into 16-byte pieces through the stack: the products ran at 2.2–7
 * GFLOP/s on a Zen 3). G: the rows of a register block's pass (all R with AVX-512's 32 registers,
 * 16 accumulators). NV8 / NV16: vectors a pass for 8 / 16 rows. KB: rows of B a k-block. PF: how
 * many rows of B ahead each B vector is prefetched.
 * UNIT: the columns a thread's range is a multiple of (whole column blocks of both tiles).
 *
 * AVX2's 16 registers hold 4 rows × 3 vectors of accumulators and the 3 B vectors: each B load
 * feeds 4 FMAs, and 8 or 16 rows take 2 or 4 passes over a k-block. The first pass reads B from
 * memory and keeps the k-block (16 × 24 floats, 1.5 KB) in `panel`; the other passes read it
 * there: re-reading B's rows (6–12 KB apart, so all in a few L1 sets) evicted each other. Zen 3,
 * one thread, the PPO decoding step's 24 products (d 384, 42.5 MB of weights, from DRAM): 8 rows
 * 4.7 → 2.8–3.4 ms, 16 rows 7.5 → 5.2–5.3 ms (2 threads: 5.1 → 3.8–4.2 ms), against 8 rows × 1
 * vector a pass with KB 32 and columns in chunks of 256. In that sweep KB 16 beat 32, all
 * columns in one pass beat chunks of 240 and 480, a prefetch 32 or 64 rows ahead beat 16. The bits are the same (one chain a sum).
 * The same build (-march=znver3) on a Zen 5: 8 rows 2.96 → 1.97 ms, 16 rows 4.92 → 3.3–3.5 ms.
 * With AVX-512 (Zen 5, one thread), where only the register barrier and PF's name are new: 8
 * rows 1.26–1.29 → 1.22–1.33 ms, 16 rows 2.83 → 2.63–2.70 ms.
 */
#if defined(__AVX512F__)
typedef float v16 __attribute__((vector_size(64), aligned(4)));
enum { LANES = 16, NV8 = 2, NV16 = 1, KB = 8, PF = 8, UNIT = 32 };
#define GROUP(R) (R)
#else
typedef float v16 __attribute__((vector_size(32), aligned(4)));
enum { LANES = 8, NV8 = 3, NV16 = 3, KB = 16, PF = 32, UNIT = 48 };
#define GROUP(R) 4
#endif
enum { ROWS = 8, ACC_PAD = 16 };
_Static_assert(UNIT % (NV8 * LANES) == 0 && UNIT % (NV16 * LANES) == 0, "UNIT: whole column blocks");

static inline v16 load16(const float *p) { return *(const v16 *)p; }
static inline void store16(float *p, v16 v) { *(v16 *)p = v; }

/*
 * Up to R rows (8 or 16): C[m, n] = Σ_k A(m, k)·B[k, n], B row-major [K, N] (ldb N). pa is A
 * packed as [K][R] (rows past M zero). Columns in blocks of NV vectors (8 rows × 2 vectors, 16 ×
 * 1: 16 accumulators either way, each B vector loaded once for R multiply-adds), rows of B in
 * blocks of KB, the partial sums kept in acc between blocks: walking one column block down all K
 * rows touched a new page per row (a 3072-wide B: 12 KB apart), which the hardware prefetcher does
 * not follow; 8 rows at a time it streams ([8,768]·[768,3072] from DRAM: 1.00 → 0.65 ms, 14.5 GB/s
 * of a 24 GB/s read ceiling; sgemm 1.4 ms). 9–16 rows go through once as 16 (two passes of 8
 * read B twice). Every C[m, n] is the same chain of multiply-adds over k from 0 whatever R, NV
 * and KB (and the last N mod UNIT columns the same scalar tail), so the tiling changes no bit. The
 * PPO bench's decoding step at batch 16 (d 384, 42 MB of weights a step; Intel Xeon VM, one
 * thread): 14.8 ms with two passes of 8, 12.3 in one of 16, 6.3 with the prefetch below.
 */
/* Each B vector is prefetched PF rows ahead, the same columns, where a later k-block will read
 * it: the KB streams of a k-block cross pages the hardware prefetcher does not follow. PPO bench
 * decoding at batch 16 (d 384, 42 MB of weights a step, Intel Xeon VM, KB 8, one thread): a step
 * 12.3 → 6.3 ms (4 rows ahead: 8.8 ms, 16: 6.5, 24: 6.8). Zen 3 (KB 32), the step's projections:
 * 8 rows ahead (within the k-block) 9.2 ms at batch 16 and 5.4 at 8; 32 (one k-block) 7.4 and
 * 4.3; 64: 7.6 and 4.7 (KB 32, 8 rows × 1 vector a pass; the register blocks above since). */

/* acc[m][u] += A(m, k)·bv[u] for the G rows of a group (ak: A(·, k) packed, from the group's row) */
static inline __attribute__((always_inline)) void fma_rows(const int G, const int NV,
                                                           v16 acc[16][4], const float *ak,
                                                           const v16 *bv) {
  for (int m = 0; m < G; m++)
    for (int u = 0; u < NV; u++) acc[m][u] += ak[m] * bv[u];
}

static inline __attribute__((always_inline)) void nn_tile(const int R, const int NV, int M, int N,
                                                          int K, const float *pa, const float *b,
                                                          int64_t ldb, float *c, int ldc,
                                                          float *accbuf) {
  /* accbuf: [R][nv + ACC_PAD] partial sums for all R rows, so every loop over rows has a constant bound and
   * the accumulators stay in registers (a loop to M spilled them: 1.5× slower) */
  /* columns past the last whole UNIT take the scalar tail (the same chain over k: the same bits) */
  const int G = GROUP(R); /* a constant once inlined (R is) */
  const int W = NV * LANES;
  const int nv = N - N % UNIT; /* UNIT: a multiple of W (asserted below) */
  /* a row of partial sums ACC_PAD floats longer than nv: rows nv = 3072 floats apart (12 KB) all
   * fell in one L1 set, as 4 KB multiples do (Zen 3, [16, 768]·[768, 3072]: 5.2 → 1.9 ms) */
  const int as = nv + ACC_PAD;
  v16 panel[KB][4]; /* the k-block of B the first group read, for the others */
  for (int k0 = 0; k0 < K; k0 += KB) {
    const int k1 = k0 + KB < K ? k0 + KB : K;
    for (int n0 = 0; n0 < nv; n0 += W)
      for (int g0 = 0; g0 < R; g0 += G) {
        v16 acc[16][4];
        for (int m = 0; m < G; m++)
          for (int u = 0; u < NV; u++)
            acc[m][u] = k0 > 0 ? load16(accbuf + (g0 + m) * as + n0 + u * LANES) : (v16){0};
        if (g0 == 0) { /* B from memory, kept in the panel for the other groups */
          const float *bk = b + (int64_t)k0 * ldb + n0;
          for (int k = k0; k < k1; k++, bk += ldb) {
            v16 bv[4];
            for (int u = 0; u < NV; u++) {
              __builtin_prefetch(bk + PF * ldb + u * LANES);
              bv[u] = load16(bk + u * LANES);
              __asm__("" : "+x"(bv[u])); /* in a register: GCC otherwise folds it into each FMA */
              if (G < R) panel[k - k0][u] = bv[u];
            }
            fma_rows(G, NV, acc, pa + k * R, bv);
          }
        } else
          for (int k = k0; k < k1; k++) {
            v16 bv[4];
            for (int u = 0; u < NV; u++) {
              bv[u] = panel[k - k0][u];
              __asm__("" : "+x"(bv[u]));
            }
            fma_rows(G, NV, acc, pa + k * R + g0, bv);
          }
        for (int m = 0; m < G; m++)
          for (int u = 0; u < NV; u++) store16(accbuf + (g0 + m) * as + n0 + u * LANES, acc[m][u]);
      }
  }
  for (int m = 0; m < M; m++) memcpy(c + m * ldc, accbuf + m * as, sizeof(float) * nv);
  for (int n0 = nv; n0 < N; n0++) { /* the last N mod UNIT columns */
    float acc[16] = {0};
    for (int k = 0; k < K; k++)
      for (int m = 0; m < R; m++) /* an explicit fma: with R 8 and 16 GCC vectorised `+= ·` as
                                   * different instructions on a Zen 5 (the bits of 12 rows differed
                                   * from 8 + 4) */
        acc[m] = __builtin_fmaf(pa[k * R + m], b[(int64_t)k * ldb + n0], acc[m]);
    for (int m = 0; m < M; m++) c[m * ldc + n0] = acc[m];
  }
}

static void nn_rows(int M, int N, int K, const float *pa, const float *b, int64_t ldb, float *c,
                    int ldc, float *accbuf) {
  if (M <= ROWS) nn_tile(ROWS, NV8, M, N, K, pa, b, ldb, c, ldc, accbuf);
  else nn_tile(2 * ROWS, NV16, M, N, K, pa, b, ldb, c, ldc, accbuf);
}

/* Σ of a vector's lanes by halving (4 adds for 16; a lane-by-lane loop was 16 dependent adds). */
static inline float hsum16(v16 v) {
#if defined(__AVX512F__)
  v = v + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3);
  v = v + __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1);
#else
  v = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
  v = v + __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1);
#endif
  return v[0] + v[1];
}

#if defined(__AVX512F__)
#define NT_G ROWS
#else
#define NT_G 4
#endif

/*
 * Up to 8 rows: C[m, n] = Σ_k A(m, k)·B[n, k], B row-major [N, K] (a tied LM head, q·kᵀ). pa is
 * A packed as [8][K] (rows past M zero). Two rows of B at a time against all 8 of A.
 */
static void nt_rows(int M, int N, int K, const float *pa, const float *b, float *c, int ldc) {
  const int kv = K - K % LANES;
  int n0 = 0;
  for (; n0 + 2 <= N; n0 += 2) {
    v16 acc[ROWS][2];
    const float *b0 = b + (int64_t)n0 * K, *b1 = b0 + K;
    /* rows in groups of NT_G (all 8 with AVX-512; 4 with AVX2's 16 registers: 8 accumulators),
     * each lane's sum the same chain over k either way */
    for (int g0 = 0; g0 < ROWS; g0 += NT_G) {
      v16 part[NT_G][2];
      memset(part, 0, sizeof part);
      for (int k = 0; k < kv; k += LANES) {
        const v16 x0 = load16(b0 + k), x1 = load16(b1 + k);
        for (int m = 0; m < NT_G; m++) {
          const v16 a = load16(pa + (g0 + m) * K + k);
          part[m][0] += a * x0;
          part[m][1] += a * x1;
        }
      }
      memcpy(acc[g0], part, sizeof part);
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
 * (setThreads), one thread per 2^18 elements of B at most, each a range of whole UNIT-column blocks
 * of C with its own partial sums; a sum's order does not depend on the split (1 and n threads
 * give the same bits). [8, 768]·[768, 3072] on one thread ran at 14.5 GB/s, half the machine's
 * read bandwidth, so a second BLAS thread gained nothing in decoding at batch 8 (#17).
 */
typedef struct {
  bool tb;
  int M, N, K;
  const float *pa; /* A packed: one block of 8 or 16 rows [K][R] (nn), blocks of 8 rows [8][K] (tb) */
  const float *b;
  float *c;
  bool failed;
} Small;

static void task_small(void *ctx, int t, int n) {
  Small *s = ctx;
  const int64_t units = (s->N + UNIT - 1) / UNIT;
  int lo = (int)(units * t / n * UNIT), hi = (int)(units * (t + 1) / n * UNIT);
  if (hi > s->N) hi = s->N;
  if (lo >= hi) return;
  if (s->tb) {
    for (int m0 = 0; m0 < s->M; m0 += ROWS) {
      const int rows = s->M - m0 < ROWS ? s->M - m0 : ROWS;
      const float *pa = s->pa + (int64_t)(m0 / ROWS) * ROWS * s->K;
      nt_rows(rows, hi - lo, s->K, pa, s->b + (int64_t)lo * s->K, s->c + (int64_t)m0 * s->N + lo,
              s->N);
    }
    return;
  }
  float *accbuf = malloc(sizeof(float) * 2 * ROWS * (size_t)(hi - lo + ACC_PAD));
  if (!accbuf) {
    s->failed = true;
    return;
  }
  nn_rows(s->M, hi - lo, s->K, s->pa, s->b + lo, s->N, s->c + lo, s->N, accbuf);
  free(accbuf);
}

bool troupe_small_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                       const float *b, float *c) {
  if (M < 1 || M > SMALL_GEMM_MAX_ROWS || K > 16384) return false;
  /* A(m, k): a[m·K + k], or a[k·M + m] when A is stored transposed ([K, M]). Packed for nt_rows
   * as blocks of 8 rows [8][K]; for nn_rows as one block of R = 8 or 16 rows, [K][R] */
  const int64_t R = tb ? ROWS : M <= ROWS ? ROWS : 2 * ROWS;
  const int64_t blocks = tb ? (M + ROWS - 1) / ROWS : 1;
  float *pa = malloc(sizeof(float) * R * K * blocks);
  if (!pa) return false;
  for (int64_t m0 = 0; m0 < M; m0 += R) {
    const int rows = M - m0 < R ? (int)(M - m0) : (int)R;
    float *p = pa + (m0 / R) * R * K;
    for (int m = 0; m < R; m++)
      for (int64_t k = 0; k < K; k++) {
        const float v = m < rows ? (ta ? a[k * M + m0 + m] : a[(m0 + m) * K + k]) : 0.0f;
        if (tb) p[m * K + k] = v; /* [8][K] */
        else p[k * R + m] = v;    /* [K][R] */
      }
  }
  const int64_t work = K * N >> 18, units = (N + UNIT - 1) / UNIT;
  const int want = troupe_threads();
  int threads = work < 1 ? 1 : work < want ? (int)work : want;
  if (threads > units) threads = (int)units;
  Small s = {tb, (int)M, (int)N, (int)K, pa, b, c, false};
  if (threads <= 1) task_small(&s, 0, 1);
  else troupe_parallel(threads, task_small, &s);
  free(pa);
  return !s.failed;
}
