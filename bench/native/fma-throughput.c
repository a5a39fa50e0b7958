/*
 * Throughput of 512-bit FMA (vfmadd231ps) against AVX512-BF16's VDPBF16PS on this core: 12
 * independent accumulators each (no latency bound), then one FMA chain (its latency: the clock).
 * Why the few-row bf16 kernel (native/w16rows.c) keeps x in fp32 (docs/runtime.md):
 *
 *   cc -O2 -march=native bench/native/fma-throughput.c -o /tmp/fma && tbench /tmp/fma
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define R(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
int main(){
#define D(i) __m512 a##i=_mm512_set1_ps(i*1e-9f);
  R(D)
  __m512 x=_mm512_set1_ps(1.0f), y=_mm512_set1_ps(1e-9f);
  __m512bh xb=(__m512bh)_mm512_set1_epi16(0x3f80), yb=(__m512bh)_mm512_set1_epi16(0x3000);
  long N=100000000;
  double t0=now();
  for(long n=0;n<N;n++){
#define F(i) a##i=_mm512_fmadd_ps(x,y,a##i); __asm__ volatile("" : "+v"(a##i));
    R(F)
  }
  double t1=now();
  for(long n=0;n<N;n++){
#define B(i) a##i=_mm512_dpbf16_ps(a##i,xb,yb); __asm__ volatile("" : "+v"(a##i));
    R(B)
  }
  double t2=now();
  __m512 c=x;
  for(long n=0;n<N;n++){ c=_mm512_fmadd_ps(c,y,x); }
  double t3=now();
#define S(i) s+=_mm512_reduce_add_ps(a##i);
  float s=_mm512_reduce_add_ps(c); R(S)
  printf("fma %.2f Ginstr/s  dpbf16 %.2f Ginstr/s  fma latency chain %.3f G/s (%g)\n", 12.0*N/(t1-t0)/1e9, 12.0*N/(t2-t1)/1e9, N/(t3-t2)/1e9, s);
}
