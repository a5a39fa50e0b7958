/*
 * NF4 weights (QLoRA, Dettmers et al. 2023) dequantised inside the matmul, tile by tile: no fp32
 * copy of a whole quantised matrix ever exists, only one tile of it in a per-thread scratch
 * buffer (at most NF4_TILE_ELEMS floats, 4 MB, kept between calls: first touches of fresh pages
 * are slow on these VMs).
 *
 * A quantised matrix Q [out, in] (a projection as HF and bitsandbytes store it, W = Qᵀ) is, as
 * src/policy/quantize/nf4.ts writes it, flattened row-major in blocks of 64 values:
 *   codes         [⌈n/2⌉] u8   value 2j in the high nibble of byte j, 2j + 1 in the low one
 *   absmaxCodes   [⌈n/64⌉] u8  8-bit index into `absmaxCode` (bitsandbytes' dynamic map, 256 fp32)
 *   absmaxScale   [⌈n/16384⌉] fp32, one per 256 blocks
 *   offset        fp32
 *   ŵ_e = NF4[code_e] · (absmaxCode[absmaxCodes_b]·absmaxScale_⌊b/256⌋ + offset),  b = ⌊e/64⌋
 *
 *   nf4QuantizeBlocks(w, codes, absmax)           the 4-bit codes and fp32 absmax of w (the
 *                                                 absmax values are then double-quantised in TS)
 *   nf4Dequantize(q…, start, count, y)            y[i] = ŵ_{start+i}
 *   nf4Linear(x, q…, rows, in, out, tileRows, y)  y[R, out] = x[R, in]·Qᵀ (+ nothing: no bias)
 *   nf4LinearGradX(dy, q…, rows, in, out, tileRows, dx)
 *                                                 dx[R, in] = dy[R, out]·Q  (no gradient for Q)
 * where q… is (codes, absmaxCodes, absmaxScale, absmaxCode, offset). Forward: per tile of t rows
 * of Q, dequantise them and sgemm y[:, o0:o0+t] = x·tileᵀ. Backward: the same tiles, accumulated,
 * dx += dy[:, o0:o0+t]·tile. tileRows 0 chooses ⌊NF4_TILE_ELEMS / in⌋ (at least 16); a test sets
 * it small to run many tiles and a partial last one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "common.h"

#define NF4_BLOCK 64
#define NF4_ABSMAX_BLOCK 256
#define NF4_TILE_ELEMS (1 << 20)

/* bitsandbytes' NF4 values (csrc), index 7 exactly 0: the same table as nf4.ts' NF4_CODE. */
static const float NF4[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

typedef struct {
  const uint8_t *codes, *absmax_codes;
  const float *absmax_scale, *absmax_code;
  float offset;
} NF4Matrix;

/* dst[i] = ŵ_{start+i} for i < count: per block, its 16 scaled values, then two per byte. */
static void dequant_range(const NF4Matrix *q, int64_t start, int64_t count, float *restrict dst) {
  int64_t e = start;
  const int64_t end = start + count;
  while (e < end) {
    const int64_t b = e / NF4_BLOCK;
    const int64_t stop = (b + 1) * NF4_BLOCK < end ? (b + 1) * NF4_BLOCK : end;
    /* rounded after the product, as in TypeScript: the volatile keeps the compiler from fusing
     * the multiply and the add into an FMA (one rounding) */
    volatile float scaled =
        q->absmax_code[q->absmax_codes[b]] * q->absmax_scale[b / NF4_ABSMAX_BLOCK];
    const float a = scaled + q->offset;
    float s[16];
    for (int k = 0; k < 16; k++) s[k] = NF4[k] * a;
    float *out = dst + (e - start);
    if (e & 1) *out++ = s[q->codes[e++ >> 1] & 15]; /* an odd start: the low nibble first */
    const uint8_t *c = q->codes + (e >> 1);
    const int64_t pairs = (stop - e) / 2;
    for (int64_t j = 0; j < pairs; j++) {
      out[2 * j] = s[c[j] >> 4];
      out[2 * j + 1] = s[c[j] & 15];
    }
    e += 2 * pairs;
    if (e < stop) dst[e - start] = s[q->codes[e >> 1] >> 4], e++;
  }
}

/* This thread's scratch tile of at least n floats (grown, never shrunk); NULL: out of memory. */
static float *scratch(int64_t n) {
  static __thread float *buf = NULL;
  static __thread int64_t cap = 0;
  if (n <= cap) return buf;
  float *p = realloc(buf, (size_t)n * sizeof(float));
  if (!p) return NULL;
  buf = p;
  cap = n;
  return buf;
}

static int64_t tile_rows(int64_t asked, int64_t in, int64_t out) {
  int64_t t = asked > 0 ? asked : NF4_TILE_ELEMS / in;
  if (asked <= 0 && t < 16) t = 16;
  return t > out ? out : t;
}

/* The quantised matrix's five arguments from index i on, checked against n values. */
static NF4Matrix arg_nf4(Args *a, size_t i, uint64_t n) {
  NF4Matrix q = {0};
  size_t lc, la, ls, lt;
  q.codes = arg_typed(a, i, "codes", napi_uint8_array, "must be a Uint8Array", &lc);
  q.absmax_codes =
      arg_typed(a, i + 1, "absmaxCodes", napi_uint8_array, "must be a Uint8Array", &la);
  q.absmax_scale = arg_f32(a, i + 2, "absmaxScale", &ls);
  q.absmax_code = arg_f32(a, i + 3, "absmaxCode", &lt);
  q.offset = (float)arg_num(a, i + 4, "offset");
  if (a->failed) return q;
  const uint64_t blocks = (n + NF4_BLOCK - 1) / NF4_BLOCK;
  args_need_expr(a, "codes", lc, (n + 1) / 2, "⌈n/2⌉");
  args_need_expr(a, "absmaxCodes", la, blocks, "⌈n/64⌉");
  args_need_expr(a, "absmaxScale", ls, (blocks + NF4_ABSMAX_BLOCK - 1) / NF4_ABSMAX_BLOCK,
                 "⌈n/16384⌉");
  args_need_expr(a, "absmaxCode", lt, 256, "256");
  return q;
}

/*
 * The first level of quantize: per block of 64, absmax = max |w| and each value's NF4 index of
 * the code nearest w·(1/absmax) (fp32, clamped to [-1, 1]; lower index on a tie), two a byte,
 * the first in the high nibble; an all-zero block gets absmax 0 and code 7. The same arithmetic
 * as nf4.ts' quantizeNF4 (which then double-quantises the absmax values), so the same codes.
 */
static void quantize_blocks(const float *restrict w, int64_t n, uint8_t *restrict codes,
                            float *restrict absmax) {
  /* s > mid_k (in float64) ⟺ s > midf_k, midf_k the largest float ≤ mid_k: float compares,
   * so the count of midpoints below s vectorises, and still gives the float64 answer */
  float midf[15];
  for (int k = 0; k < 15; k++) {
    const double mid = ((double)NF4[k] + (double)NF4[k + 1]) / 2;
    float f = (float)mid;
    if ((double)f > mid) f = nextafterf(f, -1.0f);
    midf[k] = f;
  }
  for (int64_t b = 0; b * NF4_BLOCK < n; b++) {
    const int64_t begin = b * NF4_BLOCK, len = begin + NF4_BLOCK < n ? NF4_BLOCK : n - begin;
    const float *x = w + begin;
    float m = 0;
    for (int64_t i = 0; i < len; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    absmax[b] = m;
    uint8_t k[NF4_BLOCK];
    if (m == 0) {
      memset(k, 7, sizeof k);
    } else {
      const float inv = 1.0f / m;
      for (int64_t i = 0; i < len; i++) {
        float v = x[i] * inv;
        v = v > 1 ? 1 : v < -1 ? -1 : v;
        uint8_t c = 0;
        for (int j = 0; j < 15; j++) c += v > midf[j];
        k[i] = c;
      }
    }
    uint8_t *out = codes + begin / 2;
    for (int64_t i = 0; i + 1 < len; i += 2) out[i / 2] = (uint8_t)(k[i] << 4 | k[i + 1]);
    if (len & 1) out[len / 2] = (uint8_t)(k[len - 1] << 4);
  }
}

/* nf4QuantizeBlocks(w, codes, absmax): quantize_blocks over all of w. */
static napi_value nf4_quantize_blocks(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "nf4QuantizeBlocks", 3)) return NULL;
  size_t lw, lc, la;
  const float *w = arg_f32(&a, 0, "w", &lw);
  uint8_t *codes = arg_typed(&a, 1, "codes", napi_uint8_array, "must be a Uint8Array", &lc);
  float *absmax = arg_f32(&a, 2, "absmax", &la);
  if (a.failed) return NULL;
  args_need_expr(&a, "codes", lc, ((uint64_t)lw + 1) / 2, "⌈n/2⌉");
  args_need_expr(&a, "absmax", la, ((uint64_t)lw + NF4_BLOCK - 1) / NF4_BLOCK, "⌈n/64⌉");
  if (a.failed) return NULL;
  quantize_blocks(w, (int64_t)lw, codes, absmax);
  return NULL;
}

