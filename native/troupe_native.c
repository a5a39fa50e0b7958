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
  // Row-major op(A) is [M, K]: A itself is [M, K] (lda K) or, transposed, [K, M] (lda M).
  const int lda = ta ? (int)M : (int)K;
  const int ldb = tb ? (int)K : (int)N;
  if (M == 1) {
    // A matrix-vector product: sgemm packs all of B first, which at M = 1 (decoding) read the
    // weights twice (GPT-2's tied LM head: 30 ms vs 13 ms with sgemv).
    for (int64_t i = 0; i < batch; i++) {
      const float *x = a + i * sa, *bi = b + i * sb;
      if (tb) // B is [N, K]: y = B·x
        cblas_sgemv_p(RowMajor, NoTrans, (int)N, (int)K, 1.0f, bi, (int)K, x, 1, 0.0f, c + i * N,
                      1);
      else // B is [K, N]: y = Bᵀ·x
        cblas_sgemv_p(RowMajor, Trans, (int)K, (int)N, 1.0f, bi, (int)N, x, 1, 0.0f, c + i * N, 1);
    }
    return NULL;
  }
  // A few rows (a decoding batch): B read once per 8 rows, not packed (smallm.c).
  bool small = M <= SMALL_GEMM_MAX_ROWS;
  for (int64_t i = 0; i < batch && small; i++)
    small = troupe_small_gemm(ta, tb, M, N, K, a + i * sa, b + i * sb, c + i * M * N);
  if (small) return NULL;
  for (int64_t i = 0; i < batch; i++) {
    cblas_sgemm_p(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, (int)M, (int)N, (int)K,
                  1.0f, a + i * sa, lda, b + i * sb, ldb, 0.0f, c + i * M * N, (int)N);
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
      {"threads", NULL, threads, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default, NULL},
      {"config", NULL, config, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  if (!troupe_define_fused(env, exports) || !troupe_define_host(env, exports) ||
      !troupe_define_rows(env, exports))
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
