/*
 * Fused element-wise kernels over float32 views (which may point into the wasm heap): LayerNorm,
 * RMSNorm, GELU (tanh approximation) and SiLU, forward and backward. Each replaces a dozen tfjs
 * kernels (one pass over memory each) with one or two passes.
 *
 * Views are row-major [rows, cols]; the norms work per row. Row sums are accumulated in double,
 * lane-wise in vectors (the build has no -ffast-math, so a plain loop's sum would stay scalar).
 * exp is a polynomial over vectors (vf_exp, common.h): libm's expf does not vectorise without
 * -ffast-math (measured on Zen 4, GELU over L1-resident data: 0.34 ns/value with the polynomial,
 * 2.5 with expf, 12 with tanhf), and GCC leaves a loop over a scalar polynomial scalar on AVX2.
 * Every argument is checked (args.h) before anything is read: types, integer ranges, each view's
 * exact length against rows and cols, and that no output overlaps another view. Outputs are
 * written, inputs never.
 *
 * Threads (ranges.h): as many as the BLAS is set to, each ≥ 2^16 floats: the activations split
 * by elements, the norms by rows, and a norm's backward also splits its γ/β sums by columns (each
 * column still summed over the rows in order), so every thread count gives the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "args.h"
#include "common.h"
#include "ranges.h"

/* ---- loops ---- */

/* Row sums: 8 floats at a time, widened to double and added lane-wise (two accumulators, for
 * latency), then the lanes added; GCC's and Clang's vector extensions, so this vectorises without
 * reassociation and without -ffast-math. The 8 doubles are two 32-byte halves (lanes 0-3, 4-7):
 * without AVX-512, GCC 12 lowers a 64-byte vector through the stack (measured on Zen 3: LayerNorm
 * at 2.5 ns a value). The sums are those of one 8-lane vector, so AVX-512 builds keep their bits. */
typedef float f32x8 __attribute__((vector_size(32)));
typedef double f64x4 __attribute__((vector_size(32)));
typedef struct {
  f64x4 lo, hi;
} f64x8;

static inline f32x8 load8(const float *p) {
  f32x8 v;
  memcpy(&v, p, sizeof v);
  return v;
}

typedef float f32x4 __attribute__((vector_size(16)));

/* 4 floats to doubles, exactly (GCC 12 turns convertvector's 4 → 4 into 2 → 2 pieces) */
static inline f64x4 widen4(f32x4 v) {
#if defined(__AVX__)
  return (f64x4)_mm256_cvtps_pd((__m128)v);
#else
  return __builtin_convertvector(v, f64x4);
#endif
}

static inline f64x8 wide(f32x8 v) {
  f32x4 lo, hi;
  memcpy(&lo, &v, sizeof lo);
  memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
  return (f64x8){widen4(lo), widen4(hi)};
}

static inline f64x8 add8(f64x8 a, f64x8 b) { return (f64x8){a.lo + b.lo, a.hi + b.hi}; }

/* a + x·y lane-wise */
static inline f64x8 madd8(f64x8 a, f64x8 x, f64x8 y) {
  return (f64x8){a.lo + x.lo * y.lo, a.hi + x.hi * y.hi};
}

/* lane 0 + lane 1 + … + lane 7, from 0 */
static inline double sum8(f64x8 a) {
  double s = 0;
  for (int k = 0; k < 4; k++) s += a.lo[k];
  for (int k = 0; k < 4; k++) s += a.hi[k];
  return s;
}

static inline double lanes(f64x8 a, f64x8 b) { return sum8(add8(a, b)); }

static inline troupe_vf sigmoid_v(troupe_vf z) { return 1.0f / (1.0f + vf_exp(-z)); }

#define GELU_C 0.7978845608028654f /* √(2/π) */
#define GELU_A 0.044715f

/* GELU tanh: ½x(1 + tanh u) = x·σ(2u), u = √(2/π)(x + 0.044715x³). */
static inline troupe_vf gelu_v(troupe_vf x, troupe_vf dy) {
  (void)dy;
  return x * sigmoid_v(2.0f * GELU_C * x * (1.0f + GELU_A * x * x));
}

/* d/dx x·σ(2u) = s + 2x·s(1 − s)·u′, s = σ(2u), u′ = √(2/π)(1 + 3·0.044715x²). */
static inline troupe_vf gelu_grad_v(troupe_vf x, troupe_vf dy) {
  const troupe_vf s = sigmoid_v(2.0f * GELU_C * x * (1.0f + GELU_A * x * x));
  const troupe_vf du = GELU_C * (1.0f + 3.0f * GELU_A * x * x);
  return dy * s * (1.0f + 2.0f * x * (1.0f - s) * du);
}

