/*
 * bf16 matrix products with fp32 accumulation: C[M, N] = op(A)·op(B), A and B given as float32
 * and rounded to bfloat16 (round to nearest even) as they are packed, C float32 — what PyTorch's
 * bf16 autocast computes for a matmul (its output then rounded to bf16; here kept in fp32).
 *
 * Three paths, chosen once per process:
 *   amx      Intel AMX (TDPBF16PS on 16x16 tiles), where the CPU has AMX-BF16 and the kernel
 *            grants the tile state (arch_prctl ARCH_REQ_XCOMP_PERM)
 *   avx512   AVX512-BF16 (VDPBF16PS, 16 lanes x 2 products), e.g. AMD Zen 4, Intel Cooper Lake
 *   fma      anywhere else (bf16vec.c): the same packed operands, each k-pair widened to fp32
 *            in registers and added by two fp32 multiply-adds in VDPBF16PS's order (by its
 *            definition the avx512 path's sums, subnormals apart), at fp32 FMA speed
 *   fp32     only when asked (TROUPE_BF16_PATH=fp32): the inputs rounded to bf16 values, then the
 *            fp32 sgemm (same numbers as the bf16 paths up to the order of the fp32 sums, which
 *            under OpenBLAS's Haswell/Zen kernels depends on the thread split and the rows)
 *
 * A is packed into 16x32 tiles (each a contiguous 1 KB: rows 64 bytes apart, so 16 rows never
 * alias one L1 set as a 4 KB stride would), B into 16-column panels of k-pairs (VNNI: [K/2][16][2]),
 * both zero-padded to multiples of 32, into a per-thread scratch kept between calls. The AMX
 * micro-kernel accumulates a 32x32 block of C in four tiles over the whole K.
 *
 * Threads: as many as the BLAS is set to (setThreads: one count for both kinds of product), one
 * per 2^22 multiply-adds at most, from pool.c. They share the packing, then split C into column
 * (or row) ranges of whole 32-blocks; each element's sum runs in the same order whatever the split,
 * so 1 and n threads give the same bits. A batch of small products is shared out product by product.
 *
 * Measured on one Xeon core (thread CPU time, 2048^3): ~740 GFLOP/s with packing, ~1000 without;
 * [512, 768]·[768, 768] ~700 (packing the fp32 operands is 38 % of it: 3.9 MB read at ~16 GB/s).
 * PyTorch 2.13's oneDNN on bf16 tensors: 724 at 2048^3, ~1150 on the layer shape.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "args.h"
#include "common.h"

enum { PATH_FP32, PATH_VEC, PATH_AVX512, PATH_AMX };
static int path = -1;

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#define HAVE_AMX 1
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
typedef struct {
  uint8_t palette, start;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((packed)) TileConfig;

static bool amx_granted(void) {
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

static void amx_configure(void) {
  TileConfig c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int t = 0; t < 8; t++) {
    c.rows[t] = 16;
    c.colsb[t] = 64;
  }
  _tile_loadconfig(&c);
}
#endif

#if defined(__AVX512BF16__)
/* [a0..a15] and [b0..b15] (float32) → [bf(a0), bf(b0), bf(a1), bf(b1), …] (16 pairs, one zmm) */
static inline __m512i pairs16(__m512 a, __m512 b) {
  const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* 16 zmm of 16 dwords each, transposed in place (row i, lane j → row j, lane i) */
static void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* now each 128-bit lane holds a 4x4 block: shuffle lanes */
  for (int i = 0; i < 8; i++) {
    const int a = (i / 4) * 8 + i % 4;
    t[a] = _mm512_shuffle_i32x4(r[a], r[a + 4], 0x88);
    t[a + 4] = _mm512_shuffle_i32x4(r[a], r[a + 4], 0xdd);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
  }
}

/* 16 floats of row `row` (length `len`, ld `ld`) from column c0, zero past the edge or row */
static inline __m512 load16(const float *x, int64_t ld, int64_t row, int64_t rows, int64_t c0,
                            int64_t len) {
  if (row >= rows || c0 >= len) return _mm512_setzero_ps();
  const int64_t n = len - c0 < 16 ? len - c0 : 16;
  return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), x + row * ld + c0);
}
#endif

/*
 * op(A) [M, K] → tiles [Mp/16][Kp/32][16][32] bf16, zero-padded. A tile row is 16 k-pairs of one
 * m: from A [M, K] the pairs of a row are contiguous; from A stored [K, M] (transA) rows k and
 * k+1 give the pairs of 16 m at once, which a 16x16 transpose turns into tile rows.
 */
static void pack_a(const float *a, bool ta, int64_t lda, int64_t M, int64_t K, int64_t Kp,
                   int64_t m_lo, int64_t m_hi, uint16_t *out) {
  const int64_t kt = Kp / 32;
#if defined(__AVX512BF16__)
  for (int64_t m0 = m_lo; m0 < m_hi; m0 += 16)
    for (int64_t k0 = 0; k0 < Kp; k0 += 32) {
      __m512i rows[16];
      if (!ta) {
        /* each of the 16 rows is its own stream: ask for the block after next (a step's
         * activations come from L3 or memory, past what the prefetchers run ahead) */
        if (k0 + 64 < K)
          for (int r = 0; r < 16 && m0 + r < M; r++) {
            const float *next = a + (m0 + r) * lda + k0 + 64;
            _mm_prefetch((const char *)next, _MM_HINT_T0);
            _mm_prefetch((const char *)(next + 16), _MM_HINT_T0);
          }
        for (int r = 0; r < 16; r++) {
          const __m512 lo = load16(a, lda, m0 + r, M, k0, K), hi = load16(a, lda, m0 + r, M, k0 + 16, K);
          rows[r] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        }
      } else {
        /* the 32 rows of the block after next, at these 16 columns */
        for (int64_t k = k0 + 64; k < k0 + 96 && k < K && m0 < M; k++)
          _mm_prefetch((const char *)(a + k * lda + m0), _MM_HINT_T0);
        for (int p = 0; p < 16; p++) /* pair p: rows k0+2p, k0+2p+1 of A [K, M] */
          rows[p] = pairs16(load16(a, lda, k0 + 2 * p, K, m0, M), load16(a, lda, k0 + 2 * p + 1, K, m0, M));
        transpose16(rows);
      }
      uint16_t *tile = out + ((m0 / 16) * kt + k0 / 32) * 512;
      for (int r = 0; r < 16; r++) _mm512_storeu_si512(tile + r * 32, rows[r]);
    }
#else
  (void)kt;
  troupe_bf16_pack_a_vec(a, ta, lda, M, K, Kp, m_lo, m_hi, out);
#endif
}

/*
 * op(B) [K, N] → panels [Np/16][Kp/2][16][2] bf16 (k-pairs per column), zero-padded. From B
 * [K, N] rows k and k+1 give one panel row; from B stored [N, K] (transB) the pairs of a column
 * are contiguous, and a 16x16 transpose makes panel rows of them.
 */
