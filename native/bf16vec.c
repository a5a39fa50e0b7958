/*
 * bf16.c's product on CPUs without bf16 dot-product instructions (no AVX512-BF16, no AMX: the AMD
 * EPYC Zen 3 of 2026-12-04, any Arm): the same packed operands (A in 16x32 tiles of bf16, B in
 * 16-column panels of k-pairs), each pair widened to two fp32 values in registers by one shift
 * (the even k: the low half of the pair's 32 bits) and one mask (the odd k), then two fp32
 * multiply-adds, the odd k first: the order VDPBF16PS accumulates a pair in (Intel SDM: "srcdest
 * += a[2j+1]·b[2j+1]; srcdest += a[2j]·b[2j]", rounded to nearest even each time). A product of
 * two bf16 values is exact in fp32 (8 + 8 significant bits), so a multiply-add rounds once, as the
 * instruction's accumulation does, and the sums are those of the AVX512-BF16 path but for
 * subnormals (which that instruction flushes to zero and this does not): on a Zen 5, which has
 * both, 0 of 21 165 elements differed, and the bf16 test asserts it wherever both exist.
 *
 * Each element's sum runs pair by pair from k = 0 to K in one fp32 accumulator whatever the cache
 * blocking, the thread split or the rows beside it: 1 and n threads, a product alone or in a
 * batch, give the same bits (the fp32 sgemm it replaces did not, under OpenBLAS's Haswell/Zen
 * kernels).
 *
 * GNU C vectors of 8 floats: AVX2 + FMA here, two NEON halves on arm64. A block of 4 rows x 16
 * columns (one B panel) holds 8 accumulators, 4 widened B vectors and 2 broadcasts in 14 of
 * AVX2's 16 registers; A's rows are widened once per row block into a per-thread buffer, which
 * every panel then reads: a row's pair is two broadcast loads (load ports, not vector ALUs).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

typedef float vf8 __attribute__((vector_size(32), aligned(4)));
typedef uint32_t vu8 __attribute__((vector_size(32), aligned(4)));

enum { ROWS = 4, COLS = 16 };

static inline vf8 load8(const float *p) { return *(const vf8 *)p; }
static inline void store8(float *p, vf8 v) { *(vf8 *)p = v; }
static inline vf8 widen_even(vu8 pairs) { return (vf8)(pairs << 16); }
static inline vf8 widen_odd(vu8 pairs) { return (vf8)(pairs & 0xffff0000u); }

/* the widened A of a row block, one per thread, kept between calls */
static __thread float *wide;
static __thread size_t wide_floats;

static float *wide_get(size_t floats) {
  if (floats <= wide_floats) return wide;
  free(wide);
  wide = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
  wide_floats = wide ? floats : 0;
  return wide;
}

/*
 * Rows [m0, m1) (a multiple of 4 from m0, within the packed rows) of packed A over the k blocks
 * [k_lo, k_hi), widened to fp32 as [quad][k block][4][32]: the order the kernel reads them in.
 */
static void widen_a(const uint16_t *ap, int64_t kt, int64_t m0, int64_t m1, int64_t k_lo,
                    int64_t k_hi, float *out) {
  for (int64_t m = m0; m < m1; m += ROWS) {
    const uint16_t *astack = ap + (m / 16) * kt * 512 + (m % 16) * 32;
    for (int64_t k = k_lo; k < k_hi; k++, out += ROWS * 32) {
      const uint16_t *tile = astack + k * 512;
      for (int j = 0; j < ROWS * 32; j++) { /* rows of a tile are 32 apart: 4 rows contiguous */
        const uint32_t u = (uint32_t)tile[j] << 16;
        memcpy(out + j, &u, 4);
      }
    }
  }
}

/*
 * C rows [m_lo, m_hi) x columns [n_lo, n_hi) (multiples of 32) of C = A·B for bf16.c's packed A
 * (ap: [Mp/16][Kp/32][16][32]) and B (bp: [Np/16][Kp/2][16][2]); + bias [N] (NULL none) after the
 * whole sum. K in slices (a panel's slice stays in L2 while the rows go by), rows in blocks whose
 * widened slice of A (A_WIDE bytes, widened once for all the panels) stays in L2 while the panels
 * go by: the blocking of bf16.c's AVX512-BF16 kernel, each slice after the first adding to the
 * partial sums it reads back from C. false: no memory for the widened block (C not written).
 */
