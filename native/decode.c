/*
 * One pre-norm decoder block with a KV cache, as one call: what `block()` in
 * src/policy/model/block.ts computes for the new tokens of a cached forward (generation), for
 * GPT-2 (LayerNorm, GELU MLP, biases) and Llama / Qwen2 (RMSNorm, SwiGLU, RoPE, grouped-query
 * heads, optional q/k/v biases). Decoding one token of a small model ran ~26 tfjs kernels per
 * layer, each a few µs of dispatch around less than that of arithmetic; here the arithmetic is
 * the same loops the separate kernels run (troupe_gemm, the fused norms and activations, the
 * softmax rows), in the same order, so results agree with the tfjs path to float32 rounding.
 *
 *   x [B, T, d] → y [B, T, d]; the new keys and values are written into the caches at
 *   positions P .. P+T−1, and attention reads positions 0 .. P+T−1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "common.h"

/* The block's parameters, in the order decodeBlock takes them (an empty array: absent). */
enum {
  ATTN_NORM_W,
  ATTN_NORM_B,
  Q_W,
  Q_B,
  K_W,
  K_B,
  V_W,
  V_B,
  O_W,
  O_B,
  MLP_NORM_W,
  MLP_NORM_B,
  GATE_W,
  GATE_B,
  UP_W,
  UP_B,
  DOWN_W,
  DOWN_B,
  N_PARAMS
};

static const char *const PARAM_NAMES[N_PARAMS] = {
    "attn_norm.weight", "attn_norm.bias", "attn.q.weight",    "attn.q.bias",
    "attn.k.weight",    "attn.k.bias",    "attn.v.weight",    "attn.v.bias",
    "attn.o.weight",    "attn.o.bias",    "mlp_norm.weight",  "mlp_norm.bias",
    "mlp.gate.weight",  "mlp.gate.bias",  "mlp.up.weight",    "mlp.up.bias",
    "mlp.down.weight",  "mlp.down.bias"};

/* dims, in order */
enum { D_B, D_T, D_HIDDEN, D_HEADS, D_KV, D_HD, D_INTER, D_PAST, D_CAP, D_NORM, D_MLP, N_DIMS };

typedef struct {
  int64_t B, T, d, H, KV, hd, I, P, cap;
  bool rms, swiglu;
} Dims;

static void norm(const Dims *m, const float *x, const float *w, const float *b, float eps,
                 float *y, float *stats) {
  const int64_t R = m->B * m->T;
  if (m->rms) troupe_rms_norm_forward(x, w, R, m->d, eps, y, stats);
  else troupe_layer_norm_forward(x, w, b, R, m->d, eps, y, stats, stats + R);
}

/* x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁], for each of `heads` heads of row r. */
static void rope(float *x, const float *cos, const float *sin, int64_t R, int64_t heads,
                 int64_t hd) {
  const int64_t half = hd / 2;
  for (int64_t r = 0; r < R; r++) {
    const float *c = cos + r * hd, *s = sin + r * hd;
    for (int64_t h = 0; h < heads; h++) {
      float *v = x + (r * heads + h) * hd;
      for (int64_t i = 0; i < half; i++) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] + -x2 * s[i];
        v[i + half] = x2 * c[i + half] + x1 * s[i + half];
      }
    }
  }
}

/*
 * One query row against S keys: sc = softmax(scale·q·K[j] + bias[j]), out = Σ_j sc[j]·V[j].
 * Decoding (a few new tokens): dot products and axpys, no BLAS call per (b, h).
 */
static void attend_row(const float *q, const float *K, const float *V, const float *bias,
                       int64_t S, int64_t hd, float scale, float *sc, float *out) {
  for (int64_t j = 0; j < S; j++) {
    const float *kj = K + j * hd;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < hd; i++) dot += q[i] * kj[i];
    sc[j] = scale * dot + bias[j];
  }
  troupe_softmax_row(sc, S);
  for (int64_t i = 0; i < hd; i++) out[i] = 0;
  for (int64_t j = 0; j < S; j++) {
    const float p = sc[j], *vj = V + j * hd;
#pragma omp simd
    for (int64_t i = 0; i < hd; i++) out[i] += p * vj[i];
  }
}

/*
 * att[b, t, h, :] = Σ_j softmax_j(scale·q[b, t, h]·K[b, g, j] + bias[b, t, j]) V[b, g, j], g the
 * key/value head of query head h, j < S. Up to 4 new tokens: attend_row per query; more (a
 * prefill): per (b, h) scores = Q·Kᵀ and out = P·V as two sgemms over strided blocks, the
 * softmax rows between. `scores` holds T·S floats.
 */