static void pack_b(const float *b, bool tb, int64_t ldb, int64_t K, int64_t N, int64_t Kp,
                   int64_t n_lo, int64_t n_hi, uint16_t *out, float *colsum) {
  if (colsum && !tb) /* Σ_k B[k, n] for the columns [n_lo, n_hi) ∩ [0, N), k in order */
    for (int64_t n = n_lo; n < n_hi && n < N; n++) colsum[n] = 0;
#if defined(__AVX512BF16__)
  if (!tb) {
    /* k outside: 32 rows of B are read along their length, one 64-byte line after the next of
     * each. A panel at a time down K read 64 bytes a row, a new line and page every time: at
     * 2048^3 on one Xeon core packing B took 4.2 ms against 1.4 for A, the product 20.6 ms. */
    for (int64_t k0 = 0; k0 < Kp; k0 += 32)
      for (int64_t n0 = n_lo; n0 < n_hi; n0 += 16) {
        uint16_t *panel = out + (n0 / 16) * Kp * 16;
        __m512i rows[16];
        /* these 32 rows, two 16-column steps on (each row its own stream, as in pack_a) */
        if (n0 + 32 < N)
          for (int64_t k = k0; k < k0 + 32 && k < K; k++)
            _mm_prefetch((const char *)(b + k * ldb + n0 + 32), _MM_HINT_T0);
        if (colsum && n0 < N && k0 < K) {
          /* the bias gradient of dW = xᵀ·dy, read here while dy is packed: each column's rows
           * added in order k = 0, 1, … (rows past K are not added) */
          const int64_t cols = N - n0 < 16 ? N - n0 : 16;
          const __mmask16 m = (__mmask16)((1u << cols) - 1u);
          __m512 acc = _mm512_maskz_loadu_ps(m, colsum + n0);
          for (int p = 0; p < 16; p++) {
            const __m512 lo = load16(b, ldb, k0 + 2 * p, K, n0, N);
            const __m512 hi = load16(b, ldb, k0 + 2 * p + 1, K, n0, N);
            if (k0 + 2 * p < K) acc = _mm512_add_ps(acc, lo);
            if (k0 + 2 * p + 1 < K) acc = _mm512_add_ps(acc, hi);
            rows[p] = pairs16(lo, hi);
          }
          _mm512_mask_storeu_ps(colsum + n0, m, acc);
        } else
          for (int p = 0; p < 16; p++)
            rows[p] = pairs16(load16(b, ldb, k0 + 2 * p, K, n0, N), load16(b, ldb, k0 + 2 * p + 1, K, n0, N));
        for (int p = 0; p < 16; p++) _mm512_storeu_si512(panel + (k0 / 2 + p) * 32, rows[p]);
      }
    return;
  }
  for (int64_t n0 = n_lo; n0 < n_hi; n0 += 16) {
    uint16_t *panel = out + (n0 / 16) * Kp * 16;
    for (int64_t k0 = 0; k0 < Kp; k0 += 32) {
      __m512i rows[16];
      if (k0 + 64 < K) /* the block after next of these 16 rows of B [N, K] */
        for (int j = 0; j < 16 && n0 + j < N; j++) {
          const float *next = b + (n0 + j) * ldb + k0 + 64;
          _mm_prefetch((const char *)next, _MM_HINT_T0);
          _mm_prefetch((const char *)(next + 16), _MM_HINT_T0);
        }
      for (int j = 0; j < 16; j++) { /* column n0+j: 32 contiguous k of B [N, K] */
        const __m512 lo = load16(b, ldb, n0 + j, N, k0, K), hi = load16(b, ldb, n0 + j, N, k0 + 16, K);
        rows[j] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      }
      transpose16(rows);
      for (int p = 0; p < 16; p++) _mm512_storeu_si512(panel + (k0 / 2 + p) * 32, rows[p]);
    }
  }
#else
  if (colsum && !tb)
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = n_lo; n < n_hi && n < N; n++) colsum[n] += b[k * ldb + n];
  troupe_bf16_pack_b_vec(b, tb, ldb, K, N, Kp, n_lo, n_hi, out);
#endif
}

/*
 * B [K, N] already bfloat16 (a weight stored as bf16 in troupe_linear_w16's panels, read as it
 * is) → the same panels as pack_b, with no rounding: rows k and k+1 interleaved column by column.
 */
static void pack_b16(const uint16_t *b, int64_t K, int64_t N, int64_t Kp, int64_t n_lo,
                     int64_t n_hi, uint16_t *out) {
  for (int64_t n0 = n_lo; n0 < n_hi; n0 += 16) {
    uint16_t *panel = out + (n0 / 16) * Kp * 16;
    /* columns n0 .. n0+15 of the source panel n0/32 (zero past N there already) */
    const uint16_t *src = b + (n0 / 32) * K * 32 + n0 % 32;
    const bool any = n0 < N;
    for (int64_t k = 0; k < Kp; k += 2) {
      uint16_t *d = panel + (k / 2) * 32;
      for (int64_t j = 0; j < 16; j++) {
        d[2 * j] = any && k < K ? src[k * 32 + j] : 0;
        d[2 * j + 1] = any && k + 1 < K ? src[(k + 1) * 32 + j] : 0;
      }
    }
  }
}

/*
 * A block of C [rows, cols] (row stride ldc) += bias [cols], row by row: each element one fp32
 * add of its product's sum, the bits of adding the bias after the whole product, done while the
 * block is in L1 instead of in a second pass over C (which came back from L3 or memory: 0.2-0.7
 * ms of a 1024-row projection of the small model, 2 threads, Intel Xeon VM).
 */
static inline void add_bias(float *c, int64_t ldc, int64_t rows, int64_t cols, const float *bias) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = c + r * ldc;
#if defined(__AVX512F__)
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16)
      _mm512_storeu_ps(row + j, _mm512_add_ps(_mm512_loadu_ps(row + j), _mm512_loadu_ps(bias + j)));
    if (j < cols) {
      const __mmask16 m = (__mmask16)((1u << (cols - j)) - 1u);
      _mm512_mask_storeu_ps(row + j, m,
                            _mm512_add_ps(_mm512_maskz_loadu_ps(m, row + j), _mm512_maskz_loadu_ps(m, bias + j)));
    }
#else
    for (int64_t j = 0; j < cols; j++) row[j] += bias[j];
#endif
  }
}

#ifdef HAVE_AMX
/* a 32x32 block of results (row stride 32) into C, cut to the matrix's edge */
static void store_block(const float *block, float *c, int64_t ldc, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) memcpy(c + r * ldc, block + r * 32, (size_t)cols * 4);
}
#endif

#ifdef HAVE_AMX
/* one 32x32 block of C: four accumulator tiles over the whole of K */
static inline void amx_block(const uint16_t *a0, const uint16_t *a1, const uint16_t *b0,
                             const uint16_t *b1, int64_t kt, float *dst, int64_t ldc, int64_t rows,
                             int64_t cols, const float *bias) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t k = 0; k < kt; k++) {
    _tile_loadd(4, a0 + k * 512, 64);
    _tile_loadd(6, b0 + k * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, b1 + k * 512, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + k * 512, 64);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (rows == 32 && cols == 32) {
    _tile_stored(0, dst, ldc * 4);
    _tile_stored(1, dst + 16, ldc * 4);
    _tile_stored(2, dst + 16 * ldc, ldc * 4);
    _tile_stored(3, dst + 16 * ldc + 16, ldc * 4);
  } else {
    float block[32 * 32];
    _tile_stored(0, block, 128);
    _tile_stored(1, block + 16, 128);
    _tile_stored(2, block + 16 * 32, 128);
    _tile_stored(3, block + 16 * 32 + 16, 128);
    store_block(block, dst, ldc, rows, cols);
  }
  if (bias) add_bias(dst, ldc, rows, cols, bias);
}

/*
 * C rows [m_lo, m_hi) x columns [n_lo, n_hi) (multiples of 32), in blocks of 64 rows x 256
 * columns: the 64 rows of A (64·K bf16) stay in L2 while the 256 columns of B go by, and each
 * 32-column B strip is reused by both row pairs from L1 (measured on one Xeon core at 2048^3: 600
 * GFLOP/s blocked against 420 for one pass over all rows per strip).
 */
