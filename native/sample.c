/*
 * Sampling's row work (src/policy/sampling.ts sampleToken), to the bit what its JavaScript does:
 *
 *   sampleExpRow(z, scale, e, out)
 *     max = max_i z[i] (the first index holding it: arg), e[i] = exp((z[i] − max)·scale) in
 *     float64, total = Σ e[i] summed in index order;  out = [max, arg, total]
 *   sampleExpRows(z, rows, scale, e, out)
 *     sampleExpRow of each row of z [rows, V] (out [rows, 3]), the rows split among the BLAS threads
 *   categoricalRow(e, target)
 *     the first v with target < e[0] + … + e[v] (summed in order; else the last), then back
 *     past zeros: RandomStream.categorical's walk over one row, given its target
 *   exp64(x, y)
 *     y[i] = exp(x[i]): the exp below, for the tests that hold it to Math.exp
 *
 * exp is V8's Math.exp, which is fdlibm's __ieee754_exp (V8's base::ieee754::exp): x = k·ln2 +
 * r with ln2 split into a 32-bit-exact high part and a low part, e^r from Remez's degree-5
 * rational form, scaled by 2^k; with fdlibm's thresholds and special cases (V8 adds exp(1) = e
 * exactly). Written here from that algorithm, in the same operations in the same order, so every
 * result has the same bits. The AVX-512 loop does 8 lanes of every path but the special cases
 * (x = 1, non-finite, overflow, underflow, subnormal results), which go through the scalar
 * function. Neither may fuse a multiply and an
 * add (an FMA rounds once where the algorithm rounds twice): this file is compiled with
 * contraction off, and its exports run without flushing subnormals (TROUPE_EXPORT_EXACT), whose
 * results e^x has below x ≈ −708.
 *
 * The sum stays serial (a vector sum would reorder it), in the exps' loop. Measured on GPT-2's
 * V = 50,257 (Intel Xeon, AVX-512, one thread): a row 0.13–0.15 ms against 0.70–0.75 ms in
 * JavaScript (Math.exp ~14 ns an element, plus the row's allocation and the draw's two passes).
 */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <stdio.h>

#include "args.h"
#include "common.h"

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define SAMPLE_AVX512 1
#endif

/* fdlibm e_exp.c's constants (hex: the doubles' high and low words). */
static const double LN2_HI = 6.93147180369123816490e-01; /* 0x3fe62e42 fee00000 */
static const double LN2_LO = 1.90821492927058770002e-10; /* 0x3dea39ef 35793c76 */
static const double INV_LN2 = 1.44269504088896338700e+00; /* 0x3ff71547 652b82fe */
static const double P1 = 1.66666666666666019037e-01;      /* 0x3fc55555 5555553e */
static const double P2 = -2.77777777770155933842e-03;     /* 0xbf66c16c 16bebd93 */
static const double P3 = 6.61375632143793436117e-05;      /* 0x3f11566a af25de2c */
static const double P4 = -1.65339022054652515390e-06;     /* 0xbebbbd41 c5d26bf1 */
static const double P5 = 4.13813679705723846039e-08;      /* 0x3e663769 72bea4d0 */
static const double O_THRESHOLD = 7.09782712893383973096e+02;  /* 0x40862e42 fefa39ef */
static const double U_THRESHOLD = -7.45133219101941108420e+02; /* 0xc0874910 d52d3051 */
static const double TWO_M1000 = 9.33263618503218878990e-302;   /* 2^-1000 */
static const double TWO_1023 = 8.988465674311579539e307;       /* 2^1023 */
static const double HUGE_VAL_ = 1.0e+300;
static const double E = 2.718281828459045; /* 0x4005bf0a 8b145769 */

