/*
 * Troupe's native CPU kernels: a Node-API addon over a CBLAS (OpenBLAS; Accelerate on macOS).
 * This file loads the BLAS and holds the matmul entry points (the other files add theirs); the
 * first does the work of tfjs' BatchMatMul on float32 views (which may point into the wasm heap):
 *
 *   sgemmBatched(transA, transB, batch, M, N, K, a, strideA, b, strideB, c)
 *     for i < batch:  C_i[M,N] = op(A_i)·op(B_i),  A_i = a + i·strideA, B_i = b + i·strideB,
 *     op(X) = Xᵀ when its flag is set; row-major, C_i = c + i·M·N. strideB = 0 broadcasts B.
 *
 * plus threads() / setThreads(n) for the BLAS thread pool. Every argument is checked (sizes
 * against the views' lengths) before anything is read, and a bad call throws a TypeError or
 * RangeError naming the argument.
 *
 * OpenBLAS is opened with dlopen when the addon loads, not linked: its core type is chosen once,
 * by a constructor, from the CPU and OPENBLAS_CORETYPE, so the choice can be made first.
 * TROUPE_BLAS_CORETYPE, when set, replaces OPENBLAS_CORETYPE; otherwise an OPENBLAS_CORETYPE the
 * environment sets is kept, and where there is none and the CPU has AVX-512 F/BW/DQ/VL it is set to
 * SkylakeX: OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 4 and would pick its AVX2 Haswell
 * kernels (~80 GFLOP/s on one core here, ~190 with SkylakeX). Set in the real process environment,
 * whichever thread loads the addon first.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "common.h"
#include "ranges.h"

enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);
static sgemm_fn cblas_sgemm_p;
static sgemv_fn cblas_sgemv_p;
static void (*set_threads_p)(int);
static int (*get_threads_p)(void);
static char *(*get_config_p)(void);
static const char *load_error;
/* OpenBLAS's core is SkylakeX: its sgemm's order of sums is the one seqgemm.c follows */
static bool skylakex_sgemm;

#if defined(__APPLE__)
/*
 * macOS: Apple's Accelerate (vecLib) has the CBLAS calls but not OpenBLAS's thread functions; its
 * thread count is the system's (VECLIB_MAXIMUM_THREADS, read when it loads), so setThreads only
 * records the count Troupe asked for. Written for macOS, not run on it: no macOS machine here.
 */
#define ACCELERATE "/System/Library/Frameworks/Accelerate.framework/Accelerate"
static int vecLib_threads = 1;
static void vecLib_set_threads(int n) { vecLib_threads = n; }
static int vecLib_get_threads(void) { return vecLib_threads; }
static char *vecLib_config(void) {
  return (char *)"Apple Accelerate (vecLib; its threads: VECLIB_MAXIMUM_THREADS)";
}
#endif

static void load_blas(void) {
  if (cblas_sgemm_p || load_error) return;
  const char *want = getenv("TROUPE_BLAS_CORETYPE");
  if (want && *want) setenv("OPENBLAS_CORETYPE", want, 1);
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
#endif
#if defined(__APPLE__)
  const char *names[] = {ACCELERATE, "libopenblas.dylib"};
  const char *missing = "cannot open Accelerate.framework";
#else
  const char *names[] = {"libopenblas.so.0", "libopenblas.so"};
  const char *missing = "cannot open libopenblas (apt-get install libopenblas0)";
#endif
  void *h = NULL;
  size_t i = 0;
  for (; i < sizeof names / sizeof names[0] && !(h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL));)
    i++;
  if (!h) {
    load_error = missing;
    return;
  }
  cblas_sgemm_p = (sgemm_fn)dlsym(h, "cblas_sgemm");
  cblas_sgemv_p = (sgemv_fn)dlsym(h, "cblas_sgemv");
  set_threads_p = (void (*)(int))dlsym(h, "openblas_set_num_threads");
  get_threads_p = (int (*)(void))dlsym(h, "openblas_get_num_threads");
  get_config_p = (char *(*)(void))dlsym(h, "openblas_get_config");
#if defined(__APPLE__)
  if (strcmp(names[i], ACCELERATE) == 0) {
    set_threads_p = vecLib_set_threads;
    get_threads_p = vecLib_get_threads;
    get_config_p = vecLib_config;
  }
#endif
  char *(*corename)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
  skylakex_sgemm = corename && strcmp(corename(), "SkylakeX") == 0;
  if (!cblas_sgemm_p || !cblas_sgemv_p || !set_threads_p || !get_threads_p || !get_config_p) {
    cblas_sgemm_p = NULL;
    load_error = "libopenblas lacks cblas_sgemm, cblas_sgemv or the openblas_* thread functions";
  }
}