static void gemm_amx(const uint16_t *ap, const uint16_t *bp, int64_t M, int64_t N, int64_t Kp,
                     int64_t m_lo, int64_t m_hi, int64_t n_lo, int64_t n_hi, float *c,
                     int64_t ldc, const float *bias) {
  enum { MC = 64, NC = 256 };
  const int64_t kt = Kp / 32;
  amx_configure();
  for (int64_t nn = n_lo; nn < n_hi; nn += NC)
    for (int64_t mm = m_lo; mm < m_hi; mm += MC)
      for (int64_t n0 = nn; n0 < nn + NC && n0 < n_hi; n0 += 32) {
        const uint16_t *b0 = bp + (n0 / 16) * Kp * 16, *b1 = b0 + Kp * 16;
        for (int64_t m0 = mm; m0 < mm + MC && m0 < m_hi; m0 += 32) {
          const uint16_t *a0 = ap + (m0 / 16) * kt * 512, *a1 = a0 + kt * 512;
          const int64_t rows = M - m0 < 32 ? M - m0 : 32, cols = N - n0 < 32 ? N - n0 : 32;
          if (rows > 0 && cols > 0)
            amx_block(a0, a1, b0, b1, kt, c + m0 * ldc + n0, ldc, rows, cols, bias ? bias + n0 : NULL);
        }
      }
  _tile_release();
}
#endif

#if defined(__AVX512BF16__)
/*
 * C rows [m_lo, m_hi) x columns [n_lo, n_hi) (multiples of 32) in 8-row x 32-column register
 * blocks (16 zmm accumulators), cache-blocked: K in troupe_bf16_k_slice's slices (a
 * 32-column B strip of a slice, 128 KB, stays in L2 while the rows go by), and rows in blocks
 * whose slice of A (A_BLOCK bytes) stays in L2 while every column strip goes by. (Slices of 384
 * from K 1024 up cost 10-30 % at K 2048-3072, the C partial sums read back per slice; one core,
 * CPU time, best of 5: 2048³ 218 against 324 unblocked, 354-364 now.) A slice
 * after the first adds to the partial sums it reads back from C: each element's sum still runs
 * k-pair by k-pair from 0 to K in one fp32 accumulator, so the bits are those of one pass over
 * the whole K (tested against the unblocked kernel). Unblocked, a product with a long K (the LM
 * head's dX = e·W, K = 50257: a 3.2 MB B strip per 8 rows) or many rows (its dW, M = 50257: all
 * of A streamed once per column strip) ran from memory at 0.4-0.55x the forward's rate (thread
 * CPU time, one core: 110 and 143 against 268 GFLOP/s).
 */
static void gemm_avx512(const uint16_t *ap, const uint16_t *bp, int64_t M, int64_t N, int64_t Kp,
                        int64_t m_lo, int64_t m_hi, int64_t n_lo, int64_t n_hi, float *c,
                        int64_t ldc, const float *bias) {
  enum { A_BLOCK = 384 << 10 };
  const int64_t kc_len = troupe_bf16_k_slice(Kp);
  const int64_t mc = A_BLOCK / (kc_len * 2) / 32 * 32 > 32 ? A_BLOCK / (kc_len * 2) / 32 * 32 : 32;
  const int64_t kt = Kp / 32;
  for (int64_t kc = 0; kc < Kp; kc += kc_len) {
    const int64_t k_lo = kc / 32, k_hi = (kc + kc_len < Kp ? kc + kc_len : Kp) / 32;
    for (int64_t mm = m_lo; mm < m_hi && mm < M; mm += mc)
      for (int64_t n0 = n_lo; n0 < n_hi && n0 < N; n0 += 32) {
          const int64_t cols = N - n0 < 32 ? N - n0 : 32;
          const __mmask16 k0m = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
          const __mmask16 k1m = cols >= 32 ? 0xffff : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1u) : 0;
          const uint16_t *b0 = bp + (n0 / 16) * Kp * 16, *b1 = b0 + Kp * 16;
          for (int64_t mrow = mm; mrow < mm + mc && mrow < m_hi && mrow < M; mrow += 8) {
            const int64_t rows = M - mrow < 8 ? M - mrow : 8;
            float *crow = c + mrow * ldc + n0;
            __m512 acc[8][2];
            for (int r = 0; r < 8; r++)
              if (kc == 0 || r >= rows) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
              else {
                acc[r][0] = _mm512_maskz_loadu_ps(k0m, crow + r * ldc);
                acc[r][1] = _mm512_maskz_loadu_ps(k1m, crow + r * ldc + 16);
              }
            /* rows mrow .. mrow+7 sit in one 16-row tile stack */
            const uint16_t *astack = ap + (mrow / 16) * kt * 512 + (mrow % 16) * 32;
            for (int64_t k = k_lo; k < k_hi; k++) {
              const uint16_t *at16 = astack + k * 512;
              for (int64_t p = 0; p < 16; p++) { /* k-pair p of this 32-wide k block */
                const __m512bh bv0 = (__m512bh)_mm512_loadu_si512(b0 + (k * 16 + p) * 32);
                const __m512bh bv1 = (__m512bh)_mm512_loadu_si512(b1 + (k * 16 + p) * 32);
                for (int r = 0; r < 8; r++) {
                  uint32_t pair;
                  memcpy(&pair, at16 + r * 32 + 2 * p, 4);
                  const __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair);
                  acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, bv0);
                  acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, bv1);
                }
              }
            }
            if (bias && kc + kc_len >= Kp) { /* the last slice: + bias, one add of the whole sum */
              const __m512 b0v = _mm512_maskz_loadu_ps(k0m, bias + n0);
              const __m512 b1v = _mm512_maskz_loadu_ps(k1m, bias + n0 + 16);
              for (int r = 0; r < rows; r++) {
                acc[r][0] = _mm512_add_ps(acc[r][0], b0v);
                acc[r][1] = _mm512_add_ps(acc[r][1], b1v);
              }
            }
            for (int r = 0; r < rows; r++) {
              _mm512_mask_storeu_ps(crow + r * ldc, k0m, acc[r][0]);
              _mm512_mask_storeu_ps(crow + r * ldc + 16, k1m, acc[r][1]);
            }
          }
        }
  }
}
#endif

/* the inputs rounded to bf16 values, then the fp32 gemm */
static bool gemm_fp32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                      const float *b, float *c) {
  float *ar = malloc((size_t)(M * K) * sizeof(float)), *br = malloc((size_t)(K * N) * sizeof(float));
  if (!ar || !br) {
    free(ar);
    free(br);
    return false;
  }
  for (int64_t i = 0; i < M * K; i++) ar[i] = from_bf16(to_bf16(a[i]));
  for (int64_t i = 0; i < K * N; i++) br[i] = from_bf16(to_bf16(b[i]));
  troupe_gemm(ta, tb, M, N, K, ar, br, c);
  free(ar);
  free(br);
  return true;
}

static void choose_path(void) {
  if (path >= 0) return;
  path = PATH_VEC;
#if defined(__AVX512BF16__)
  path = PATH_AVX512;
#endif
#ifdef HAVE_AMX
  if (getenv("TROUPE_BF16_PATH") == NULL || strcmp(getenv("TROUPE_BF16_PATH"), "amx") == 0)
    if (amx_granted()) path = PATH_AMX;
#endif
  const char *force = getenv("TROUPE_BF16_PATH");
  if (force && strcmp(force, "fp32") == 0) path = PATH_FP32;
  if (force && strcmp(force, "fma") == 0) path = PATH_VEC;
#if defined(__AVX512BF16__)
  if (force && strcmp(force, "avx512") == 0) path = PATH_AVX512;
#endif
}

const char *troupe_bf16_path(void) {
  choose_path();
  return path == PATH_AMX      ? "amx"
         : path == PATH_AVX512 ? "avx512-bf16"
         : path == PATH_VEC    ? "fma"
                               : "fp32";
}

/*
 * Packing scratch, one per thread, kept between calls: a fresh 16 MB allocation per call costs
 * its page faults every time (2048^3: ~25 % of the call on these VMs). Buffers above SCRATCH_KEEP
 * are given back after the call (a 50257-word LM head's packed operands are 128 MB), and are
 * mapped with transparent huge pages asked for (MADV_HUGEPAGE, where the kernel has them in
 * `madvise` mode): in 4 KB pages a third of the LM head's dX = e·W (508 rows, K 50257) was page
 * faults (Zen 5, one thread: 165 ms in 4 KB pages, 116 ms in huge pages, 108 ms with the buffer
 * kept between calls, which would hold 128 MB per thread).
 */
