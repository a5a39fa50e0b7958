/*
 * Troupe's native CPU kernels: a Node-API addon over a CBLAS (OpenBLAS). One entry point does
 * the work of tfjs' BatchMatMul on float32 views (which may point into the wasm backend's heap):
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

#include "common.h"

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
  const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"};
  void *h = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
    h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    load_error = "cannot open libopenblas (apt-get install libopenblas0)";
    return;
  }
  cblas_sgemm_p = (sgemm_fn)dlsym(h, "cblas_sgemm");
  cblas_sgemv_p = (sgemv_fn)dlsym(h, "cblas_sgemv");
  set_threads_p = (void (*)(int))dlsym(h, "openblas_set_num_threads");
  get_threads_p = (int (*)(void))dlsym(h, "openblas_get_num_threads");
  get_config_p = (char *(*)(void))dlsym(h, "openblas_get_config");
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

/* C = op(A)·op(B) with leading dimensions (row-major): sgemm over sub-matrices of larger ones. */
void troupe_gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float *c, int64_t ldc) {
  cblas_sgemm_p(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)M, (int)N, (int)K, 1.0f,
                a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}

static napi_value sgemm_batched(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 11) return fail(env, false, "sgemmBatched takes 11 arguments");
  bool ta, tb;
  if (napi_get_value_bool(env, argv[0], &ta) != napi_ok)
    return fail(env, false, "sgemmBatched: transA must be a boolean");
  if (napi_get_value_bool(env, argv[1], &tb) != napi_ok)
    return fail(env, false, "sgemmBatched: transB must be a boolean");
  const char *names[] = {"batch", "M", "N", "K"};
  int64_t dims[4];
  for (int i = 0; i < 4; i++) {
    if (!get_int(env, argv[2 + i], &dims[i]) || dims[i] < 1 || dims[i] > INT32_MAX) {
      char msg[96];
      snprintf(msg, sizeof msg, "sgemmBatched: %s must be an integer in [1, 2^31)", names[i]);
      return fail(env, true, msg);
    }
  }
  int64_t batch = dims[0], M = dims[1], N = dims[2], K = dims[3];
  float *a, *b, *c;
  size_t la, lb, lc;
  int64_t sa, sb;
  if (!get_f32(env, argv[6], &a, &la)) return fail(env, false, "sgemmBatched: a must be a Float32Array");
  if (!get_int(env, argv[7], &sa) || sa < 0) return fail(env, true, "sgemmBatched: strideA must be an integer >= 0");
  if (!get_f32(env, argv[8], &b, &lb)) return fail(env, false, "sgemmBatched: b must be a Float32Array");
  if (!get_int(env, argv[9], &sb) || sb < 0) return fail(env, true, "sgemmBatched: strideB must be an integer >= 0");
  if (!get_f32(env, argv[10], &c, &lc)) return fail(env, false, "sgemmBatched: c must be a Float32Array");
  if ((uint64_t)((batch - 1) * sa + M * K) > la)
    return fail(env, true, "sgemmBatched: a is shorter than (batch - 1)·strideA + M·K");
  if ((uint64_t)((batch - 1) * sb + K * N) > lb)
    return fail(env, true, "sgemmBatched: b is shorter than (batch - 1)·strideB + K·N");
  if ((uint64_t)(batch * M * N) > lc)
    return fail(env, true, "sgemmBatched: c is shorter than batch·M·N");
  for (int64_t i = 0; i < batch; i++) troupe_gemm(ta, tb, M, N, K, a + i * sa, b + i * sb, c + i * M * N);
  return NULL;
}

/*
 * linearForward(x, w, bias, rows, in, out, y): y[r, :] = x[r, :]·W + bias for W [in, out]
 * (row-major) and rows of x; an empty bias is none. One call for what tfjs does in four
 * kernels (reshape, matmul, add, reshape): decoding runs six projections per layer.
 */
static napi_value linear_forward(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 7) return fail(env, false, "linearForward takes 7 arguments");
  float *x, *w, *bias, *y;
  size_t lx, lw, lb, ly;
  if (!get_f32(env, argv[0], &x, &lx)) return fail(env, false, "linearForward: x must be a Float32Array");
  if (!get_f32(env, argv[1], &w, &lw)) return fail(env, false, "linearForward: w must be a Float32Array");
  if (!get_f32(env, argv[2], &bias, &lb)) return fail(env, false, "linearForward: bias must be a Float32Array");
  const char *names[] = {"rows", "in", "out"};
  int64_t dims[3];
  for (int i = 0; i < 3; i++) {
    if (!get_int(env, argv[3 + i], &dims[i]) || dims[i] < 1 || dims[i] > INT32_MAX) {
      char msg[96];
      snprintf(msg, sizeof msg, "linearForward: %s must be an integer in [1, 2^31)", names[i]);
      return fail(env, true, msg);
    }
  }
  if (!get_f32(env, argv[6], &y, &ly)) return fail(env, false, "linearForward: y must be a Float32Array");
  const int64_t R = dims[0], I = dims[1], O = dims[2];
  if ((uint64_t)(R * I) > lx) return fail(env, true, "linearForward: x is shorter than rows·in");
  if ((uint64_t)(I * O) > lw) return fail(env, true, "linearForward: w is shorter than in·out");
  if (lb != 0 && (uint64_t)O > lb) return fail(env, true, "linearForward: bias is shorter than out");
  if ((uint64_t)(R * O) > ly) return fail(env, true, "linearForward: y is shorter than rows·out");
  troupe_gemm(false, false, R, O, I, x, w, y);
  if (lb != 0)
    for (int64_t r = 0; r < R; r++) {
      float *yr = y + r * O;
      for (int64_t j = 0; j < O; j++) yr[j] += bias[j];
    }
  return NULL;
}

static napi_value threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_int32(env, get_threads_p(), &out));
  return out;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t n;
  if (argc != 1 || !get_int(env, argv[0], &n) || n < 1 || n > 1024)
    return fail(env, true, "setThreads: n must be an integer in [1, 1024]");
  set_threads_p((int)n);
  return NULL;
}

static napi_value config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_string_utf8(env, get_config_p(), NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  load_blas();
  if (load_error) {
    napi_throw_error(env, NULL, load_error);
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"sgemmBatched", NULL, sgemm_batched, NULL, NULL, NULL, napi_default, NULL},
      {"linearForward", NULL, linear_forward, NULL, NULL, NULL, napi_default, NULL},
      {"threads", NULL, threads, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"config", NULL, config, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  if (!troupe_define_fused(env, exports) || !troupe_define_host(env, exports) ||
      !troupe_define_rows(env, exports) || !troupe_define_decode(env, exports))
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
