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

/* Each adds its functions to `exports`; false when a Node-API call failed (an error is pending). */
bool troupe_define_fused(napi_env env, napi_value exports); /* fused.c: norms, activations, softmax */
bool troupe_define_host(napi_env env, napi_value exports);  /* host.c: optimizer-side loops */

#endif
