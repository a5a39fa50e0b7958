/*
 * Row kernels over float32 views (which may point into the wasm heap): attention's scaled,
 * biased softmax and its backward, the log-softmax of a label (the LM loss) and its backward,
 * and sums over leading axes (bias and norm-gain gradients). Each replaces several tfjs kernels
 * with one pass (or three) over the rows. Outputs are written, never inputs. Reductions are
 * by vector lanes (common.h's vectors, or `omp simd` loops built with -fopenmp-simd: no OpenMP
 * runtime), so a row's sum is accumulated in a different order than a scalar loop's: float32
 * rounding, not more.
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

/* Σ_j e^(z[j] − m), or with `times_d` Σ_j e^d·d for d = z[j] − m, by lanes (the lanes summed in
 * order at the end) */
static inline float sum_exp(const float *z, int64_t n, float m, bool times_d) {
  const troupe_vf mv = vf_splat(m);
  troupe_vf s = {0};
  int64_t j = 0;
  for (; j + TROUPE_VL <= n; j += TROUPE_VL) {
    const troupe_vf d = vf_load(z + j) - mv;
    s += times_d ? vf_exp(d) * d : vf_exp(d);
  }
  if (j < n) {
    const troupe_vf d = vf_load_n(z + j, n - j, 0) - mv;
    s += vf_select(vf_lanes_below(n - j), times_d ? vf_exp(d) * d : vf_exp(d), (troupe_vf){0});
  }
  return vf_sum_lanes(s);
}

