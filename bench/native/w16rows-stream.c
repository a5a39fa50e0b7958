/*
 * native/w16rows.c's few-row loops alone, one thread by default (T=2: two), in GB/s of bf16
 * weights: y [R, N] = x [R, K]·W. The weights cycle through copies (~200 MB) so that each call
 * reads them from memory, as decoding does; HOT=1 keeps one copy (cache-resident when it fits).
 *
 *   H=$(dirname $(which node))/../include/node
 *   cc -O3 -march=native -fno-math-errno -fopenmp-simd -Inative -I$H bench/native/w16rows-stream.c \
 *     native/w16rows.c native/pool.c -lpthread -ldl -o /tmp/w16 && tbench /tmp/w16 768 50257 8
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>
unsigned long troupe_flush_begin(void){return 0;}
void troupe_flush_end(unsigned long s){(void)s;}
int troupe_threads(void) { return atoi(getenv("T") ? getenv("T") : "1"); }
bool troupe_w16_rows(const float *x, const uint16_t *w, int64_t R, int64_t K, int64_t N, float *y);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int64_t K=atol(argv[1]), N=atol(argv[2]), R=atol(argv[3]);
  int64_t Np=(N+31)/32*32; int copies = (int)(200e6/(K*Np*2)); if(copies<1)copies=1; if(getenv("HOT")) copies=1;
  uint16_t **w=malloc(sizeof(void*)*copies);
  for(int c=0;c<copies;c++){ w[c]=malloc(K*Np*2); for(int64_t i=0;i<K*Np;i++) w[c][i]=0x3f80+(rand()&0xff);}
  float *x=malloc(R*K*4), *y=malloc(R*N*4); for(int64_t i=0;i<R*K;i++) x[i]=rand()/(float)RAND_MAX;
  double best=1e9;
  for(int rep=0;rep<5;rep++){ double t0=now(); int n=0; while(now()-t0<0.2){ troupe_w16_rows(x,w[n%copies],R,K,N,y); n++;} double t=(now()-t0)/n; if(t<best)best=t;}
  printf("K %ld N %ld R %ld: %.1f us, %.1f GB/s\n",(long)K,(long)N,(long)R,best*1e6,K*Np*2/best/1e9);
}
