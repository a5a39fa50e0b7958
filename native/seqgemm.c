/*
 * y[M, N] = x[M, K]·W[K, N] (+ bias) for the decoder block's projections at 17 rows or more (a
 * decoding step of batch 32 or 64, a prefill), in the order OpenBLAS's SkylakeX sgemm sums them,
 * so that the same bits come out: each y[m, n] a chain of fused multiply-adds over k from 0, and,
 * past its small-matrix kernel (M·N·K > 10^6), a K past OpenBLAS's GEMM_Q (here > 448) cut in two
 * at K/2 rounded up to 16, the second half's chain added to the first's. Found by comparing the
 * two, element by element, on the shapes the block uses and around each boundary
 * (scripts/sgemm-order.c); test/kernels/native-seqgemm.test.ts holds the two to the bit. Only
 * where that sgemm is the one loaded (core SkylakeX, one BLAS thread) and where the order is
 * known (N a multiple of 16: its column tails sum otherwise; K ≤ 768): elsewhere false, and the
 * caller runs sgemm.
 *
 * Why: at these sizes sgemm packs all of W (its "A") and x for each call, and the packing was a
 * third of its time ([64, 128]·[128, 512]: sgemm_itcopy 10 % of a decode step on its own). Here
 * W is read as it is stored, a row of W against 12 rows of x (broadcast) into 24 vector
 * accumulators (12 rows × 32 columns), as smallm.c does for fewer rows.
 */
#include "args.h"
#include "common.h"

typedef float v16 __attribute__((vector_size(64), aligned(4)));

enum { MR = 12 };

static inline v16 ld(const float *p) { return *(const v16 *)p; }

/*
 * R ≤ 12 rows from x, NV ≤ 2 vectors of 16 columns from W, k in [k0, k1): acc = Σ x[m, k]·W[k, n]
 * from 0; then y = acc (first) or y = acc + y (a second half of K), and y + bias where `bias`
 * (last). Inlined with R and NV constants (24 accumulators at 12 × 2: 8 rows × 2 ran
 * [64, 128]·[128, 512] at ~90-115 GFLOP/s here, 12 × 2 at ~130-145).
 */
static inline __attribute__((always_inline)) void block(const int R, const int NV, const float *x,
                                                        int64_t K, const float *w, int64_t N,
                                                        int64_t k0, int64_t k1, bool first,
                                                        const float *bias, float *y) {
  v16 acc[MR][2];
  for (int m = 0; m < R; m++)
    for (int u = 0; u < NV; u++) acc[m][u] = (v16){0};
  const float *wk = w + k0 * N;
  for (int64_t k = k0; k < k1; k++, wk += N) {
    v16 b[2];
    for (int u = 0; u < NV; u++) b[u] = ld(wk + 16 * u);
    for (int m = 0; m < R; m++) {
      const float a = x[m * K + k];
      for (int u = 0; u < NV; u++) acc[m][u] += a * b[u];
    }
  }
  for (int m = 0; m < R; m++)
    for (int u = 0; u < NV; u++) {
      v16 v = acc[m][u];
      float *ym = y + m * N + 16 * u;
      if (!first) v = v + ld(ym);
      if (bias) v = v + ld(bias + 16 * u);
      *(v16 *)ym = v;
    }
}

/* rows m0 .. m0+R−1 across all N columns (N a multiple of 16): blocks of 32, then one of 16 */
#define ROWS(R)                                                                                    \
  case R:                                                                                          \
    for (int64_t n0 = 0; n0 < N; n0 += 32) {                                                       \
      const float *bn = last && bias ? bias + n0 : NULL;                                           \
      if (n0 + 32 <= N) block(R, 2, xm, K, w + n0, N, k0, k1, first, bn, ym + n0);                 \
      else block(R, 1, xm, K, w + n0, N, k0, k1, first, bn, ym + n0);                              \
    }                                                                                              \
    break;

static void part(const float *x, const float *w, const float *bias, int64_t M, int64_t K,
                 int64_t N, int64_t k0, int64_t k1, bool first, bool last, float *y) {
  for (int64_t m0 = 0; m0 < M; m0 += MR) {
    const float *xm = x + m0 * K;
    float *ym = y + m0 * N;
    switch (M - m0 < MR ? (int)(M - m0) : MR) {
      ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8) ROWS(9) ROWS(10) ROWS(11)
      ROWS(12)
    }
  }
}

/* The cut OpenBLAS 0.3.21's SkylakeX sgemm makes in K (0: none), or −1 where it is not known. */
static int64_t k_cut(int64_t M, int64_t N, int64_t K) {
  if (K > 768) return -1;
  if (K <= 448 || (double)M * (double)N * (double)K <= 1e6) return 0;
  if (K <= 768) return (K / 2 + 15) / 16 * 16;
  return -1;
}

bool troupe_gemm_seq(const float *x, const float *w, const float *bias, int64_t M, int64_t K,
                     int64_t N, float *y) {
  if (M <= SMALL_GEMM_MAX_ROWS || K < 1 || N < 1 || N % 16 != 0 ||
      !troupe_blas_sums_in_order() || troupe_threads() != 1)
    return false;
  const int64_t cut = k_cut(M, N, K);
  if (cut < 0) return false;
  if (cut == 0) part(x, w, bias, M, K, N, 0, K, true, true, y);
  else {
    part(x, w, bias, M, K, N, 0, cut, true, false, y);
    part(x, w, bias, M, K, N, cut, K, false, true, y);
  }
  return true;
}

/*
 * linearInOrder(x, w, bias, rows, in, out, y) → whether it ran: troupe_gemm_seq (y = x·W + bias,
 * W [in, out], an empty bias none), for the tests that hold it to sgemm's bits; false where it
 * does not apply (y not written).
 */
static napi_value linear_in_order(napi_env env, napi_callback_info info) {
  Args a;
  DenseLinearArgs l;
  if (!args_dense_linear(&a, env, info, "linearInOrder", &l)) return NULL;
  napi_value out;
  CHECK(napi_get_boolean(env, troupe_gemm_seq(l.x, l.w, l.bias, l.R, l.I, l.O, l.y), &out));
  return out;
}

bool troupe_define_seqgemm(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {TROUPE_EXPORT("linearInOrder", linear_in_order)};
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