static inline troupe_vf silu_v(troupe_vf x, troupe_vf dy) {
  (void)dy;
  return x * sigmoid_v(x);
}

/* d/dx x·σ(x) = σ(x)(1 + x(1 − σ(x))). */
static inline troupe_vf silu_grad_v(troupe_vf x, troupe_vf dy) {
  const troupe_vf s = sigmoid_v(x);
  return dy * s * (1.0f + x * (1.0f - s));
}

/* out[i] = f(x[i], dy[i]) over n floats (dy may be NULL for a forward), a vector at a time; the
 * tail through the same vector code, so an element's bits do not depend on where it falls. */
static inline void each(troupe_vf (*f)(troupe_vf, troupe_vf), const float *restrict x,
                        const float *restrict dy, float *restrict out, int64_t n) {
  const troupe_vf none = {0};
  int64_t i = 0;
  for (; i + TROUPE_VL <= n; i += TROUPE_VL)
    vf_store(out + i, f(vf_load(x + i), dy ? vf_load(dy + i) : none));
  if (i < n) {
    const troupe_vf g = dy ? vf_load_n(dy + i, n - i, 0) : none;
    vf_store_n(out + i, f(vf_load_n(x + i, n - i, 0), g), n - i);
  }
}

void troupe_gelu_forward(const float *restrict x, float *restrict y, int64_t n) {
  each(gelu_v, x, NULL, y, n);
}

static void gelu_backward(const float *restrict x, const float *restrict dy, float *restrict dx,
                          int64_t n) {
  each(gelu_grad_v, x, dy, dx, n);
}

void troupe_silu_forward(const float *restrict x, float *restrict y, int64_t n) {
  each(silu_v, x, NULL, y, n);
}

static void silu_backward(const float *restrict x, const float *restrict dy, float *restrict dx,
                          int64_t n) {
  each(silu_grad_v, x, dy, dx, n);
}

void troupe_layer_norm_forward(const float *restrict x, const float *restrict gamma,
                               const float *restrict beta, int64_t rows, int64_t cols, float eps,
                               float *restrict y, float *restrict mean, float *restrict rstd) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    f64x8 a0 = {0}, a1 = {0};
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      a0 = add8(a0, wide(load8(xr + j)));
      a1 = add8(a1, wide(load8(xr + j + 8)));
    }
    double s = lanes(a0, a1);
    for (; j < cols; j++) s += xr[j];
    const float m = (float)(s / (double)cols);
    f64x8 q0 = {0}, q1 = {0};
    for (j = 0; j + 16 <= cols; j += 16) {
      f64x8 d0 = wide(load8(xr + j) - m), d1 = wide(load8(xr + j + 8) - m);
      q0 = madd8(q0, d0, d0);
      q1 = madd8(q1, d1, d1);
    }
    double q = lanes(q0, q1);
    for (; j < cols; j++) {
      double d = xr[j] - m;
      q += d * d;
    }
    const float rs = (float)(1.0 / sqrt(q / (double)cols + eps));
    for (j = 0; j < cols; j++) yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j];
    mean[r] = m;
    rstd[r] = rs;
  }
}

/* dx = rstd·(g − mean(g) − x̂·mean(g⊙x̂)), g = γ⊙dy, for one row. */
static inline void layer_norm_dx_row(const float *restrict dyr, const float *restrict xr,
                                     const float *restrict gamma, float m, float rs, int64_t cols,
                                     float *restrict dxr) {
  f64x8 s1 = {0}, s2 = {0};
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    f32x8 g = load8(gamma + j) * load8(dyr + j);
    f32x8 xh = (load8(xr + j) - m) * rs;
    s1 = add8(s1, wide(g));
    s2 = add8(s2, wide(g * xh));
  }
  double t1 = sum8(s1), t2 = sum8(s2);
  for (; j < cols; j++) {
    float g = gamma[j] * dyr[j];
    t1 += g;
    t2 += g * ((xr[j] - m) * rs);
  }
  const float a = (float)(t1 / (double)cols);
  const float b = (float)(t2 / (double)cols);
  for (j = 0; j < cols; j++) {
    float xh = (xr[j] - m) * rs;
    dxr[j] = rs * (gamma[j] * dyr[j] - a - xh * b);
  }
}