enum { SCRATCH_KEEP = 64 << 20, HUGE = 2 << 20 };
static __thread uint16_t *scratch;
static __thread size_t scratch_bytes;
static __thread void *scratch_map; /* the mapping under a huge scratch (NULL: from the heap) */
static __thread size_t scratch_map_bytes;

static void scratch_free(void) {
#if defined(__linux__)
  if (scratch_map) munmap(scratch_map, scratch_map_bytes);
  else
#endif
    free(scratch);
  scratch = NULL, scratch_map = NULL;
  scratch_bytes = scratch_map_bytes = 0;
}

/* Above SCRATCH_KEEP: an anonymous mapping, its start rounded up to a huge page, NULL if none */
static uint16_t *scratch_huge(size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const size_t len = (bytes + HUGE - 1) / HUGE * HUGE + HUGE;
  void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return NULL;
  uint16_t *p = (uint16_t *)(((uintptr_t)map + HUGE - 1) / HUGE * HUGE);
  madvise(p, len - ((char *)p - (char *)map), MADV_HUGEPAGE); /* advice: refused is harmless */
  scratch_map = map, scratch_map_bytes = len;
  return p;
#else
  (void)bytes;
  return NULL;
#endif
}

static uint16_t *scratch_get(size_t bytes) {
  if (bytes <= scratch_bytes) return scratch;
  scratch_free();
  const size_t size = (bytes + 63) / 64 * 64;
  scratch = size > SCRATCH_KEEP ? scratch_huge(size) : NULL;
  if (!scratch) scratch = aligned_alloc(64, size);
  if (scratch) scratch_bytes = size;
  return scratch;
}

static void scratch_trim(void) {
  if (scratch_bytes > SCRATCH_KEEP) scratch_free();
}

/* One product: operands, padded sizes, packed buffers; threads split the packing, then C. */
typedef struct {
  bool ta, tb;
  int64_t M, N, K, Mp, Np, Kp;
  int64_t lda, ldb, ldc; /* leading dimensions of a, b (as stored) and c */
  const float *a, *b;
  const uint16_t *b16; /* B [K, N] given as bf16 panels (troupe_linear_w16; b unused), or NULL */
  const float *bias;   /* C += bias [N] (one add per element after its sum), or NULL */
  float *colsum;       /* [N] = Σ_k op(B)[k, n] while B is packed (B not transposed), or NULL */
  float *c;
  uint16_t *ap, *bp;
  bool split_n; /* threads take columns of C (else rows), in 32-blocks */
  bool a_packed; /* ap already holds op(A) packed (a product sharing A with the one before) */
  bool failed;   /* a thread found no memory for its part (the fma path's widened rows) */
} Gemm;

/* [lo, hi) of `total` units of `unit`, part t of n */
static inline void share(int64_t total, int64_t unit, int t, int n, int64_t *lo, int64_t *hi) {
  const int64_t units = total / unit;
  *lo = units * t / n * unit;
  *hi = units * (t + 1) / n * unit;
}

static void task_pack(void *ctx, int t, int n) {
  const Gemm *g = ctx;
  int64_t lo, hi;
  share(g->Mp, 16, t, n, &lo, &hi);
  if (!g->a_packed) pack_a(g->a, g->ta, g->lda, g->M, g->K, g->Kp, lo, hi, g->ap);
  share(g->Np, 16, t, n, &lo, &hi);
  if (g->b16) pack_b16(g->b16, g->K, g->N, g->Kp, lo, hi, g->bp);
  else pack_b(g->b, g->tb, g->ldb, g->K, g->N, g->Kp, lo, hi, g->bp, g->colsum);
}

static void compute(Gemm *g, int64_t m_lo, int64_t m_hi, int64_t n_lo, int64_t n_hi) {
  if (path == PATH_VEC &&
      !troupe_bf16_gemm_vec(g->ap, g->bp, g->M, g->N, g->Kp, m_lo, m_hi, n_lo, n_hi, g->c, g->ldc,
                            g->bias))
    g->failed = true; /* a bool only ever set: threads racing on it all write true */
#ifdef HAVE_AMX
  if (path == PATH_AMX)
    gemm_amx(g->ap, g->bp, g->M, g->N, g->Kp, m_lo, m_hi, n_lo, n_hi, g->c, g->ldc, g->bias);
#endif
#if defined(__AVX512BF16__)
  if (path == PATH_AVX512)
    gemm_avx512(g->ap, g->bp, g->M, g->N, g->Kp, m_lo, m_hi, n_lo, n_hi, g->c, g->ldc, g->bias);
#endif
  (void)g, (void)m_lo, (void)m_hi, (void)n_lo, (void)n_hi;
}

static void task_compute(void *ctx, int t, int n) {
  Gemm *g = ctx;
  int64_t lo, hi;
  share(g->split_n ? g->Np : g->Mp, 32, t, n, &lo, &hi);
  if (g->split_n) compute(g, 0, g->Mp, lo, hi);
  else compute(g, lo, hi, 0, g->Np);
}

/* Threads for a product of M·N·K: the BLAS count, one per 2^22 multiply-adds at most. */
static int threads_for(int64_t M, int64_t N, int64_t K) {
  const int64_t work = M * N * K >> 22;
  const int want = troupe_threads();
  return work < 1 ? 1 : work < want ? (int)work : want;
}

/*
 * Pack and multiply with `threads` threads (packed operands in `buf`: Mp·Kp + Kp·Np values).
 * false: out of memory.
 */
static bool gemm_packed(Gemm *g, uint16_t *buf, int threads) {
  g->ap = buf;
  g->bp = buf + g->Mp * g->Kp;
  g->split_n = g->Np >= g->Mp;
  const int blocks = (int)((g->split_n ? g->Np : g->Mp) / 32);
  if (threads > blocks) threads = blocks;
  troupe_parallel(threads, task_pack, g);
  g->failed = false;
  troupe_parallel(threads, task_compute, g);
  return !g->failed;
}

static Gemm plan(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
                 float *c) {
  return (Gemm){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .Mp = (M + 31) / 32 * 32,
                .Np = (N + 31) / 32 * 32, .Kp = (K + 31) / 32 * 32, .lda = ta ? M : K,
                .ldb = tb ? K : N, .ldc = N, .a = a, .b = b, .c = c};
}

static size_t packed_bytes(const Gemm *g) {
  return (size_t)(g->Mp * g->Kp + g->Kp * g->Np) * sizeof(uint16_t);
}

/*
 * Runs n planned products over one op(A) (the same a, M and K; n = 1: one product): A rounded and
 * packed once, by the first, the others reusing it (a_packed); one scratch, sized for the widest.
 * false: out of memory.
 */
static bool gemm_run_packed(Gemm *g, int n) {
  size_t most = 0;
  for (int i = 0; i < n; i++) most = packed_bytes(&g[i]) > most ? packed_bytes(&g[i]) : most;
  uint16_t *buf = scratch_get(most);
  if (!buf) return false;
  bool ok = true;
  for (int i = 0; i < n && ok; i++) {
    g[i].a_packed = i > 0;
    ok = gemm_packed(&g[i], buf, threads_for(g[i].M, g[i].N, g[i].K));
  }
  scratch_trim();
  return ok;
}

/* C (+ bias [N] per row: NULL none) = op(A)·op(B); false: out of memory */
static bool gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                      const float *b, const float *bias, float *c) {
  choose_path();
  if (path == PATH_FP32) {
    if (!gemm_fp32(ta, tb, M, N, K, a, b, c)) return false;
    if (bias)
      for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < N; j++) c[r * N + j] += bias[j];
    return true;
  }
  Gemm g = plan(ta, tb, M, N, K, a, b, c);
  g.bias = bias;
  return gemm_run_packed(&g, 1);
}

/*
 * y_i [R, O_i] = x [R, I]·W_i [I, O_i] (+ bias_i [O_i], NULL none) for i < n: x is rounded and
 * packed once, then each product packs its W_i and reuses x's packing. Each y_i has the bits
 * gemm_bias computes for it alone (the same packed operands and sums). false: out of memory.
 */
