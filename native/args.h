/*
 * Argument checks for the addon's entry points: each call's arguments are read in order, and the
 * first bad one throws (a TypeError or RangeError naming the function and the argument); later
 * reads are no-ops once one has failed, so an entry point checks everything and then tests
 * `a.failed` once.
 */
#ifndef TROUPE_NATIVE_ARGS_H
#define TROUPE_NATIVE_ARGS_H
#include <math.h>
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

/* Reads the call's arguments, however many (argv past argc holds undefined). */
static inline bool args_read(Args *a, napi_env env, napi_callback_info info, const char *fn) {
  a->env = env;
  a->fn = fn;
  a->argc = ARGS_MAX;
  a->failed = false;
  return napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) == napi_ok;
}

/* Exactly n arguments, else a TypeError "fn takes n arguments, got argc". */
static inline bool args_init(Args *a, napi_env env, napi_callback_info info, const char *fn,
                             size_t n) {
  if (!args_read(a, env, info, fn)) return false;
  if (a->argc != n) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s takes %zu arguments, got %zu", fn, n, a->argc);
    fail(env, false, msg);
    return false;
  }
  return true;
}

/* min to max arguments (a->argc says how many came), else a TypeError "fn: takes min to max
 * arguments" ("fn: takes n arguments" where min = max). */
static inline bool args_init_range(Args *a, napi_env env, napi_callback_info info, const char *fn,
                                   size_t min, size_t max) {
  if (!args_read(a, env, info, fn)) return false;
  if (a->argc < min || a->argc > max) {
    char msg[96];
    if (min == max) snprintf(msg, sizeof msg, "%s: takes %zu arguments", fn, min);
    else snprintf(msg, sizeof msg, "%s: takes %zu to %zu arguments", fn, min, max);
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
  *len = 0;
  if (!a->failed && !get_f32(a->env, a->argv[i], &p, len))
    args_fail(a, false, name, "must be a Float32Array");
  return p;
}

/* A Float32Array of exactly `need` elements, else a RangeError "name has len elements, expected
 * need (needs)": `needs` spells need ("rows·cols"). */
static inline float *arg_f32_exact(Args *a, size_t i, const char *name, uint64_t need,
                                   const char *needs) {
  size_t len;
  float *p = arg_f32(a, i, name, &len);
  if (!a->failed && len != need) {
    char what[128];
    snprintf(what, sizeof what, "has %zu elements, expected %llu (%s)", len,
             (unsigned long long)need, needs);
    args_fail(a, true, name, what);
  }
  return p;
}

/* Element `index` of an array argument, a Float32Array. */
static inline float *arg_f32_at(Args *a, size_t i, uint32_t index, const char *name, size_t *len) {
  napi_value item;
  float *p = NULL;
  *len = 0;
  if (a->failed) return NULL;
  if (napi_get_element(a->env, a->argv[i], index, &item) != napi_ok ||
      !get_f32(a->env, item, &p, len))
    args_fail(a, false, name, "must be a Float32Array");
  return p;
}

/* A typed array of `type`, else a TypeError "name must be <what>". */
static inline void *arg_typed(Args *a, size_t i, const char *name, napi_typedarray_type want,
                              const char *what, size_t *len) {
  *len = 0;
  if (a->failed) return NULL;
  bool is;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_is_typedarray(a->env, a->argv[i], &is) != napi_ok || !is ||
      napi_get_typedarray_info(a->env, a->argv[i], &type, len, &ptr, NULL, NULL) != napi_ok ||
      type != want) {
    args_fail(a, false, name, what);
    return NULL;
  }
  return ptr;
}

/* An Int32Array, else a TypeError. */
static inline int32_t *arg_i32(Args *a, size_t i, const char *name, size_t *len) {
  return (int32_t *)arg_typed(a, i, name, napi_int32_array, "must be an Int32Array", len);
}

/* A Float64Array, else a TypeError. */
static inline double *arg_f64(Args *a, size_t i, const char *name, size_t *len) {
  return (double *)arg_typed(a, i, name, napi_float64_array, "must be a Float64Array", len);
}

/* An integer in [min, 2^31), else a RangeError. */
static inline int64_t arg_int(Args *a, size_t i, const char *name, int64_t min) {
  int64_t v = 0;
  if (!a->failed && (!get_int(a->env, a->argv[i], &v) || v < min || v > INT32_MAX)) {
    char what[64];
    snprintf(what, sizeof what, "must be an integer in [%lld, 2^31)", (long long)min);
    args_fail(a, true, name, what);
  }
  return v;
}