/* One row's terms of dγ = Σ_rows dy⊙x̂ and dβ = Σ_rows dy, columns [c0, c1), added in double. */
static inline void layer_norm_acc_row(const float *restrict dyr, const float *restrict xr, float m,
                                      float rs, int64_t c0, int64_t c1, double *restrict ag,
                                      double *restrict ab) {
  for (int64_t j = c0; j < c1; j++) {
    float xh = (xr[j] - m) * rs;
    ag[j] += dyr[j] * xh;
    ab[j] += dyr[j];
  }
}

typedef struct {
  const float *dy, *x, *gamma, *mean, *rstd;
  int64_t rows, cols;
  float *dx, *dgamma, *dbeta;
  double *acc; /* 2·cols */
  bool rms;
} NormBack;

/* x̂ = x·rstd (RMSNorm), for one row: dx = rstd·(g − x̂·mean(g⊙x̂)), g = γ⊙dy. */
static inline void rms_norm_dx_row(const float *restrict dyr, const float *restrict xr,
                                   const float *restrict gamma, float rs, int64_t cols,
                                   float *restrict dxr) {
  f64x8 s0 = {0}, s1 = {0};
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) {
    s0 = add8(s0, wide(load8(gamma + j) * load8(dyr + j) * (load8(xr + j) * rs)));
    s1 = add8(s1, wide(load8(gamma + j + 8) * load8(dyr + j + 8) * (load8(xr + j + 8) * rs)));
  }
  double t = lanes(s0, s1);
  for (; j < cols; j++) t += gamma[j] * dyr[j] * (xr[j] * rs);
  const float b = (float)(t / (double)cols);
  for (j = 0; j < cols; j++) {
    float xh = xr[j] * rs;
    dxr[j] = rs * (gamma[j] * dyr[j] - xh * b);
  }
}

static inline void rms_norm_acc_row(const float *restrict dyr, const float *restrict xr, float rs,
                                    int64_t c0, int64_t c1, double *restrict acc) {
  for (int64_t j = c0; j < c1; j++) {
    float xh = xr[j] * rs;
    acc[j] += dyr[j] * xh;
  }
}

/* Rows [r0, r1) of dx, and the columns [c0, c1) of the parameter gradients over every row. */
static void norm_backward_part(const NormBack *q, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const int64_t cols = q->cols;
  double *ag = q->acc, *ab = q->acc + cols;
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = q->x + r * cols, *dyr = q->dy + r * cols;
    if (q->rms) rms_norm_dx_row(dyr, xr, q->gamma, q->rstd[r], cols, q->dx + r * cols);
    else layer_norm_dx_row(dyr, xr, q->gamma, q->mean[r], q->rstd[r], cols, q->dx + r * cols);
  }
  if (c0 >= c1) return;
  for (int64_t j = c0; j < c1; j++) ag[j] = ab[j] = 0;
  for (int64_t r = 0; r < q->rows; r++) {
    const float *xr = q->x + r * cols, *dyr = q->dy + r * cols;
    if (q->rms) rms_norm_acc_row(dyr, xr, q->rstd[r], c0, c1, ag);
    else layer_norm_acc_row(dyr, xr, q->mean[r], q->rstd[r], c0, c1, ag, ab);
  }
  for (int64_t j = c0; j < c1; j++) {
    q->dgamma[j] = (float)ag[j];
    if (!q->rms) q->dbeta[j] = (float)ab[j];
  }
}

static void norm_backward_task(void *c, int t, int n) {
  const NormBack *q = c;
  int64_t r0, r1, c0, c1;
  troupe_range_of(q->rows, 1, t, n, &r0, &r1);
  troupe_range_of(q->cols, 16, t, n, &c0, &c1);
  norm_backward_part(q, r0, r1, c0, c1);
}

/* One thread: a row's dx, then its gradient terms, while the row is in cache. Several: each a
 * range of rows' dx and a range of columns' sums over all rows, in the same row order (the same
 * bits as one thread). */
static void norm_backward(const NormBack *q) {
  const int threads = troupe_for_threads(q->rows * q->cols, TROUPE_FOR_FLOATS);
  if (threads > 1) {
    troupe_parallel(threads, norm_backward_task, (void *)q);
    return;
  }
  const int64_t cols = q->cols;
  double *ag = q->acc, *ab = q->acc + cols;
  for (int64_t j = 0; j < cols; j++) ag[j] = ab[j] = 0;
  for (int64_t r = 0; r < q->rows; r++) {
    const float *xr = q->x + r * cols, *dyr = q->dy + r * cols;
    if (q->rms) {
      rms_norm_dx_row(dyr, xr, q->gamma, q->rstd[r], cols, q->dx + r * cols);
      rms_norm_acc_row(dyr, xr, q->rstd[r], 0, cols, ag);
    } else {
      layer_norm_dx_row(dyr, xr, q->gamma, q->mean[r], q->rstd[r], cols, q->dx + r * cols);
      layer_norm_acc_row(dyr, xr, q->mean[r], q->rstd[r], 0, cols, ag, ab);
    }
  }
  for (int64_t j = 0; j < cols; j++) {
    q->dgamma[j] = (float)ag[j];
    if (!q->rms) q->dbeta[j] = (float)ab[j];
  }
}