/*
 * C[M, N] = op(A)·op(B), row-major, C dense. One row: sgemv (sgemm packs all of B first, which
 * at M = 1, decoding, read the weights twice: GPT-2's tied LM head 30 ms vs 13 ms). 2–16 rows:
 * smallm.c, B read once per 8 rows. More: sgemm.
 */
void troupe_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                 const float *b, float *c) {
  if (M == 1) {
    if (tb) // B is [N, K]: y = B·x
      cblas_sgemv_p(RowMajor, NoTrans, (int)N, (int)K, 1.0f, b, (int)K, a, 1, 0.0f, c, 1);
    else // B is [K, N]: y = Bᵀ·x
      cblas_sgemv_p(RowMajor, Trans, (int)K, (int)N, 1.0f, b, (int)N, a, 1, 0.0f, c, 1);
    return;
  }
  if (M <= SMALL_GEMM_MAX_ROWS && troupe_small_gemm(ta, tb, M, N, K, a, b, c)) return;
  // Row-major op(A) is [M, K]: A itself is [M, K] (lda K) or, transposed, [K, M] (lda M).
  cblas_sgemm_p(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)M, (int)N, (int)K, 1.0f,
                a, ta ? (int)M : (int)K, b, tb ? (int)K : (int)N, 0.0f, c, (int)N);
}

/* y[R, out] = x[R, in]·W + b for W [in, out] (b NULL: none). */
void troupe_linear(const float *x, const float *w, const float *b, int64_t R, int64_t in,
                   int64_t out, float *y) {
  troupe_gemm(false, false, R, out, in, x, w, y);
  if (!b) return;
  for (int64_t r = 0; r < R; r++) {
    float *yr = y + r * out;
    for (int64_t j = 0; j < out; j++) yr[j] += b[j];
  }
}

/* C = op(A)·op(B) with leading dimensions (row-major): sgemm over sub-matrices of larger ones. */
void troupe_gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float *c, int64_t ldc) {
  cblas_sgemm_p(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)M, (int)N, (int)K, 1.0f,
                a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}

/* C = op(A)·op(B) + beta·C with leading dimensions: beta 1 accumulates a product split along K. */
void troupe_gemm_ld_beta(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                         int64_t ldc) {
  cblas_sgemm_p(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)M, (int)N, (int)K, 1.0f,
                a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

typedef struct {
  bool ta, tb;
  int64_t M, N, K, sa, sb;
  const float *A, *B;
  float *C;
} Batched;

/* products [lo, hi) of sgemmBatched */
static void batched_range(void *c, int64_t lo, int64_t hi) {
  const Batched *q = c;
  for (int64_t i = lo; i < hi; i++)
    troupe_gemm(q->ta, q->tb, q->M, q->N, q->K, q->A + i * q->sa, q->B + i * q->sb,
                q->C + i * q->M * q->N);
}

static napi_value sgemm_batched(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_init(&a, env, info, "sgemmBatched", 11)) return NULL;
  const bool ta = arg_bool(&a, 0, "transA"), tb = arg_bool(&a, 1, "transB");
  const int64_t batch = arg_int(&a, 2, "batch", 1), M = arg_int(&a, 3, "M", 1);
  const int64_t N = arg_int(&a, 4, "N", 1), K = arg_int(&a, 5, "K", 1);
  size_t la, lb, lc;
  const float *A = arg_f32(&a, 6, "a", &la);
  const int64_t sa = arg_int_in(&a, 7, "strideA", 0, INT64_MAX, "must be an integer >= 0");
  const float *B = arg_f32(&a, 8, "b", &lb);
  const int64_t sb = arg_int_in(&a, 9, "strideB", 0, INT64_MAX, "must be an integer >= 0");
  float *C = arg_f32(&a, 10, "c", &lc);
  if (a.failed) return NULL;
  args_need_expr(&a, "a", la, add_sat(mul_sat(batch - 1, sa), (uint64_t)(M * K)),
                 "(batch - 1)·strideA + M·K");
  args_need_expr(&a, "b", lb, add_sat(mul_sat(batch - 1, sb), (uint64_t)(K * N)),
                 "(batch - 1)·strideB + K·N");
  args_need_expr(&a, "c", lc, mul_sat(batch, (uint64_t)(M * N)), "batch·M·N");
  if (a.failed) return NULL;
  const Batched q = {ta, tb, M, N, K, sa, sb, A, B, C};
  const int64_t work = M * N * K;
  /* A batch of products each small enough to run on one thread inside the BLAS (attention's
   * per-head products; the BLAS threads a product from 2^18 multiply-adds) is shared out between
   * the BLAS threads product by product, each ≥ 2^20 multiply-adds: every product still one call,
   * so every thread count gives the same bits. Small-M products (≤ 16 rows) start threads of
   * their own and stay here. */
  if (batch > 1 && M > SMALL_GEMM_MAX_ROWS && work < (1 << 18))
    troupe_for(batch, 1, ((1 << 20) + work - 1) / work, batched_range, (void *)&q);
  else batched_range((void *)&q, 0, batch);
  return NULL;
}