static inline uint64_t bits_of(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline double of_bits(uint64_t u) {
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* e^x, as fdlibm's __ieee754_exp (and so V8's Math.exp) computes it. */
static double v8_exp(double x) {
  const uint64_t u = bits_of(x);
  const uint32_t hx = (uint32_t)(u >> 32) & 0x7fffffffu; /* high word of |x| */
  const int neg = (int)(u >> 63);
  double hi = 0, lo = 0;
  int k = 0;
  if (hx >= 0x40862e42u) { /* |x| ≥ 709.78…: non-finite, overflow or underflow */
    if (hx >= 0x7ff00000u) {
      if (((hx & 0xfffffu) | (uint32_t)u) != 0) return x + x; /* NaN */
      return neg ? 0.0 : x;                                   /* e^±inf */
    }
    if (x > O_THRESHOLD) return HUGE_VAL_ * HUGE_VAL_; /* inf */
    if (x < U_THRESHOLD) return TWO_M1000 * TWO_M1000; /* 0 */
  }
  if (hx > 0x3fd62e42u) {   /* |x| > ln2/2 */
    if (hx < 0x3ff0a2b2u) { /* and |x| < 1.5·ln2: k = ±1 */
      if (x == 1.0) return E;
      hi = neg ? x + LN2_HI : x - LN2_HI;
      lo = neg ? -LN2_LO : LN2_LO;
      k = neg ? -1 : 1;
    } else {
      k = (int)(INV_LN2 * x + (neg ? -0.5 : 0.5));
      const double t = k;
      hi = x - t * LN2_HI; /* exact: t·LN2_HI has ≤ 32 + 11 significant bits */
      lo = t * LN2_LO;
    }
    x = hi - lo;
  } else if (hx < 0x3e300000u) { /* |x| < 2^-28 */
    if (HUGE_VAL_ + x > 1.0) return 1.0 + x;
  } else {
    k = 0;
  }
  const double t = x * x;
  const double twopk =
      of_bits((uint64_t)(uint32_t)(0x3ff00000 + ((k >= -1021 ? k : k + 1000) * (1 << 20))) << 32);
  const double c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1.0 - ((x * c) / (c - 2.0) - x);
  const double y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi);
  if (k >= -1021) {
    if (k == 1024) return y * 2.0 * TWO_1023;
    return y * twopk;
  }
  return y * twopk * TWO_M1000;
}

#ifdef SAMPLE_AVX512
/*
 * v8_exp of 8 lanes, in vector operations that are v8_exp's in the same order: the main path
 * (1.5·ln2 ≤ |x| < 709.78…, k in [−1021, 1023]); |x| in (ln2/2, 1.5·ln2), k = ±1, whose hi and
 * lo are the main path's at t = ±1 (x ∓ LN2_HI and ±LN2_LO: the same roundings); |x| in
 * [2^-28, ln2/2], k = 0: r = x (as hi = x, lo = 0: x − 0 is x) and 1 − ((x·c)/(c − 2) − x);
 * |x| < 2^-28: 1 + x. The other lanes (x = 1, |x| ≥ 709.78…, NaN, a k past the normal range) go
 * through v8_exp. Logits near their max (a small model's, a high temperature) are mostly in the
 * middle two cases, which went through v8_exp one lane at a time (docs/rl.md: the GRPO bench
 * job's sampling).
 */
