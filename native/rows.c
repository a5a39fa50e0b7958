/*
 * Row kernels over float32 views (which may point into the wasm heap): attention's scaled,
 * biased softmax and its backward, the log-softmax of a label (the LM loss) and its backward,
 * and sums over leading axes (bias and norm-gain gradients). Each replaces several tfjs kernels
 * with one pass (or three) over the rows. Outputs are written, never inputs. Reductions are
 * `omp simd` loops (built with -fopenmp-simd: vector lanes, no OpenMP runtime), so a row's sum
 * is accumulated in a different order than a scalar loop's: float32 rounding, not more.
 * Threads (ranges.h): rows are shared out (columnSums: columns), each ≥ 2^16 floats, each row
 * (column) computed whole by one thread, so every thread count gives the same bits.
 */
#include <math.h>
#include <stdio.h>

#include "args.h"
#include "common.h"
#include "ranges.h"

typedef struct {
  const float *x, *bias, *y, *dy, *lse;
  const int32_t *labels;
  int64_t H, R, C, offset;
  float scale;
  float *out, *lp;
} Rows;

/* rows are the flattened (g, h, r) of [G, H, R, C] */
static void scaled_softmax_rows(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  const int64_t C = q->C;
  for (int64_t i = lo; i < hi; i++) {
    const float *xr = q->x + i * C;
    float *yr = q->out + i * C;
    if (q->bias) {
      const int64_t g = i / (q->H * q->R), r = i % q->R;
      const float *br = q->bias + (g * q->R + r) * C;
      for (int64_t j = 0; j < C; j++) yr[j] = q->scale * xr[j] + br[j];
    } else {
      for (int64_t j = 0; j < C; j++) yr[j] = q->scale * xr[j];
    }
    troupe_softmax_row(yr, C);
  }
}

static void scaled_softmax_backward_rows(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  const int64_t C = q->C;
  for (int64_t r = lo; r < hi; r++) {
    const float *yr = q->y + r * C, *gr = q->dy + r * C;
    float *out = q->out + r * C;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < C; j++) dot += yr[j] * gr[j];
    for (int64_t j = 0; j < C; j++) out[j] = q->scale * yr[j] * (gr[j] - dot);
  }
}

static void log_softmax_pick_rows(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  const int64_t C = q->C;
  float *lse = q->out;
  for (int64_t r = lo; r < hi; r++) {
    const float *zr = q->x + r * C;
    float m = zr[0];
#pragma omp simd reduction(max : m)
    for (int64_t j = 1; j < C; j++) m = zr[j] > m ? zr[j] : m;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; j++) s += troupe_expf(zr[j] - m);
    lse[r] = m + logf(s);
    q->lp[r] = zr[q->labels[r]] - lse[r];
  }
}

/* H[r] = −Σ_j e^(z − lse)·(z − lse) over a row (the entropy of softmax(z), lse its log-sum-exp) */
static void row_entropy_rows(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  const int64_t C = q->C;
  for (int64_t r = lo; r < hi; r++) {
    const float *zr = q->x + r * C;
    const float l = q->lse[r];
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; j++) {
      const float d = zr[j] - l;
      s += troupe_expf(d) * d;
    }
    q->out[r] = -s;
  }
}

/* rows of `cols` floats a thread gets at least */
static inline int64_t least_rows(int64_t cols) { return (TROUPE_FOR_FLOATS + cols - 1) / cols; }

/*
 * scaledSoftmax(x, bias, groups, heads, rows, cols, scale, y)
 *   y[g, h, r, :] = softmax(scale·x[g, h, r, :] + bias[g, r, :])
 * bias may be an empty Float32Array (no bias). Attention: g batch, h heads, r queries, c keys.
 */
static napi_value scaled_softmax(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "scaledSoftmax", 8)) return NULL;
  size_t lx, lb, ly;
  float *x = arg_f32(&a, 0, "x", &lx);
  float *bias = arg_f32(&a, 1, "bias", &lb);
  const int64_t G = arg_int(&a, 2, "groups", 1), H = arg_int(&a, 3, "heads", 1);
  const int64_t R = arg_int(&a, 4, "rows", 1), C = arg_int(&a, 5, "cols", 1);
  const float scale = (float)arg_num(&a, 6, "scale");
  float *y = arg_f32(&a, 7, "y", &ly);
  const uint64_t n = mul_sat(mul_sat((uint64_t)G * H, (uint64_t)R), (uint64_t)C);
  args_need(&a, "x", lx, n);
  args_need(&a, "y", ly, n);
  if (!a.failed && lb != 0) args_need(&a, "bias", lb, mul_sat((uint64_t)G * R, (uint64_t)C));
  if (a.failed) return NULL;
  const Rows q = {.x = x, .bias = lb != 0 ? bias : NULL, .H = H, .R = R, .C = C, .scale = scale,
                 .out = y};
  troupe_for(G * H * R, 1, least_rows(C), scaled_softmax_rows, (void *)&q);
  return NULL;
}

