/*
 * OpenBLAS cblas_sgemm against oneDNN's dnnl_sgemm at the GRPO bench job's update and decode shapes,
 * one thread each, warm buffers, and the largest difference of their results (docs/rl.md, "The
 * hybrid engine"). Needs libdnnl-dev and libopenblas-dev:
 *
 *   gcc -O2 bench/native/dnnl-sgemm.c -o /tmp/dnnl-sgemm -ldnnl -lopenblas
 *   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /tmp/dnnl-sgemm
 */
#include <oneapi/dnnl/dnnl.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  int shapes[][5]={{1024,128,128,0,0},{1024,512,128,0,0},{1024,128,512,0,0},{128,128,1024,1,0},{128,512,1024,1,0},{512,128,1024,1,0},{1024,128,128,0,1},{1024,128,512,0,1},{1024,512,128,0,1},{64,128,128,0,0},{64,512,128,0,0},{64,128,512,0,0},{32,384,128,0,0}};
  for(int s=0;s<13;s++){int M=shapes[s][0],N=shapes[s][1],K=shapes[s][2],ta=shapes[s][3],tb=shapes[s][4];
    float*a=malloc(4L*M*K),*b=malloc(4L*K*N),*c=malloc(4L*M*N),*c2=malloc(4L*M*N);
    for(long i=0;i<(long)M*K;i++)a[i]=(i%97)*0.01f-0.3f; for(long i=0;i<(long)K*N;i++)b[i]=(i%89)*0.01f-0.4f;
    int lda=ta?M:K, ldb=tb?K:N; double fl=2.0*M*N*K; int reps=(int)(3e9/fl)+10;
    for(int i=0;i<10;i++) cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,M,N,K,1,a,lda,b,ldb,0,c,N);
    double t0=now(); for(int i=0;i<reps;i++) cblas_sgemm(CblasRowMajor,ta?CblasTrans:CblasNoTrans,tb?CblasTrans:CblasNoTrans,M,N,K,1,a,lda,b,ldb,0,c,N); double t1=now();
    for(int i=0;i<10;i++) dnnl_sgemm(ta?'T':'N',tb?'T':'N',M,N,K,1,a,lda,b,ldb,0,c2,N);
    double t2=now(); for(int i=0;i<reps;i++) dnnl_sgemm(ta?'T':'N',tb?'T':'N',M,N,K,1,a,lda,b,ldb,0,c2,N); double t3=now();
    double md=0; for(long i=0;i<(long)M*N;i++){double d=c[i]-c2[i]; if(d<0)d=-d; if(d>md)md=d;}
    printf("M%5d N%4d K%5d %s%s: openblas %6.1f  dnnl_sgemm %6.1f GFLOP/s  maxdiff %.2e\n",M,N,K,ta?"At":"",tb?"Bt":"",fl*reps/(t1-t0)/1e9,fl*reps/(t3-t2)/1e9,md);
  }
}