/* An integer in [min, max], else a RangeError "name what". */
static inline int64_t arg_int_in(Args *a, size_t i, const char *name, int64_t min, int64_t max,
                                 const char *what) {
  int64_t v = 0;
  if (!a->failed && (!get_int(a->env, a->argv[i], &v) || v < min || v > max))
    args_fail(a, true, name, what);
  return v;
}

/* A boolean, else a TypeError. */
static inline bool arg_bool(Args *a, size_t i, const char *name) {
  bool v = false;
  if (!a->failed && napi_get_value_bool(a->env, a->argv[i], &v) != napi_ok)
    args_fail(a, false, name, "must be a boolean");
  return v;
}

/* A number, NaN included, else a TypeError. */
static inline double arg_double(Args *a, size_t i, const char *name) {
  double v = 0;
  if (!a->failed && !get_double(a->env, a->argv[i], &v))
    args_fail(a, false, name, "must be a number");
  return v;
}

/* A number other than NaN, else a TypeError. */
static inline double arg_num(Args *a, size_t i, const char *name) {
  const double v = arg_double(a, i, name);
  if (v != v) args_fail(a, false, name, "must be a number");
  return v;
}

/* A finite number in [min, max], else (a non-number too) a RangeError "name what". */
static inline double arg_finite(Args *a, size_t i, const char *name, double min, double max,
                                const char *what) {
  double v = 0;
  if (!a->failed &&
      (!get_double(a->env, a->argv[i], &v) || !isfinite(v) || !(v >= min && v <= max)))
    args_fail(a, true, name, what);
  return v;
}

/*
 * a·b and a + b, saturating at UINT64_MAX instead of wrapping: element counts are products of
 * arguments up to 2^31 each, and a wrapped count would pass a length check and let a kernel write
 * past its view.
 */