void troupe_rms_norm_forward(const float *restrict x, const float *restrict gamma, int64_t rows,
                             int64_t cols, float eps, float *restrict y, float *restrict rstd) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    f64x8 q0 = {0}, q1 = {0};
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      f64x8 v0 = wide(load8(xr + j)), v1 = wide(load8(xr + j + 8));
      q0 = madd8(q0, v0, v0);
      q1 = madd8(q1, v1, v1);
    }
    double q = lanes(q0, q1);
    for (; j < cols; j++) q += (double)xr[j] * xr[j];
    const float rs = (float)(1.0 / sqrt(q / (double)cols + eps));
    for (j = 0; j < cols; j++) yr[j] = xr[j] * rs * gamma[j];
    rstd[r] = rs;
  }
}

/* ---- the forward loops over ranges of rows or elements, across threads (ranges.h) ---- */

typedef struct {
  const float *x, *dy, *gamma, *beta;
  int64_t cols;
  float eps;
  float *y, *mean, *rstd;
  int kind; /* activations: 0 GELU tanh, 1 SiLU */
} Part;

static void layer_norm_rows(void *c, int64_t lo, int64_t hi) {
  const Part *p = c;
  const int64_t o = lo * p->cols;
  troupe_layer_norm_forward(p->x + o, p->gamma, p->beta, hi - lo, p->cols, p->eps, p->y + o,
                            p->mean + lo, p->rstd + lo);
}

static void rms_norm_rows(void *c, int64_t lo, int64_t hi) {
  const Part *p = c;
  const int64_t o = lo * p->cols;
  troupe_rms_norm_forward(p->x + o, p->gamma, hi - lo, p->cols, p->eps, p->y + o, p->rstd + lo);
}

static void activation_part(void *c, int64_t lo, int64_t hi) {
  const Part *p = c;
  if (p->kind == 0) troupe_gelu_forward(p->x + lo, p->y + lo, hi - lo);
  else troupe_silu_forward(p->x + lo, p->y + lo, hi - lo);
}

static void activation_grad_part(void *c, int64_t lo, int64_t hi) {
  const Part *p = c;
  if (p->kind == 0) gelu_backward(p->x + lo, p->dy + lo, p->y + lo, hi - lo);
  else silu_backward(p->x + lo, p->dy + lo, p->y + lo, hi - lo);
}

/* rows of `cols` floats a thread gets at least */
static inline int64_t least_rows(int64_t cols) { return (TROUPE_FOR_FLOATS + cols - 1) / cols; }

/* ---- Node-API entry points: each checks rows, cols (and eps) first, then each view ---- */

/* n doubles of workspace, or NULL with an Error thrown. */
static double *scratch(Args *a, int64_t n) {
  double *p = malloc((size_t)n * sizeof(double));
  if (!p) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: out of memory for %lld doubles", a->fn, (long long)n);
    napi_throw_error(a->env, NULL, msg);
  }
  return p;
}

#define EPS_WHAT "must be a finite number >= 0"

static napi_value layer_norm_forward_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "layerNormForward", 9)) return NULL;
  const int64_t rows = arg_int(&a, 3, "rows", 1), cols = arg_int(&a, 4, "cols", 1);
  const float eps = (float)arg_finite(&a, 5, "eps", 0, INFINITY, EPS_WHAT);
  const uint64_t n = (uint64_t)rows * cols;
  float *x = arg_f32_exact(&a, 0, "x", n, "rows·cols");
  float *gamma = arg_f32_exact(&a, 1, "gamma", cols, "cols");
  float *beta = arg_f32_exact(&a, 2, "beta", cols, "cols");
  float *y = arg_f32_exact(&a, 6, "y", n, "rows·cols");
  float *mean = arg_f32_exact(&a, 7, "mean", rows, "rows");
  float *rstd = arg_f32_exact(&a, 8, "rstd", rows, "rows");
  const View v[] = {{"y", y, n}, {"mean", mean, rows}, {"rstd", rstd, rows},
                    {"x", x, n}, {"gamma", gamma, cols}, {"beta", beta, cols}};
  args_disjoint(&a, v, 6, 3);
  if (a.failed) return NULL;
  Part p = {.x = x, .gamma = gamma, .beta = beta, .cols = cols, .eps = eps, .y = y, .mean = mean,
            .rstd = rstd};
  troupe_for(rows, 1, least_rows(cols), layer_norm_rows, &p);
  return NULL;
}

