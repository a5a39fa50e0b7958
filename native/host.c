/*
 * Loops over host float32 arrays for the optimizer step: gradient accumulation, the global norm,
 * clipping and AdamW. The arrays may be views into the wasm backend's heap.
 *
 * The arithmetic is the JS path's (src/policy/train-step.ts, AdamW.stepOnHost): float32 storage,
 * each expression evaluated in double in the same order and rounded once when stored, so the
 * results equal it bit for bit. That needs no fused multiply-add: -march=native allows GCC to
 * contract a·b + c into one (rounded once instead of twice), hence the pragmas. sumSquares is the
 * exception: it adds in a different order (independent partial sums), so its double result can
 * differ from a sequential sum in the last bits.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "common.h"

/* y[offset + i] += alpha·x[i]: the JS `y[o + i] += x[i] * alpha`, rounded once to float. */
static void axpy_loop(float *restrict y, const float *restrict x, size_t n, double alpha) {
  for (size_t i = 0; i < n; i++) y[i] = (float)((double)y[i] + (double)x[i] * alpha);
}

/* axpy(y, offset, x, alpha): y[offset + i] += alpha·x[i]. */
static napi_value axpy(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "axpy", 4, 4)) return NULL;
  size_t ny, nx;
  float *y = arg_f32(&a, 0, "y", &ny);
  const int64_t offset = arg_int_in(&a, 1, "offset", 0, INT64_MAX, "must be an integer >= 0");
  const float *x = arg_f32(&a, 2, "x", &nx);
  const double alpha = arg_double(&a, 3, "alpha");
  args_need_expr(&a, "y", ny, (uint64_t)offset + nx, "offset + x.length");
  if (a.failed) return NULL;
  const View v[] = {{"x", x, nx}, {"y", y + offset, nx}}; /* x first: "x overlaps y" */
  args_disjoint(&a, v, 2, 1);
  if (a.failed) return NULL;
  axpy_loop(y + offset, x, nx, alpha);
  return NULL;
}

/*
 * Σ x[i]² in double over 16 independent partial sums (vectorisable without reassociating a single
 * chain), added pairwise at the end; deterministic for a given length.
 */
static double sum_squares_loop(const float *restrict x, size_t n) {
  enum { W = 16 };
  double acc[W] = {0};
  size_t i = 0;
  for (; i + W <= n; i += W)
    for (size_t j = 0; j < W; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
  for (size_t j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
  for (size_t w = W / 2; w > 0; w /= 2)
    for (size_t j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

static napi_value sum_squares(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "sumSquares", 1, 1)) return NULL;
  size_t n;
  const float *x = arg_f32(&a, 0, "x", &n);
  if (a.failed) return NULL;
  napi_value out;
  CHECK(napi_create_double(env, sum_squares_loop(x, n), &out));
  return out;
}

static void scale_loop(float *restrict x, size_t n, double alpha) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * alpha);
}

static napi_value scale(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "scale", 2, 2)) return NULL;
  size_t n;
  float *x = arg_f32(&a, 0, "x", &n);
  const double alpha = arg_double(&a, 1, "alpha");
  if (a.failed) return NULL;
  scale_loop(x, n, alpha);
  return NULL;
}

typedef struct {
  double b1, c1, b2, c2, shrink, step, sbc2, eps, gscale;
} AdamW;

/*
 * AdamW over [0, n) in blocks: each block is read whole into locals and then written, so an output
 * may be its own input (in place) and the compiler needs no alias checks to vectorise. Per element,
 * as AdamW.stepOnHost: g = float(g·gscale) (the clipped gradient, as stored), then
 *   m = float(β₁m + (1−β₁)g),  v = float(β₂v + (1−β₂)g·g),
 *   p = float(p·shrink − step·m/(√v/√bc2 + ε)),  shrink = 1 − lr·wd, step = lr/bc1.
 */
static void adamw_loop(const AdamW *a, const float *p, const float *g, const float *m,
                       const float *v, float *po, float *mo, float *vo, size_t n) {
  enum { B = 512 };
  float pb[B], mb[B], vb[B];
  const double b1 = a->b1, c1 = a->c1, b2 = a->b2, c2 = a->c2, shrink = a->shrink;
  const double step = a->step, sbc2 = a->sbc2, eps = a->eps, gscale = a->gscale;
  for (size_t at = 0; at < n; at += B) {
    const size_t k = n - at < B ? n - at : B;
    for (size_t i = 0; i < k; i++) {
      const double gi = (double)(float)((double)g[at + i] * gscale);
      const float mi = (float)(b1 * (double)m[at + i] + c1 * gi);
      const float vi = (float)(b2 * (double)v[at + i] + c2 * gi * gi);
      mb[i] = mi;
      vb[i] = vi;
      const double pi = (double)p[at + i];
      pb[i] = (float)(pi * shrink - (step * (double)mi) / (sqrt((double)vi) / sbc2 + eps));
    }
    memcpy(po + at, pb, k * sizeof(float));
    memcpy(mo + at, mb, k * sizeof(float));
    memcpy(vo + at, vb, k * sizeof(float));
  }
}

