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
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "common.h"
#include "ranges.h"

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

/* axpyMany's work: the xs' concatenation cut by troupe_for; each range runs axpy_loop over its
 * part of each x it covers (every element on its own: any cut gives the same bits). */
typedef struct {
  float *y;
  float *const *x;
  const uint64_t *start; /* start[k]: Σ len(xs[< k]) */
  const double *offset;
  uint32_t count;
  double alpha;
} AxpyTask;

/* Arrays laid end to end (start[k]: Σ len[< k], start[count]: the total), cut into ranges for
 * troupe_for: the last array that starts at or before `lo`, and the part [a, b) of array k that
 * lies in [lo, hi), relative to its start. */
static uint32_t array_at(const uint64_t *start, uint32_t count, int64_t lo) {
  uint32_t k0 = 0, k1 = count;
  while (k1 - k0 > 1) {
    const uint32_t mid = k0 + (k1 - k0) / 2;
    if (start[mid] <= (uint64_t)lo) k0 = mid;
    else k1 = mid;
  }
  return k0;
}

static void part_in(const uint64_t *start, uint32_t k, int64_t lo, int64_t hi, uint64_t *a,
                    uint64_t *b) {
  const uint64_t s0 = start[k], s1 = start[k + 1];
  *a = (uint64_t)lo > s0 ? (uint64_t)lo - s0 : 0;
  *b = ((uint64_t)hi < s1 ? (uint64_t)hi : s1) - s0;
}

static void axpy_range(void *ctx, int64_t lo, int64_t hi) {
  const AxpyTask *q = ctx;
  for (uint32_t k = array_at(q->start, q->count, lo); k < q->count && q->start[k] < (uint64_t)hi;
       k++) {
    uint64_t a, b;
    part_in(q->start, k, lo, hi, &a, &b);
    if (a < b) axpy_loop(q->y + (uint64_t)q->offset[k] + a, q->x[k] + a, b - a, q->alpha);
  }
}

static bool arg_f32_list(Args *a, size_t i, const char *name, uint32_t *count, float ***ptr,
                         size_t **len);

/*
 * axpyMany(y, offsets, xs, alpha): axpy(y, offsets[k], xs[k], alpha) for every k, in one call on
 * the BLAS threads (the same bits). The offsets (a Float64Array of integers) leave the ranges of
 * y in order and apart: offsets[k] >= offsets[k - 1] + xs[k - 1].length; no x overlaps y.
 */
static napi_value axpy_many(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "axpyMany", 4, 4)) return NULL;
  size_t ny, no;
  float *y = arg_f32(&a, 0, "y", &ny);
  const double *off = arg_f64(&a, 1, "offsets", &no);
  uint32_t count;
  float **x;
  size_t *len;
  uint64_t *start = NULL;
  arg_f32_list(&a, 2, "xs", &count, &x, &len);
  const double alpha = arg_double(&a, 3, "alpha");
  char what[96];
  if (!a.failed && no != count) {
    snprintf(what, sizeof what, "has %zu numbers, xs has %u arrays", no, count);
    args_fail(&a, true, "offsets", what);
  }
  double end = 0; /* where the last range ended */
  for (uint32_t k = 0; k < count && !a.failed; k++) {
    char item[48];
    snprintf(item, sizeof item, "offsets[%u]", k);
    if (!(off[k] >= end && off[k] == floor(off[k]))) {
      args_fail(&a, true, item, "must be an integer at or past the end of the range before");
    } else if (off[k] + (double)len[k] > (double)ny) {
      args_fail(&a, true, item, "+ xs[k].length is past the end of y");
    }
    end = off[k] + (double)len[k];
    const uintptr_t y0 = (uintptr_t)y, y1 = (uintptr_t)(y + ny);
    const uintptr_t x0 = (uintptr_t)x[k], x1 = (uintptr_t)(x[k] + len[k]);
    snprintf(item, sizeof item, "xs[%u]", k);
    if (!a.failed && len[k] > 0 && ny > 0 && x0 < y1 && y0 < x1)
      args_fail(&a, true, item, "overlaps y");
  }
  if (a.failed) goto done;
  start = malloc(sizeof(uint64_t) * ((size_t)count + 1));
  if (!start) {
    args_fail(&a, true, "xs", "is too long (out of memory)");
    goto done;
  }
  start[0] = 0;
  for (uint32_t k = 0; k < count; k++) start[k + 1] = start[k] + len[k];
  const AxpyTask q = {y, x, start, off, count, alpha};
  troupe_for((int64_t)start[count], 16, TROUPE_FOR_FLOATS, axpy_range, (void *)&q);