static napi_value nf4_dequantize(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "nf4Dequantize", 8)) return NULL;
  size_t ly;
  const int64_t start = arg_int_in(&a, 5, "start", 0, INT64_MAX / 2, "must be an integer >= 0");
  const int64_t count = arg_int_in(&a, 6, "count", 0, INT64_MAX / 2, "must be an integer >= 0");
  float *y = arg_f32(&a, 7, "y", &ly);
  if (a.failed) return NULL;
  const NF4Matrix q = arg_nf4(&a, 0, (uint64_t)(start + count));
  args_need_expr(&a, "y", ly, (uint64_t)count, "count");
  if (a.failed) return NULL;
  dequant_range(&q, start, count, y);
  return NULL;
}

/* The shared arguments of nf4Linear and nf4LinearGradX: (g, q…, rows, in, out, tileRows, r). */
typedef struct {
  const float *g;
  float *r;
  NF4Matrix q;
  int64_t rows, in, out, tile;
} LinearArgs;

static bool linear_args(Args *a, const char *gname, const char *rname, bool forward,
                        LinearArgs *l) {
  size_t lg, lr;
  l->g = arg_f32(a, 0, gname, &lg);
  l->rows = arg_int(a, 6, "rows", 0);
  l->in = arg_int(a, 7, "in", 1);
  l->out = arg_int(a, 8, "out", 1);
  const int64_t asked = arg_int(a, 9, "tileRows", 0);
  l->r = arg_f32(a, 10, rname, &lr);
  if (a->failed) return false;
  l->q = arg_nf4(a, 1, mul_sat((uint64_t)l->in, (uint64_t)l->out));
  const uint64_t gcols = (uint64_t)(forward ? l->in : l->out);
  const uint64_t rcols = (uint64_t)(forward ? l->out : l->in);
  args_need_expr(a, gname, lg, mul_sat((uint64_t)l->rows, gcols), forward ? "rows·in" : "rows·out");
  args_need_expr(a, rname, lr, mul_sat((uint64_t)l->rows, rcols), forward ? "rows·out" : "rows·in");
  const View v[] = {{rname, l->r, (uint64_t)lr}, {gname, l->g, (uint64_t)lg}};
  args_disjoint(a, v, 2, 1);
  if (a->failed) return false;
  l->tile = tile_rows(asked, l->in, l->out);
  return true;
}

