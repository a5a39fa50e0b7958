/*
 * Helper threads for the bf16 kernels (bf16.c): troupe_parallel(n, fn, ctx) runs fn(ctx, t, n)
 * for t < n, t = 0 on the calling thread and the rest on helpers, and returns when all are done.
 *
 * Each calling thread (an actor's thread) has its own helpers, started the first time it asks
 * for them and kept: two actors computing at once never wait on each other's pool, and a helper
 * keeps its own packing scratch from call to call. They sleep on a condition variable between
 * calls (no spinning: the cores are shared with other actors, RUNTIME-NOTES), and are stopped
 * when their thread exits. A helper runs with the caller's floating-point control word (so the
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
    if (--p->pending == 0) pthread_cond_signal(&p->done);
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
  p->pending = p->size;
  p->gen++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(ctx, 0, n);
  pthread_mutex_lock(&p->mu);
  while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