done:
  free(x);
  free(len);
  free(start);
  return NULL;
}

/*
 * Σ x[i]² in double over 16 independent partial sums (vectorisable without reassociating a single
 * chain), added pairwise at the end; deterministic for a given length.
 */
static double sum_squares_loop(const float *restrict x, size_t n) {
  enum { W = 16, AHEAD = 1024 };
  double acc[W] = {0};
  size_t i = 0;
  /* The prefetch 4 KiB ahead changes no sum: a pass over gradients out of cache went from 6.1 to
   * 4.2 ms per 10.9 M floats on the Intel VM (the hardware prefetcher alone left it at ~6 GB/s). */
  for (; i + W <= n; i += W) {
    __builtin_prefetch(x + i + AHEAD);
    for (size_t j = 0; j < W; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
  }
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

/* A list argument: an array of Float32Arrays, read into *ptr and *len (malloc'd; the caller frees
 * them, also on failure). False once the call has failed (thrown). */
static bool arg_f32_list(Args *a, size_t i, const char *name, uint32_t *count, float ***ptr,
                         size_t **len) {
  bool is = false;
  *count = 0;
  *ptr = NULL;
  *len = NULL;
  if (a->failed) return false;
  if (napi_is_array(a->env, a->argv[i], &is) != napi_ok || !is ||
      napi_get_array_length(a->env, a->argv[i], count) != napi_ok) {
    args_fail(a, false, name, "must be an array of Float32Arrays");
    return false;
  }
  *ptr = malloc(sizeof(float *) * (*count + 1));
  *len = malloc(sizeof(size_t) * (*count + 1));
  if (!*ptr || !*len) {
    args_fail(a, true, name, "is too long (out of memory)");
    return false;
  }
  for (uint32_t k = 0; k < *count && !a->failed; k++) {
    char item[48];
    snprintf(item, sizeof item, "%s[%u]", name, k);
    napi_value v;
    if (napi_get_element(a->env, a->argv[i], k, &v) != napi_ok ||
        !get_f32(a->env, v, &(*ptr)[k], &(*len)[k]))
      args_fail(a, false, item, "must be a Float32Array");
  }
  return !a->failed;
}

/* sumSquaresMany's work: each array's sum into sums[k], arrays split among threads by where they
 * start in the concatenation (contiguous groups of about equal size; an array is never split, so
 * each sum is sum_squares_loop's whatever the thread count). */
typedef struct {
  float *const *x;
  const size_t *len;
  const uint64_t *start; /* start[k]: Σ len[< k]; start[count] the total */
  uint32_t count;
  double *sums;
} SquaresTask;

static void squares_task(void *ctx, int t, int threads) {
  const SquaresTask *q = ctx;
  const uint64_t total = q->start[q->count];
  const uint64_t lo = total * (uint64_t)t / (uint64_t)threads;
  const uint64_t hi = total * (uint64_t)(t + 1) / (uint64_t)threads;
  for (uint32_t k = 0; k < q->count; k++)
    if (q->start[k] >= lo && (q->start[k] < hi || (t == threads - 1 && q->start[k] == total)))
      q->sums[k] = sum_squares_loop(q->x[k], q->len[k]);
}

/*
 * sumSquaresMany(xs): Σ over k in order of sumSquares(xs[k]), the sum in double (s = 0; s += each):
 * what a loop of sumSquares calls returns, bit for bit, in one call. The arrays' sums run on the
 * BLAS threads (setThreads), whole arrays each.
 */
static napi_value sum_squares_many(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "sumSquaresMany", 1, 1)) return NULL;
  uint32_t count;
  float **x;
  size_t *len;
  uint64_t *start = NULL;
  double *sums = NULL;
  napi_value out = NULL;
  if (!arg_f32_list(&a, 0, "xs", &count, &x, &len)) goto done;
  start = malloc(sizeof(uint64_t) * (count + 1));
  sums = malloc(sizeof(double) * (count + 1));
  if (!start || !sums) {
    args_fail(&a, true, "xs", "is too long (out of memory)");
    goto done;
  }
  start[0] = 0;
  for (uint32_t k = 0; k < count; k++) start[k + 1] = start[k] + len[k];
  const SquaresTask q = {x, len, start, count, sums};
  const int threads = troupe_for_threads((int64_t)start[count], TROUPE_FOR_FLOATS);
  troupe_parallel(count < 1 ? 1 : threads < (int)count ? threads : (int)count, squares_task,
                  (void *)&q);
  double total = 0;
  for (uint32_t k = 0; k < count; k++) total += sums[k];
  if (napi_create_double(env, total, &out) != napi_ok) out = NULL;
done:
  free(x);
  free(len);
  free(start);
  free(sums);
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

/* A write access to the page holding *x that leaves its value as it is (a locked add of 0). */
static inline void touch_for_write(float *x) {
  __atomic_fetch_add((uint32_t *)(void *)x, 0u, __ATOMIC_RELAXED);
}

/*
 * AdamW over [0, n) in blocks: each block is read whole into locals and then written, so an output
 * may be its own input (in place) and the compiler needs no alias checks to vectorise. Per element,
 * as AdamW.stepOnHost: g = float(g·gscale) (the clipped gradient, as stored), then
 *   m = float(β₁m + (1−β₁)g),  v = float(β₂v + (1−β₂)g·g),
 *   p = float(p·shrink − step·m/(√v/√bc2 + ε)),  shrink = 1 − lr·wd, step = lr/bc1.
 */
static void adamw_loop(const AdamW *a, const float *p, const float *g, const float *m,
                       const float *v, float *po, float *mo, float *vo, size_t n) {
  enum { B = 512, AHEAD = 512 };
  float pb[B], mb[B], vb[B];
  const double b1 = a->b1, c1 = a->c1, b2 = a->b2, c2 = a->c2, shrink = a->shrink;
  const double step = a->step, sbc2 = a->sbc2, eps = a->eps, gscale = a->gscale;
#define ADAMW_ONE(i)                                                                               \
  do {                                                                                             \
    const double gi = (double)(float)((double)g[at + (i)] * gscale);                               \
    const float mi = (float)(b1 * (double)m[at + (i)] + c1 * gi);                                  \
    const float vi = (float)(b2 * (double)v[at + (i)] + c2 * gi * gi);                             \
    mb[i] = mi;                                                                                    \
    vb[i] = vi;                                                                                    \
    const double pi = (double)p[at + (i)];                                                         \
    pb[i] = (float)(pi * shrink - (step * (double)mi) / (sqrt((double)vi) / sbc2 + eps));          \
  } while (0)
  /* The moments' pages are written before they are read (an atomic add of 0: no value
   * changes): moments made as fresh zero tensors were never touched, so reading them mapped the
   * shared zero page and the store after it took a second, copy-on-write fault. 50 M values with
   * m and v fresh: the first step 1263 -> 142 ms, later steps 56 (Intel Xeon VM). A block (2 KiB)
   * spans at most two pages, the first of them its predecessor's last unless the block starts a
   * page, and then the block's last value is on it: so each block's last value, and the first. */
  if (n > 0) {
    touch_for_write(mo);
    touch_for_write(vo);
  }
  for (size_t at = 0; at < n; at += B) {
    const size_t k = n - at < B ? n - at : B;
    touch_for_write(mo + at + k - 1);
    touch_for_write(vo + at + k - 1);
    size_t i = 0;
    /* 16 at a time, each 16 with a prefetch of the four inputs 2 KiB ahead: the loop is bound by
     * the divider (two divisions and a square root in double per value), so the out-of-order
     * window fills with them and the loads run late unless fetched ahead: 38.9 -> 23 ms a pass
     * over 10.9 M values laid out as the wasm heap has them (prefetches change no value). */
    for (; i + 16 <= k; i += 16) {
      __builtin_prefetch(g + at + i + AHEAD, 0, 3);
      __builtin_prefetch(m + at + i + AHEAD, 0, 3);
      __builtin_prefetch(v + at + i + AHEAD, 0, 3);
      __builtin_prefetch(p + at + i + AHEAD, 0, 3);
      for (size_t j = i; j < i + 16; j++) ADAMW_ONE(j);
    }
    for (; i < k; i++) ADAMW_ONE(i);
    memcpy(po + at, pb, k * sizeof(float));
    memcpy(mo + at, mb, k * sizeof(float));
    memcpy(vo + at, vb, k * sizeof(float));
  }
#undef ADAMW_ONE
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

/* The loop's constants from adamwStep's scalars (checked; `where` prefixes a name: "scalars[3]."). */
static AdamW adamw_of(Args *a, const char *where, double lr, double b1, double b2, double eps,
                      double wd, double bc1, double bc2, double gscale) {
  char name[64];
#define ADAMW_CHECK(ok, field, range)                                                              \
  if (!(ok)) {                                                                                     \
    snprintf(name, sizeof name, "%s%s", where, field);                                             \
    args_fail(a, true, name, "must be in " range);                                                 \
  }
  ADAMW_CHECK(b1 >= 0 && b1 < 1, "beta1", "[0, 1)")
  ADAMW_CHECK(b2 >= 0 && b2 < 1, "beta2", "[0, 1)")
  ADAMW_CHECK(bc1 > 0 && bc1 <= 1, "bc1", "(0, 1]")
  ADAMW_CHECK(bc2 > 0 && bc2 <= 1, "bc2", "(0, 1]")
#undef ADAMW_CHECK
  return (AdamW){
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
  const AdamW w = adamw_of(&a, "", lr, b1, b2, eps, wd, bc1, bc2, gscale);
  if (a.failed) return NULL;
  const AdamWTask q = {&w, arr, n};
  troupe_parallel(adamw_threads(n), adamw_task, (void *)&q);
  return NULL;
}

/* adamwSteps' work: the arrays' concatenation cut into ranges (troupe_for); a range runs
 * adamw_loop over its part of each array it covers. Every element is updated on its own, so no
 * cut changes a bit. */
typedef struct {
  float *const *p, *const *g, *const *m, *const *v;
  const AdamW *w;
  const uint64_t *start; /* start[k]: Σ len[< k] */
  uint32_t count;
} AdamWManyTask;

static void adamw_many_range(void *ctx, int64_t lo, int64_t hi) {
  const AdamWManyTask *q = ctx;
  for (uint32_t k = array_at(q->start, q->count, lo); k < q->count && q->start[k] < (uint64_t)hi;
       k++) {
    uint64_t a, b;
    part_in(q->start, k, lo, hi, &a, &b);
    if (a >= b) continue;
    adamw_loop(&q->w[k], q->p[k] + a, q->g[k] + a, q->m[k] + a, q->v[k] + a, q->p[k] + a,
               q->m[k] + a, q->v[k] + a, b - a);
  }
}

/* One array of adamwSteps, for the overlap check. */
typedef struct {
  uintptr_t lo, hi;
  bool written;
  const char *list;
  uint32_t k;
} Span;

static int span_order(const void *x, const void *y) {
  const Span *a = x, *b = y;
  return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/*
 * adamwSteps(params, grads, ms, vs, scalars): adamwStep(params[k], grads[k], ms[k], vs[k], ...the
 * 8 scalars at scalars[8k..8k+7]: lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale) in place
 * for every k, in one call on the BLAS threads (setThreads): the same bits as those calls. A param,
 * m or v shares memory with no other array; the grads are only read and may share memory with each
 * other (one gradient tensor can serve two parameters).
 */
static napi_value adamw_steps(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init_range(&a, env, info, "adamwSteps", 5, 5)) return NULL;
  static const char *const lists[4] = {"params", "grads", "ms", "vs"};
  float **arr[4] = {0};
  size_t *len[4] = {0};
  uint32_t count[4] = {0};
  uint64_t *start = NULL;
  AdamW *w = NULL;
  Span *spans = NULL;
  for (int l = 0; l < 4; l++)
    arg_f32_list(&a, (size_t)l, lists[l], &count[l], &arr[l], &len[l]);
  size_t ns = 0;
  const double *sc = arg_f64(&a, 4, "scalars", &ns);
  if (a.failed) goto done;
  const uint32_t n = count[0];
  char what[96];
  for (int l = 1; l < 4 && !a.failed; l++) {
    if (count[l] == n) continue;
    snprintf(what, sizeof what, "has %u arrays, params has %u", count[l], n);
    args_fail(&a, true, lists[l], what);
  }
  if (!a.failed && ns != 8 * (size_t)n) {
    snprintf(what, sizeof what, "has %zu numbers, expected %llu (8 per param)", ns,
             8ull * (unsigned long long)n);
    args_fail(&a, true, "scalars", what);
  }
  w = a.failed ? NULL : malloc(sizeof(AdamW) * ((size_t)n + 1));
  if (!a.failed && !w) args_fail(&a, true, "params", "is too long (out of memory)");
  for (uint32_t k = 0; k < n && !a.failed; k++) {
    for (int l = 1; l < 4 && !a.failed; l++) {
      if (len[l][k] == len[0][k]) continue;
      char item[48];
      snprintf(item, sizeof item, "%s[%u]", lists[l], k);
      snprintf(what, sizeof what, "has length %zu, params[%u] has %zu", len[l][k], k, len[0][k]);
      args_fail(&a, true, item, what);
    }
    char where[32];
    snprintf(where, sizeof where, "scalars[%u].", k);
    const double *s = sc + 8 * (size_t)k;
    w[k] = adamw_of(&a, where, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
  }
  if (a.failed) goto done;
  /* Overlaps: sorted by start, each span against those starting before it ends. */
  spans = malloc(sizeof(Span) * 4 * ((size_t)n + 1));
  start = malloc(sizeof(uint64_t) * ((size_t)n + 1));
  if (!spans || !start) {
    args_fail(&a, true, "params", "is too long (out of memory)");
    goto done;
  }
  size_t nspan = 0;
  for (int l = 0; l < 4; l++)
    for (uint32_t k = 0; k < n; k++)
      if (len[l][k] > 0)
        spans[nspan++] = (Span){(uintptr_t)arr[l][k], (uintptr_t)(arr[l][k] + len[l][k]), l != 1,
                                lists[l], k};
  qsort(spans, nspan, sizeof(Span), span_order);
  for (size_t i = 0; i < nspan && !a.failed; i++)
    for (size_t j = i + 1; j < nspan && spans[j].lo < spans[i].hi; j++) {
      if (!spans[i].written && !spans[j].written) continue;
      char first[48];
      snprintf(first, sizeof first, "%s[%u]", spans[i].list, spans[i].k);
      snprintf(what, sizeof what, "overlaps %s[%u] (a param, m or v must not share memory)",
               spans[j].list, spans[j].k);
      args_fail(&a, true, first, what);
      break;
    }
  if (a.failed) goto done;
  start[0] = 0;
  for (uint32_t k = 0; k < n; k++) start[k + 1] = start[k] + len[0][k];
  const AdamWManyTask q = {arr[0], arr[1], arr[2], arr[3], w, start, n};
  troupe_for((int64_t)start[n], 512, TROUPE_FOR_FLOATS, adamw_many_range, (void *)&q);
done:
  for (int l = 0; l < 4; l++) {
    free(arr[l]);
    free(len[l]);
  }
  free(start);
  free(w);
  free(spans);
  return NULL;
}

bool troupe_define_host(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT_EXACT("axpy", axpy),
      TROUPE_EXPORT_EXACT("axpyMany", axpy_many),
      TROUPE_EXPORT_EXACT("sumSquares", sum_squares),
      TROUPE_EXPORT_EXACT("scale", scale),
      TROUPE_EXPORT_EXACT("adamwStep", adamw_step),
      TROUPE_EXPORT_EXACT("sumSquaresMany", sum_squares_many),
      TROUPE_EXPORT_EXACT("adamwSteps", adamw_steps),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