static inline uint64_t mul_sat(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static inline uint64_t add_sat(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* At least `need` elements, else a RangeError "name has len elements, needs need". */
static inline void args_need(Args *a, const char *name, size_t len, uint64_t need) {
  if (a->failed || len >= need) return;
  char what[96];
  snprintf(what, sizeof what, "has %zu elements, needs %llu", len, (unsigned long long)need);
  args_fail(a, true, name, what);
}

/* args_need, but the RangeError reads "name is shorter than expr" (expr spells need). */
static inline void args_need_expr(Args *a, const char *name, size_t len, uint64_t need,
                                  const char *expr) {
  if (a->failed || len >= need) return;
  char what[96];
  snprintf(what, sizeof what, "is shorter than %s", expr);
  args_fail(a, true, name, what);
}

/* A float32 view an entry point reads or writes, for args_disjoint. */
typedef struct {
  const char *name;
  const float *p;
  uint64_t n;
} View;

/* The first n_out views (the outputs) share no memory with each other or any later view, else a
 * RangeError "first overlaps second (outputs must not share memory)", naming the pair in order. */
static inline void args_disjoint(Args *a, const View *v, int n, int n_out) {
  for (int i = 0; i < n_out && !a->failed; i++)
    for (int j = i + 1; j < n; j++) {
      const uintptr_t i0 = (uintptr_t)v[i].p, i1 = (uintptr_t)(v[i].p + v[i].n);
      const uintptr_t j0 = (uintptr_t)v[j].p, j1 = (uintptr_t)(v[j].p + v[j].n);
      if (v[i].n == 0 || v[j].n == 0 || i1 <= j0 || j1 <= i0) continue;
      char what[96];
      snprintf(what, sizeof what, "overlaps %s (outputs must not share memory)", v[j].name);
      args_fail(a, true, v[i].name, what);
      return;
    }
}


/* The arguments of a linear export (x, w, bias, rows, in, out, y): y [rows, out] = x·W + bias,
 * W [in, out] row-major, an empty bias none (then NULL), every length checked. */
typedef struct {
  const float *x, *w, *bias;
  float *y;
  int64_t R, I, O;
} DenseLinearArgs;

static inline bool args_dense_linear(Args *a, napi_env env, napi_callback_info info, const char *fn,
                               DenseLinearArgs *l) {
  if (!args_init(a, env, info, fn, 7)) return false;
  size_t lx, lw, lb, ly;
  l->x = arg_f32(a, 0, "x", &lx);
  l->w = arg_f32(a, 1, "w", &lw);
  l->bias = arg_f32(a, 2, "bias", &lb);
  l->R = arg_int(a, 3, "rows", 1);
  l->I = arg_int(a, 4, "in", 1);
  l->O = arg_int(a, 5, "out", 1);
  l->y = arg_f32(a, 6, "y", &ly);
  if (a->failed) return false;
  args_need_expr(a, "x", lx, mul_sat(l->R, l->I), "rows·in");
  args_need_expr(a, "w", lw, mul_sat(l->I, l->O), "in·out");
  if (lb != 0) args_need_expr(a, "bias", lb, (uint64_t)l->O, "out");
  args_need_expr(a, "y", ly, mul_sat(l->R, l->O), "rows·out");
  if (lb == 0) l->bias = NULL;
  return !a->failed;
}

/*
 * The arguments of a strided products export (ta, tb, dims, a, la, b, lb, c, lc): for b < B,
 * h < H, C_bh [M, N] = op(A_bh)·op(B_bh), X_bh = x + b·lx[0] + h·lx[1], rows lx[2] apart;
 * dims = [B, H, M, N, K] (all ≥ 1, M above min_m − 1: `dims_rule` says so when it is not), la,
 * lb, lc = [per b, per h, leading dimension] (Int32Arrays, ≥ 0, each leading dimension at least
 * its rows' length), every operand long enough for its products and c apart from a and b.
 */
typedef struct {
  bool ta, tb;
  int64_t B, H, M, N, K;
  int64_t la[3], lb[3], lc[3];
  const float *a, *b;
  float *c;
} StridedArgs;

/* the elements product (b, h)'s matrix spans: rows·ld wide, the last row cols long */
static inline uint64_t strided_span(int64_t B, int64_t H, const int64_t *l, int64_t rows,
                                    int64_t cols) {
  return add_sat(add_sat(mul_sat(B - 1, l[0]), mul_sat(H - 1, l[1])),
                 add_sat(mul_sat(rows - 1, l[2]), cols));
}

static inline bool args_strided(Args *a, napi_env env, napi_callback_info info, const char *fn,
                                int64_t min_m, const char *dims_rule, StridedArgs *s) {
  if (!args_init(a, env, info, fn, 9)) return false;
  s->ta = arg_bool(a, 0, "transA");
  s->tb = arg_bool(a, 1, "transB");
  size_t ld, lA, lla, lB, llb, lC, llc;
  const int32_t *d = arg_i32(a, 2, "dims", &ld);
  s->a = arg_f32(a, 3, "a", &lA);
  const int32_t *la = arg_i32(a, 4, "la", &lla);
  s->b = arg_f32(a, 5, "b", &lB);
  const int32_t *lb = arg_i32(a, 6, "lb", &llb);
  s->c = arg_f32(a, 7, "c", &lC);
  const int32_t *lc = arg_i32(a, 8, "lc", &llc);
  if (a->failed) return false;
  if (ld != 5 || lla != 3 || llb != 3 || llc != 3) {
    args_fail(a, true, "dims", "must be [B, H, M, N, K] and la, lb, lc 3 values each");
    return false;
  }
  s->B = d[0], s->H = d[1], s->M = d[2], s->N = d[3], s->K = d[4];
  if (s->B < 1 || s->H < 1 || s->M < min_m || s->N < 1 || s->K < 1) {
    args_fail(a, true, "dims", dims_rule);
    return false;
  }
  for (int k = 0; k < 3; k++) {
    if (la[k] < 0 || lb[k] < 0 || lc[k] < 0) {
      args_fail(a, true, "la", "lb and lc must be >= 0");
      return false;
    }
    s->la[k] = la[k], s->lb[k] = lb[k], s->lc[k] = lc[k];
  }
  const int64_t M = s->M, N = s->N, K = s->K;
  const int64_t ra = s->ta ? K : M, ca = s->ta ? M : K, rb = s->tb ? N : K, cb = s->tb ? K : N;
  if (s->la[2] < ca || s->lb[2] < cb || s->lc[2] < N) {
    args_fail(a, true, "la", "lb, lc: a leading dimension is shorter than its rows");
    return false;
  }
  const uint64_t na = strided_span(s->B, s->H, s->la, ra, ca);
  const uint64_t nb = strided_span(s->B, s->H, s->lb, rb, cb);
  const uint64_t nc = strided_span(s->B, s->H, s->lc, M, N);
  args_need(a, "a", lA, na);
  args_need(a, "b", lB, nb);
  args_need(a, "c", lC, nc);
  const View v[] = {{"c", s->c, nc}, {"a", s->a, na}, {"b", s->b, nb}};
  args_disjoint(a, v, 3, 1);
  return !a->failed;
}

#endif