static napi_value layer_norm_backward_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "layerNormBackward", 10)) return NULL;
  const int64_t rows = arg_int(&a, 5, "rows", 1), cols = arg_int(&a, 6, "cols", 1);
  const uint64_t n = (uint64_t)rows * cols;
  float *dy = arg_f32_exact(&a, 0, "dy", n, "rows·cols");
  float *x = arg_f32_exact(&a, 1, "x", n, "rows·cols");
  float *gamma = arg_f32_exact(&a, 2, "gamma", cols, "cols");
  float *mean = arg_f32_exact(&a, 3, "mean", rows, "rows");
  float *rstd = arg_f32_exact(&a, 4, "rstd", rows, "rows");
  float *dx = arg_f32_exact(&a, 7, "dx", n, "rows·cols");
  float *dgamma = arg_f32_exact(&a, 8, "dgamma", cols, "cols");
  float *dbeta = arg_f32_exact(&a, 9, "dbeta", cols, "cols");
  const View v[] = {{"dx", dx, n},        {"dgamma", dgamma, cols}, {"dbeta", dbeta, cols},
                    {"dy", dy, n},        {"x", x, n},              {"gamma", gamma, cols},
                    {"mean", mean, rows}, {"rstd", rstd, rows}};
  args_disjoint(&a, v, 8, 3);
  if (a.failed) return NULL;
  double *acc = scratch(&a, 2 * cols);
  if (!acc) return NULL;
  const NormBack q = {dy, x, gamma, mean, rstd, rows, cols, dx, dgamma, dbeta, acc, false};
  norm_backward(&q);
  free(acc);
  return NULL;
}

static napi_value rms_norm_forward_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "rmsNormForward", 7)) return NULL;
  const int64_t rows = arg_int(&a, 2, "rows", 1), cols = arg_int(&a, 3, "cols", 1);
  const float eps = (float)arg_finite(&a, 4, "eps", 0, INFINITY, EPS_WHAT);
  const uint64_t n = (uint64_t)rows * cols;
  float *x = arg_f32_exact(&a, 0, "x", n, "rows·cols");
  float *gamma = arg_f32_exact(&a, 1, "gamma", cols, "cols");
  float *y = arg_f32_exact(&a, 5, "y", n, "rows·cols");
  float *rstd = arg_f32_exact(&a, 6, "rstd", rows, "rows");
  const View v[] = {{"y", y, n}, {"rstd", rstd, rows}, {"x", x, n}, {"gamma", gamma, cols}};
  args_disjoint(&a, v, 4, 2);
  if (a.failed) return NULL;
  Part p = {.x = x, .gamma = gamma, .cols = cols, .eps = eps, .y = y, .rstd = rstd};
  troupe_for(rows, 1, least_rows(cols), rms_norm_rows, &p);
  return NULL;
}

static napi_value rms_norm_backward_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "rmsNormBackward", 8)) return NULL;
  const int64_t rows = arg_int(&a, 4, "rows", 1), cols = arg_int(&a, 5, "cols", 1);
  const uint64_t n = (uint64_t)rows * cols;
  float *dy = arg_f32_exact(&a, 0, "dy", n, "rows·cols");
  float *x = arg_f32_exact(&a, 1, "x", n, "rows·cols");
  float *gamma = arg_f32_exact(&a, 2, "gamma", cols, "cols");
  float *rstd = arg_f32_exact(&a, 3, "rstd", rows, "rows");
  float *dx = arg_f32_exact(&a, 6, "dx", n, "rows·cols");
  float *dgamma = arg_f32_exact(&a, 7, "dgamma", cols, "cols");
  const View v[] = {{"dx", dx, n}, {"dgamma", dgamma, cols}, {"dy", dy, n},
                    {"x", x, n},   {"gamma", gamma, cols},   {"rstd", rstd, rows}};
  args_disjoint(&a, v, 6, 2);
  if (a.failed) return NULL;
  double *acc = scratch(&a, 2 * cols);
  if (!acc) return NULL;
  const NormBack q = {dy, x, gamma, NULL, rstd, rows, cols, dx, dgamma, NULL, acc, true};
  norm_backward(&q);
  free(acc);
  return NULL;
}