static void attend(const Dims *m, const float *q, const float *kc, const float *vc,
                   const float *bias, int64_t S, float *scores, float *att) {
  const int64_t B = m->B, T = m->T, H = m->H, hd = m->hd, rep = m->H / m->KV, ld = H * hd;
  const float scale = 1.0f / sqrtf((float)hd);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      const float *K = kc + (b * m->KV + h / rep) * m->cap * hd;
      const float *V = vc + (b * m->KV + h / rep) * m->cap * hd;
      const float *qh = q + (b * T * H + h) * hd; /* query t at qh + t·ld */
      const float *bh = bias + b * T * S;         /* its bias row at bh + t·S */
      float *oh = att + (b * T * H + h) * hd;
      if (T <= 4) {
        for (int64_t t = 0; t < T; t++)
          attend_row(qh + t * ld, K, V, bh + t * S, S, hd, scale, scores, oh + t * ld);
        continue;
      }
      troupe_gemm_ld(false, true, T, S, hd, qh, ld, K, hd, scores, S);
      for (int64_t t = 0; t < T; t++) {
        float *sc = scores + t * S;
        for (int64_t j = 0; j < S; j++) sc[j] = scale * sc[j] + bh[t * S + j];
        troupe_softmax_row(sc, S);
      }
      troupe_gemm_ld(false, false, T, hd, S, scores, S, V, hd, oh, ld);
    }
}

/* cache[b, g, P + t, :] = src[b, t, g, :] */
static void append(const Dims *m, const float *src, float *cache) {
  for (int64_t b = 0; b < m->B; b++)
    for (int64_t t = 0; t < m->T; t++)
      for (int64_t g = 0; g < m->KV; g++)
        memcpy(cache + ((b * m->KV + g) * m->cap + m->P + t) * m->hd,
               src + ((b * m->T + t) * m->KV + g) * m->hd, (size_t)m->hd * sizeof(float));
}

static void block(const Dims *m, float eps, const float *x, const float *const *w,
                  const float *cos, const float *sin, const float *bias, float *kc, float *vc,
                  float *y, float *work) {
  const int64_t R = m->B * m->T, d = m->d, qd = m->H * m->hd, kvd = m->KV * m->hd, S = m->P + m->T;
  float *a = work, *q = a + R * d, *k = q + R * qd, *v = k + R * kvd, *att = v + R * kvd;
  float *h1 = att + R * qd, *inner = h1 + R * d, *pre = inner + R * m->I, *up = pre + R * m->I;
  float *stats = up + (m->swiglu ? R * m->I : 0), *scores = stats + 2 * R;

  norm(m, x, w[ATTN_NORM_W], w[ATTN_NORM_B], eps, a, stats);
  troupe_linear(a, w[Q_W], w[Q_B], R, d, qd, q);
  troupe_linear(a, w[K_W], w[K_B], R, d, kvd, k);
  troupe_linear(a, w[V_W], w[V_B], R, d, kvd, v);
  if (cos) {
    rope(q, cos, sin, R, m->H, m->hd);
    rope(k, cos, sin, R, m->KV, m->hd);
  }
  append(m, k, kc);
  append(m, v, vc);
  attend(m, q, kc, vc, bias, S, scores, att);
  troupe_linear(att, w[O_W], w[O_B], R, qd, d, h1);
  for (int64_t i = 0; i < R * d; i++) h1[i] += x[i];

  norm(m, h1, w[MLP_NORM_W], w[MLP_NORM_B], eps, a, stats);
  if (m->swiglu) {
    troupe_linear(a, w[GATE_W], w[GATE_B], R, d, m->I, pre);
    troupe_linear(a, w[UP_W], w[UP_B], R, d, m->I, up);
    troupe_silu_forward(pre, inner, R * m->I);
    for (int64_t i = 0; i < R * m->I; i++) inner[i] *= up[i];
  } else {
    troupe_linear(a, w[UP_W], w[UP_B], R, d, m->I, pre);
    troupe_gelu_forward(pre, inner, R * m->I);
  }
  troupe_linear(inner, w[DOWN_W], w[DOWN_B], R, m->I, d, y);
  for (int64_t i = 0; i < R * d; i++) y[i] += h1[i];
}

/* Each parameter's length, 0 where the block has none; whether it is required. */
static void param_sizes(const Dims *m, uint64_t *size, bool *required) {
  const uint64_t d = m->d, qd = (uint64_t)m->H * m->hd, kvd = (uint64_t)m->KV * m->hd, I = m->I;
  const uint64_t dq = mul_sat(d, qd), dkv = mul_sat(d, kvd), dI = mul_sat(d, I);
  const uint64_t s[N_PARAMS] = {d, d, dq, qd, dkv, kvd, dkv, kvd, dq, d,
                                d, d, dI, I,  dI,  I,   dI,  d};
  for (int i = 0; i < N_PARAMS; i++) {
    size[i] = s[i];
    required[i] = (i % 2 == 0 && i != GATE_W) || (!m->rms && (i == ATTN_NORM_B || i == MLP_NORM_B));
  }
  required[GATE_W] = m->swiglu;
}

