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

/*
 * expf that vectorises (the loops that call it compile to AVX2/AVX-512 without -ffast-math):
 * e^x = 2^n·e^r with n = round(x/ln 2), r = x − n·ln 2 (ln 2 split in two for precision), e^r by
 * its degree-6 Taylor polynomial on |r| ≤ ln2/2, 2^n built in the exponent bits. Relative error
 * < 2e-7 (about 2 ulp) on [−87, 88]; below −87.3 it returns 0, above 88.3 +inf; NaN stays NaN.
 */
static inline float troupe_expf(float x) {
  const float hi = 88.3f, lo = -87.3f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // round to nearest by adding and removing 1.5·2²³ (vectorises; roundf is a libm call)
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  union { float f; int32_t i; } scale = {.i = ((int32_t)n + 127) << 23};
  float out = p * scale.f;
  out = x < lo ? 0.0f : out;
  out = x > hi ? __builtin_inff() : out;
  return x != x ? x : out;
}

/* Each adds its functions to `exports`; false when a Node-API call failed (an error is pending). */
bool troupe_define_fused(napi_env env, napi_value exports); /* fused.c: norms, activations, softmax */
bool troupe_define_host(napi_env env, napi_value exports);  /* host.c: optimizer-side loops */
bool troupe_define_rows(napi_env env, napi_value exports);  /* rows.c: softmax rows, sums */

#endif