/*
 * linearForward(x, w, bias, rows, in, out, y): y[r, :] = x[r, :]·W + bias for W [in, out]
 * (row-major) and rows of x; an empty bias is none. One call for what tfjs does in four
 * kernels (reshape, matmul, add, reshape): decoding runs six projections per layer.
 */
static napi_value linear_forward(napi_env env, napi_callback_info info) {
  Args a;
  DenseLinearArgs l;
  if (!args_dense_linear(&a, env, info, "linearForward", &l)) return NULL;
  troupe_linear(l.x, l.w, l.bias, l.R, l.I, l.O, l.y);
  return NULL;
}

int troupe_threads(void) { return get_threads_p ? get_threads_p() : 1; }

bool troupe_blas_sums_in_order(void) { return skylakex_sgemm; }

static napi_value threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, get_threads_p(), &out));
  return out;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  Args a;
  if (!args_read(&a, env, info, "setThreads")) return NULL;
  /* A missing or extra argument is the same RangeError as a bad n. */
  const char *what = "must be an integer in [1, 1024]";
  const int64_t n = arg_int_in(&a, 0, "n", 1, 1024, what);
  if (a.argc != 1) args_fail(&a, true, "n", what);
  if (a.failed) return NULL;
  set_threads_p((int)n);
  return NULL;
}

static napi_value config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_string_utf8(env, get_config_p(), NAPI_AUTO_LENGTH, &out));
  return out;
}

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* MXCSR: FTZ (bit 15) flushes subnormal results, DAZ (bit 6) reads subnormal inputs as zero. */
unsigned long troupe_flush_begin(void) {
  const unsigned int csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);
  return csr;
}
void troupe_flush_end(unsigned long saved) { _mm_setcsr((unsigned int)saved); }
#elif defined(__aarch64__)
/* FPCR.FZ (bit 24): subnormal inputs and results are zero. */
unsigned long troupe_flush_begin(void) {
  unsigned long fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  __asm__ volatile("msr fpcr, %0" ::"r"(fpcr | (1UL << 24)));
  return fpcr;
}
void troupe_flush_end(unsigned long saved) { __asm__ volatile("msr fpcr, %0" ::"r"(saved)); }
#else
unsigned long troupe_flush_begin(void) { return 0; }
void troupe_flush_end(unsigned long saved) { (void)saved; }
#endif

napi_value troupe_flush_call(napi_env env, napi_callback_info info) {
  void *data = NULL;
  size_t argc = 0;
  if (napi_get_cb_info(env, info, &argc, NULL, NULL, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "troupe native: a function without its body");
    return NULL;
  }
  const unsigned long saved = troupe_flush_begin();
  napi_value out = ((napi_callback)data)(env, info);
  troupe_flush_end(saved);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  /* OpenBLAS starts its thread pool as it loads: its threads keep the mode they start with */
  const unsigned long saved = troupe_flush_begin();
  load_blas();
  troupe_flush_end(saved);
  if (load_error) {
    napi_throw_error(env, NULL, load_error);
    return NULL;
  }
  napi_property_descriptor props[] = {
      TROUPE_EXPORT("sgemmBatched", sgemm_batched),
      TROUPE_EXPORT("linearForward", linear_forward),
      TROUPE_EXPORT("threads", threads),
      TROUPE_EXPORT("setThreads", set_threads),
      TROUPE_EXPORT("config", config),
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  if (!troupe_define_fused(env, exports) || !troupe_define_host(env, exports) ||
      !troupe_define_rows(env, exports) || !troupe_define_decode(env, exports) ||
      !troupe_define_bf16(env, exports) || !troupe_define_nf4(env, exports) ||
      !troupe_define_sample(env, exports) || !troupe_define_seqgemm(env, exports))
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