bool troupe_bf16_gemm_vec(const uint16_t *ap, const uint16_t *bp, int64_t M, int64_t N, int64_t Kp,
                          int64_t m_lo, int64_t m_hi, int64_t n_lo, int64_t n_hi, float *c,
                          int64_t ldc, const float *bias) {
  enum { A_WIDE = 256 << 10 };
  const int64_t kc_len = troupe_bf16_k_slice(Kp);
  const int64_t mc = A_WIDE / (kc_len * 4) / 16 * 16 > 16 ? A_WIDE / (kc_len * 4) / 16 * 16 : 16;
  const int64_t kt = Kp / 32;
  float *aw = wide_get((size_t)(mc * kc_len));
  if (!aw) return false;
  for (int64_t kc = 0; kc < Kp; kc += kc_len) {
    const int64_t k_lo = kc / 32, k_hi = (kc + kc_len < Kp ? kc + kc_len : Kp) / 32;
    const int last = kc + kc_len >= Kp;
    for (int64_t mm = m_lo; mm < m_hi && mm < M; mm += mc) {
      const int64_t m_end = mm + mc < m_hi ? mm + mc : m_hi;
      const int64_t m_top = m_end < M ? m_end : M;
      widen_a(ap, kt, mm, m_top, k_lo, k_hi, aw);
      for (int64_t n0 = n_lo; n0 < n_hi && n0 < N; n0 += COLS) {
        const int64_t cols = N - n0 < COLS ? N - n0 : COLS;
        const uint16_t *panel = bp + (n0 / 16) * Kp * 16;
        for (int64_t mrow = mm; mrow < m_top; mrow += ROWS) {
          const int64_t rows = M - mrow < ROWS ? M - mrow : ROWS;
          /* C's block through a buffer where it is partial (past N or M), else in place */
          float edge[ROWS][COLS];
          const int direct = cols == COLS && rows == ROWS;
          float *out = direct ? c + mrow * ldc + n0 : &edge[0][0];
          const int64_t ldo = direct ? ldc : COLS;
          vf8 acc[ROWS][2];
          for (int r = 0; r < ROWS; r++) {
            if (kc > 0 && r < rows) {
              if (!direct) {
                memset(edge[r], 0, sizeof edge[r]);
                memcpy(edge[r], c + (mrow + r) * ldc + n0, (size_t)cols * sizeof(float));
              }
              acc[r][0] = load8(out + r * ldo);
              acc[r][1] = load8(out + r * ldo + 8);
            } else acc[r][0] = acc[r][1] = (vf8){0};
          }
          const float *a = aw + (mrow - mm) / ROWS * (k_hi - k_lo) * ROWS * 32;
          const uint16_t *b = panel + k_lo * 16 * 32;
          for (int64_t k = k_lo; k < k_hi; k++, a += ROWS * 32)
            for (int p = 0; p < 16; p++, b += 32) {
              vu8 lo, hi;
              memcpy(&lo, b, 32); /* columns 0-7: their pair (k even low, k odd high) */
              memcpy(&hi, b + 16, 32);
              const vf8 lo_e = widen_even(lo), lo_o = widen_odd(lo);
              const vf8 hi_e = widen_even(hi), hi_o = widen_odd(hi);
              for (int r = 0; r < ROWS; r++) {
                const float ao = a[r * 32 + 2 * p + 1], ae = a[r * 32 + 2 * p];
                acc[r][0] += ao * lo_o;
                acc[r][1] += ao * hi_o;
                acc[r][0] += ae * lo_e;
                acc[r][1] += ae * hi_e;
              }
            }
          if (bias && last) { /* + bias: one add of the whole sum */
            float bv[COLS] = {0};
            memcpy(bv, bias + n0, (size_t)cols * sizeof(float));
            const vf8 b0 = load8(bv), b1 = load8(bv + 8);
            for (int r = 0; r < ROWS; r++) {
              acc[r][0] += b0;
              acc[r][1] += b1;
            }
          }
          for (int r = 0; r < rows; r++) {
            store8(out + r * ldo, acc[r][0]);
            store8(out + r * ldo + 8, acc[r][1]);
            if (!direct) memcpy(c + (mrow + r) * ldc + n0, edge[r], (size_t)cols * sizeof(float));
          }
        }
      }
    }
  }
  return true;
}

/*
 * Packing for builds without AVX512-BF16 (bf16.c's pack_a and pack_b call these there): the same
 * tiles and panels, rounded to nearest even (a NaN kept a NaN) eight floats at a time. Whole
 * tiles and panels take the vector loops; edges (past M, N or K) the scalar loop, zero-padded.
 */
typedef uint16_t vh8 __attribute__((vector_size(16), aligned(2)));

