/*
 * What every file of Troupe's native addon shares: argument checks that throw a TypeError or
 * RangeError naming the argument, and the entry points each file adds to the addon's exports.
 */
#ifndef TROUPE_NATIVE_COMMON_H
#define TROUPE_NATIVE_COMMON_H
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

static inline napi_value fail(napi_env env, bool range, const char *msg) {
  if (range) napi_throw_range_error(env, NULL, msg);
  else napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static inline bool get_int(napi_env env, napi_value v, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

static inline bool get_double(napi_env env, napi_value v, double *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_double(env, v, out) == napi_ok;
}

static inline bool get_f32(napi_env env, napi_value v, float **data, size_t *length) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void *ptr;
  if (napi_get_typedarray_info(env, v, &type, length, &ptr, NULL, NULL) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = (float *)ptr;
  return true;
}

/* float32 → bfloat16, round to nearest even (NaN kept a NaN) */
static inline uint16_t to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static inline float from_bf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, 4);
  return x;
}

/* element (i, j) of op(X), X row-major with leading dimension ld */
static inline float at(const float *x, bool t, int64_t ld, int64_t i, int64_t j) {
  return t ? x[j * ld + i] : x[i * ld + j];
}

/*
 * Float vectors of the build's widest width (16 lanes with AVX-512, 8 with AVX, else 4), by GCC's
 * and Clang's vector extensions: loops over them are vector code without the autovectoriser.
 * Without AVX-512 GCC 12 leaves a loop over a scalar e^x scalar: it threads the clamp's branches
 * into constants, and under -ftrapping-math it may not if-convert the polynomial path back
 * (AVX-512's masked code hid this). Measured on Zen 3, GELU over 1M floats: 4.7 ms scalar, 0.7 ms
 * here.
 */
#if defined(__AVX512F__)
#define TROUPE_VL 16
#elif defined(__AVX__)
#define TROUPE_VL 8
#else
#define TROUPE_VL 4
#endif
typedef float troupe_vf __attribute__((vector_size(TROUPE_VL * 4)));
typedef int32_t troupe_vi __attribute__((vector_size(TROUPE_VL * 4)));

static inline troupe_vf vf_splat(float x) { return (troupe_vf){0} + x; }

static inline troupe_vf vf_load(const float *p) {
  troupe_vf v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void vf_store(float *p, troupe_vf v) { memcpy(p, &v, sizeof v); }

/* the n < TROUPE_VL floats at p, the other lanes `fill` */
static inline troupe_vf vf_load_n(const float *p, int64_t n, float fill) {
  troupe_vf v = vf_splat(fill);
  memcpy(&v, p, (size_t)n * sizeof(float));
  return v;
}

static inline void vf_store_n(float *p, troupe_vf v, int64_t n) {
  memcpy(p, &v, (size_t)n * sizeof(float));
}

/* lane-wise m ? a : b, m a comparison's all-ones or zero lanes */
static inline troupe_vf vf_select(troupe_vi m, troupe_vf a, troupe_vf b) {
  troupe_vi ai, bi;
  memcpy(&ai, &a, sizeof a);
  memcpy(&bi, &b, sizeof b);
  const troupe_vi r = (ai & m) | (bi & ~m);
  troupe_vf out;
  memcpy(&out, &r, sizeof out);
  return out;
}

/* all-ones in the lanes below n, zero from n on */
static inline troupe_vi vf_lanes_below(int64_t n) {
  troupe_vi lane;
  for (int k = 0; k < TROUPE_VL; k++) lane[k] = k;
  return lane < (troupe_vi){0} + (int32_t)n;
}

/* b > a ? b : a per lane: the scalar loop's running max (a NaN in b is passed over) */
static inline troupe_vf vf_max(troupe_vf a, troupe_vf b) { return vf_select(b > a, b, a); }

/* the lanes' sum, lane 0 first, and their max */
static inline float vf_sum_lanes(troupe_vf v) {
  float s = 0;
  for (int k = 0; k < TROUPE_VL; k++) s += v[k];
  return s;
}

static inline float vf_max_lanes(troupe_vf v) {
  float m = v[0];
  for (int k = 1; k < TROUPE_VL; k++) m = v[k] > m ? v[k] : m;
  return m;
}

/*
 * e^x per lane, ~2 ulp: 2^n·p(r), n = round(x/ln 2), |r| ≤ ln2/2, Cephes' polynomial. x is clamped
 * to [-87, 88], where 2^n is a normal float: below, e^x saturates at e^-87 ≈ 1.6e-38 (masked
 * attention scores and far-off logits contribute that, not 0), above at e^88. A NaN stays NaN.
 */
static inline troupe_vf vf_exp(troupe_vf x) {
  const troupe_vf lo = vf_splat(-87.0f), hi = vf_splat(88.0f);
  x = vf_select(x < lo, lo, x);
  x = vf_select(x > hi, hi, x);
  const float shifter = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
  const troupe_vf t = x * 1.44269504088896341f + shifter;
  const troupe_vf n = t - shifter;
  troupe_vi ni;
  memcpy(&ni, &t, sizeof t);
  ni -= 0x4B400000; /* the bits of `shifter` */
  troupe_vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  troupe_vf p = vf_splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const troupe_vi si = (ni + 127) << 23;
  troupe_vf scale;
  memcpy(&scale, &si, sizeof scale);
  return p * scale;
}

/* max over n floats (−∞ for none), by lanes */
static inline float troupe_max_row(const float *y, int64_t n) {
  troupe_vf m = vf_splat(-__builtin_inff());
  int64_t j = 0;
  for (; j + TROUPE_VL <= n; j += TROUPE_VL) m = vf_max(m, vf_load(y + j));
  if (j < n) m = vf_max(m, vf_load_n(y + j, n - j, -__builtin_inff()));
  return vf_max_lanes(m);
}

/* y = softmax(row) in place over n values: max, exp and sum (by lanes), then scale. */
static inline void troupe_softmax_row(float *y, int64_t n) {
  const troupe_vf m = vf_splat(troupe_max_row(y, n));
  troupe_vf s = {0};
  int64_t j = 0;
  for (; j + TROUPE_VL <= n; j += TROUPE_VL) {
    const troupe_vf e = vf_exp(vf_load(y + j) - m);
    vf_store(y + j, e);
    s += e;
  }
  if (j < n) {
    const troupe_vf e = vf_exp(vf_load_n(y + j, n - j, 0) - m);
    vf_store_n(y + j, e, n - j);
    s += vf_select(vf_lanes_below(n - j), e, (troupe_vf){0});
  }
  const float inv = 1.0f / vf_sum_lanes(s);
  for (j = 0; j < n; j++) y[j] *= inv;
}

/*
 * smallm.c: C[M, N] = op(A)·op(B) for 1 ≤ M ≤ SMALL_GEMM_MAX_ROWS, row-major, C dense [M, N];
 * false (nothing written) where it does not apply.
 */
#define SMALL_GEMM_MAX_ROWS 16
bool troupe_small_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                       const float *b, float *c);

