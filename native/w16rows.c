/*
 * The few-row product of troupe_linear_w16 (bf16.c; decoding): y [R, N] = x [R, K]·W for W
 * stored as bf16 bits in panels of 32 columns ([⌈N/32⌉][K][32], columns past N zero), x in fp32
 * against the weights widened to fp32 in registers, fp32 sums. Every weight is read once per 8
 * rows of x, at half the bytes of an fp32 one.
 *
 * Each element's sum runs k by k from 0 to K in one fp32 accumulator (a fused multiply-add a
 * step), whatever the path, the number of panels walked at once or the split between threads:
 * all of them give the same bits (tested).
 *
 * Two loops, the same arithmetic:
 *   avx512   where the compiler targets AVX-512F: a 64-byte row of a panel (32 bf16) is widened
 *            by one shift (even columns) and one mask (odd columns), the two halves put back in
 *            order once per panel; few rows walk 2 or 4 panels at once so that the accumulator
 *            chains do not wait on each other (1 row, one panel: 2 chains of 4-cycle FMAs, one
 *            64-byte row per 4 cycles), and each stream prefetches PREFETCH rows ahead.
 *   generic  the same in GNU C vectors (what any other CPU runs); TROUPE_BF16_PATH=fp32 selects it
 *            here too, so that both are tested on a CPU with AVX-512.
 *
 * Threads: the BLAS count (setThreads), one per 2^18 weights at most, each a range of whole panels.
 * troupe_w16_rows_many takes several weights against the same x (a decoder block's q, k and v) as
 * one range of panels: one start of the helpers, not three, and a share of 2304 columns for each
 * instead of three of 768; every element's sum is the same (it is one panel's, whichever thread).
 * Measured (bench/bf16-weights.ts) in the commit that added this file.
 */
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { ROWS = 8, PREFETCH = 24 };

typedef struct {
  const float *pa; /* x in blocks of 8 rows (zero past R): [K][8] each */
  const uint16_t *w;
  int64_t R, K, N;
  float *y;
  bool generic;
} Job;

/* 32 sums of one panel (columns n0 ..) into rows of y, cut at N */
static inline void store32(float *y, int64_t N, int64_t n0, const float *out) {
  const int64_t cols = N - n0 < 32 ? N - n0 : 32;
  memcpy(y + n0, out, (size_t)cols * 4);
}

/*
 * The generic loop's vector: 16 floats with AVX-512, 8 elsewhere. A 32-column panel goes by in
 * 32 / GW column passes, each with RB accumulators: 16-wide, one panel's 8 rows x 2 vectors had
 * 16 accumulators, which on AVX2 (16 registers, a 64-byte vector two halves) spilled, as
 * smallm.c's did (2.2–7 GFLOP/s on a Zen 3). Every element is the same chain of multiply-adds
 * over k from 0 whatever the width.
 */
#if defined(__AVX512F__)
enum { GW = 16 };
#else
enum { GW = 8 };
#endif
typedef float fgv __attribute__((vector_size(GW * 4), aligned(4)));
typedef uint16_t hgv __attribute__((vector_size(GW * 2), aligned(2)));
typedef uint32_t ugv __attribute__((vector_size(GW * 4)));