static inline vu8 load_bits8(const float *p) {
  vu8 u;
  memcpy(&u, p, 32);
  return u;
}

/* eight float32 bit patterns → their bf16 bits (in the low halves), as bf16.c's to_bf16 */
static inline vu8 round8(vu8 u) {
  const vu8 nan = (vu8)((u & 0x7fffffffu) > 0x7f800000u);
  const vu8 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (rounded & ~nan) | (((u >> 16) | 0x40u) & nan);
}

void troupe_bf16_pack_a_vec(const float *a, bool ta, int64_t lda, int64_t M, int64_t K,
                            int64_t Kp, int64_t m_lo, int64_t m_hi, uint16_t *out) {
  const int64_t kt = Kp / 32;
  for (int64_t m0 = m_lo; m0 < m_hi; m0 += 16)
    for (int64_t k0 = 0; k0 < Kp; k0 += 32) {
      uint16_t *tile = out + ((m0 / 16) * kt + k0 / 32) * 512;
      if (m0 + 16 <= M && k0 + 32 <= K) {
        if (!ta) /* row m0+r's 32 k are contiguous */
          for (int r = 0; r < 16; r++)
            for (int j = 0; j < 32; j += 8) {
              const vh8 h = __builtin_convertvector(round8(load_bits8(a + (m0 + r) * lda + k0 + j)), vh8);
              memcpy(tile + r * 32 + j, &h, 16);
            }
        else /* A [K, M]: a k's 16 m are contiguous; each goes to its row of the tile */
          for (int c = 0; c < 32; c++)
            for (int r0 = 0; r0 < 16; r0 += 8) {
              const vu8 h = round8(load_bits8(a + (k0 + c) * lda + m0 + r0));
              for (int r = 0; r < 8; r++) tile[(r0 + r) * 32 + c] = (uint16_t)h[r];
            }
        continue;
      }
      for (int64_t r = 0; r < 16; r++)
        for (int64_t c = 0; c < 32; c++) {
          const int64_t m = m0 + r, k = k0 + c;
          tile[r * 32 + c] = m < M && k < K ? to_bf16(at(a, ta, lda, m, k)) : 0;
        }
    }
}

void troupe_bf16_pack_b_vec(const float *b, bool tb, int64_t ldb, int64_t K, int64_t N,
                            int64_t Kp, int64_t n_lo, int64_t n_hi, uint16_t *out) {
  if (tb) { /* B [N, K]: a column's k are contiguous, 8 of them rounded at once (4 pairs) */
    for (int64_t n0 = n_lo; n0 < n_hi; n0 += 16)
      for (int64_t k0 = 0; k0 < Kp; k0 += 8) {
        uint16_t *d = out + (n0 / 16) * Kp * 16 + (k0 / 2) * 32;
        for (int64_t j = 0; j < 16; j++) {
          const int64_t n = n0 + j;
          if (n < N && k0 + 8 <= K) {
            const vu8 h = round8(load_bits8(b + n * ldb + k0));
            for (int q = 0; q < 4; q++) {
              d[q * 32 + 2 * j] = (uint16_t)h[2 * q];
              d[q * 32 + 2 * j + 1] = (uint16_t)h[2 * q + 1];
            }
          } else
            for (int64_t k = k0; k < k0 + 8; k++)
              d[(k - k0) / 2 * 32 + 2 * j + (k - k0) % 2] = n < N && k < K ? to_bf16(b[n * ldb + k]) : 0;
        }
      }
    return;
  }
  /* B [K, N]: rows k and k+1 of a panel's 16 columns make one panel row of (even, odd) pairs */
  for (int64_t k = 0; k < Kp; k += 2)
    for (int64_t n0 = n_lo; n0 < n_hi; n0 += 16) {
      uint16_t *d = out + (n0 / 16) * Kp * 16 + (k / 2) * 32;
      if (n0 + 16 <= N && k + 2 <= K) {
        for (int j = 0; j < 16; j += 8) {
          const vu8 lo = round8(load_bits8(b + k * ldb + n0 + j));
          const vu8 hi = round8(load_bits8(b + (k + 1) * ldb + n0 + j));
          const vu8 word = lo | hi << 16; /* little-endian: the even k first */
          memcpy(d + 2 * j, &word, 32);
        }
        continue;
      }
      for (int64_t j = 0; j < 16; j++) {
        const int64_t n = n0 + j;
        d[2 * j] = n < N && k < K ? to_bf16(b[k * ldb + n]) : 0;
        d[2 * j + 1] = n < N && k + 1 < K ? to_bf16(b[(k + 1) * ldb + n]) : 0;
      }
    }
}