static bool linear_many(const float *x, int64_t R, int64_t I, int n, const float *const *w,
                        const int64_t *O, const float *const *bias, float *const *y) {
  choose_path();
  if (path == PATH_FP32) {
    for (int i = 0; i < n; i++)
      if (!gemm_bias(false, false, R, O[i], I, x, w[i], bias[i], y[i])) return false;
    return true;
  }
  Gemm g[n];
  for (int i = 0; i < n; i++) {
    g[i] = plan(false, false, R, O[i], I, x, w[i], y[i]);
    g[i].bias = bias[i];
  }
  return gemm_run_packed(g, n);
}

bool troupe_gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                      const float *b, float *c) {
  return gemm_bias(ta, tb, M, N, K, a, b, NULL, c);
}

/*
 * The gradients of y [R, O] = x [R, I]·W [I, O] + b from dy [R, O]: dx = dy·Wᵀ and dW = xᵀ·dy,
 * each the product troupe_gemm_bf16 computes (the same bits as two calls), and db = Σ_r dy[r]
 * (NULL: none) summed while dW's product packs dy, rows in order (fp32: the same bits at every
 * thread count). One call where the model made three (two BatchMatMul and a Sum, whose pass over
 * dy came from L3 or memory). dx or dw NULL: not computed.
 */
static bool linear_backward(const float *dy, const float *x, const float *w, int64_t R, int64_t I,
                            int64_t O, float *dx, float *dw, float *db) {
  choose_path();
  if (dx && !gemm_bias(false, true, R, I, O, dy, w, NULL, dx)) return false;
  if (path == PATH_FP32 || !dw) {
    if (dw && !gemm_fp32(true, false, I, O, R, x, dy, dw)) return false;
    if (db) {
      for (int64_t j = 0; j < O; j++) db[j] = 0;
      for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < O; j++) db[j] += dy[r * O + j];
    }
    return true;
  }
  Gemm g = plan(true, false, I, O, R, x, dy, dw);
  g.colsum = db;
  return gemm_run_packed(&g, 1);
}

/*
 * linear_backward for n products of one x (y_i = x·W_i + b_i): dx_i = dy_i·W_iᵀ, dW_i = xᵀ·dy_i
 * and db_i, each the bits linear_backward gives it, with xᵀ rounded and packed once for the n
 * dW products instead of n times. false: out of memory.
 */
static bool linear_many_backward(const float *x, int64_t R, int64_t I, int n,
                                 const float *const *dy, const float *const *w, const int64_t *O,
                                 float *const *dx, float *const *dw, float *const *db) {
  choose_path();
  if (path == PATH_FP32) {
    for (int i = 0; i < n; i++)
      if (!linear_backward(dy[i], x, w[i], R, I, O[i], dx[i], dw[i], db[i])) return false;
    return true;
  }
  Gemm g[n];
  for (int i = 0; i < n; i++) {
    if (!gemm_bias(false, true, R, I, O[i], dy[i], w[i], NULL, dx[i])) return false;
    g[i] = plan(true, false, I, O[i], R, x, dy[i], dw[i]);
    g[i].colsum = db[i];
  }
  return gemm_run_packed(g, n);
}

/* A batch of products split among threads, each product on one thread with its own scratch. */
typedef struct {
  bool ta, tb;
  int64_t batch, M, N, K, sa, sb;
  const float *a, *b;
  float *c;
  bool failed;
} Batch;

static void task_batch(void *ctx, int t, int n) {
  Batch *q = ctx;
  int64_t lo, hi;
  share(q->batch, 1, t, n, &lo, &hi);
  for (int64_t i = lo; i < hi; i++) {
    Gemm g = plan(q->ta, q->tb, q->M, q->N, q->K, q->a + i * q->sa, q->b + i * q->sb,
                  q->c + i * q->M * q->N);
    uint16_t *buf = scratch_get(packed_bytes(&g));
    if (!buf || !gemm_packed(&g, buf, 1)) {
      q->failed = true;
      return;
    }
  }
  scratch_trim();
}

bool troupe_gemm_bf16_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                              const float *a, int64_t sa, const float *b, int64_t sb, float *c) {
  choose_path();
  /* a shared B under untransposed, contiguous A rows: one product of batch·M rows */
  if (sb == 0 && !ta && sa == M * K) {
    M *= batch;
    batch = 1;
  }
  const int threads = threads_for(batch * M, N, K);
  if (path == PATH_FP32 || batch == 1 || threads == 1 || threads_for(M, N, K) == threads) {
    for (int64_t i = 0; i < batch; i++)
      if (!troupe_gemm_bf16(ta, tb, M, N, K, a + i * sa, b + i * sb, c + i * M * N)) return false;
    return true;
  }
  Batch q = {ta, tb, batch, M, N, K, sa, sb, a, b, c, false};
  troupe_parallel(threads < batch ? threads : (int)batch, task_batch, &q);
  return !q.failed;
}

/*
 * Products over B·H (b, h) pairs at strided offsets (attention's heads where they lie:
 * src/kernels/custom/native-attention.ts): C_bh [M, N] = op(A_bh)·op(B_bh), X_bh = x + b·lx[0] +
 * h·lx[1], rows lx[2] apart. Each product packs and multiplies as troupe_gemm_bf16 does a dense
 * one (packing reads the same values from other places), so a product equals the bf16 batched
 * product of the transposed copies bit for bit. Shared out product by product as
 * troupe_gemm_bf16_batched does; a product that fills every thread by itself takes them all.
 */
typedef struct {
  bool ta, tb;
  int64_t batch, H, M, N, K;
  const int64_t *la, *lb, *lc;
  const float *a, *b;
  float *c;
  bool failed;
} Strided;

static Gemm strided_plan(const Strided *q, int64_t i) {
  const int64_t bi = i / q->H, h = i % q->H;
  Gemm g = plan(q->ta, q->tb, q->M, q->N, q->K, q->a + bi * q->la[0] + h * q->la[1],
                q->b + bi * q->lb[0] + h * q->lb[1], q->c + bi * q->lc[0] + h * q->lc[1]);
  g.lda = q->la[2];
  g.ldb = q->lb[2];
  g.ldc = q->lc[2];
  return g;
}

/* the fp32 path: the product's operands gathered and rounded to bf16 values, troupe_gemm, C
 * scattered back (gemm_fp32 on dense copies: the same numbers) */
static bool strided_fp32(const Gemm *g) {
  const int64_t ra = g->ta ? g->K : g->M, ca = g->ta ? g->M : g->K;
  const int64_t rb = g->tb ? g->N : g->K, cb = g->tb ? g->K : g->N;
  float *ar = malloc((size_t)(ra * ca) * sizeof(float)), *br = malloc((size_t)(rb * cb) * sizeof(float));
  float *cr = malloc((size_t)(g->M * g->N) * sizeof(float));
  const bool ok = ar && br && cr;
  if (ok) {
    for (int64_t r = 0; r < ra; r++)
      for (int64_t j = 0; j < ca; j++) ar[r * ca + j] = g->a[r * g->lda + j];
    for (int64_t r = 0; r < rb; r++)
      for (int64_t j = 0; j < cb; j++) br[r * cb + j] = g->b[r * g->ldb + j];
    for (int64_t i = 0; i < ra * ca; i++) ar[i] = from_bf16(to_bf16(ar[i]));
    for (int64_t i = 0; i < rb * cb; i++) br[i] = from_bf16(to_bf16(br[i]));
    troupe_gemm(g->ta, g->tb, g->M, g->N, g->K, ar, br, cr);
    for (int64_t r = 0; r < g->M; r++)
      memcpy(g->c + r * g->ldc, cr + r * g->N, (size_t)g->N * sizeof(float));
  }
  free(ar);
  free(br);
  free(cr);
  return ok;
}