#define KIND_WHAT "must be 0 (GELU tanh) or 1 (SiLU)"

/* activationForward(kind, x, y); kind 0 is GELU (tanh), 1 SiLU. */
static napi_value activation_forward_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "activationForward", 3)) return NULL;
  const int64_t kind = arg_int_in(&a, 0, "kind", 0, 1, KIND_WHAT);
  size_t n;
  float *x = arg_f32(&a, 1, "x", &n);
  float *y = arg_f32_exact(&a, 2, "y", n, "x.length");
  const View v[] = {{"y", y, n}, {"x", x, n}};
  args_disjoint(&a, v, 2, 1);
  if (a.failed) return NULL;
  Part p = {.x = x, .y = y, .kind = (int)kind};
  troupe_for((int64_t)n, 64, TROUPE_FOR_FLOATS, activation_part, &p);
  return NULL;
}

/* activationBackward(kind, x, dy, dx) */
static napi_value activation_backward_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "activationBackward", 4)) return NULL;
  const int64_t kind = arg_int_in(&a, 0, "kind", 0, 1, KIND_WHAT);
  size_t n;
  float *x = arg_f32(&a, 1, "x", &n);
  float *dy = arg_f32_exact(&a, 2, "dy", n, "x.length");
  float *dx = arg_f32_exact(&a, 3, "dx", n, "x.length");
  const View v[] = {{"dx", dx, n}, {"x", x, n}, {"dy", dy, n}};
  args_disjoint(&a, v, 3, 1);
  if (a.failed) return NULL;
  Part p = {.x = x, .dy = dy, .y = dx, .kind = (int)kind};
  troupe_for((int64_t)n, 64, TROUPE_FOR_FLOATS, activation_grad_part, &p);
  return NULL;
}

static void add_part(void *c, int64_t lo, int64_t hi) {
  const Part *p = c;
  const float *restrict a = p->x, *restrict b = p->dy;
  float *restrict y = p->y;
  for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
}

/* add(a, b, y): y = a + b, elementwise over float32 views of one length (tfjs' Add of two tensors
 * of one shape: residual sums, gradient accumulation). Exported without subnormal flushing, so
 * every element is the IEEE float32 sum the stock kernels give. */
static napi_value add_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "add", 3)) return NULL;
  size_t n;
  float *x = arg_f32(&a, 0, "a", &n);
  float *b = arg_f32_exact(&a, 1, "b", n, "a.length");
  float *y = arg_f32_exact(&a, 2, "y", n, "a.length");
  const View v[] = {{"y", y, n}, {"a", x, n}, {"b", b, n}};
  args_disjoint(&a, v, 3, 1);
  if (a.failed) return NULL;
  Part p = {.x = x, .dy = b, .y = y};
  troupe_for((int64_t)n, 64, TROUPE_FOR_FLOATS, add_part, &p);
  return NULL;
}

typedef struct {
  const float *a, *b;
  float *y;
  int kind; /* 0 a + b, 1 a − b, 2 a · b, 3 a / b */
} Binary;

static void binary_part(void *c, int64_t lo, int64_t hi) {
  const Binary *p = c;
  const float *restrict a = p->a, *restrict b = p->b;
  float *restrict y = p->y;
  switch (p->kind) {
    case 0: for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i]; break;
    case 1: for (int64_t i = lo; i < hi; i++) y[i] = a[i] - b[i]; break;
    case 2: for (int64_t i = lo; i < hi; i++) y[i] = a[i] * b[i]; break;
    default: for (int64_t i = lo; i < hi; i++) y[i] = a[i] / b[i]; break;
  }
}

/* binary(kind, a, b, y): y = a ∘ b elementwise over float32 views of one length, ∘ by kind (0 +,
 * 1 −, 2 ·, 3 /), shared between the BLAS threads. Exported without subnormal flushing: each
 * element is the IEEE float32 result, which is what JavaScript's double arithmetic rounded to
 * float32 gives for these four operations (the double result of two floats rounds innocuously),
 * so the bits of tfjs' own kernels. */
static napi_value binary_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "binary", 4)) return NULL;
  const int64_t kind = arg_int_in(&a, 0, "kind", 0, 3, "must be 0 (+), 1 (-), 2 (*) or 3 (/)");
  size_t n;
  float *x = arg_f32(&a, 1, "a", &n);
  float *b = arg_f32_exact(&a, 2, "b", n, "a.length");
  float *y = arg_f32_exact(&a, 3, "y", n, "a.length");
  const View v[] = {{"y", y, n}, {"a", x, n}, {"b", b, n}};
  args_disjoint(&a, v, 3, 1);
  if (a.failed) return NULL;
  Binary p = {.a = x, .b = b, .y = y, .kind = (int)kind};
  troupe_for((int64_t)n, 64, TROUPE_FOR_FLOATS, binary_part, &p);
  return NULL;
}