/*
 * decodeBlock(dims, eps, x, params, cos, sin, bias, cacheK, cacheV, y)
 *   dims: Int32Array [B, T, d, H, KV, hd, I, P, cap, norm (0 layer, 1 rms), mlp (0 gelu, 1 swiglu)]
 *   params: an array of the 18 parameters in PARAM_NAMES' order (an empty Float32Array: none)
 *   cos, sin: [B·T, hd] RoPE tables, or both empty (learned positions)
 *   bias: [B, T, P+T] additive attention bias; cacheK, cacheV: [B, KV, cap, hd], written at P..P+T−1
 *   x, y: [B, T, d]
 */
static napi_value decode_block(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "decodeBlock", 10)) return NULL;
  size_t ln;
  const int32_t *dv = arg_i32(&a, 0, "dims", &ln);
  args_need(&a, "dims", ln, N_DIMS);
  if (a.failed) return NULL;
  for (int i = 0; i < N_DIMS; i++) {
    const int32_t lo = i == D_PAST || i == D_NORM || i == D_MLP ? 0 : 1;
    if (dv[i] < lo || (i >= D_NORM && dv[i] > 1)) {
      args_fail(&a, true, "dims", "holds a value out of range");
      return NULL;
    }
  }
  const Dims m = {dv[D_B],     dv[D_T],     dv[D_HIDDEN], dv[D_HEADS],    dv[D_KV],     dv[D_HD],
                  dv[D_INTER], dv[D_PAST],  dv[D_CAP],    dv[D_NORM] == 1, dv[D_MLP] == 1};
  if (m.H % m.KV != 0) args_fail(&a, true, "dims", "heads must be a multiple of kvHeads");
  if (m.P + m.T > m.cap) args_fail(&a, true, "dims", "past + new tokens exceed the cache capacity");
  const float eps = (float)arg_num(&a, 1, "eps");
  size_t lx, lc, ls, lb, lk, lv, ly;
  const float *x = arg_f32(&a, 2, "x", &lx);
  const float *w[N_PARAMS] = {0};
  uint64_t size[N_PARAMS];
  bool required[N_PARAMS];
  param_sizes(&m, size, required);
  for (int i = 0; i < N_PARAMS && !a.failed; i++) {
    size_t len = 0;
    float *p = arg_f32_at(&a, 3, (uint32_t)i, PARAM_NAMES[i], &len);
    if (a.failed) break;
    if (len == 0 && required[i]) args_fail(&a, true, PARAM_NAMES[i], "is required");
    else if (len != 0) args_need(&a, PARAM_NAMES[i], len, size[i]);
    w[i] = len ? p : NULL;
  }
  const float *cos = arg_f32(&a, 4, "cos", &lc);
  const float *sin = arg_f32(&a, 5, "sin", &ls);
  const float *bias = arg_f32(&a, 6, "bias", &lb);
  float *kc = arg_f32(&a, 7, "cacheK", &lk);
  float *vc = arg_f32(&a, 8, "cacheV", &lv);
  float *y = arg_f32(&a, 9, "y", &ly);
  const uint64_t R = (uint64_t)m.B * m.T, S = (uint64_t)m.P + m.T;
  args_need(&a, "x", lx, mul_sat(R, m.d));
  args_need(&a, "y", ly, mul_sat(R, m.d));
  if (!a.failed && (lc != 0 || ls != 0)) {
    args_need(&a, "cos", lc, mul_sat(R, m.hd));
    args_need(&a, "sin", ls, mul_sat(R, m.hd));
    if (m.hd % 2) args_fail(&a, true, "dims", "head width must be even with RoPE");
  }
  args_need(&a, "bias", lb, mul_sat(R, S));
  const uint64_t cached = mul_sat((uint64_t)m.B * m.KV, (uint64_t)m.cap * m.hd);
  args_need(&a, "cacheK", lk, cached);
  args_need(&a, "cacheV", lv, cached);
  if (a.failed) return NULL;
  const uint64_t qd = (uint64_t)m.H * m.hd, kvd = (uint64_t)m.KV * m.hd;
  const uint64_t per_row =
      2 * (uint64_t)m.d + 2 * qd + 2 * kvd + (m.swiglu ? 3 : 2) * (uint64_t)m.I + 2;
  const uint64_t floats = add_sat(mul_sat(R, per_row), (uint64_t)m.T * S);
  float *work = floats > SIZE_MAX / sizeof(float) ? NULL : malloc(floats * sizeof(float));
  if (!work) {
    args_fail(&a, true, "decodeBlock", "could not allocate its workspace");
    return NULL;
  }
  block(&m, eps, x, w, lc ? cos : NULL, sin, bias, kc, vc, y, work);
  free(work);
  return NULL;
}

bool troupe_define_decode(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT("decodeBlock", decode_block),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