/* troupe_native.c: C[M, N] = op(A)·op(B), row-major, C dense (sgemv, small-M or sgemm by M);
 * troupe_gemm_ld: sgemm with leading dimensions, for blocks of larger matrices. */
void troupe_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
                 float *c);
/* troupe_native.c: y[R, out] = x[R, in]·W + b for W [in, out]; b NULL is none. */
void troupe_linear(const float *x, const float *w, const float *b, int64_t R, int64_t in,
                   int64_t out, float *y);
void troupe_gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float *c, int64_t ldc);
/* troupe_native.c: C = op(A)·op(B) + beta·C with leading dimensions (beta 1: accumulate). */
void troupe_gemm_ld_beta(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                         int64_t ldc);

/* fused.c: the forward loops (per row of `cols`; mean and rstd get one value per row). */
void troupe_layer_norm_forward(const float *restrict x, const float *restrict gamma,
                               const float *restrict beta, int64_t rows, int64_t cols, float eps,
                               float *restrict y, float *restrict mean, float *restrict rstd);
void troupe_rms_norm_forward(const float *restrict x, const float *restrict gamma, int64_t rows,
                             int64_t cols, float eps, float *restrict y, float *restrict rstd);
void troupe_gelu_forward(const float *restrict x, float *restrict y, int64_t n);
void troupe_silu_forward(const float *restrict x, float *restrict y, int64_t n);

/*
 * A function in an addon's exports table (napi_define_properties), run with subnormal floats
 * flushed to zero (troupe_flush_call): a backward pass whose gradient is zero on most positions
 * (a reward model's score read at one token per row) fills matrices with subnormals, and the
 * FPU's microcode path for them made OpenBLAS's sgemm 10-40x slower (measured: a small GPT-2's
 * reward-model step 1.63 s -> 0.15 s). The thread's previous mode is restored on return, so
 * JavaScript and WebAssembly, which need IEEE subnormals, never run flushed.
 * TROUPE_EXPORT_EXACT: without flushing (the host optimizer loops, kept bit-identical to the
 * JavaScript AdamW).
 */
napi_value troupe_flush_call(napi_env env, napi_callback_info info);
#define TROUPE_EXPORT(name, fn)                                                                    \
  {name, NULL, troupe_flush_call, NULL, NULL, NULL, napi_default, (void *)(fn)}
#define TROUPE_EXPORT_EXACT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

/* Set flush-to-zero (and denormals-are-zero) on this thread; returns the mode to restore. */
unsigned long troupe_flush_begin(void);
void troupe_flush_end(unsigned long saved);