static napi_value nf4_linear(napi_env env, napi_callback_info info) {
  Args a;
  LinearArgs l;
  if (!args_init(&a, env, info, "nf4Linear", 11) || !linear_args(&a, "x", "y", true, &l))
    return NULL;
  if (l.rows == 0) return NULL;
  float *t = scratch(l.tile * l.in);
  if (!t) return fail(env, true, "nf4Linear: out of memory for a tile"), NULL;
  for (int64_t o0 = 0; o0 < l.out; o0 += l.tile) {
    const int64_t rows = o0 + l.tile <= l.out ? l.tile : l.out - o0;
    dequant_range(&l.q, o0 * l.in, rows * l.in, t);
    /* y[:, o0:o0+rows] = x[R, in]·tile[rows, in]ᵀ */
    troupe_gemm_ld(false, true, l.rows, rows, l.in, l.g, l.in, t, l.in, l.r + o0, l.out);
  }
  return NULL;
}

static napi_value nf4_linear_grad_x(napi_env env, napi_callback_info info) {
  Args a;
  LinearArgs l;
  if (!args_init(&a, env, info, "nf4LinearGradX", 11) || !linear_args(&a, "dy", "dx", false, &l))
    return NULL;
  if (l.rows == 0) return NULL;
  float *t = scratch(l.tile * l.in);
  if (!t) return fail(env, true, "nf4LinearGradX: out of memory for a tile"), NULL;
  for (int64_t o0 = 0; o0 < l.out; o0 += l.tile) {
    const int64_t rows = o0 + l.tile <= l.out ? l.tile : l.out - o0;
    dequant_range(&l.q, o0 * l.in, rows * l.in, t);
    /* dx[R, in] (+)= dy[:, o0:o0+rows]·tile[rows, in] */
    troupe_gemm_ld_beta(false, false, l.rows, l.in, rows, l.g + o0, l.out, t, l.in,
                        o0 == 0 ? 0.0f : 1.0f, l.r, l.in);
  }
  return NULL;
}

bool troupe_define_nf4(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      TROUPE_EXPORT_EXACT("nf4QuantizeBlocks", nf4_quantize_blocks),
      TROUPE_EXPORT("nf4Dequantize", nf4_dequantize),
      TROUPE_EXPORT("nf4Linear", nf4_linear),
      TROUPE_EXPORT("nf4LinearGradX", nf4_linear_grad_x),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
