/*
 * One pre-norm decoder block with a KV cache, as one call: what `block()` in
 * src/policy/model/block.ts computes for the new tokens of a cached forward (generation), for
 * GPT-2 (LayerNorm, GELU MLP, biases), Llama / Qwen2 / Mistral (RMSNorm, SwiGLU, RoPE,
 * grouped-query heads, optional biases), Qwen3 (q/k norms), Gemma 2 / 3 ((1 + w) norms, sandwich
 * norms, GeGLU, a query scale, attention soft-cap) and Phi-3 (partial rotary). Sliding windows
 * are in the attention bias the caller passes. Decoding one token of a small model ran ~26 tfjs kernels per
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
  Q_NORM_W,
  K_NORM_W,
  ATTN_OUT_NORM_W,
  MLP_OUT_NORM_W,
  N_PARAMS
};

static const char *const PARAM_NAMES[N_PARAMS] = {
    "attn_norm.weight", "attn_norm.bias", "attn.q.weight",    "attn.q.bias",
    "attn.k.weight",    "attn.k.bias",    "attn.v.weight",    "attn.v.bias",
    "attn.o.weight",    "attn.o.bias",    "mlp_norm.weight",  "mlp_norm.bias",
    "mlp.gate.weight",  "mlp.gate.bias",  "mlp.up.weight",    "mlp.up.bias",
    "mlp.down.weight",  "mlp.down.bias",  "attn.q_norm.weight", "attn.k_norm.weight",
    "attn_out_norm.weight", "mlp_out_norm.weight"};

/* dims, in order */
enum {
  D_B,
  D_T,
  D_HIDDEN,
  D_HEADS,
  D_KV,
  D_HD,
  D_INTER,
  D_PAST,
  D_CAP,
  D_NORM,     /* 0 layer, 1 rms, 2 rms with (1 + w) gains */
  D_MLP,      /* 0 gelu, 1 swiglu, 2 geglu */
  D_ROT,      /* rotated width of each head (RoPE tables [B·T, rot]); hd unless partial */
  D_QKNORM,   /* 1: RMSNorm over each query and key head */
  D_SANDWICH, /* 1: norms on the attention and MLP outputs before their residual adds */
  N_DIMS,
  D_W16 = N_DIMS /* optional: 1 = the projection weights are bf16 bits (bf16LinearW's panels) */
};
/* floats, in order */
enum { F_EPS, F_SCALE, F_SOFTCAP, N_FLOATS };

typedef struct {
  int64_t B, T, d, H, KV, hd, I, P, cap, rot;
  bool rms, unit, qknorm, sandwich, w16;
  int mlp; /* 0 gelu, 1 swiglu, 2 geglu */
  float eps, scale, softcap; /* softcap 0: none */
} Dims;

/* γ, or 1 + γ (Gemma) in `tmp` */
static const float *gain(const Dims *m, const float *w, int64_t n, float *tmp) {
  if (!m->unit) return w;
  for (int64_t i = 0; i < n; i++) tmp[i] = 1.0f + w[i];
  return tmp;
}

/* the model's norm over rows of `cols`: LayerNorm, RMSNorm, or RMSNorm with 1 + γ */
static void norm_rows(const Dims *m, const float *x, const float *w, const float *b, int64_t rows,
                      int64_t cols, float *y, float *stats, float *tmp) {
  if (m->rms) troupe_rms_norm_forward(x, gain(m, w, cols, tmp), rows, cols, m->eps, y, stats);
  else troupe_layer_norm_forward(x, w, b, rows, cols, m->eps, y, stats, stats + rows);
}

/* x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁], on the first `rot` channels of each
 * of `heads` heads of row r (the rest pass through). */