static void log_softmax_pick_rows(void *c, int64_t lo, int64_t hi) {
  const Rows *q = c;
  const int64_t C = q->C;
  float *lse = q->out;
  for (int64_t r = lo; r < hi; r++) {
    const float *zr = q->x + r * C;
    const float m = troupe_max_row(zr, C);
    const float s = sum_exp(zr, C, m, false);
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
    const float s = sum_exp(zr, C, l, true);
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
  const troupe_vf lv = vf_splat(l);
  int64_t j = 0;
  for (; j + TROUPE_VL <= n; j += TROUPE_VL) vf_store(g + j, -d * vf_exp(vf_load(z + j) - lv));
  if (j < n) vf_store_n(g + j, -d * vf_exp(vf_load_n(z + j, n - j, 0) - lv), n - j);
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

/*
 * Row moves of the shared-prefix forward (kv-cache.ts expand, block.ts): a prompt's keys or
 * values, run once for D distinct prompts, copied to each of the B rows that continue it and
 * joined with the rows' own new ones; and the backward, each prompt's gradient the sum of its
 * rows'. Values are moved or added in order, never otherwise computed.
 */
typedef struct {
  const float *past, *fresh, *dy;
  const int32_t *rows;
  int64_t G, P, T, hd, D, B;
  float *out, *dpast, *dfresh;
} KvRows;

/* output rows [lo, hi): out[b, g] = past[rows[b], g] (P positions) then fresh[b, :, g] */
static void kv_expand_rows(void *c, int64_t lo, int64_t hi) {
  const KvRows *q = c;
  const int64_t hd = q->hd, S = q->P + q->T, block = q->P * hd;
  for (int64_t b = lo; b < hi; b++) {
    for (int64_t g = 0; g < q->G; g++) {
      float *o = q->out + (b * q->G + g) * S * hd;
      if (block > 0)
        memcpy(o, q->past + ((int64_t)q->rows[b] * q->G + g) * block, (size_t)block * 4);
      for (int64_t t = 0; t < q->T; t++)
        memcpy(o + (q->P + t) * hd, q->fresh + ((b * q->T + t) * q->G + g) * hd, (size_t)hd * 4);
    }
  }
}

/* rows [lo, hi) of dfresh: dfresh[b, t, g] = dy[b, g, P + t] */
static void kv_expand_fresh_rows(void *c, int64_t lo, int64_t hi) {
  const KvRows *q = c;
  const int64_t hd = q->hd, S = q->P + q->T;
  for (int64_t b = lo; b < hi; b++)
    for (int64_t t = 0; t < q->T; t++)
      for (int64_t g = 0; g < q->G; g++)
        memcpy(q->dfresh + ((b * q->T + t) * q->G + g) * hd,
               q->dy + ((b * q->G + g) * S + q->P + t) * hd, (size_t)hd * 4);
}

/* units [lo, hi) of the (g, p) rows of dpast: dpast[d, g, p] = Σ_{b: rows[b] = d} dy[b, g, p],
 * zeroed first, the rows added in order of b */
static void kv_expand_past_units(void *c, int64_t lo, int64_t hi) {
  const KvRows *q = c;
  const int64_t hd = q->hd, S = q->P + q->T, GP = q->G * q->P;
  for (int64_t d = 0; d < q->D; d++)
    memset(q->dpast + (d * GP + lo) * hd, 0, (size_t)((hi - lo) * hd) * 4);
  for (int64_t b = 0; b < q->B; b++) {
    float *base = q->dpast + (int64_t)q->rows[b] * GP * hd;
    for (int64_t u = lo; u < hi; u++) {
      const int64_t g = u / q->P, p = u % q->P;
      const float *src = q->dy + ((b * q->G + g) * S + p) * hd;
      float *dst = base + u * hd;
      for (int64_t j = 0; j < hd; j++) dst[j] += src[j];
    }
  }
}

/* rows[b] ∈ [0, D) for every b, else a RangeError naming the first that is not */
static bool kv_rows_check(Args *a, const int32_t *rows, int64_t B, int64_t D) {
  for (int64_t b = 0; b < B && !a->failed; b++) {
    if (rows[b] < 0 || rows[b] >= D) {
      char name[48], what[64];
      snprintf(name, sizeof name, "rows[%lld]", (long long)b);
      snprintf(what, sizeof what, "= %d is outside [0, %lld)", rows[b], (long long)D);
      args_fail(a, true, name, what);
    }
  }
  return !a->failed;
}

/*
 * kvExpand(past, rows, fresh, D, B, G, P, T, hd, out)
 *   past [D, G, P, hd]   rows [B] in [0, D)   fresh [B, T, G, hd] (a projection's heads)
 *   out [B, G, P + T, hd]: out[b, g, p] = past[rows[b], g, p], out[b, g, P + t] = fresh[b, t, g]
 * = concat([gather(past, rows), transpose(fresh, [0, 2, 1, 3])], 2) in one pass.
 */
static napi_value kv_expand(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "kvExpand", 10)) return NULL;
  size_t lp, lr, lf, lo;
  float *past = arg_f32(&a, 0, "past", &lp);
  int32_t *rows = arg_i32(&a, 1, "rows", &lr);
  float *fresh = arg_f32(&a, 2, "fresh", &lf);
  const int64_t D = arg_int(&a, 3, "D", 1), B = arg_int(&a, 4, "B", 0);
  const int64_t G = arg_int(&a, 5, "G", 1), P = arg_int(&a, 6, "P", 0);
  const int64_t T = arg_int(&a, 7, "T", 0), hd = arg_int(&a, 8, "hd", 1);
  float *out = arg_f32(&a, 9, "out", &lo);
  const uint64_t np = mul_sat(mul_sat(mul_sat(D, G), P), hd);
  const uint64_t nf = mul_sat(mul_sat(mul_sat(B, T), G), hd);
  const uint64_t no = mul_sat(mul_sat(mul_sat(B, G), add_sat(P, T)), hd);
  args_need(&a, "past", lp, np);
  args_need(&a, "rows", lr, (uint64_t)B);
  args_need(&a, "fresh", lf, nf);
  args_need(&a, "out", lo, no);
  const View v[] = {{"out", out, no}, {"past", past, np}, {"fresh", fresh, nf}};
  args_disjoint(&a, v, 3, 1);
  if (a.failed || !kv_rows_check(&a, rows, B, D)) return NULL;
  const KvRows q = {.past = past, .fresh = fresh, .rows = rows, .G = G, .P = P, .T = T, .hd = hd,
                    .out = out};
  const int64_t per = G * (P + T) * hd;
  troupe_for(B, 1, per > 0 ? (TROUPE_FOR_FLOATS + per - 1) / per : B, kv_expand_rows, (void *)&q);
  return NULL;
}