/* adamw_loop over a range of whole blocks per thread: every element is updated on its own, so the
 * split changes no bit. */
typedef struct {
  const AdamW *w;
  float *const *arr; /* param, grad, m, v, paramOut, mOut, vOut */
  size_t n;
} AdamWTask;

static void adamw_task(void *ctx, int t, int threads) {
  const AdamWTask *q = ctx;
  const size_t blocks = (q->n + 511) / 512;
  const size_t lo = blocks * (size_t)t / (size_t)threads * 512;
  size_t hi = blocks * (size_t)(t + 1) / (size_t)threads * 512;
  if (hi > q->n) hi = q->n;
  if (lo >= hi) return;
  float *const *a = q->arr;
  adamw_loop(q->w, a[0] + lo, a[1] + lo, a[2] + lo, a[3] + lo, a[4] + lo, a[5] + lo, a[6] + lo,
             hi - lo);
}

/* Threads for an AdamW pass over n values: the BLAS count (setThreads), one per 2^16 at most
 * (a GPT-2-sized update, 124 M values x 7 arrays, is bound by memory bandwidth: one core does
 * not reach it). */
static int adamw_threads(size_t n) {
  const size_t most = n >> 16;
  const int want = troupe_threads();
  return most < 1 ? 1 : most < (size_t)want ? (int)most : want;
}

/*
 * adamwStep(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2[, gradScale = 1
 *           [, paramOut, mOut, vOut]]): the outputs default to their inputs (an update in place).
 */
static napi_value adamw_step(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "adamwStep", 11, 15)) return NULL;
  /* The arrays by role; paramOut, mOut and vOut are arguments 12 to 14. */
  static const char *const names[7] = {"param", "grad", "m", "v", "paramOut", "mOut", "vOut"};
  static const int input_of[7] = {0, 1, 2, 3, 0, 2, 3};
  float *arr[7];
  size_t len[7];
  for (int i = 0; i < 4; i++) arr[i] = arg_f32(&a, i, names[i], &len[i]);
  const double lr = arg_double(&a, 4, "lr"), b1 = arg_double(&a, 5, "beta1");
  const double b2 = arg_double(&a, 6, "beta2"), eps = arg_double(&a, 7, "eps");
  const double wd = arg_double(&a, 8, "weightDecay"), bc1 = arg_double(&a, 9, "bc1");
  const double bc2 = arg_double(&a, 10, "bc2");
  const double gscale = a.argc > 11 ? arg_double(&a, 11, "gradScale") : 1;
  for (int i = 4; i < 7; i++) {
    arr[i] = arr[input_of[i]];
    len[i] = len[input_of[i]];
    if (a.argc > (size_t)(8 + i)) arr[i] = arg_f32(&a, 8 + i, names[i], &len[i]);
  }
  const size_t n = len[0];
  for (int i = 1; i < 7 && !a.failed; i++) {
    if (len[i] == n) continue;
    char what[96];
    snprintf(what, sizeof what, "has length %zu, param has %zu", len[i], n);
    args_fail(&a, true, names[i], what);
  }
  /* The inputs are distinct; an output is its own input (left out here) or shares memory with
   * nothing. */
  View v[7];
  int nv = 0;
  for (int i = 0; i < 7; i++)
    if (i < 4 || arr[i] != arr[input_of[i]]) v[nv++] = (View){names[i], arr[i], n};
  args_disjoint(&a, v, nv, nv);
  if (!(b1 >= 0 && b1 < 1)) args_fail(&a, true, "beta1", "must be in [0, 1)");
  if (!(b2 >= 0 && b2 < 1)) args_fail(&a, true, "beta2", "must be in [0, 1)");
  if (!(bc1 > 0 && bc1 <= 1)) args_fail(&a, true, "bc1", "must be in (0, 1]");
  if (!(bc2 > 0 && bc2 <= 1)) args_fail(&a, true, "bc2", "must be in (0, 1]");
  if (a.failed) return NULL;
  const AdamW w = {
      .b1 = b1,
      .c1 = 1 - b1,
      .b2 = b2,
      .c2 = 1 - b2,
      .shrink = wd != 0 ? 1 - lr * wd : 1,
      .step = lr / bc1,
      .sbc2 = sqrt(bc2),
      .eps = eps,
      .gscale = gscale,
  };
  const AdamWTask q = {&w, arr, n};
  troupe_parallel(adamw_threads(n), adamw_task, (void *)&q);
  return NULL;
}

bool troupe_define_host(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT_EXACT("axpy", axpy),
      TROUPE_EXPORT_EXACT("sumSquares", sum_squares),
      TROUPE_EXPORT_EXACT("scale", scale),
      TROUPE_EXPORT_EXACT("adamwStep", adamw_step),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