static void task_strided(void *ctx, int t, int n) {
  Strided *q = ctx;
  int64_t lo, hi;
  share(q->batch, 1, t, n, &lo, &hi);
  for (int64_t i = lo; i < hi; i++) {
    Gemm g = strided_plan(q, i);
    uint16_t *buf = scratch_get(packed_bytes(&g));
    if (!buf || !gemm_packed(&g, buf, 1)) {
      q->failed = true;
      return;
    }
  }
  scratch_trim();
}

static bool gemm_bf16_strided(Strided *q) {
  choose_path();
  const int threads = threads_for(q->batch * q->M, q->N, q->K);
  if (path == PATH_FP32 || q->batch == 1 || threads == 1 ||
      threads_for(q->M, q->N, q->K) == threads) {
    for (int64_t i = 0; i < q->batch; i++) {
      Gemm g = strided_plan(q, i);
      if (path == PATH_FP32) {
        if (!strided_fp32(&g)) return false;
        continue;
      }
      uint16_t *buf = scratch_get(packed_bytes(&g));
      if (!buf || !gemm_packed(&g, buf, threads_for(q->M, q->N, q->K))) return false;
    }
    scratch_trim();
    return true;
  }
  troupe_parallel(threads < q->batch ? threads : (int)q->batch, task_strided, q);
  return !q->failed;
}

/*
 * y [R, N] = x [R, K]·W (+ bias) for W [K, N] stored as bf16 bits, read as they are, in panels:
 * ⌈N/32⌉ panels of [K][32] (columns past N zero; toBf16Panels), so the few-row loop streams each
 * 32-column panel down K as one contiguous run (W [K, N] row-major, 32 columns walked down K,
 * touched a new page per row: 5.4 GB/s a core against 15 in panels, thread CPU time). R ≥ 32
 * runs on the bf16 products (x rounded to bf16 as it is packed); fewer rows (decoding) on
 * w16rows.c's loops: x in fp32 against the bf16 weights widened in registers, fp32 sums, split
 * between the BLAS threads by panels (1 and n threads give the same bits).
 */
bool troupe_linear_w16(const float *x, const uint16_t *w, const float *bias, int64_t R, int64_t K,
                       int64_t N, float *y) {
  choose_path();
  if (R >= 32 && path != PATH_FP32) {
    Gemm g = plan(false, false, R, N, K, x, NULL, y);
    g.b16 = w;
    g.bias = bias;
    uint16_t *buf = scratch_get(packed_bytes(&g));
    if (buf) {
      const bool ok = gemm_packed(&g, buf, threads_for(R, N, K));
      scratch_trim();
      if (ok) return true;
    }
  }
  /* few rows, no bf16 products on this CPU, or no memory for packing */
  if (!troupe_w16_rows(x, w, R, K, N, y)) return false;
  if (bias)
    for (int64_t r = 0; r < R; r++)
      for (int64_t j = 0; j < N; j++) y[r * N + j] += bias[j];
  return true;
}

bool troupe_linear_w16_many(const float *x, int64_t R, int64_t K, int parts,
                            const uint16_t *const *w, const float *const *bias, const int64_t *N,
                            float *const *y) {
  choose_path();
  if (R >= 32 && path != PATH_FP32) { /* the packed product, one weight at a time */
    bool ok = true;
    for (int i = 0; i < parts; i++) ok &= troupe_linear_w16(x, w[i], bias[i], R, K, N[i], y[i]);
    return ok;
  }
  if (!troupe_w16_rows_many(x, R, K, parts, w, N, y)) return false;
  for (int i = 0; i < parts; i++)
    if (bias[i])
      for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < N[i]; j++) y[i][r * N[i] + j] += bias[i][j];
  return true;
}

/* dst = W [K, N] (float32, row-major) rounded to bf16 as troupe_linear_w16's panels */
static void troupe_to_bf16_panels(const float *src, int64_t K, int64_t N, uint16_t *dst) {
  for (int64_t p = 0; p < (N + 31) / 32; p++)
    for (int64_t k = 0; k < K; k++)
      for (int64_t j = 0; j < 32; j++) {
        const int64_t n = p * 32 + j;
        dst[(p * K + k) * 32 + j] = n < N ? to_bf16(src[k * N + n]) : 0;
      }
}

/* dst[i] = bf16(src[i]), round to nearest even */
static void troupe_to_bf16(const float *src, uint16_t *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
}

/* Elements of a W [in, out] in bf16 panels: ⌈out/32⌉·32·in. */
static uint64_t w16_elements(int64_t in, int64_t out) {
  return mul_sat((uint64_t)in, (uint64_t)(out + 31) / 32 * 32);
}

/*
 * bf16LinearW(x, w, bias, rows, in, out, y): y [rows, out] = x·W + bias, W [in, out] given as
 * bf16 panels (a Uint16Array of ⌈out/32⌉·32·in: toBf16Panels); an empty bias is none.
 */
static napi_value bf16_linear_w(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16LinearW", 7)) return NULL;
  size_t lx, lw, lb, ly;
  const float *x = arg_f32(&a, 0, "x", &lx);
  const uint16_t *w = arg_typed(&a, 1, "w", napi_uint16_array, "must be a Uint16Array", &lw);
  const float *bias = arg_f32(&a, 2, "bias", &lb);
  const int64_t R = arg_int(&a, 3, "rows", 1), I = arg_int(&a, 4, "in", 1);
  const int64_t O = arg_int(&a, 5, "out", 1);
  float *y = arg_f32(&a, 6, "y", &ly);
  if (a.failed) return NULL;
  args_need_expr(&a, "x", lx, mul_sat(R, I), "rows·in");
  args_need_expr(&a, "w", lw, w16_elements(I, O), "⌈out/32⌉·32·in");
  if (lb != 0) args_need_expr(&a, "bias", lb, (uint64_t)O, "out");
  args_need_expr(&a, "y", ly, mul_sat(R, O), "rows·out");
  if (a.failed) return NULL;
  if (!troupe_linear_w16(x, w, lb != 0 ? bias : NULL, R, I, O, y))
    args_fail(&a, true, "its workspace", "could not be allocated");
  return NULL;
}

/* Element `index` of an array argument, a Uint16Array. */
static uint16_t *arg_u16_at(Args *a, size_t i, uint32_t index, const char *name, size_t *len) {
  napi_value item;
  napi_typedarray_type type;
  void *p = NULL;
  bool is = false;
  *len = 0;
  if (a->failed) return NULL;
  if (napi_get_element(a->env, a->argv[i], index, &item) != napi_ok ||
      napi_is_typedarray(a->env, item, &is) != napi_ok || !is ||
      napi_get_typedarray_info(a->env, item, &type, len, &p, NULL, NULL) != napi_ok ||
      type != napi_uint16_array) {
    args_fail(a, false, name, "must be a Uint16Array");
    return NULL;
  }
  return p;
}

/*
 * bf16LinearWMany(x, ws, biases, rows, in, outs, ys): for i < ws.length (1 to 4),
 * ys[i] [rows, outs[i]] = x·W_i + biases[i], as bf16LinearW of each (the same bits), the few-row
 * ones in one pass over all the weights (troupe_linear_w16_many: the decoder block's q, k, v).
 */