typedef struct {
  const float *x;
  float *y;
  int rank;        /* output axes before the run */
  int64_t run;     /* the last axis: contiguous in x and y */
  int64_t dim[8];  /* output axis sizes (before the run) */
  int64_t step[8]; /* x's stride (elements) along each output axis */
} Permute;

/* output runs [lo, hi): the first one's source offset from its multi-index, then odometer-style */
static void permute_runs(void *c, int64_t lo, int64_t hi) {
  const Permute *p = c;
  int64_t index[8], from = 0, rest = lo;
  for (int k = p->rank - 1; k >= 0; k--) {
    index[k] = rest % p->dim[k];
    rest /= p->dim[k];
    from += index[k] * p->step[k];
  }
  for (int64_t r = lo; r < hi; r++) {
    memcpy(p->y + r * p->run, p->x + from, (size_t)p->run * sizeof(float));
    for (int k = p->rank - 1; k >= 0; k--) {
      from += p->step[k];
      if (++index[k] < p->dim[k]) break;
      from -= p->step[k] * p->dim[k];
      index[k] = 0;
    }
  }
}

/*
 * permuteRuns(x, y, shape, perm): y = transpose(x, perm) for a permutation that keeps the last
 * axis in place (perm[rank − 1] = rank − 1, rank ≤ 9), shape x's (Int32Array), as runs of the
 * last axis copied, shared between the BLAS threads. Values are moved, never computed.
 */
static napi_value permute_runs_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "permuteRuns", 4)) return NULL;
  size_t nx, ny, ns, np;
  float *x = arg_f32(&a, 0, "x", &nx);
  float *y = arg_f32(&a, 1, "y", &ny);
  int32_t *shape = arg_i32(&a, 2, "shape", &ns);
  int32_t *perm = arg_i32(&a, 3, "perm", &np);
  if (a.failed) return NULL;
  if (ns < 1 || ns > 9 || np != ns) {
    args_fail(&a, true, "shape", "must have 1 to 9 axes, as many as perm");
    return NULL;
  }
  const int rank = (int)ns;
  int64_t n = 1, stride[9];
  bool seen[9] = {false};
  for (int k = rank - 1; k >= 0; k--) {
    if (shape[k] < 1) {
      args_fail(&a, true, "shape", "must be positive sizes");
      return NULL;
    }
    stride[k] = n;
    n *= shape[k];
  }
  for (int k = 0; k < rank; k++) {
    if (perm[k] < 0 || perm[k] >= rank || seen[perm[k]]) {
      args_fail(&a, true, "perm", "must be a permutation of the axes");
      return NULL;
    }
    seen[perm[k]] = true;
  }
  if (perm[rank - 1] != rank - 1) {
    args_fail(&a, true, "perm", "must keep the last axis in place");
    return NULL;
  }
  args_need(&a, "x", nx, (uint64_t)n);
  args_need(&a, "y", ny, (uint64_t)n);
  const View v[] = {{"y", y, (size_t)n}, {"x", x, (size_t)n}};
  args_disjoint(&a, v, 2, 1);
  if (a.failed) return NULL;
  Permute p = {.x = x, .y = y, .rank = rank - 1, .run = shape[rank - 1]};
  for (int k = 0; k < rank - 1; k++) {
    p.dim[k] = shape[perm[k]];
    p.step[k] = stride[perm[k]];
  }
  troupe_for(n / p.run, 1, (TROUPE_FOR_FLOATS + p.run - 1) / p.run, permute_runs, &p);
  return NULL;
}

typedef struct {
  const float *x, *cos, *sin;
  float *y;
  int64_t heads, hd, dim;
  bool backward;
} Rope;

/*
 * Rows [lo, hi) of (b·T + t)·heads + h, each head's hd channels. Forward, with rotate_half(x) =
 * [−x₂, x₁] on the first `dim` channels:  y = x·cos + rotate_half(x)·sin;  backward (dy in x's
 * place), its transpose:  dx = dy·cos + [(dy·sin)₂, −(dy·sin)₁]. Channels past dim pass through.
 * Each value is the composite's: two products rounded to float32, then their sum (no FMA
 * contraction: fp-contract off here), the negation exact, so the bits are those of tfjs' mul,
 * neg, concat and add, and of their gradients.
 */