/* scaledSoftmaxBackward(y, dy, rows, cols, scale, dx): dx = scale·y ⊙ (dy − Σ_j dy·y). */
static napi_value scaled_softmax_backward(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "scaledSoftmaxBackward", 6)) return NULL;
  size_t ly, ld, lx;
  float *y = arg_f32(&a, 0, "y", &ly);
  float *dy = arg_f32(&a, 1, "dy", &ld);
  const int64_t R = arg_int(&a, 2, "rows", 1), C = arg_int(&a, 3, "cols", 1);
  const float scale = (float)arg_num(&a, 4, "scale");
  float *dx = arg_f32(&a, 5, "dx", &lx);
  const uint64_t n = (uint64_t)R * C;
  args_need(&a, "y", ly, n);
  args_need(&a, "dy", ld, n);
  args_need(&a, "dx", lx, n);
  if (a.failed) return NULL;
  const Rows q = {.y = y, .dy = dy, .C = C, .scale = scale, .out = dx};
  troupe_for(R, 1, least_rows(C), scaled_softmax_backward_rows, (void *)&q);
  return NULL;
}

/*
 * logSoftmaxPick(z, labels, rows, cols, lp, lse)
 *   lse[r] = log Σ_j exp z[r, j],  lp[r] = z[r, labels[r]] − lse[r]
 * A label outside [0, cols) is a RangeError naming its row.
 */
static napi_value log_softmax_pick(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "logSoftmaxPick", 6)) return NULL;
  size_t lz, ll, lp_len, lse_len;
  float *z = arg_f32(&a, 0, "z", &lz);
  int32_t *labels = arg_i32(&a, 1, "labels", &ll);
  const int64_t R = arg_int(&a, 2, "rows", 1), C = arg_int(&a, 3, "cols", 1);
  float *lp = arg_f32(&a, 4, "lp", &lp_len);
  float *lse = arg_f32(&a, 5, "lse", &lse_len);
  args_need(&a, "z", lz, (uint64_t)R * C);
  args_need(&a, "labels", ll, (uint64_t)R);
  args_need(&a, "lp", lp_len, (uint64_t)R);
  args_need(&a, "lse", lse_len, (uint64_t)R);
  for (int64_t r = 0; r < R && !a.failed; r++) {
    if (labels[r] < 0 || labels[r] >= C) {
      char name[48], what[64];
      snprintf(name, sizeof name, "labels[%lld]", (long long)r);
      snprintf(what, sizeof what, "= %d is outside [0, %lld)", labels[r], (long long)C);
      args_fail(&a, true, name, what);
    }
  }
  if (a.failed) return NULL;
  const Rows q = {.x = z, .labels = labels, .C = C, .out = lse, .lp = lp};
  troupe_for(R, 1, least_rows(C), log_softmax_pick_rows, (void *)&q);
  return NULL;
}

/* g[j] = −d·exp(z[j] − l) */
static inline void neg_scaled_exp(const float *restrict z, float *restrict g, int64_t n, float l,
                                  float d) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) g[j] = -d * troupe_expf(z[j] - l);
}

static void log_softmax_pick_backward_rows(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  const int64_t C = q->C;
  for (int64_t r = lo; r < hi; r++) {
    const float *zr = q->x + r * C;
    float *gr = q->out + r * C;
    neg_scaled_exp(zr, gr, C, q->lse[r], q->dy[r]);
    const int64_t k = (int64_t)q->labels[r] - q->offset;
    if (k >= 0 && k < C) gr[k] += q->dy[r];
  }
}

/*
 * logSoftmaxPickBackward(z, lse, labels, dy, rows, cols, offset, g)
 *   g[r, j] = dy[r]·([labels[r] − offset = j] − exp(z[r, j] − lse[r]))
 * z holds the columns offset … offset + cols − 1 of the logits (a vocabulary block), so a label
 * outside the block contributes no one-hot term.
 */
