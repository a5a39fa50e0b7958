/*
 * Argument checks for the addon's entry points: each call's arguments are read in order, and the
 * first bad one throws (a TypeError or RangeError naming the function and the argument); later
 * reads are no-ops once one has failed, so an entry point checks everything and then tests
 * `a.failed` once.
 */
#ifndef TROUPE_NATIVE_ARGS_H
#define TROUPE_NATIVE_ARGS_H
#include <stdio.h>

#include "common.h"

#define ARGS_MAX 16

/* The arguments of one call, checked in order; the first bad one throws, naming itself. */
typedef struct {
  napi_env env;
  const char *fn;
  napi_value argv[ARGS_MAX];
  size_t argc;
  bool failed;
} Args;

static inline bool args_init(Args *a, napi_env env, napi_callback_info info, const char *fn, size_t n) {
  a->env = env;
  a->fn = fn;
  a->argc = ARGS_MAX;
  a->failed = false;
  if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok) return false;
  if (a->argc != n) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s takes %zu arguments, got %zu", fn, n, a->argc);
    fail(env, false, msg);
    return false;
  }
  return true;
}

static inline void args_fail(Args *a, bool range, const char *name, const char *what) {
  if (a->failed) return;
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s %s", a->fn, name, what);
  fail(a->env, range, msg);
  a->failed = true;
}

/* A Float32Array of at least `need` elements (checked later by args_need). */
static inline float *arg_f32(Args *a, size_t i, const char *name, size_t *len) {
  float *p = NULL;
  if (!a->failed && !get_f32(a->env, a->argv[i], &p, len))
    args_fail(a, false, name, "must be a Float32Array");
  return p;
}

/* Element `index` of an array argument, a Float32Array. */
static inline float *arg_f32_at(Args *a, size_t i, uint32_t index, const char *name, size_t *len) {
  napi_value item;
  float *p = NULL;
  if (a->failed) return NULL;
  if (napi_get_element(a->env, a->argv[i], index, &item) != napi_ok ||
      !get_f32(a->env, item, &p, len))
    args_fail(a, false, name, "must be a Float32Array");
  return p;
}

static inline int32_t *arg_i32(Args *a, size_t i, const char *name, size_t *len) {
  if (a->failed) return NULL;
  bool is;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(a->env, a->argv[i], &is) != napi_ok || !is ||
      napi_get_typedarray_info(a->env, a->argv[i], &type, len, &ptr, NULL, NULL) != napi_ok ||
      type != napi_int32_array) {
    args_fail(a, false, name, "must be an Int32Array");
    return NULL;
  }
  return (int32_t *)ptr;
}

static inline int64_t arg_int(Args *a, size_t i, const char *name, int64_t min) {
  int64_t v = 0;
  if (!a->failed && (!get_int(a->env, a->argv[i], &v) || v < min || v > INT32_MAX)) {
    char what[64];
    snprintf(what, sizeof what, "must be an integer in [%lld, 2^31)", (long long)min);
    args_fail(a, true, name, what);
  }
  return v;
}

static inline double arg_num(Args *a, size_t i, const char *name) {
  double v = 0;
  if (!a->failed && (!get_double(a->env, a->argv[i], &v) || v != v))
    args_fail(a, false, name, "must be a number");
  return v;
}

static inline void args_need(Args *a, const char *name, size_t len, uint64_t need) {
  if (a->failed || len >= need) return;
  char what[96];
  snprintf(what, sizeof what, "has %zu elements, needs %llu", len, (unsigned long long)need);
  args_fail(a, true, name, what);
}

#endif