__attribute__((optimize("fp-contract=off"))) static void rope_rows(void *c, int64_t lo,
                                                                     int64_t hi) {
  const Rope *p = c;
  const int64_t half = p->dim / 2, dim = p->dim, hd = p->hd;
  for (int64_t r = lo; r < hi; r++) {
    const float *restrict cs = p->cos + (r / p->heads) * dim, *restrict sn = p->sin + (r / p->heads) * dim;
    const float *restrict x = p->x + r * hd;
    float *restrict y = p->y + r * hd;
    if (!p->backward) {
      for (int64_t j = 0; j < half; j++) {
        const float a = x[j] * cs[j], b = -x[j + half] * sn[j];
        y[j] = a + b;
      }
      for (int64_t j = half; j < dim; j++) {
        const float a = x[j] * cs[j], b = x[j - half] * sn[j];
        y[j] = a + b;
      }
    } else {
      for (int64_t j = 0; j < half; j++) {
        const float a = x[j] * cs[j], b = x[j + half] * sn[j + half];
        y[j] = a + b;
      }
      for (int64_t j = half; j < dim; j++) {
        const float a = x[j] * cs[j], b = -(x[j - half] * sn[j - half]);
        y[j] = a + b;
      }
    }
    if (dim < hd) memcpy(y + dim, x + dim, (size_t)(hd - dim) * sizeof(float));
  }
}

/*
 * rope(x, cos, sin, y, rows, heads, headDim, dim, backward): rotary position embeddings in the
 * Hugging Face rotate-half layout over x [rows, heads, headDim] (rows = B·T) with cos, sin
 * [rows, dim] (one row of the tables per token, shared by its heads; dim even, ≤ headDim), into
 * y of x's length; backward 1: x is the output's gradient and y the input's (the transpose).
 */
static napi_value rope_js(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "rope", 9)) return NULL;
  size_t nx, nc, ns, ny;
  float *x = arg_f32(&a, 0, "x", &nx);
  float *cs = arg_f32(&a, 1, "cos", &nc);
  float *sn = arg_f32(&a, 2, "sin", &ns);
  float *y = arg_f32(&a, 3, "y", &ny);
  const int64_t rows = arg_int(&a, 4, "rows", 1);
  const int64_t heads = arg_int(&a, 5, "heads", 1);
  const int64_t hd = arg_int(&a, 6, "headDim", 1);
  const int64_t dim = arg_int_in(&a, 7, "dim", 2, hd, "must be an even number from 2 to headDim");
  const bool backward = arg_int_in(&a, 8, "backward", 0, 1, "must be 0 or 1") == 1;
  if (!a.failed && dim % 2 != 0) args_fail(&a, true, "dim", "must be an even number from 2 to headDim");
  if (a.failed) return NULL;
  const uint64_t n = mul_sat(mul_sat(rows, heads), hd), tab = mul_sat(rows, dim);
  if (nx != n) args_fail(&a, true, "x", "must have rows·heads·headDim elements");
  if (ny != n) args_fail(&a, true, "y", "must have rows·heads·headDim elements");
  if (nc != tab) args_fail(&a, true, "cos", "must have rows·dim elements");
  if (ns != tab) args_fail(&a, true, "sin", "must have rows·dim elements");
  const View v[] = {{"y", y, n}, {"x", x, n}, {"cos", cs, tab}, {"sin", sn, tab}};
  args_disjoint(&a, v, 4, 1);
  if (a.failed) return NULL;
  Rope p = {.x = x, .cos = cs, .sin = sn, .y = y, .heads = heads, .hd = hd, .dim = dim,
            .backward = backward};
  troupe_for(rows * heads, 1, (TROUPE_FOR_FLOATS + hd - 1) / hd, rope_rows, &p);
  return NULL;
}

bool troupe_define_fused(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT("layerNormForward", layer_norm_forward_js),
      TROUPE_EXPORT("layerNormBackward", layer_norm_backward_js),
      TROUPE_EXPORT("rmsNormForward", rms_norm_forward_js),
      TROUPE_EXPORT("rmsNormBackward", rms_norm_backward_js),
      TROUPE_EXPORT("activationForward", activation_forward_js),
      TROUPE_EXPORT("activationBackward", activation_backward_js),
      TROUPE_EXPORT_EXACT("add", add_js),
      TROUPE_EXPORT_EXACT("permuteRuns", permute_runs_js),
      TROUPE_EXPORT_EXACT("rope", rope_js),
      TROUPE_EXPORT_EXACT("binary", binary_js),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