static inline fgv widen(const uint16_t *p) {
  hgv h;
  memcpy(&h, p, sizeof h);
  const ugv u = __builtin_convertvector(h, ugv) << 16;
  fgv f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* generic: panels [lo, hi) for `rows` ≤ RB rows of x (pa [K][8]), RB accumulators a pass */
static inline __attribute__((always_inline)) void generic_panels(const Job *s, const float *pa,
                                                                int rows, float *y, int64_t lo,
                                                                int64_t hi, const int RB) {
  const int64_t K = s->K, N = s->N;
  for (int64_t p = lo; p < hi; p++) {
    float out[ROWS][32];
    for (int c = 0; c < 32; c += GW) {
      const uint16_t *w = s->w + p * K * 32 + c;
      fgv a[ROWS];
      for (int m = 0; m < RB; m++) a[m] = (fgv){0};
      for (int64_t k = 0; k < K; k++, w += 32) {
        const fgv wv = widen(w);
        const float *xk = pa + k * ROWS;
        for (int m = 0; m < RB; m++) a[m] += xk[m] * wv;
      }
      for (int m = 0; m < rows; m++) memcpy(out[m] + c, &a[m], sizeof a[m]);
    }
    for (int m = 0; m < rows; m++) store32(y + m * N, N, p * 32, out[m]);
  }
}

#if defined(__AVX512F__)
/*
 * PN panels from p0, `rows` ≤ RB rows: RB·PN·2 accumulators, even and odd columns apart (the
 * shift puts column 2i of a 64-byte row in lane i, the mask column 2i+1).
 */
static inline __attribute__((always_inline)) void avx512_panels(const Job *s, const float *pa,
                                                               int rows, float *y, int64_t p0,
                                                               const int RB, const int PN) {
  const int64_t K = s->K, N = s->N;
  const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
  const uint16_t *w[4];
  __m512 ev[4][ROWS], od[4][ROWS];
  for (int q = 0; q < PN; q++) {
    w[q] = s->w + (p0 + q) * K * 32;
    for (int m = 0; m < RB; m++) ev[q][m] = od[q][m] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; k++) {
    const float *xk = pa + k * ROWS;
    for (int q = 0; q < PN; q++) {
      const uint16_t *row = w[q] + k * 32;
      _mm_prefetch((const char *)(row + PREFETCH * 32), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(row);
      const __m512 e = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      const __m512 o = _mm512_castsi512_ps(_mm512_and_si512(v, high));
      for (int m = 0; m < RB; m++) {
        const __m512 xb = _mm512_set1_ps(xk[m]);
        ev[q][m] = _mm512_fmadd_ps(xb, e, ev[q][m]);
        od[q][m] = _mm512_fmadd_ps(xb, o, od[q][m]);
      }
    }
  }
  /* lanes back in column order: columns 0-15 from lanes 0-7 of both, 16-31 from lanes 8-15 */
  const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi_idx =
      _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (int q = 0; q < PN; q++)
    for (int m = 0; m < rows; m++) {
      float out[32];
      _mm512_storeu_ps(out, _mm512_permutex2var_ps(ev[q][m], lo_idx, od[q][m]));
      _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(ev[q][m], hi_idx, od[q][m]));
      store32(y + m * N, N, (p0 + q) * 32, out);
    }
}

/* panels [lo, hi): PN at a time, then one at a time for the rest */
static inline __attribute__((always_inline)) void avx512_range(const Job *s, const float *pa,
                                                              int rows, float *y, int64_t lo,
                                                              int64_t hi, const int RB,
                                                              const int PN) {
  int64_t p = lo;
  for (; p + PN <= hi; p += PN) avx512_panels(s, pa, rows, y, p, RB, PN);
  for (; p < hi; p++) avx512_panels(s, pa, rows, y, p, RB, 1);
}
#endif

/* rows [0, R) of x against panels [lo, hi) of one weight */
static void rows_range(const Job *s, int64_t lo, int64_t hi) {
  for (int64_t r0 = 0; r0 < s->R; r0 += ROWS) {
    const int rows = s->R - r0 < ROWS ? (int)(s->R - r0) : ROWS;
    const float *pa = s->pa + (r0 / ROWS) * ROWS * s->K;
    float *y = s->y + r0 * s->N;
#if defined(__AVX512F__)
    if (!s->generic) {
      if (rows == 1) avx512_range(s, pa, rows, y, lo, hi, 1, 4);
      else if (rows == 2) avx512_range(s, pa, rows, y, lo, hi, 2, 4);
      else if (rows <= 4) avx512_range(s, pa, rows, y, lo, hi, 4, 2);
      else avx512_range(s, pa, rows, y, lo, hi, ROWS, 1);
      continue;
    }
#endif
    if (rows == 1) generic_panels(s, pa, rows, y, lo, hi, 1);
    else if (rows == 2) generic_panels(s, pa, rows, y, lo, hi, 2);
    else if (rows <= 4) generic_panels(s, pa, rows, y, lo, hi, 4);
    else generic_panels(s, pa, rows, y, lo, hi, ROWS);
  }
}

enum { PARTS_MAX = 4 };

/* Several weights against the same x, their panels one range that the threads share out */
typedef struct {
  Job part[PARTS_MAX];
  int parts;
  int64_t panels; /* of all the parts */
} Many;

static void task(void *ctx, int t, int n) {
  const Many *m = ctx;
  const int64_t lo = m->panels * t / n, hi = m->panels * (t + 1) / n; /* in panels of 32 columns */
  int64_t first = 0;                                                  /* the part's first panel */
  for (int i = 0; i < m->parts; i++) {
    const Job *s = &m->part[i];
    const int64_t count = (s->N + 31) / 32, a = lo > first ? lo : first;
    const int64_t b = hi < first + count ? hi : first + count;
    if (a < b) rows_range(s, a - first, b - first);
    first += count;
  }
}

/* Threads for a memory-bound pass over K·N weights: the BLAS count, one per 2^18 at most. */
static int threads_for_weights(int64_t K, int64_t N) {
  const int64_t work = K * N >> 18;
  const int want = troupe_threads(), panels = (int)((N + 31) / 32);
  const int threads = work < 1 ? 1 : work < want ? (int)work : want;
  return threads > panels ? panels : threads;
}

static int generic_chosen = -1;

const char *troupe_w16_rows_path(void) {
  if (generic_chosen < 0) {
    const char *force = getenv("TROUPE_BF16_PATH");
#if defined(__AVX512F__)
    generic_chosen = force && strcmp(force, "fp32") == 0;
#else
    (void)force;
    generic_chosen = 1;
#endif
  }
  return generic_chosen ? "generic" : "avx512";
}

bool troupe_w16_rows_many(const float *x, int64_t R, int64_t K, int parts,
                          const uint16_t *const *w, const int64_t *N, float *const *y) {
  if (parts < 1 || parts > PARTS_MAX) return false;
  const bool generic = strcmp(troupe_w16_rows_path(), "generic") == 0;
  const int64_t blocks = (R + ROWS - 1) / ROWS;
  float *pa = malloc(sizeof(float) * (size_t)(blocks * ROWS * K));
  if (!pa) return false;
  for (int64_t b = 0; b < blocks; b++) { /* [K][8], rows past R zero */
    float *p = pa + b * ROWS * K;
    for (int m = 0; m < ROWS; m++) {
      const int64_t r = b * ROWS + m;
      for (int64_t k = 0; k < K; k++) p[k * ROWS + m] = r < R ? x[r * K + k] : 0.0f;
    }
  }
  Many m = {.parts = parts, .panels = 0};
  int64_t columns = 0;
  for (int i = 0; i < parts; i++) {
    m.part[i] = (Job){pa, w[i], R, K, N[i], y[i], generic};
    m.panels += (N[i] + 31) / 32;
    columns += N[i];
  }
  const int threads = threads_for_weights(K, columns);
  if (threads <= 1) task(&m, 0, 1);
  else troupe_parallel(threads, task, &m);
  free(pa);
  return true;
}

bool troupe_w16_rows(const float *x, const uint16_t *w, int64_t R, int64_t K, int64_t N,
                     float *y) {
  return troupe_w16_rows_many(x, R, K, 1, &w, &N, &y);
}