static void rope(float *x, const float *cos, const float *sin, int64_t R, int64_t heads,
                 int64_t hd, int64_t rot) {
  const int64_t half = rot / 2;
  for (int64_t r = 0; r < R; r++) {
    const float *c = cos + r * rot, *s = sin + r * rot;
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
/* scale·s, soft-capped as c·tanh(scale·s/c) when c > 0 (Gemma 2) */
static inline float score(float s, float scale, float cap) {
  return cap > 0 ? tanhf(s * (scale / cap)) * cap : scale * s;
}

/*
 * out = Σ_j p[j]·V[j] for hd = TROUPE_VL·NV, the NV vectors of `out` held in registers across
 * the S keys (through memory, the loop ran a load and a store per multiply-add): the same fused
 * multiply-adds in the same order as attend_row's loop, so the same bits. The build's vector
 * width (common.h): 64-byte vectors without AVX-512 went through the stack.
 */
static inline void weigh_values(const float *p, const float *V, int64_t S, int NV, float *out) {
  troupe_vf acc[256 / TROUPE_VL] = {{0}};
  for (int64_t j = 0; j < S; j++) {
    const float pj = p[j], *vj = V + j * TROUPE_VL * NV;
    for (int u = 0; u < NV; u++) acc[u] += pj * vf_load(vj + TROUPE_VL * u);
  }
  for (int u = 0; u < NV; u++) vf_store(out + TROUPE_VL * u, acc[u]);
}

typedef float v8 __attribute__((vector_size(32), aligned(4)));

/* the 8×8 transpose of r[0..7] (out[l][j] = r[j][l]): unpacks, then shuffles, then halves */
static inline void transpose8(const v8 *r, v8 *out) {
  v8 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4)
    for (int h = 0; h < 2; h++) {
      u[i + h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + h + 2] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  /* u[0]: lanes 0, 4 of rows 0-3; u[2]: 1, 5; u[1]: 2, 6; u[3]: 3, 7 (rows 4-7 in u[4..7]) */
  static const int lane[4] = {0, 2, 1, 3};
  for (int l = 0; l < 4; l++) {
    out[l] = __builtin_shufflevector(u[lane[l]], u[lane[l] + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    out[l + 4] = __builtin_shufflevector(u[lane[l]], u[lane[l] + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

/*
 * sc[j] = scale·(q·K[j]) + bias[j] for 8 keys j (a fused multiply-add), hd a multiple of 8, each
 * dot in the order the compiler gave attend_row's one-key loop (gcc 12, -march=native on this
 * AVX-512 Xeon: 256-bit vectors), written out: 8 lanes, lane l summing q[i]·k[i] over i ≡ l mod 8
 * by fused multiply-adds from 0, then 0 + lane 0 + lane 1 + … + lane 7 in turn. The one-key loop
 * stored its lanes and added them one by one (8 dependent adds a key); here 8 keys' lanes are
 * transposed so that the same adds run 8 keys to a vector: the same sums, the same bits.
 */
static inline void scores8(const float *q, const float *K, const float *bias, int64_t hd,
                           float scale, float *sc) {
  v8 acc[8], lanes[8];
  for (int j = 0; j < 8; j++) {
    const float *kj = K + j * hd;
    v8 a = {0};
    for (int64_t i = 0; i < hd; i += 8) a += *(const v8 *)(q + i) * *(const v8 *)(kj + i);
    acc[j] = a;
  }
  transpose8(acc, lanes);
  v8 dot = (v8){0} + lanes[0];
  for (int l = 1; l < 8; l++) dot += lanes[l];
  *(v8 *)sc = dot * scale + *(const v8 *)bias;
}

/*
 * Kn: the next query's keys (NULL: none), prefetched with this query's values while its scores
 * are computed: a head's keys and values are two 16 KB blocks (64 keys of 64 floats) that come
 * from memory on each decode step, and a block the hardware prefetcher sees start only as it is
 * read arrives at ~6 GB/s a thread (measured: attention 264 µs a GPT-2 layer at batch 8, 2
 * threads). Prefetches only: the same arithmetic, the same bits.
 */
static void attend_row(const float *q, const float *K, const float *V, const float *Kn,
                       const float *bias, int64_t S, int64_t hd, float scale, float cap, float *sc,
                       float *out) {
  int64_t j = 0;
  if (cap == 0 && hd % 8 == 0)
    for (; j + 8 <= S; j += 8) {
      for (int64_t i = 0; i < 8 * hd; i += 16) {
        __builtin_prefetch(V + j * hd + i, 0, 3);
        if (Kn) __builtin_prefetch(Kn + j * hd + i, 0, 3);
      }
      scores8(q, K + j * hd, bias + j, hd, scale, sc + j);
    }
  for (; j < S; j++) {
    const float *kj = K + j * hd;
    for (int64_t i = 0; i < hd; i += 16) {
      __builtin_prefetch(V + j * hd + i, 0, 3);
      if (Kn) __builtin_prefetch(Kn + j * hd + i, 0, 3);
    }
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < hd; i++) dot += q[i] * kj[i];
    sc[j] = score(dot, scale, cap) + bias[j];
  }
  troupe_softmax_row(sc, S);
  switch (hd) { /* the head widths of the families, unrolled (a constant NV once inlined) */
  case 32: weigh_values(sc, V, S, 32 / TROUPE_VL, out); return;
  case 64: weigh_values(sc, V, S, 64 / TROUPE_VL, out); return;
  case 128: weigh_values(sc, V, S, 128 / TROUPE_VL, out); return;
  case 256: weigh_values(sc, V, S, 256 / TROUPE_VL, out); return;
  }
  for (int64_t i = 0; i < hd; i++) out[i] = 0;
  for (int64_t j = 0; j < S; j++) {
    const float p = sc[j], *vj = V + j * hd;
#pragma omp simd
    for (int64_t i = 0; i < hd; i++) out[i] += p * vj[i];
  }
}

/*
 * att[b, t, h, :] = Σ_j softmax_j(scale·q[b, t, h]·K[b, g, j] + bias[b, t, j]) V[b, g, j], g the
 * key/value head of query head h, j < S, for rows b0 ≤ b < b1. Up to 4 new tokens: attend_row
 * per query; more (a prefill): per (b, h) scores = Q·Kᵀ and out = P·V as two sgemms over strided
 * blocks, the softmax rows between. `scores` holds T·S floats.
 */
static void attend_rows(const Dims *m, const float *q, const float *kc, const float *vc,
                        const float *bias, int64_t S, float *scores, float *att, int64_t b0,
                        int64_t b1) {
  const int64_t T = m->T, H = m->H, hd = m->hd, rep = m->H / m->KV, ld = H * hd;
  const float scale = m->scale, cap = m->softcap;
  for (int64_t b = b0; b < b1; b++)
    for (int64_t h = 0; h < H; h++) {
      const float *K = kc + (b * m->KV + h / rep) * m->cap * hd;
      const float *V = vc + (b * m->KV + h / rep) * m->cap * hd;
      const float *qh = q + (b * T * H + h) * hd; /* query t at qh + t·ld */
      const float *bh = bias + b * T * S;         /* its bias row at bh + t·S */
      float *oh = att + (b * T * H + h) * hd;
      if (T <= 4) {
        /* the keys of the next (b, h) this thread takes, to prefetch */
        const int64_t nb = h + 1 < H ? b : b + 1, nh = h + 1 < H ? h + 1 : 0;
        const float *Kn = nb < b1 ? kc + (nb * m->KV + nh / rep) * m->cap * hd : NULL;
        for (int64_t t = 0; t < T; t++)
          attend_row(qh + t * ld, K, V, t + 1 == T ? Kn : NULL, bh + t * S, S, hd, scale, cap,
                     scores, oh + t * ld);
        continue;
      }
      troupe_gemm_ld(false, true, T, S, hd, qh, ld, K, hd, scores, S);
      for (int64_t t = 0; t < T; t++) {
        float *sc = scores + t * S;
        for (int64_t j = 0; j < S; j++) sc[j] = score(sc[j], scale, cap) + bh[t * S + j];
        troupe_softmax_row(sc, S);
      }
      troupe_gemm_ld(false, false, T, hd, S, scores, S, V, hd, oh, ld);
    }
}

typedef struct {
  const Dims *m;
  const float *q, *kc, *vc, *bias;
  int64_t S;
  float *scores, *att; /* scores: T·S floats per thread */
} Attend;

static void task_attend(void *ctx, int t, int n) {
  const Attend *a = ctx;
  const int64_t B = a->m->B;
  attend_rows(a->m, a->q, a->kc, a->vc, a->bias, a->S, a->scores + t * a->m->T * a->S, a->att,
              B * t / n, B * (t + 1) / n);
}

/*
 * attend_rows over every row b, split by rows across this thread's BLAS threads when decoding
 * (T ≤ 4: loops of ours, each row's sums in the same order whatever the split) and the work is
 * worth waking a helper: at batch 64 a decode step's attention on a tiny GPT-2 (4 heads of 32,
 * 64 keys) is ~0.3 ms a layer on one thread. A prefill stays on this thread: its sgemms would
 * each start BLAS threads of their own. `scores` holds threads·T·S floats.
 */
static void attend(const Dims *m, const float *q, const float *kc, const float *vc,
                   const float *bias, int64_t S, int threads, float *scores, float *att) {
  Attend a = {m, q, kc, vc, bias, S, scores, att};
  if (threads > 1) troupe_parallel(threads, task_attend, &a);
  else attend_rows(m, q, kc, vc, bias, S, scores, att, 0, m->B);
}

/* Threads for a decode step's attention: this thread's BLAS count, where there is work for them
 * (rows·heads·keys·hd multiply-adds ≥ 2^16 each) and each gets a row. */
static int attend_threads(const Dims *m, int64_t S) {
  if (m->T > 4) return 1;
  const int64_t work = m->B * m->T * m->H * S * m->hd;
  int n = troupe_threads();
  while (n > 1 && (work / n < (1 << 16) || n > m->B)) n--;
  return n;
}

/* cache[b, g, P + t, :] = src[b, t, g, :] */
static void append(const Dims *m, const float *src, float *cache) {
  for (int64_t b = 0; b < m->B; b++)
    for (int64_t t = 0; t < m->T; t++)
      for (int64_t g = 0; g < m->KV; g++)
        memcpy(cache + ((b * m->KV + g) * m->cap + m->P + t) * m->hd,
               src + ((b * m->T + t) * m->KV + g) * m->hd, (size_t)m->hd * sizeof(float));
}

/* y = x·W + b: W float32, or bf16 bits (m->w16: stored bf16, read as they are); false: out of
 * memory (the bf16 kernel's workspace) */
static bool proj(const Dims *m, const float *x, const float *w, const float *b, int64_t R,
                 int64_t in, int64_t out, float *y) {
  if (m->w16) return troupe_linear_w16(x, (const uint16_t *)w, b, R, in, out, y);
  if (!troupe_gemm_seq(x, w, b, R, in, out, y)) troupe_linear(x, w, b, R, in, out, y);
  return true;
}

/* false: a projection's workspace could not be allocated */
static bool block(const Dims *m, const float *x, const float *const *w, const float *cos,
                  const float *sin, const float *bias, float *kc, float *vc, float *y,
                  float *work) {
  bool ok = true;
  const int64_t R = m->B * m->T, d = m->d, qd = m->H * m->hd, kvd = m->KV * m->hd, S = m->P + m->T;
  const bool gated = m->mlp != 0;
  float *a = work, *q = a + R * d, *k = q + R * qd, *v = k + R * kvd, *att = v + R * kvd;
  float *h1 = att + R * qd, *inner = h1 + R * d, *pre = inner + R * m->I, *up = pre + R * m->I;
  float *out = up + (gated ? R * m->I : 0), *stats = out + R * d;
  float *tmp = stats + 2 * R * (m->H > 1 ? m->H : 1), *scores = tmp + (d > m->hd ? d : m->hd);

  norm_rows(m, x, w[ATTN_NORM_W], w[ATTN_NORM_B], R, d, a, stats, tmp);
  if (m->w16) { /* q, k and v in one pass over their weights (the same bits as three) */
    const uint16_t *wq[3] = {(const uint16_t *)w[Q_W], (const uint16_t *)w[K_W],
                             (const uint16_t *)w[V_W]};
    const float *bq[3] = {w[Q_B], w[K_B], w[V_B]};
    const int64_t nq[3] = {qd, kvd, kvd};
    float *yq[3] = {q, k, v};
    ok &= troupe_linear_w16_many(a, R, d, 3, wq, bq, nq, yq);
  } else {
    ok &= proj(m, a, w[Q_W], w[Q_B], R, d, qd, q);
    ok &= proj(m, a, w[K_W], w[K_B], R, d, kvd, k);
    ok &= proj(m, a, w[V_W], w[V_B], R, d, kvd, v);
  }
  if (m->qknorm) { /* each head a row of hd, in place */
    norm_rows(m, q, w[Q_NORM_W], NULL, R * m->H, m->hd, q, stats, tmp);
    norm_rows(m, k, w[K_NORM_W], NULL, R * m->KV, m->hd, k, stats, tmp);
  }
  if (cos) {
    rope(q, cos, sin, R, m->H, m->hd, m->rot);
    rope(k, cos, sin, R, m->KV, m->hd, m->rot);
  }
  append(m, k, kc);
  append(m, v, vc);
  attend(m, q, kc, vc, bias, S, attend_threads(m, S), scores, att);
  if (m->sandwich) {
    ok &= proj(m, att, w[O_W], w[O_B], R, qd, d, out);
    norm_rows(m, out, w[ATTN_OUT_NORM_W], NULL, R, d, h1, stats, tmp);
  } else ok &= proj(m, att, w[O_W], w[O_B], R, qd, d, h1);
  for (int64_t i = 0; i < R * d; i++) h1[i] += x[i];

  norm_rows(m, h1, w[MLP_NORM_W], w[MLP_NORM_B], R, d, a, stats, tmp);
  if (gated) {
    ok &= proj(m, a, w[GATE_W], w[GATE_B], R, d, m->I, pre);
    ok &= proj(m, a, w[UP_W], w[UP_B], R, d, m->I, up);
    if (m->mlp == 1) troupe_silu_forward(pre, inner, R * m->I);
    else troupe_gelu_forward(pre, inner, R * m->I);
    for (int64_t i = 0; i < R * m->I; i++) inner[i] *= up[i];
  } else {
    ok &= proj(m, a, w[UP_W], w[UP_B], R, d, m->I, pre);
    troupe_gelu_forward(pre, inner, R * m->I);
  }
  if (m->sandwich) {
    ok &= proj(m, inner, w[DOWN_W], w[DOWN_B], R, m->I, d, out);
    norm_rows(m, out, w[MLP_OUT_NORM_W], NULL, R, d, y, stats, tmp);
  } else ok &= proj(m, inner, w[DOWN_W], w[DOWN_B], R, m->I, d, y);
  for (int64_t i = 0; i < R * d; i++) y[i] += h1[i];
  return ok;
}

/* Each parameter's length, 0 where the block has none; whether it is required. */
static void param_sizes(const Dims *m, uint64_t *size, bool *required) {
  const uint64_t d = m->d, qd = (uint64_t)m->H * m->hd, kvd = (uint64_t)m->KV * m->hd, I = m->I;
  const uint64_t dq = mul_sat(d, qd), dkv = mul_sat(d, kvd), dI = mul_sat(d, I), hd = m->hd;
  const uint64_t s[N_PARAMS] = {d, d, dq, qd, dkv, kvd, dkv, kvd, dq, d, d,
                                d, dI, I, dI, I, dI, d, hd, hd, d, d};
  /* a bf16 projection weight [in, out]: bf16LinearW's panels, two values per float of its array */
  const uint64_t panels[N_PARAMS] = {[Q_W] = mul_sat(d, (qd + 31) / 32 * 32),
                                     [K_W] = mul_sat(d, (kvd + 31) / 32 * 32),
                                     [V_W] = mul_sat(d, (kvd + 31) / 32 * 32),
                                     [O_W] = mul_sat(qd, (d + 31) / 32 * 32),
                                     [GATE_W] = mul_sat(d, (I + 31) / 32 * 32),
                                     [UP_W] = mul_sat(d, (I + 31) / 32 * 32),
                                     [DOWN_W] = mul_sat(I, (d + 31) / 32 * 32)};
  for (int i = 0; i < N_PARAMS; i++) {
    size[i] = m->w16 && panels[i] ? (panels[i] + 1) / 2 : s[i];
    required[i] = i < Q_NORM_W && ((i % 2 == 0 && i != GATE_W) ||
                                   (!m->rms && (i == ATTN_NORM_B || i == MLP_NORM_B)));
  }
  required[GATE_W] = m->mlp != 0;
  required[Q_NORM_W] = required[K_NORM_W] = m->qknorm;
  required[ATTN_OUT_NORM_W] = required[MLP_OUT_NORM_W] = m->sandwich;
}

/* dims and floats into *m (as decodeBlock takes them); false with an error thrown when out of range */
static bool read_dims(Args *a, const int32_t *dv, size_t ln, const double *fv, Dims *m) {
  for (int i = 0; i < N_DIMS; i++) {
    const bool flag = i == D_NORM || i == D_MLP || i == D_QKNORM || i == D_SANDWICH;
    const int32_t lo = i == D_PAST || flag ? 0 : 1;
    const int32_t hi = i == D_NORM || i == D_MLP ? 2 : flag ? 1 : INT32_MAX;
    if (dv[i] < lo || dv[i] > hi) {
      args_fail(a, true, "dims", "holds a value out of range");
      return false;
    }
  }
  *m = (Dims){.B = dv[D_B],
              .T = dv[D_T],
              .d = dv[D_HIDDEN],
              .H = dv[D_HEADS],
              .KV = dv[D_KV],
              .hd = dv[D_HD],
              .I = dv[D_INTER],
              .P = dv[D_PAST],
              .cap = dv[D_CAP],
              .rot = dv[D_ROT],
              .rms = dv[D_NORM] >= 1,
              .unit = dv[D_NORM] == 2,
              .qknorm = dv[D_QKNORM] == 1,
              .sandwich = dv[D_SANDWICH] == 1,
              .w16 = ln > D_W16 && dv[D_W16] == 1,
              .mlp = dv[D_MLP],
              .eps = (float)fv[F_EPS],
              .scale = (float)fv[F_SCALE],
              .softcap = (float)fv[F_SOFTCAP]};
  if (ln > D_W16 && (dv[D_W16] < 0 || dv[D_W16] > 1))
    args_fail(a, true, "dims", "holds a value out of range");
  if (m->H % m->KV != 0) args_fail(a, true, "dims", "heads must be a multiple of kvHeads");
  if (m->P + m->T > m->cap)
    args_fail(a, true, "dims", "past + new tokens exceed the cache capacity");
  if (m->rot > m->hd || m->rot % 2) args_fail(a, true, "dims", "rot must be even and at most hd");
  if ((m->qknorm || m->sandwich || m->unit) && !m->rms)
    args_fail(a, true, "dims", "q/k, sandwich and (1 + w) norms need RMSNorm");
  if (!(fv[F_EPS] > 0) || !(fv[F_SCALE] > 0) || !(fv[F_SOFTCAP] >= 0) || !isfinite(fv[F_SOFTCAP]))
    args_fail(a, true, "floats", "needs eps > 0, scale > 0 and a soft-cap ≥ 0");
  return !a->failed;
}

/* The 22 parameters of a block, elements first .. first + 21 of array argument `arg`, into w
 * (NULL where absent); false with an error thrown when one is missing or of the wrong length. */
static bool read_params(Args *a, size_t arg, uint32_t first, const Dims *m, const float **w) {
  uint64_t size[N_PARAMS];
  bool required[N_PARAMS];
  param_sizes(m, size, required);
  for (int i = 0; i < N_PARAMS && !a->failed; i++) {
    size_t len = 0;
    float *p = arg_f32_at(a, arg, first + (uint32_t)i, PARAM_NAMES[i], &len);
    if (a->failed) break;
    if (len == 0 && required[i]) args_fail(a, true, PARAM_NAMES[i], "is required");
    else if (len != 0) args_need(a, PARAM_NAMES[i], len, size[i]);
    w[i] = len ? p : NULL;
  }
  return !a->failed;
}

/* The floats of block()'s workspace. */
static uint64_t work_floats(const Dims *m) {
  const uint64_t R = (uint64_t)m->B * m->T, S = (uint64_t)m->P + m->T;
  const uint64_t qd = (uint64_t)m->H * m->hd, kvd = (uint64_t)m->KV * m->hd;
  const uint64_t heads = m->H > 1 ? (uint64_t)m->H : 1;
  const uint64_t per_row = 3 * (uint64_t)m->d + 2 * qd + 2 * kvd +
                           (m->mlp != 0 ? 3 : 2) * (uint64_t)m->I + 2 * heads;
  const uint64_t fixed =
      add_sat(mul_sat((uint64_t)attend_threads(m, (int64_t)S), (uint64_t)m->T * S),
              (uint64_t)(m->d > m->hd ? m->d : m->hd));
  return add_sat(mul_sat(R, per_row), fixed);
}

/*
 * decodeBlock(dims, floats, x, params, cos, sin, bias, cacheK, cacheV, y)
 *   dims: Int32Array [B, T, d, H, KV, hd, I, P, cap, norm, mlp, rot, qkNorm, sandwich, w16?]
 *     (see D_*; w16 1: the seven projection weights are bf16 bits in bf16LinearW's panels, each
 *     a Float32Array view of the panels' bytes, ⌈⌈out/32⌉·32·in / 2⌉ floats)
 *   floats: Float64Array [eps, query scale, attention soft-cap (0: none)]
 *   params: an array of the 22 parameters in PARAM_NAMES' order (an empty Float32Array: none)
 *   cos, sin: [B·T, rot] RoPE tables, or both empty (learned positions)
 *   bias: [B, T, P+T] additive attention bias; cacheK, cacheV: [B, KV, cap, hd], written at P..P+T−1
 *   x, y: [B, T, d]
 */
static napi_value decode_block(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "decodeBlock", 10)) return NULL;
  size_t ln, lf;
  const int32_t *dv = arg_i32(&a, 0, "dims", &ln);
  args_need(&a, "dims", ln, N_DIMS);
  const double *fv = arg_f64(&a, 1, "floats", &lf);
  args_need(&a, "floats", lf, N_FLOATS);
  if (a.failed) return NULL;
  Dims m;
  if (!read_dims(&a, dv, ln, fv, &m)) return NULL;
  size_t lx, lc, ls, lb, lk, lv, ly;
  const float *x = arg_f32(&a, 2, "x", &lx);
  const float *w[N_PARAMS] = {0};
  if (!read_params(&a, 3, 0, &m, w)) return NULL;
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
    args_need(&a, "cos", lc, mul_sat(R, m.rot));
    args_need(&a, "sin", ls, mul_sat(R, m.rot));
  }
  args_need(&a, "bias", lb, mul_sat(R, S));
  const uint64_t cached = mul_sat((uint64_t)m.B * m.KV, (uint64_t)m.cap * m.hd);
  args_need(&a, "cacheK", lk, cached);
  args_need(&a, "cacheV", lv, cached);
  if (a.failed) return NULL;
  const uint64_t floats = work_floats(&m);
  float *work = floats > SIZE_MAX / sizeof(float) ? NULL : malloc(floats * sizeof(float));
  if (!work) {
    args_fail(&a, true, "decodeBlock", "could not allocate its workspace");
    return NULL;
  }
  const bool ok = block(&m, x, w, lc ? cos : NULL, sin, bias, kc, vc, y, work);
  free(work);
  if (!ok) args_fail(&a, true, "its bf16 workspace", "could not be allocated");
  return NULL;
}

/* decodeStep's dims after the block's (D_W16 must be 0 there: float32 weights only) */
enum { S_LAYERS = D_W16 + 1, S_VOCAB, S_TIED, S_LEARNED, N_STEP_DIMS };
/* its floats after the block's */
enum { F_EMBED_SCALE = N_FLOATS, N_STEP_FLOATS };

/*
 * decodeStep(dims, floats, ids, pos, embed, posEmbed, params, finalW, finalB, head, keyMask,
 *            cos, sin, cachesK, cachesV, logits)
 * One decode step of the whole model: what CausalLM.forward with a host KV cache (the native
 * decoder block per layer) and then its LM head compute for T = 1 new token a row, in one call
 * and through the same kernels in the same order: x = embed[ids]·embedScale (when ≠ 1) +
 * posEmbed[pos] (learned positions), each layer's block() (decodeBlock's), the final norm
 * (troupe_layer_norm_forward / troupe_rms_norm_forward, as the fused norm kernel), and
 * logits = h·headᵀ (tied: head is the embedding [V, d]) or h·head ([d, V]) by troupe_gemm, the
 * call the native BatchMatMul makes for a batch of one. Learned positions, or RoPE tables.
 *   dims: Int32Array [decodeBlock's 15 dims with T = 1 and w16 = 0, layers L, vocab V, tied,
 *     learned positions]
 *   floats: Float64Array [eps, query scale, soft-cap, embedScale]
 *   ids, pos: Int32Array [B] (token ids < V; positions < posEmbed's rows)
 *   embed: [V, d]; posEmbed: [maxPositions, d] (empty without learned positions)
 *   params: an array of L·22 parameters, layer by layer in PARAM_NAMES' order
 *   finalW, finalB: [d] (finalB empty for RMSNorm); head: [V, d] tied, else [d, V]
 *   keyMask: Uint8Array [B, P+1], 1 = a real key: every layer's attention bias is 0 there and
 *     −1e9 elsewhere (batch.ts attentionBias for one query at position P, which sees all P+1
 *     keys causally, without a sliding window)
 *   cos, sin: [B, rot] RoPE tables (every layer's; rot is dims' D_ROT), or both empty
 *   cachesK, cachesV: arrays of L caches [B, KV, cap, hd], written at position P
 *   logits: [B, V] out
 */
static napi_value decode_step(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "decodeStep", 16)) return NULL;
  size_t ln, lf;
  const int32_t *dv = arg_i32(&a, 0, "dims", &ln);
  args_need(&a, "dims", ln, N_STEP_DIMS);
  const double *fv = arg_f64(&a, 1, "floats", &lf);
  args_need(&a, "floats", lf, N_STEP_FLOATS);
  if (a.failed) return NULL;
  Dims m;
  if (!read_dims(&a, dv, ln, fv, &m)) return NULL;
  if (m.T != 1) args_fail(&a, true, "dims", "T must be 1 (one new token a row)");
  if (m.w16) args_fail(&a, true, "dims", "w16 must be 0 (float32 weights only)");
  const int32_t L = dv[S_LAYERS], V = dv[S_VOCAB], tied = dv[S_TIED], learned = dv[S_LEARNED];
  if (L < 1 || V < 1 || tied < 0 || tied > 1 || learned < 0 || learned > 1)
    args_fail(&a, true, "dims", "holds a value out of range");
  if (!isfinite(fv[F_EMBED_SCALE])) args_fail(&a, true, "floats", "needs a finite embedScale");
  if (a.failed) return NULL;
  const int64_t B = m.B, d = m.d, R = m.B, S = m.P + 1;
  size_t li, lp, le, lpe, lfw, lfb, lh, lb, ll;
  const int32_t *ids = arg_i32(&a, 2, "ids", &li);
  const int32_t *pos = arg_i32(&a, 3, "pos", &lp);
  const float *embed = arg_f32(&a, 4, "embed", &le);
  const float *pe = arg_f32(&a, 5, "posEmbed", &lpe);
  const float *fw = arg_f32(&a, 7, "finalW", &lfw);
  const float *fb = arg_f32(&a, 8, "finalB", &lfb);
  const float *head = arg_f32(&a, 9, "head", &lh);
  const uint8_t *mask =
      arg_typed(&a, 10, "keyMask", napi_uint8_array, "must be a Uint8Array", &lb);
  size_t lc, ls;
  const float *cos = arg_f32(&a, 11, "cos", &lc);
  const float *sin = arg_f32(&a, 12, "sin", &ls);
  float *logits = arg_f32(&a, 15, "logits", &ll);
  if (!a.failed && (lc != 0 || ls != 0)) {
    if (learned) args_fail(&a, true, "cos", "must be empty with learned positions");
    args_need(&a, "cos", lc, mul_sat((uint64_t)R, (uint64_t)m.rot));
    args_need(&a, "sin", ls, mul_sat((uint64_t)R, (uint64_t)m.rot));
  }
  args_need(&a, "ids", li, (uint64_t)B);
  args_need(&a, "pos", lp, (uint64_t)B);
  args_need(&a, "embed", le, mul_sat((uint64_t)V, (uint64_t)d));
  args_need(&a, "finalW", lfw, (uint64_t)d);
  if (!m.rms) args_need(&a, "finalB", lfb, (uint64_t)d);
  args_need(&a, "head", lh, mul_sat((uint64_t)V, (uint64_t)d));
  args_need(&a, "keyMask", lb, mul_sat((uint64_t)R, (uint64_t)S));
  args_need(&a, "logits", ll, mul_sat((uint64_t)R, (uint64_t)V));
  if (a.failed) return NULL;
  if (le != (size_t)V * d || lh != (size_t)V * d || lfw != (size_t)d || lb != (size_t)(R * S) ||
      ll != (size_t)(R * V) || li != (size_t)B || lp != (size_t)B) {
    args_fail(&a, true, "decodeStep", "an input is longer than its shape (see dims)");
    return NULL;
  }
  const int64_t maxPos = learned ? (int64_t)(lpe / (size_t)d) : 0;
  if (learned && (lpe == 0 || lpe % (size_t)d != 0))
    args_fail(&a, true, "posEmbed", "must hold rows of d floats");
  for (int64_t b = 0; b < B && !a.failed; b++) {
    if (ids[b] < 0 || ids[b] >= V) args_fail(&a, true, "ids", "holds a token id out of 0..V−1");
    else if (learned && (pos[b] < 0 || pos[b] >= maxPos))
      args_fail(&a, true, "pos", "holds a position out of posEmbed's rows");
  }
  if (a.failed) return NULL;
  const float **w = calloc((size_t)L * N_PARAMS, sizeof *w);
  float **kc = calloc((size_t)L, sizeof *kc), **vc = calloc((size_t)L, sizeof *vc);
  const uint64_t block_floats = work_floats(&m);
  const uint64_t floats =
      add_sat(add_sat(block_floats, mul_sat((uint64_t)R, (uint64_t)S)),
              add_sat(mul_sat(3, mul_sat((uint64_t)R, d)), add_sat(2 * (uint64_t)R, (uint64_t)d)));
  float *work = floats > SIZE_MAX / sizeof(float) ? NULL : malloc(floats * sizeof(float));
  if (!w || !kc || !vc || !work) {
    args_fail(&a, true, "decodeStep", "could not allocate its workspace");
    goto done;
  }
  const uint64_t cached = mul_sat((uint64_t)m.B * m.KV, (uint64_t)m.cap * m.hd);
  for (int32_t l = 0; l < L && !a.failed; l++) {
    if (!read_params(&a, 6, (uint32_t)l * N_PARAMS, &m, w + (size_t)l * N_PARAMS)) break;
    size_t lk, lv;
    kc[l] = arg_f32_at(&a, 13, (uint32_t)l, "cachesK", &lk);
    vc[l] = arg_f32_at(&a, 14, (uint32_t)l, "cachesV", &lv);
    args_need(&a, "cachesK", lk, cached);
    args_need(&a, "cachesV", lv, cached);
  }
  if (a.failed) goto done;
  float *x = work + block_floats, *y = x + R * d, *h = y + R * d, *stats = h + R * d;
  float *tmp = stats + 2 * R, *bias = tmp + d;
  for (int64_t i = 0; i < R * S; i++) bias[i] = mask[i] ? 0.0f : -1e9f;
  const float scale = (float)fv[F_EMBED_SCALE];
  for (int64_t b = 0; b < B; b++) { /* the gather, × embedScale, + the position's row */
    const float *e = embed + (int64_t)ids[b] * d, *p = learned ? pe + (int64_t)pos[b] * d : NULL;
    float *xb = x + b * d;
    for (int64_t i = 0; i < d; i++) {
      float v = e[i];
      if (scale != 1.0f) v = v * scale;
      xb[i] = p ? v + p[i] : v;
    }
  }
  bool ok = true;
  for (int32_t l = 0; l < L; l++) {
    ok &= block(&m, x, w + (size_t)l * N_PARAMS, lc ? cos : NULL, sin, bias, kc[l], vc[l], y,
                work);
    float *t = x;
    x = y;
    y = t;
  }
  norm_rows(&m, x, fw, lfb ? fb : NULL, R, d, h, stats, tmp);
  troupe_gemm(false, tied == 1, R, V, d, h, head, logits);
  if (!ok) args_fail(&a, true, "its workspace", "could not be allocated");
done:
  free(work);
  free(kc);
  free(vc);
  free(w);
  return NULL;
}

bool troupe_define_decode(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT("decodeBlock", decode_block),
      TROUPE_EXPORT("decodeStep", decode_step),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