static napi_value bf16_linear_w_many(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16LinearWMany", 7)) return NULL;
  size_t lx, lo;
  const float *x = arg_f32(&a, 0, "x", &lx);
  const int64_t R = arg_int(&a, 3, "rows", 1), I = arg_int(&a, 4, "in", 1);
  const int32_t *outs = arg_i32(&a, 5, "outs", &lo);
  if (!a.failed && (lo < 1 || lo > 4)) args_fail(&a, true, "outs", "must have 1 to 4 elements");
  if (a.failed) return NULL;
  const int parts = (int)lo;
  const uint16_t *w[4];
  const float *bias[4];
  float *y[4];
  int64_t N[4];
  for (int i = 0; i < parts; i++) {
    size_t lw, lb, ly;
    N[i] = outs[i];
    if (N[i] < 1) args_fail(&a, true, "outs", "must be integers ≥ 1");
    w[i] = arg_u16_at(&a, 1, (uint32_t)i, "ws[i]", &lw);
    float *b = arg_f32_at(&a, 2, (uint32_t)i, "biases[i]", &lb);
    y[i] = arg_f32_at(&a, 6, (uint32_t)i, "ys[i]", &ly);
    if (a.failed) return NULL;
    bias[i] = lb != 0 ? b : NULL;
    args_need_expr(&a, "ws[i]", lw, w16_elements(I, N[i]), "⌈outs[i]/32⌉·32·in");
    if (lb != 0) args_need_expr(&a, "biases[i]", lb, (uint64_t)N[i], "outs[i]");
    args_need_expr(&a, "ys[i]", ly, mul_sat(R, N[i]), "rows·outs[i]");
  }
  args_need_expr(&a, "x", lx, mul_sat(R, I), "rows·in");
  if (a.failed) return NULL;
  if (!troupe_linear_w16_many(x, R, I, parts, w, bias, N, y))
    args_fail(&a, true, "its workspace", "could not be allocated");
  return NULL;
}

/* toBf16(src, dst): dst [n] = src [n] rounded to bfloat16 (nearest even), as bits */
static napi_value to_bf16_napi(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "toBf16", 2)) return NULL;
  size_t ls, ld;
  const float *src = arg_f32(&a, 0, "src", &ls);
  uint16_t *dst = arg_typed(&a, 1, "dst", napi_uint16_array, "must be a Uint16Array", &ld);
  if (a.failed) return NULL;
  args_need_expr(&a, "dst", ld, ls, "src.length");
  if (a.failed) return NULL;
  troupe_to_bf16(src, dst, (int64_t)ls);
  return NULL;
}

/* toBf16Panels(src, in, out, dst): W [in, out] (row-major) rounded to bf16 as bf16LinearW's panels */
static napi_value to_bf16_panels_napi(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "toBf16Panels", 4)) return NULL;
  size_t ls, ld;
  const float *src = arg_f32(&a, 0, "src", &ls);
  const int64_t I = arg_int(&a, 1, "in", 1), O = arg_int(&a, 2, "out", 1);
  uint16_t *dst = arg_typed(&a, 3, "dst", napi_uint16_array, "must be a Uint16Array", &ld);
  if (a.failed) return NULL;
  args_need_expr(&a, "src", ls, mul_sat(I, O), "in·out");
  args_need_expr(&a, "dst", ld, w16_elements(I, O), "⌈out/32⌉·32·in");
  if (a.failed) return NULL;
  troupe_to_bf16_panels(src, I, O, dst);
  return NULL;
}

/* bf16Gemm(transA, transB, M, N, K, a, b, c): c [M, N] = op(a)·op(b) in bf16 with fp32 sums */
static napi_value bf16_gemm(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16Gemm", 8)) return NULL;
  const bool ta = arg_bool(&a, 0, "transA"), tb = arg_bool(&a, 1, "transB");
  const int64_t M = arg_int(&a, 2, "M", 1), N = arg_int(&a, 3, "N", 1), K = arg_int(&a, 4, "K", 1);
  float *x = arg_f32_exact(&a, 5, "a", mul_sat((uint64_t)M, (uint64_t)K), "M·K");
  float *y = arg_f32_exact(&a, 6, "b", mul_sat((uint64_t)K, (uint64_t)N), "K·N");
  float *z = arg_f32_exact(&a, 7, "c", mul_sat((uint64_t)M, (uint64_t)N), "M·N");
  if (a.failed) return NULL;
  if (!troupe_gemm_bf16(ta, tb, M, N, K, x, y, z))
    args_fail(&a, true, "bf16Gemm", "could not allocate its packed operands");
  return NULL;
}

/*
 * bf16GemmBatched(transA, transB, batch, M, N, K, a, strideA, b, strideB, c): for i < batch,
 * C_i [M, N] = op(A_i)·op(B_i) in bf16 with fp32 sums, A_i = a + i·strideA, B_i = b + i·strideB
 * (0 broadcasts), C_i = c + i·M·N: sgemmBatched's arguments.
 */
static napi_value bf16_gemm_batched(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16GemmBatched", 11)) return NULL;
  const bool ta = arg_bool(&a, 0, "transA"), tb = arg_bool(&a, 1, "transB");
  const int64_t batch = arg_int(&a, 2, "batch", 1), M = arg_int(&a, 3, "M", 1);
  const int64_t N = arg_int(&a, 4, "N", 1), K = arg_int(&a, 5, "K", 1);
  size_t la, lb, lc;
  const float *A = arg_f32(&a, 6, "a", &la);
  const int64_t sa = arg_int_in(&a, 7, "strideA", 0, INT64_MAX, "must be an integer >= 0");
  const float *B = arg_f32(&a, 8, "b", &lb);
  const int64_t sb = arg_int_in(&a, 9, "strideB", 0, INT64_MAX, "must be an integer >= 0");
  float *C = arg_f32(&a, 10, "c", &lc);
  if (a.failed) return NULL;
  args_need_expr(&a, "a", la, add_sat(mul_sat(batch - 1, sa), mul_sat(M, K)),
                 "(batch - 1)·strideA + M·K");
  args_need_expr(&a, "b", lb, add_sat(mul_sat(batch - 1, sb), mul_sat(K, N)),
                 "(batch - 1)·strideB + K·N");
  args_need_expr(&a, "c", lc, mul_sat(batch, mul_sat(M, N)), "batch·M·N");
  if (a.failed) return NULL;
  if (!troupe_gemm_bf16_batched(ta, tb, batch, M, N, K, A, sa, B, sb, C))
    args_fail(&a, true, "bf16GemmBatched", "could not allocate its packed operands");
  return NULL;
}

/*
 * bf16Linear(x, w, bias, rows, in, out, y): y [rows, out] = x·W + bias in bf16 with fp32 sums,
 * W [in, out] row-major; an empty bias is none (linearForward's arguments).
 */
static napi_value bf16_linear(napi_env env, napi_callback_info info) {
  Args a;
  DenseLinearArgs l;
  if (!args_dense_linear(&a, env, info, "bf16Linear", &l)) return NULL;
  if (!gemm_bias(false, false, l.R, l.O, l.I, l.x, l.w, l.bias, l.y))
    args_fail(&a, true, "bf16Linear", "could not allocate its packed operands");
  return NULL;
}

/*
 * bf16Linear3(x, rows, in, w0, b0, y0, w1, b1, y1, w2, b2, y2): y_i [rows, out_i] = x·W_i + b_i
 * for three weights W_i [in, out_i] (out_i = y_i's length / rows), each y_i the bits bf16Linear
 * gives it, with x rounded to bf16 and packed once instead of three times (the attention's q, k
 * and v of one normed x). An empty b_i is none.
 */
static napi_value bf16_linear3(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16Linear3", 12)) return NULL;
  static const char *const wn[3] = {"w0", "w1", "w2"}, *const bn[3] = {"b0", "b1", "b2"},
                           *const yn[3] = {"y0", "y1", "y2"};
  size_t lx, lw[3], lb[3], ly[3];
  const float *x = arg_f32(&a, 0, "x", &lx);
  const int64_t R = arg_int(&a, 1, "rows", 1), I = arg_int(&a, 2, "in", 1);
  const float *w[3], *bias[3];
  float *y[3];
  for (int i = 0; i < 3; i++) {
    w[i] = arg_f32(&a, (size_t)(3 + 3 * i), wn[i], &lw[i]);
    bias[i] = arg_f32(&a, (size_t)(4 + 3 * i), bn[i], &lb[i]);
    y[i] = arg_f32(&a, (size_t)(5 + 3 * i), yn[i], &ly[i]);
  }
  if (a.failed) return NULL;
  args_need_expr(&a, "x", lx, mul_sat(R, I), "rows·in");
  int64_t O[3];
  for (int i = 0; i < 3 && !a.failed; i++) {
    O[i] = (int64_t)(ly[i] / (size_t)R);
    if (O[i] < 1 || (size_t)(O[i] * R) != ly[i]) {
      args_fail(&a, true, yn[i], "must be rows·out values (out >= 1)");
      return NULL;
    }
    args_need_expr(&a, wn[i], lw[i], mul_sat(I, O[i]), "in·out");
    if (lb[i] != 0) args_need_expr(&a, bn[i], lb[i], (uint64_t)O[i], "out");
    if (lb[i] == 0) bias[i] = NULL;
  }
  if (a.failed) return NULL;
  if (!linear_many(x, R, I, 3, w, O, bias, y))
    args_fail(&a, true, "bf16Linear3", "could not allocate its packed operands");
  return NULL;
}

