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

#include "common.h"

/* Whether [a, a + na) and [b, b + nb) share memory. */
static bool overlaps(const float *a, size_t na, const float *b, size_t nb) {
  return na > 0 && nb > 0 && a < b + nb && b < a + na;
}

static napi_value throwf(napi_env env, bool range, const char *fn, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", fn, what);
  return fail(env, range, msg);
}

/* Reads argv[i] as a Float32Array, or throws a TypeError naming it. */
#define ARG_F32(i, name, ptr, len)                                                                 \
  do {                                                                                             \
    if (!get_f32(env, argv[i], &(ptr), &(len)))                                                    \
      return throwf(env, false, FN, name " must be a Float32Array");                               \
  } while (0)

/* Reads argv[i] as a number, or throws a TypeError naming it. */
#define ARG_NUM(i, name, out)                                                                      \
  do {                                                                                             \
    if (!get_double(env, argv[i], &(out))) return throwf(env, false, FN, name " must be a number"); \
  } while (0)

/* Takes min to max arguments (the rest optional), or throws a TypeError. */
#define ARGS(min, max)                                                                             \
  size_t argc = (max);                                                                             \
  napi_value argv[(max)];                                                                          \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));                                     \
  if (argc < (min) || argc > (max)) {                                                              \
    return throwf(env, false, FN, (min) == (max) ? "takes " #min " arguments"                      \
                                                 : "takes " #min " to " #max " arguments");        \
  }

/* y[offset + i] += alpha·x[i]: the JS `y[o + i] += x[i] * alpha`, rounded once to float. */
static void axpy_loop(float *restrict y, const float *restrict x, size_t n, double alpha) {
  for (size_t i = 0; i < n; i++) y[i] = (float)((double)y[i] + (double)x[i] * alpha);
}

#define FN "axpy"
static napi_value axpy(napi_env env, napi_callback_info info) {
  ARGS(4, 4);
  float *y, *x;
  size_t ny, nx;
  int64_t offset;
  double alpha;
  ARG_F32(0, "y", y, ny);
  if (!get_int(env, argv[1], &offset) || offset < 0)
    return throwf(env, true, FN, "offset must be an integer >= 0");
  ARG_F32(2, "x", x, nx);
  ARG_NUM(3, "alpha", alpha);
  if ((uint64_t)offset > ny || nx > ny - (size_t)offset)
    return throwf(env, true, FN, "y is shorter than offset + x.length");
  if (overlaps(y + offset, nx, x, nx)) return throwf(env, true, FN, "x overlaps y");
  axpy_loop(y + offset, x, nx, alpha);
  return NULL;
}
#undef FN

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

#define FN "sumSquares"
static napi_value sum_squares(napi_env env, napi_callback_info info) {
  ARGS(1, 1);
  float *x;
  size_t n;
  ARG_F32(0, "x", x, n);
  napi_value out;
  CHECK(napi_create_double(env, sum_squares_loop(x, n), &out));
  return out;
}
#undef FN

static void scale_loop(float *restrict x, size_t n, double alpha) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * alpha);
}

#define FN "scale"
static napi_value scale(napi_env env, napi_callback_info info) {
  ARGS(2, 2);
  float *x;
  size_t n;
  double alpha;
  ARG_F32(0, "x", x, n);
  ARG_NUM(1, "alpha", alpha);
  scale_loop(x, n, alpha);
  return NULL;
}
#undef FN

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

#define FN "adamwStep"
static napi_value adamw_step(napi_env env, napi_callback_info info) {
  ARGS(11, 15);
  /* The arrays by role; paramOut, mOut and vOut are arguments 12 to 14. */
  static const char *names[7] = {"param", "grad", "m", "v", "paramOut", "mOut", "vOut"};
  float *arr[7];
  size_t len[7];
  for (int i = 0; i < 4; i++) {
    if (!get_f32(env, argv[i], &arr[i], &len[i])) {
      char what[64];
      snprintf(what, sizeof what, "%s must be a Float32Array", names[i]);
      return throwf(env, false, FN, what);
    }
  }
  static const char *scalars[] = {"lr", "beta1", "beta2", "eps", "weightDecay", "bc1", "bc2",
                                  "gradScale"};
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 1};
  for (size_t i = 0; i < 8 && 4 + i < argc; i++) {
    if (!get_double(env, argv[4 + i], &s[i])) {
      char what[64];
      snprintf(what, sizeof what, "%s must be a number", scalars[i]);
      return throwf(env, false, FN, what);
    }
  }
  /* Outputs (paramOut, mOut, vOut) default to their inputs: an update in place. */
  const int input_of[7] = {0, 1, 2, 3, 0, 2, 3};
  for (int i = 4; i < 7; i++) {
    if ((size_t)(8 + i) < argc) {
      if (!get_f32(env, argv[8 + i], &arr[i], &len[i])) {
        char what[64];
        snprintf(what, sizeof what, "%s must be a Float32Array", names[i]);
        return throwf(env, false, FN, what);
      }
    } else {
      arr[i] = arr[input_of[i]];
      len[i] = len[input_of[i]];
    }
  }
  const size_t n = len[0];
  for (int i = 1; i < 7; i++) {
    if (len[i] != n) {
      char what[96];
      snprintf(what, sizeof what, "%s has length %zu, param has %zu", names[i], len[i], n);
      return throwf(env, true, FN, what);
    }
  }
  /* The inputs are distinct; an output is its own input or shares memory with nothing. */
  for (int i = 0; i < 7; i++) {
    for (int j = i + 1; j < 7; j++) {
      const bool same_role = j >= 4 && input_of[j] == i;
      if (same_role ? (arr[i] != arr[j] && overlaps(arr[i], n, arr[j], n))
                    : overlaps(arr[i], n, arr[j], n)) {
        char what[96];
        snprintf(what, sizeof what, "%s overlaps %s", names[i], names[j]);
        return throwf(env, true, FN, what);
      }
    }
  }
  const double lr = s[0], b1 = s[1], b2 = s[2], eps = s[3], wd = s[4], bc1 = s[5], bc2 = s[6];
  if (!(b1 >= 0 && b1 < 1)) return throwf(env, true, FN, "beta1 must be in [0, 1)");
  if (!(b2 >= 0 && b2 < 1)) return throwf(env, true, FN, "beta2 must be in [0, 1)");
  if (!(bc1 > 0 && bc1 <= 1)) return throwf(env, true, FN, "bc1 must be in (0, 1]");
  if (!(bc2 > 0 && bc2 <= 1)) return throwf(env, true, FN, "bc2 must be in (0, 1]");
  const AdamW a = {
      .b1 = b1,
      .c1 = 1 - b1,
      .b2 = b2,
      .c2 = 1 - b2,
      .shrink = wd != 0 ? 1 - lr * wd : 1,
      .step = lr / bc1,
      .sbc2 = sqrt(bc2),
      .eps = eps,
      .gscale = s[7],
  };
  adamw_loop(&a, arr[0], arr[1], arr[2], arr[3], arr[4], arr[5], arr[6], n);
  return NULL;
}
#undef FN

bool troupe_define_host(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"axpy", NULL, axpy, NULL, NULL, NULL, napi_default, NULL},
      {"sumSquares", NULL, sum_squares, NULL, NULL, NULL, napi_default, NULL},
      {"scale", NULL, scale, NULL, NULL, NULL, napi_default, NULL},
      {"adamwStep", NULL, adamw_step, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