/* Each adds its functions to `exports`; false when a Node-API call failed (an error is pending). */
bool troupe_define_fused(napi_env env, napi_value exports); /* fused.c: norms, activations, softmax */
bool troupe_define_host(napi_env env, napi_value exports);  /* host.c: optimizer-side loops */
bool troupe_define_rows(napi_env env, napi_value exports);  /* rows.c: softmax rows, sums */
bool troupe_define_decode(napi_env env, napi_value exports); /* decode.c: a cached decoder block */
bool troupe_define_bf16(napi_env env, napi_value exports);   /* bf16.c: bf16 products, fp32 sums */
bool troupe_define_nf4(napi_env env, napi_value exports);    /* nf4.c: NF4 weights in matmuls */
bool troupe_define_sample(napi_env env, napi_value exports); /* sample.c: sampling's exp rows */
bool troupe_define_seqgemm(napi_env env, napi_value exports); /* seqgemm.c: sgemm's order */

/* troupe_native.c: the BLAS threads per call now set (setThreads); the bf16 kernels use as many */
int troupe_threads(void);
/* troupe_native.c: whether the BLAS loaded is OpenBLAS with its SkylakeX kernels (seqgemm.c) */
bool troupe_blas_sums_in_order(void);
/* seqgemm.c: y [M, N] = x [M, K]·W [K, N] (+ bias; NULL: none) with the bits that sgemm (then the
 * bias add) gives, where it knows them: M > SMALL_GEMM_MAX_ROWS, OpenBLAS SkylakeX on one
 * thread, N a multiple of 16, K ≤ 768; false (nothing written) elsewhere */
bool troupe_gemm_seq(const float *x, const float *w, const float *bias, int64_t M, int64_t K,
                     int64_t N, float *y);

/* pool.c: run fn(ctx, t, n) for t < n on this thread (t = 0) and its helpers; returns when done */
typedef void (*troupe_task)(void *ctx, int t, int n);
void troupe_parallel(int n, troupe_task fn, void *ctx);

/* bf16.c: C[M, N] = op(A)·op(B) with A, B rounded to bf16 and fp32 sums (false: out of memory) */
/* The K slices of bf16.c's and bf16vec.c's blocked products (Kp padded to 32): K whole up to
 * 4096, else slices of 2048, each slice after the first adding to the partial sums in C */
static inline int64_t troupe_bf16_k_slice(int64_t Kp) { return Kp <= 4096 ? Kp : 2048; }

/* bf16vec.c: bf16.c's packed product with two fp32 multiply-adds per k-pair (CPUs without bf16
 * dot-product instructions), rows [m_lo, m_hi) x columns [n_lo, n_hi) of C (+ bias, NULL none);
 * false: out of memory */
bool troupe_bf16_gemm_vec(const uint16_t *ap, const uint16_t *bp, int64_t M, int64_t N, int64_t Kp,
                          int64_t m_lo, int64_t m_hi, int64_t n_lo, int64_t n_hi, float *c,
                          int64_t ldc, const float *bias);
/* bf16vec.c: bf16.c's packing of op(A) into tiles and op(B) into panels, for builds without
 * AVX512-BF16 (rows [m_lo, m_hi) of A, columns [n_lo, n_hi) of B) */
void troupe_bf16_pack_a_vec(const float *a, bool ta, int64_t lda, int64_t M, int64_t K,
                            int64_t Kp, int64_t m_lo, int64_t m_hi, uint16_t *out);
void troupe_bf16_pack_b_vec(const float *b, bool tb, int64_t ldb, int64_t K, int64_t N,
                            int64_t Kp, int64_t n_lo, int64_t n_hi, uint16_t *out);
bool troupe_gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                      const float *b, float *c);
/* bf16.c: y [R, N] = x [R, K]·W (+ bias) with W [K, N] stored as bf16 bits in panels of 32
 * columns ([⌈N/32⌉][K][32]); false: out of memory (y not written) */
bool troupe_linear_w16(const float *x, const uint16_t *w, const float *bias, int64_t R, int64_t K,
                       int64_t N, float *y);
/* bf16.c: troupe_linear_w16 of several weights against the same x (≤ 4; bias[i] NULL: none), the
 * few-row ones in one pass (troupe_w16_rows_many); the same bits as one call each */
bool troupe_linear_w16_many(const float *x, int64_t R, int64_t K, int parts,
                            const uint16_t *const *w, const float *const *bias, const int64_t *N,
                            float *const *y);

/* w16rows.c: troupe_linear_w16's few-row loops (y [R, N] = x·W, no bias; false: out of memory),
 * and which loop runs here: "avx512" or "generic" (TROUPE_BF16_PATH=fp32 forces it) */
bool troupe_w16_rows(const float *x, const uint16_t *w, int64_t R, int64_t K, int64_t N, float *y);
/* w16rows.c: y[i] [R, N[i]] = x·W[i] for i < parts (≤ 4) in one pass (false: out of memory) */
bool troupe_w16_rows_many(const float *x, int64_t R, int64_t K, int parts,
                          const uint16_t *const *w, const int64_t *N, float *const *y);
const char *troupe_w16_rows_path(void);

/* bf16.c: for i < batch, C + i·M·N = op(A + i·sa)·op(B + i·sb) (sgemmBatched's layout) */
bool troupe_gemm_bf16_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                              const float *a, int64_t sa, const float *b, int64_t sb, float *c);
const char *troupe_bf16_path(void);

#endif
