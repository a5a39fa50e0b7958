/*
 * The order in which the loaded OpenBLAS sgemm sums each element, found by comparing its bits with
 * a model: a chain of fused multiply-adds over k from 0, K optionally cut in two at `cut` (the
 * second half's chain added to the first's). Prints, per shape [M, N, K] (row-major, no
 * transposes, alpha 1, beta 0) and per cut, how many of the M·N elements differ: 0 = the model
 * is sgemm's order there. What native/seqgemm.c follows (OpenBLAS 0.3.21 SkylakeX, one thread):
 * no cut for K ≤ 448 or M·N·K ≤ 10^6, else a cut at K/2 rounded up to 16 (K ≤ 768), N a
 * multiple of 16.
 *
 *   cc -O2 scripts/sgemm-order.c -lopenblas -lm -o /tmp/sgemm-order
 *   OPENBLAS_CORETYPE=SkylakeX /tmp/sgemm-order            (the shapes below)
 *   OPENBLAS_CORETYPE=SkylakeX /tmp/sgemm-order M N K ...  (these)
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

static float rnd(void) { return (float)rand() / RAND_MAX - 0.5f; }

static void model(int M, int N, int K, const float *a, const float *b, float *c, int cut) {
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      float s = 0;
      for (int k = 0; k < cut; k++) s = fmaf(a[m * K + k], b[k * N + n], s);
      if (cut < K) {
        float t = 0;
        for (int k = cut; k < K; k++) t = fmaf(a[m * K + k], b[k * N + n], t);
        s = t + s;
      }
      c[m * N + n] = s;
    }
}

int main(int argc, char **argv) {
  _mm_setcsr(_mm_getcsr() | 0x8040); /* flush to zero, as the addon's calls run */
  openblas_set_num_threads(1);
  static const int preset[][3] = {
      {64, 128, 128}, {64, 512, 128}, {64, 128, 512}, {32, 512, 128}, {32, 128, 512},
      {2048, 128, 128}, {2048, 128, 512}, {64, 128, 448}, {64, 128, 449}, {64, 128, 640},
      {64, 128, 768}, {64, 128, 769}, {25, 64, 625}, {25, 64, 626}, {17, 40, 96}, {17, 48, 96}};
  const int n = argc > 1 ? (argc - 1) / 3 : (int)(sizeof preset / sizeof preset[0]);
  printf("%s\n", openblas_get_config());
  for (int s = 0; s < n; s++) {
    const int M = argc > 1 ? atoi(argv[1 + 3 * s]) : preset[s][0];
    const int N = argc > 1 ? atoi(argv[2 + 3 * s]) : preset[s][1];
    const int K = argc > 1 ? atoi(argv[3 + 3 * s]) : preset[s][2];
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c = malloc(sizeof(float) * M * N), *d = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) a[i] = rnd();
    for (int i = 0; i < K * N; i++) b[i] = rnd();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    printf("M %d N %d K %d: differing elements with", M, N, K);
    const int cuts[] = {K, 256, 384, (K / 2 + 15) / 16 * 16};
    for (int i = 0; i < 4; i++) {
      if (cuts[i] > K || (i > 0 && cuts[i] == K)) continue;
      model(M, N, K, a, b, d, cuts[i]);
      int diff = 0;
      for (int j = 0; j < M * N; j++) diff += memcmp(&c[j], &d[j], 4) != 0;
      if (cuts[i] == K) printf(" no cut %d", diff);
      else printf(", cut at %d %d", cuts[i], diff);
    }
    printf("\n");
    free(a), free(b), free(c), free(d);
  }
  return 0;
}