static napi_value log_softmax_pick_backward(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "logSoftmaxPickBackward", 8)) return NULL;
  size_t lz, lse_len, ll, ld, lg;
  float *z = arg_f32(&a, 0, "z", &lz);
  float *lse = arg_f32(&a, 1, "lse", &lse_len);
  int32_t *labels = arg_i32(&a, 2, "labels", &ll);
  float *dy = arg_f32(&a, 3, "dy", &ld);
  const int64_t R = arg_int(&a, 4, "rows", 1), C = arg_int(&a, 5, "cols", 1);
  const int64_t offset = arg_int(&a, 6, "offset", 0);
  float *g = arg_f32(&a, 7, "g", &lg);
  args_need(&a, "z", lz, (uint64_t)R * C);
  args_need(&a, "lse", lse_len, (uint64_t)R);
  args_need(&a, "labels", ll, (uint64_t)R);
  args_need(&a, "dy", ld, (uint64_t)R);
  args_need(&a, "g", lg, (uint64_t)R * C);
  if (a.failed) return NULL;
  const Rows q = {.x = z, .lse = lse, .labels = labels, .dy = dy, .C = C, .offset = offset,
                 .out = g};
  troupe_for(R, 1, least_rows(C), log_softmax_pick_backward_rows, (void *)&q);
  return NULL;
}

/*
 * rowEntropy(z, lse, rows, cols, H): H[r] = −Σ_j e^(z[r, j] − lse[r])·(z[r, j] − lse[r]), the
 * entropy of softmax(z[r]) from its log-sum-exp (logSoftmaxPick's): one pass instead of the
 * log-softmax's subtraction, exp, product and sum over all [rows, cols].
 */
static napi_value row_entropy(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "rowEntropy", 5)) return NULL;
  size_t lz, ll, lh;
  float *z = arg_f32(&a, 0, "z", &lz);
  float *lse = arg_f32(&a, 1, "lse", &ll);
  const int64_t R = arg_int(&a, 2, "rows", 1), C = arg_int(&a, 3, "cols", 1);
  float *H = arg_f32(&a, 4, "H", &lh);
  args_need(&a, "z", lz, (uint64_t)R * C);
  args_need(&a, "lse", ll, (uint64_t)R);
  args_need(&a, "H", lh, (uint64_t)R);
  if (a.failed) return NULL;
  const Rows q = {.x = z, .lse = lse, .C = C, .out = H};
  troupe_for(R, 1, least_rows(C), row_entropy_rows, (void *)&q);
  return NULL;
}

/* columns [lo, hi) of columnSums, each summed over the rows in order */
static void column_sums_cols(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  for (int64_t j = lo; j < hi; j++) q->out[j] = 0;
  for (int64_t i = 0; i < q->R; i++) {
    const float *row = q->x + i * q->C;
    for (int64_t j = lo; j < hi; j++) q->out[j] += row[j];
  }
}

/* columnSums(x, outer, inner, out): out[j] = Σ_i x[i, j] (a sum over leading axes). */
static napi_value column_sums(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "columnSums", 4)) return NULL;
  size_t lx, lo;
  float *x = arg_f32(&a, 0, "x", &lx);
  const int64_t outer = arg_int(&a, 1, "outer", 1), inner = arg_int(&a, 2, "inner", 1);
  float *out = arg_f32(&a, 3, "out", &lo);
  args_need(&a, "x", lx, (uint64_t)outer * inner);
  args_need(&a, "out", lo, (uint64_t)inner);
  if (a.failed) return NULL;
  const Rows q = {.x = x, .R = outer, .C = inner, .out = out};
  troupe_for(inner, 16, (TROUPE_FOR_FLOATS + outer - 1) / outer, column_sums_cols, (void *)&q);
  return NULL;
}

bool troupe_define_rows(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT("scaledSoftmax", scaled_softmax),
      TROUPE_EXPORT("scaledSoftmaxBackward", scaled_softmax_backward),
      TROUPE_EXPORT("logSoftmaxPick", log_softmax_pick),
      TROUPE_EXPORT("logSoftmaxPickBackward", log_softmax_pick_backward),
      TROUPE_EXPORT("columnSums", column_sums),
      TROUPE_EXPORT("rowEntropy", row_entropy),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
