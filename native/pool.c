/*
 * Helper threads for the bf16 kernels (bf16.c): troupe_parallel(n, fn, ctx) runs fn(ctx, t, n)
 * for t < n, t = 0 on the calling thread and the rest on helpers, and returns when all are done.
 *
 * Each calling thread (an actor's thread) has its own helpers, started the first time it asks
 * for them and kept: two actors computing at once never wait on each other's pool, and a helper
 * keeps its own packing scratch from call to call. Between calls they sleep on a condition
 * variable, after spinning for the next call for up to 50 µs (TROUPE_POOL_SPIN_US; 0: no
 * spinning), and the caller spins as long for its helpers to finish before it sleeps: on the
 * 2-vCPU VM here a sleeping helper took tens of µs to wake (768×768 bf16 rows: 80 µs on one
 * thread, 119 on two), and a decode step starts five parallel calls a layer. Measured
 * (profile-generate, GPT-2-124M bf16 b8, 2 threads): 282–287 tokens/s without the spin, 335–341
 * with 50 µs, 344–354 with 200. Only a thread given more than one BLAS thread has helpers (a run
 * sharing the cores among its actors gives each one: RUNTIME-NOTES), so the spin is spent on the
 * cores that thread was planned to have. Helpers are stopped when their thread exits. A helper runs with the caller's floating-point control word (so the
 * subnormal flushing of troupe_flush_call holds on every thread of a call).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "common.h"

enum { POOL_MAX = 64 };

typedef struct Pool {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  pthread_t th[POOL_MAX];
  int size;         /* helpers started */
  uint64_t gen;     /* bumped once per call */
  int pending;      /* helpers still to finish this call */
  troupe_task fn;
  void *ctx;
  int n;            /* threads of this call, caller included */
  unsigned long fp; /* the caller's floating-point mode */
  bool quit;
} Pool;

typedef struct {
  Pool *pool;
  int index;    /* 1 … size */
  uint64_t gen; /* the call count when it started: it waits for the next call */
} Helper;

#include <time.h>
/* How long a helper (and a caller waiting for its helpers) spins before it sleeps, in ns:
 * TROUPE_POOL_SPIN_US µs (default 50; 0: no spinning), read once. */
static int64_t spin_ns = -1;
static int64_t spin_limit(void) {
  if (spin_ns < 0) {
    const char *v = getenv("TROUPE_POOL_SPIN_US");
    const double us = v && *v ? atof(v) : 50;
    spin_ns = us > 0 ? (int64_t)(us * 1000) : 0;
  }
  return spin_ns;
}
static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
/* Spin until *v != not (or quit), for at most the spin limit. */
static void spin_while_eq(const volatile uint64_t *v, uint64_t not, const volatile bool *quit) {
  const int64_t limit = spin_limit();
  if (limit <= 0) return;
  const int64_t end = mono_ns() + limit;
  for (int i = 0;; i++) {
    if (__atomic_load_n(v, __ATOMIC_ACQUIRE) != not || (quit && *quit)) return;
    cpu_relax();
    if ((i & 63) == 63 && mono_ns() > end) return;
  }
}

static void *helper_main(void *arg) {
  Helper h = *(Helper *)arg;
  free(arg);
  Pool *p = h.pool;
  uint64_t seen = h.gen;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    const troupe_task fn = p->fn;
    void *ctx = p->ctx;
    const int n = p->n;
    const unsigned long fp = p->fp;
    pthread_mutex_unlock(&p->mu);
    if (h.index < n) {
      const unsigned long saved = troupe_flush_begin();
      troupe_flush_end(fp);
      fn(ctx, h.index, n);
      troupe_flush_end(saved);
    }
    pthread_mutex_lock(&p->mu);
    if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) pthread_cond_signal(&p->done);
    if (spin_limit() > 0 && p->gen == seen && !p->quit) {
      pthread_mutex_unlock(&p->mu);
      spin_while_eq(&p->gen, seen, &p->quit);
      pthread_mutex_lock(&p->mu);
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* The owning thread exits: stop its helpers and free the pool. */
static void pool_free(void *arg) {
  Pool *p = arg;
  pthread_mutex_lock(&p->mu);
  p->quit = true;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->size; i++) pthread_join(p->th[i], NULL);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/*
 * The key's destructor is in this addon, and runs when an owning thread exits, which for a
 * worker thread is after Node has torn its environment down and may have unloaded the addon
 * (the last environment using it gone): a GRPO run with its generator on the policy's thread
 * crashed (SIGSEGV in __nptl_deallocate_tsd) as that worker exited. Once any thread has a pool,
 * the addon is pinned (RTLD_NODELETE) so the destructor stays mapped.
 */
static void pool_key_init(void) {
  Dl_info self;
  if (dladdr((void *)&pool_free, &self) && self.dli_fname)
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  pthread_key_create(&pool_key, pool_free);
}

/* This thread's pool with at least `helpers` helpers (fewer if threads cannot be started). */
static Pool *pool_get(int helpers) {
  pthread_once(&pool_once, pool_key_init);
  Pool *p = pthread_getspecific(pool_key);
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    pthread_setspecific(pool_key, p);
  }
  while (p->size < helpers && p->size < POOL_MAX) {
    Helper *h = malloc(sizeof *h);
    if (!h) break;
    h->pool = p;
    h->index = p->size + 1;
    h->gen = p->gen;
    if (pthread_create(&p->th[p->size], NULL, helper_main, h) != 0) {
      free(h);
      break;
    }
    p->size++;
  }
  return p;
}

void troupe_parallel(int n, troupe_task fn, void *ctx) {
  Pool *p = n > 1 ? pool_get(n - 1) : NULL;
  if (p && n > p->size + 1) n = p->size + 1;
  if (!p || n <= 1) {
    for (int t = 0; t < (n < 1 ? 1 : n); t++) fn(ctx, t, n < 1 ? 1 : n);
    return;
  }
  const unsigned long fp = troupe_flush_begin();
  troupe_flush_end(fp);
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->fp = fp;
  __atomic_store_n(&p->pending, p->size, __ATOMIC_RELEASE);
  __atomic_add_fetch(&p->gen, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(ctx, 0, n);
  if (spin_limit() > 0) {
    const int64_t end = mono_ns() + spin_limit();
    for (int i = 0; __atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0; i++) {
      cpu_relax();
      if ((i & 63) == 63 && mono_ns() > end) break;
    }
  }
  pthread_mutex_lock(&p->mu);
  while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
