/*
 * troupe_for(n, grain, least, body, ctx): body(ctx, lo, hi) over [0, n) cut into contiguous
 * ranges, one per thread of pool.c (as many as the BLAS is set to: setThreads), each a multiple
 * of `grain` units long except the last, and at least `least` units (fewer threads otherwise).
 * The element-wise and row kernels (fused.c, rows.c) run on it: every unit is computed by the
 * same code whichever range holds it, so 1 and n threads give the same bits.
 */
#ifndef TROUPE_RANGES_H
#define TROUPE_RANGES_H

#include <stdint.h>

#include "common.h"

typedef void (*troupe_range_fn)(void *ctx, int64_t lo, int64_t hi);

typedef struct {
  troupe_range_fn body;
  void *ctx;
  int64_t n, grain;
} TroupeRanges;

/* thread t of n: units [lo, hi) in whole grains, the remainder to the last thread */
static inline void troupe_range_of(int64_t units, int64_t grain, int t, int n, int64_t *lo,
                                   int64_t *hi) {
  const int64_t grains = (units + grain - 1) / grain;
  const int64_t g0 = grains * t / n, g1 = grains * (t + 1) / n;
  *lo = g0 * grain;
  *hi = g1 * grain < units ? g1 * grain : units;
}

static inline void troupe_ranges_task(void *c, int t, int n) {
  const TroupeRanges *r = c;
  int64_t lo, hi;
  troupe_range_of(r->n, r->grain, t, n, &lo, &hi);
  if (lo < hi) r->body(r->ctx, lo, hi);
}

/* How many threads troupe_for gives n units: ≤ the BLAS count, each ≥ least units. */
static inline int troupe_for_threads(int64_t n, int64_t least) {
  const int want = troupe_threads();
  const int64_t most = least > 0 ? n / least : n;
  return most < 1 ? 1 : most < want ? (int)most : want;
}

static inline void troupe_for(int64_t n, int64_t grain, int64_t least, troupe_range_fn body,
                              void *ctx) {
  if (n <= 0) return;
  const int threads = troupe_for_threads(n, least);
  if (threads <= 1) {
    body(ctx, 0, n);
    return;
  }
  TroupeRanges r = {body, ctx, n, grain < 1 ? 1 : grain};
  troupe_parallel(threads, troupe_ranges_task, &r);
}

/* Units of work a thread should get at least: 2^16 floats touched (below it the helpers'
 * wake-up, ~10-50 µs, costs more than the split saves). */
#define TROUPE_FOR_FLOATS 65536

#endif
