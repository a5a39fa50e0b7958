/*
 * Loops over host float32 arrays for the optimizer step (gradient accumulation, norms, AdamW).
 */
#include "common.h"

bool troupe_define_host(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
  return true;
}