/*
 * kvExpandBackward(dy, rows, D, B, G, P, T, hd, dpast, dfresh): kvExpand's gradients
 *   dy [B, G, P + T, hd] → dpast [D, G, P, hd]: dpast[d] = Σ_{b: rows[b] = d} dy[b, :, :P] (in
 *   order of b, from 0: a segment sum), dfresh [B, T, G, hd]: dfresh[b, t, g] = dy[b, g, P + t]
 */
static napi_value kv_expand_backward(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "kvExpandBackward", 10)) return NULL;
  size_t ly, lr, lp, lf;
  float *dy = arg_f32(&a, 0, "dy", &ly);
  int32_t *rows = arg_i32(&a, 1, "rows", &lr);
  const int64_t D = arg_int(&a, 2, "D", 1), B = arg_int(&a, 3, "B", 0);
  const int64_t G = arg_int(&a, 4, "G", 1), P = arg_int(&a, 5, "P", 0);
  const int64_t T = arg_int(&a, 6, "T", 0), hd = arg_int(&a, 7, "hd", 1);
  float *dpast = arg_f32(&a, 8, "dpast", &lp);
  float *dfresh = arg_f32(&a, 9, "dfresh", &lf);
  const uint64_t np = mul_sat(mul_sat(mul_sat(D, G), P), hd);
  const uint64_t nf = mul_sat(mul_sat(mul_sat(B, T), G), hd);
  const uint64_t ny = mul_sat(mul_sat(mul_sat(B, G), add_sat(P, T)), hd);
  args_need(&a, "dy", ly, ny);
  args_need(&a, "rows", lr, (uint64_t)B);
  args_need(&a, "dpast", lp, np);
  args_need(&a, "dfresh", lf, nf);
  const View v[] = {{"dpast", dpast, np}, {"dfresh", dfresh, nf}, {"dy", dy, ny}};
  args_disjoint(&a, v, 3, 2);
  if (a.failed || !kv_rows_check(&a, rows, B, D)) return NULL;
  const KvRows q = {.dy = dy, .rows = rows, .G = G, .P = P, .T = T, .hd = hd, .D = D, .B = B,
                    .dpast = dpast, .dfresh = dfresh};
  const int64_t perRow = T * G * hd, perUnit = (B + D) * hd;
  troupe_for(B, 1, perRow > 0 ? (TROUPE_FOR_FLOATS + perRow - 1) / perRow : B,
             kv_expand_fresh_rows, (void *)&q);
  troupe_for(G * P, 1, (TROUPE_FOR_FLOATS + perUnit - 1) / perUnit, kv_expand_past_units,
             (void *)&q);
  return NULL;
}

/* columns [lo, hi) of segmentSum: zeroed, then the rows added in order */
static void segment_sum_cols(void *c, int64_t lo, int64_t hi) {
  const KvRows *q = c; /* dy: x, rows: ids, D: segments, B: rows of x, hd: inner, dpast: out */
  for (int64_t s = 0; s < q->D; s++) memset(q->dpast + s * q->hd + lo, 0, (size_t)(hi - lo) * 4);
  for (int64_t i = 0; i < q->B; i++) {
    const int32_t s = q->rows[i];
    if (s < 0) continue;
    const float *src = q->dy + i * q->hd;
    float *dst = q->dpast + (int64_t)s * q->hd;
    for (int64_t j = lo; j < hi; j++) dst[j] += src[j];
  }
}

/*
 * segmentSum(x, ids, rows, inner, numSegments, out): TensorFlow's UnsortedSegmentSum over whole
 * rows, out [numSegments, inner] = Σ_{i: ids[i] = s} x[i] (x [rows, inner], ids < 0 dropped),
 * each output summed from 0 in order of i; the columns shared between the BLAS threads.
 */
