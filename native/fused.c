/*
 * Fused element-wise kernels over float32 views (which may point into the wasm heap).
 */
#include "common.h"

bool troupe_define_fused(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
  return true;
}