static inline __m512d v8_exp8(__m512d x) {
  const __m512i u = _mm512_castpd_si512(x);
  const __m512i hx = _mm512_and_si512(_mm512_srli_epi64(u, 32), _mm512_set1_epi64(0x7fffffff));
  const __mmask8 main = _mm512_cmpge_epu64_mask(hx, _mm512_set1_epi64(0x3ff0a2b2)) &
                        _mm512_cmplt_epu64_mask(hx, _mm512_set1_epi64(0x40862e42));
  const __mmask8 mid = _mm512_cmpgt_epu64_mask(hx, _mm512_set1_epi64(0x3fd62e42)) &
                       _mm512_cmplt_epu64_mask(hx, _mm512_set1_epi64(0x3ff0a2b2)) &
                       _mm512_cmp_pd_mask(x, _mm512_set1_pd(1.0), _CMP_NEQ_UQ);
  const __mmask8 zero = _mm512_cmpge_epu64_mask(hx, _mm512_set1_epi64(0x3e300000)) &
                        _mm512_cmple_epu64_mask(hx, _mm512_set1_epi64(0x3fd62e42));
  const __mmask8 tiny = _mm512_cmplt_epu64_mask(hx, _mm512_set1_epi64(0x3e300000));
  const __mmask8 neg = _mm512_movepi64_mask(u);
  const __m512d half = _mm512_mask_blend_pd(neg, _mm512_set1_pd(0.5), _mm512_set1_pd(-0.5));
  /* cvtt: truncation toward zero, as C's (int); lanes off these paths are masked out below */
  __m512i k = _mm512_cvttpd_epi64(_mm512_add_pd(_mm512_mul_pd(_mm512_set1_pd(INV_LN2), x), half));
  k = _mm512_mask_blend_epi64(
      mid, k, _mm512_mask_blend_epi64(neg, _mm512_set1_epi64(1), _mm512_set1_epi64(-1)));
  k = _mm512_mask_blend_epi64(zero, k, _mm512_setzero_si512());
  const __m512d t = _mm512_cvtepi64_pd(k);
  const __m512d hi =
      _mm512_mask_blend_pd(zero, _mm512_sub_pd(x, _mm512_mul_pd(t, _mm512_set1_pd(LN2_HI))), x);
  const __m512d lo = _mm512_mask_blend_pd(zero, _mm512_mul_pd(t, _mm512_set1_pd(LN2_LO)),
                                          _mm512_setzero_pd());
  const __m512d r = _mm512_sub_pd(hi, lo);
  const __m512d tt = _mm512_mul_pd(r, r);
  __m512d p = _mm512_mul_pd(tt, _mm512_set1_pd(P5));
  p = _mm512_mul_pd(tt, _mm512_add_pd(_mm512_set1_pd(P4), p));
  p = _mm512_mul_pd(tt, _mm512_add_pd(_mm512_set1_pd(P3), p));
  p = _mm512_mul_pd(tt, _mm512_add_pd(_mm512_set1_pd(P2), p));
  p = _mm512_mul_pd(tt, _mm512_add_pd(_mm512_set1_pd(P1), p));
  const __m512d c = _mm512_sub_pd(r, p);
  /* k ≠ 0: (r·c)/(2 − c); k = 0: (x·c)/(c − 2) */
  const __m512d den = _mm512_mask_blend_pd(zero, _mm512_sub_pd(_mm512_set1_pd(2.0), c),
                                           _mm512_sub_pd(c, _mm512_set1_pd(2.0)));
  const __m512d q = _mm512_div_pd(_mm512_mul_pd(r, c), den);
  const __m512d y =
      _mm512_sub_pd(_mm512_set1_pd(1.0), _mm512_sub_pd(_mm512_sub_pd(lo, q), hi));
  const __m512d twopk = _mm512_castsi512_pd(
      _mm512_slli_epi64(_mm512_add_epi64(k, _mm512_set1_epi64(1023)), 52));
  __m512d out = _mm512_mul_pd(y, twopk);
  out = _mm512_mask_blend_pd(zero, out, _mm512_sub_pd(_mm512_set1_pd(1.0), _mm512_sub_pd(q, x)));
  out = _mm512_mask_blend_pd(tiny, out, _mm512_add_pd(_mm512_set1_pd(1.0), x));
  const __mmask8 ok = (main & _mm512_cmpge_epi64_mask(k, _mm512_set1_epi64(-1021)) &
                       _mm512_cmple_epi64_mask(k, _mm512_set1_epi64(1023))) |
                      mid | zero | tiny;
  if (ok != 0xff) {
    double xs[8], ys[8];
    _mm512_storeu_pd(xs, x);
    _mm512_storeu_pd(ys, out);
    for (int l = 0; l < 8; l++)
      if (!(ok >> l & 1)) ys[l] = v8_exp(xs[l]);
    out = _mm512_loadu_pd(ys);
  }
  return out;
}
#endif

/* y[i] = v8_exp(x[i]) for i < n. */
static void exp_all(const double *x, double *y, int64_t n) {
  int64_t i = 0;
#ifdef SAMPLE_AVX512
  for (; i + 8 <= n; i += 8) _mm512_storeu_pd(y + i, v8_exp8(_mm512_loadu_pd(x + i)));
#endif
  for (; i < n; i++) y[i] = v8_exp(x[i]);
}

/*
 * e[i] = v8_exp((z[i] − max)·scale) for i < n, the difference and product in float64; returns
 * Σ e[i] added in index order (in the same loop: the serial adds overlap the next exps).
 */
static double exp_shifted(const float *z, double max, double scale, double *e, int64_t n) {
  int64_t i = 0;
  double total = 0;
#ifdef SAMPLE_AVX512
  const __m512d m = _mm512_set1_pd(max), s = _mm512_set1_pd(scale);
  for (; i + 8 <= n; i += 8) {
    const __m512d d = _mm512_cvtps_pd(_mm256_loadu_ps(z + i));
    _mm512_storeu_pd(e + i, v8_exp8(_mm512_mul_pd(_mm512_sub_pd(d, m), s)));
    for (int l = 0; l < 8; l++) total += e[i + l];
  }
#endif
  for (; i < n; i++) {
    e[i] = v8_exp(((double)z[i] - max) * scale);
    total += e[i];
  }
  return total;
}