static napi_value segment_sum(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "segmentSum", 6)) return NULL;
  size_t lx, li, lo;
  float *x = arg_f32(&a, 0, "x", &lx);
  int32_t *ids = arg_i32(&a, 1, "ids", &li);
  const int64_t R = arg_int(&a, 2, "rows", 0), inner = arg_int(&a, 3, "inner", 0);
  const int64_t S = arg_int(&a, 4, "numSegments", 0);
  float *out = arg_f32(&a, 5, "out", &lo);
  const uint64_t nx = mul_sat(R, inner), no = mul_sat(S, inner);
  args_need(&a, "x", lx, nx);
  args_need(&a, "ids", li, (uint64_t)R);
  args_need(&a, "out", lo, no);
  const View v[] = {{"out", out, no}, {"x", x, nx}};
  args_disjoint(&a, v, 2, 1);
  for (int64_t i = 0; i < R && !a.failed; i++) {
    if (ids[i] >= S) {
      char name[48], what[64];
      snprintf(name, sizeof name, "ids[%lld]", (long long)i);
      snprintf(what, sizeof what, "= %d is >= numSegments %lld", ids[i], (long long)S);
      args_fail(&a, true, name, what);
    }
  }
  if (a.failed) return NULL;
  const KvRows q = {.dy = x, .rows = ids, .D = S, .B = R, .hd = inner, .dpast = out};
  const int64_t per = R + S;
  troupe_for(inner, 16, per > 0 ? (TROUPE_FOR_FLOATS + per - 1) / per : inner, segment_sum_cols,
             (void *)&q);
  return NULL;
}

/*
 * Attention's per-head products over the heads where they lie (src/kernels/custom/
 * native-attention.ts): each of B·H products reads and writes its matrices at (b, h) offsets with
 * leading dimensions, so q [B, T, H, hd] and the output [B, T, H, hd] need no head split or merge
 * (two Transposes forward and two backward a layer). Every product is one sgemm (troupe_gemm_ld),
 * the call sgemmBatched makes for these sizes with dense matrices: the same bits (sgemm packs
 * its operands; the leading dimension only says where their rows are). M > 16 only: below, the
 * BatchMatMul's small-M product orders its sums otherwise.
 */
typedef struct {
  bool ta, tb;
  int64_t H, M, N, K;
  int64_t la[3], lb[3], lc[3]; /* offset per b, per h; leading dimension */
  const float *A, *B;
  float *C;
} Strided;

static void strided_range(void *c, int64_t lo, int64_t hi) {
  const Strided *q = c;
  for (int64_t i = lo; i < hi; i++) {
    const int64_t b = i / q->H, h = i % q->H;
    troupe_gemm_ld(q->ta, q->tb, q->M, q->N, q->K, q->A + b * q->la[0] + h * q->la[1], q->la[2],
                   q->B + b * q->lb[0] + h * q->lb[1], q->lb[2], q->C + b * q->lc[0] + h * q->lc[1],
                   q->lc[2]);
  }
}

/*
 * gemmStrided(ta, tb, dims, a, la, b, lb, c, lc): for b < B, h < H
 *   C_bh [M, N] = op(A_bh)·op(B_bh), X_bh = x + b·lx[0] + h·lx[1], rows lx[2] apart
 * dims = [B, H, M, N, K] and la, lb, lc = [per b, per h, leading dimension] (Int32Arrays), op(A)
 * [M, K] (A stored [K, M] when ta), op(B) [K, N]. c's elements outside every C_bh are left as
 * they are.
 */
static napi_value gemm_strided(napi_env env, napi_callback_info info) {
  Args a;
  StridedArgs p;
  if (!args_strided(&a, env, info, "gemmStrided", SMALL_GEMM_MAX_ROWS + 1,
                    "must be positive, with M > 16", &p))
    return NULL;
  const int64_t M = p.M, N = p.N, K = p.K;
  Strided q = {.ta = p.ta, .tb = p.tb, .H = p.H, .M = M, .N = N, .K = K, .A = p.a, .B = p.b,
               .C = p.c};
  for (int k = 0; k < 3; k++) {
    q.la[k] = p.la[k];
    q.lb[k] = p.lb[k];
    q.lc[k] = p.lc[k];
  }
  /* as sgemmBatched: products below the BLAS's own threading size shared out product by product */
  const int64_t work = M * N * K, batch = p.B * p.H;
  if (batch > 1 && work < (1 << 18))
    troupe_for(batch, 1, ((1 << 20) + work - 1) / work, strided_range, (void *)&q);
  else strided_range((void *)&q, 0, batch);
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
      TROUPE_EXPORT_EXACT("kvExpand", kv_expand),
      TROUPE_EXPORT_EXACT("kvExpandBackward", kv_expand_backward),
      TROUPE_EXPORT_EXACT("segmentSum", segment_sum),
      TROUPE_EXPORT("gemmStrided", gemm_strided),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
