/*
 * bf16.c's product on CPUs without bf16 dot-product instructions (no AVX512-BF16, no AMX: the AMD
 * EPYC Zen 3 of 2026-12-04, any Arm): the same packed operands (A in 16x32 tiles of bf16, B in
 * 16-column panels of k-pairs), each pair widened to two fp32 values in registers by one shift
 * (the even k: the low half of the pair's 32 bits) and one mask (the odd k), then two fp32
 * multiply-adds, the odd k first: the order VDPBF16PS accumulates a pair in (Intel SDM: "srcdest
 * += a[2j+1]·b[2j+1]; srcdest += a[2j]·b[2j]", rounded to nearest even each time). A product of
 * two bf16 values is exact in fp32 (8 + 8 significant bits), so a multiply-add rounds once, as the
 * instruction's accumulation does, and the sums are those of the AVX512-BF16 path but for
 * subnormals (which that instruction flushes to zero and this does not).
 *
 * Each element's sum runs pair by pair from k = 0 to K in one fp32 accumulator whatever the cache
 * blocking, the thread split or the rows beside it: 1 and n threads, a product alone or in a
 * batch, give the same bits (the fp32 sgemm it replaces did not, under OpenBLAS's Haswell/Zen
 * kernels).
 *
 * GNU C vectors of 8 floats: AVX2 + FMA here, two NEON halves on arm64. A block of 4 rows x 16
 * columns (one B panel) holds 8 accumulators, 4 widened B vectors and 2 broadcasts in 14 of
 * AVX2's 16 registers; A's 4 rows of a 32-wide k block are widened into a stack buffer once, so
 * each row's pair is two broadcast loads (load ports, not vector ALUs).
 */
#include <stdint.h>
#include <string.h>

#include "common.h"

typedef float vf8 __attribute__((vector_size(32), aligned(4)));
typedef uint32_t vu8 __attribute__((vector_size(32), aligned(4)));

enum { ROWS = 4, COLS = 16 };

static inline vf8 load8(const float *p) { return *(const vf8 *)p; }
static inline void store8(float *p, vf8 v) { *(vf8 *)p = v; }
static inline vf8 widen_even(vu8 pairs) { return (vf8)(pairs << 16); }
static inline vf8 widen_odd(vu8 pairs) { return (vf8)(pairs & 0xffff0000u); }

/*
 * C rows [m_lo, m_hi) x columns [n_lo, n_hi) (multiples of 32) of C = A·B for bf16.c's packed A
 * (ap: [Mp/16][Kp/32][16][32]) and B (bp: [Np/16][Kp/2][16][2]); + bias [N] (NULL none) after the
 * whole sum. K in slices (a panel's slice stays in L2 while the rows go by), rows in blocks whose
 * slice of A stays in L2 while the panels go by: the blocking of bf16.c's AVX512-BF16 kernel, each
 * slice after the first adding to the partial sums it reads back from C.
 */
void troupe_bf16_gemm_vec(const uint16_t *ap, const uint16_t *bp, int64_t M, int64_t N, int64_t Kp,
                          int64_t m_lo, int64_t m_hi, int64_t n_lo, int64_t n_hi, float *c,
                          int64_t ldc, const float *bias) {
  enum { K_WHOLE = 4096, KC = 2048, A_BLOCK = 256 << 10 };
  const int64_t kc_len = Kp <= K_WHOLE ? Kp : KC;
  const int64_t mc = A_BLOCK / (kc_len * 2) / 16 * 16 > 16 ? A_BLOCK / (kc_len * 2) / 16 * 16 : 16;
  const int64_t kt = Kp / 32;
  for (int64_t kc = 0; kc < Kp; kc += kc_len) {
    const int64_t k_lo = kc / 32, k_hi = (kc + kc_len < Kp ? kc + kc_len : Kp) / 32;
    const int last = kc + kc_len >= Kp;
    for (int64_t mm = m_lo; mm < m_hi && mm < M; mm += mc)
      for (int64_t n0 = n_lo; n0 < n_hi && n0 < N; n0 += COLS) {
        const int64_t cols = N - n0 < COLS ? N - n0 : COLS;
        const uint16_t *panel = bp + (n0 / 16) * Kp * 16;
        for (int64_t mrow = mm; mrow < mm + mc && mrow < m_hi && mrow < M; mrow += ROWS) {
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
          /* rows mrow .. mrow+3 sit in one 16-row tile stack */
          const uint16_t *astack = ap + (mrow / 16) * kt * 512 + (mrow % 16) * 32;
          for (int64_t k = k_lo; k < k_hi; k++) {
            float a[ROWS][32];
            const uint16_t *tile = astack + k * 512;
            for (int r = 0; r < ROWS; r++)
              for (int j = 0; j < 32; j++) {
                const uint32_t u = (uint32_t)tile[r * 32 + j] << 16;
                memcpy(&a[r][j], &u, 4);
              }
            const uint16_t *b = panel + k * 16 * 32;
            for (int p = 0; p < 16; p++, b += 32) {
              vu8 lo, hi;
              memcpy(&lo, b, 32); /* columns 0-7: their pair (k even low, k odd high) */
              memcpy(&hi, b + 16, 32);
              const vf8 lo_e = widen_even(lo), lo_o = widen_odd(lo);
              const vf8 hi_e = widen_even(hi), hi_o = widen_odd(hi);
              for (int r = 0; r < ROWS; r++) {
                const float ao = a[r][2 * p + 1], ae = a[r][2 * p];
                acc[r][0] += ao * lo_o;
                acc[r][1] += ao * hi_o;
                acc[r][0] += ae * lo_e;
                acc[r][1] += ae * hi_e;
              }
            }
          }
          if (bias && last) { /* + bias: one add of the whole sum */
            float bv[COLS] = {0};
            memcpy(bv, bias + n0, (size_t)cols * sizeof(float));
            for (int r = 0; r < ROWS; r++) {
              acc[r][0] += load8(bv);
              acc[r][1] += load8(bv + 8);
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