static napi_value sample_exp_row(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "sampleExpRow", 4)) return NULL;
  size_t lz, le, lo;
  const float *z = arg_f32(&a, 0, "z", &lz);
  const double scale = arg_num(&a, 1, "scale");
  double *e = arg_f64(&a, 2, "e", &le);
  double *out = arg_f64(&a, 3, "out", &lo);
  if (!a.failed && lz == 0) args_fail(&a, true, "z", "is empty");
  args_need(&a, "e", le, lz);
  args_need(&a, "out", lo, 3);
  if (!a.failed && (uintptr_t)(out + 3) > (uintptr_t)e && (uintptr_t)out < (uintptr_t)(e + lz))
    args_fail(&a, true, "out", "overlaps e (outputs must not share memory)");
  if (a.failed) return NULL;
  const int64_t n = (int64_t)lz;
  double max = -INFINITY;
  int64_t arg = 0;
  for (int64_t i = 0; i < n; i++)
    if (z[i] > max) {
      max = z[i];
      arg = i;
    }
  const double total = exp_shifted(z, max, scale, e, n);
  out[0] = max;
  out[1] = (double)arg;
  out[2] = total;
  return NULL;
}

typedef struct {
  const float *z;
  double scale, *e, *out;
  int64_t rows, V;
} Rows;

/* rows [t·rows/n, (t+1)·rows/n) of sampleExpRows */
static void rows_task(void *ctx, int t, int n) {
  const Rows *r = ctx;
  for (int64_t b = r->rows * t / n; b < r->rows * (t + 1) / n; b++) {
    const float *z = r->z + b * r->V;
    double max = -INFINITY;
    int64_t arg = 0;
    for (int64_t i = 0; i < r->V; i++)
      if (z[i] > max) {
        max = z[i];
        arg = i;
      }
    r->out[3 * b] = max;
    r->out[3 * b + 1] = (double)arg;
    r->out[3 * b + 2] = exp_shifted(z, max, r->scale, r->e + b * r->V, r->V);
  }
}

/*
 * sampleExpRows(z, rows, scale, e, out): sampleExpRow of each row of z [rows, V] into
 * e [rows, V] and out [rows, 3], the rows shared out among this thread's BLAS threads (each row
 * one thread's: the same bits whatever the split)
 */
static napi_value sample_exp_rows(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "sampleExpRows", 5)) return NULL;
  size_t lz, le, lo;
  const float *z = arg_f32(&a, 0, "z", &lz);
  const int64_t rows = arg_int(&a, 1, "rows", 1);
  const double scale = arg_num(&a, 2, "scale");
  double *e = arg_f64(&a, 3, "e", &le);
  double *out = arg_f64(&a, 4, "out", &lo);
  if (!a.failed && (lz == 0 || lz % (uint64_t)rows != 0))
    args_fail(&a, true, "z", "must hold rows rows of at least one element");
  args_need(&a, "e", le, lz);
  args_need(&a, "out", lo, mul_sat(3, (uint64_t)rows));
  if (!a.failed && (uintptr_t)(out + 3 * rows) > (uintptr_t)e && (uintptr_t)out < (uintptr_t)(e + lz))
    args_fail(&a, true, "out", "overlaps e (outputs must not share memory)");
  if (a.failed) return NULL;
  Rows r = {z, scale, e, out, rows, (int64_t)lz / rows};
  /* a row is ~0.15 ms at GPT-2's V: worth a helper from two rows and 2^16 elements */
  int threads = troupe_threads();
  if (threads > rows) threads = (int)rows;
  if ((int64_t)lz < (1 << 16)) threads = 1;
  if (threads > 1) troupe_parallel(threads, rows_task, &r);
  else rows_task(&r, 0, 1);
  return NULL;
}

static napi_value categorical_row(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "categoricalRow", 2)) return NULL;
  size_t le;
  const double *e = arg_f64(&a, 0, "e", &le);
  const double target = arg_num(&a, 1, "target");
  if (!a.failed && le == 0) args_fail(&a, true, "e", "is empty");
  if (a.failed) return NULL;
  const int64_t n = (int64_t)le;
  double acc = 0;
  int64_t pick = n - 1;
  for (int64_t v = 0; v < n; v++) {
    acc += e[v];
    if (target < acc) {
      pick = v;
      break;
    }
  }
  while (e[pick] <= 0 && pick > 0) pick--;
  napi_value r;
  CHECK(napi_create_int64(env, pick, &r));
  return r;
}

static napi_value exp64(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "exp64", 2)) return NULL;
  size_t lx, ly;
  const double *x = arg_f64(&a, 0, "x", &lx);
  double *y = arg_f64(&a, 1, "y", &ly);
  args_need(&a, "y", ly, lx);
  if (a.failed) return NULL;
  exp_all(x, y, (int64_t)lx);
  return NULL;
}

bool troupe_define_sample(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      TROUPE_EXPORT_EXACT("sampleExpRow", sample_exp_row),
      TROUPE_EXPORT_EXACT("sampleExpRows", sample_exp_rows),
      TROUPE_EXPORT_EXACT("categoricalRow", categorical_row),
      TROUPE_EXPORT_EXACT("exp64", exp64),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