/*
 * bf16Linear3Backward(x, rows, in, dy, w, dx, dw, db), each of dy .. db an array of three
 * Float32Arrays: bf16Linear3's gradients, for each i what bf16LinearBackward(dy[i], x, w[i], ...)
 * gives (dx[i] [rows, in], dw[i] [in, out_i], db[i] [out_i]; out_i = dy[i]'s length / rows), with
 * xᵀ rounded and packed once for the three dw products. Every output is computed.
 */
static napi_value bf16_linear3_backward(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16Linear3Backward", 8)) return NULL;
  static const char *const names[5][3] = {{"dy[0]", "dy[1]", "dy[2]"},
                                          {"w[0]", "w[1]", "w[2]"},
                                          {"dx[0]", "dx[1]", "dx[2]"},
                                          {"dw[0]", "dw[1]", "dw[2]"},
                                          {"db[0]", "db[1]", "db[2]"}};
  size_t lx, len[5][3];
  const float *x = arg_f32(&a, 0, "x", &lx);
  const int64_t R = arg_int(&a, 1, "rows", 1), I = arg_int(&a, 2, "in", 1);
  float *p[5][3];
  for (int k = 0; k < 5; k++)
    for (uint32_t i = 0; i < 3; i++) p[k][i] = arg_f32_at(&a, (size_t)(3 + k), i, names[k][i], &len[k][i]);
  if (a.failed) return NULL;
  args_need_expr(&a, "x", lx, mul_sat(R, I), "rows·in");
  int64_t O[3];
  for (int i = 0; i < 3 && !a.failed; i++) {
    O[i] = (int64_t)(len[0][i] / (size_t)R);
    if (O[i] < 1 || (size_t)(O[i] * R) != len[0][i]) {
      args_fail(&a, true, names[0][i], "must be rows·out values (out >= 1)");
      return NULL;
    }
    args_need_expr(&a, names[1][i], len[1][i], mul_sat(I, O[i]), "in·out");
    args_need_expr(&a, names[2][i], len[2][i], mul_sat(R, I), "rows·in");
    args_need_expr(&a, names[3][i], len[3][i], mul_sat(I, O[i]), "in·out");
    args_need_expr(&a, names[4][i], len[4][i], (uint64_t)O[i], "out");
  }
  if (a.failed) return NULL;
  const float *dy[3] = {p[0][0], p[0][1], p[0][2]}, *w[3] = {p[1][0], p[1][1], p[1][2]};
  if (!linear_many_backward(x, R, I, 3, dy, w, O, p[2], p[3], p[4]))
    args_fail(&a, true, "bf16Linear3Backward", "could not allocate its packed operands");
  return NULL;
}

/*
 * bf16LinearBackward(dy, x, w, rows, in, out, dx, dw, db): the gradients of bf16Linear's
 * y = x·W + b: dx [rows, in] = dy·Wᵀ, dw [in, out] = xᵀ·dy (bf16 products, fp32 sums, as
 * bf16Gemm computes them) and db [out] = Σ over rows of dy in fp32; an empty dx, dw or db is not
 * computed.
 */
static napi_value bf16_linear_backward(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "bf16LinearBackward", 9)) return NULL;
  size_t ldy, lx, lw, ldx, ldw, ldb;
  const float *dy = arg_f32(&a, 0, "dy", &ldy);
  const float *x = arg_f32(&a, 1, "x", &lx);
  const float *w = arg_f32(&a, 2, "w", &lw);
  const int64_t R = arg_int(&a, 3, "rows", 1), I = arg_int(&a, 4, "in", 1);
  const int64_t O = arg_int(&a, 5, "out", 1);
  float *dx = arg_f32(&a, 6, "dx", &ldx);
  float *dw = arg_f32(&a, 7, "dw", &ldw);
  float *db = arg_f32(&a, 8, "db", &ldb);
  if (a.failed) return NULL;
  args_need_expr(&a, "dy", ldy, mul_sat(R, O), "rows·out");
  if (ldx != 0) {
    args_need_expr(&a, "w", lw, mul_sat(I, O), "in·out");
    args_need_expr(&a, "dx", ldx, mul_sat(R, I), "rows·in");
  }
  if (ldw != 0) {
    args_need_expr(&a, "x", lx, mul_sat(R, I), "rows·in");
    args_need_expr(&a, "dw", ldw, mul_sat(I, O), "in·out");
  }
  if (ldb != 0) args_need_expr(&a, "db", ldb, (uint64_t)O, "out");
  if (a.failed) return NULL;
  if (!linear_backward(dy, x, w, R, I, O, ldx ? dx : NULL, ldw ? dw : NULL, ldb ? db : NULL))
    args_fail(&a, true, "bf16LinearBackward", "could not allocate its packed operands");
  return NULL;
}

/*
 * bf16GemmStrided(ta, tb, dims, a, la, b, lb, c, lc): gemmStrided's products (rows.c) in bf16
 * with fp32 sums: for b < B, h < H, C_bh [M, N] = op(A_bh)·op(B_bh), X_bh = x + b·lx[0] +
 * h·lx[1], rows lx[2] apart; dims = [B, H, M, N, K], la, lb, lc = [per b, per h, leading
 * dimension] (Int32Arrays). c's elements outside every C_bh are left as they are.
 */
static napi_value bf16_gemm_strided(napi_env env, napi_callback_info info) {
  Args a;
  StridedArgs p;
  if (!args_strided(&a, env, info, "bf16GemmStrided", 1, "must be positive", &p)) return NULL;
  Strided q = {.ta = p.ta, .tb = p.tb, .batch = p.B * p.H, .H = p.H, .M = p.M, .N = p.N,
               .K = p.K, .la = p.la, .lb = p.lb, .lc = p.lc, .a = p.a, .b = p.b, .c = p.c};
  if (!gemm_bf16_strided(&q))
    args_fail(&a, true, "bf16GemmStrided", "could not allocate its packed operands");
  return NULL;
}

/* bf16Path(): which kernel bf16Gemm runs here: "amx", "avx512-bf16" or "fp32" */
static napi_value bf16_path(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_string_utf8(env, troupe_bf16_path(), NAPI_AUTO_LENGTH, &out));
  return out;
}

bool troupe_define_bf16(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT("bf16Gemm", bf16_gemm),
      TROUPE_EXPORT("bf16GemmBatched", bf16_gemm_batched),
      TROUPE_EXPORT("bf16GemmStrided", bf16_gemm_strided),
      TROUPE_EXPORT("bf16Linear", bf16_linear),
      TROUPE_EXPORT("bf16Linear3", bf16_linear3),
      TROUPE_EXPORT("bf16Linear3Backward", bf16_linear3_backward),
      TROUPE_EXPORT("bf16LinearBackward", bf16_linear_backward),
      TROUPE_EXPORT("bf16LinearW", bf16_linear_w),
      TROUPE_EXPORT("bf16LinearWMany", bf16_linear_w_many),
      TROUPE_EXPORT("toBf16", to_bf16_napi),
      TROUPE_EXPORT("toBf16Panels", to_bf16_panels_napi),
      TROUPE_EXPORT("bf16Path", bf16_path),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
