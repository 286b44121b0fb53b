/* Instruction-throughput ceiling of vpdpbusd on this CPU: 24 independent zmm accumulators, no memory operands.
 * Build and run (not part of the Swift package): clang -O2 bench/vpdpbusd_ceiling.c -o /tmp/ceiling && /tmp/ceiling
 * On the AMD EPYC (Zen 4) dev machine: 471 GOPS (3.68 G instructions/s x 64 MACs x 2), the bound for any int8 GEMM. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
__attribute__((target("avx512f,avx512vnni"))) int main(){
  __m512i acc[24]; for(int i=0;i<24;i++) acc[i]=_mm512_set1_epi32(i);
  __m512i a=_mm512_set1_epi32(0x01010101), b=_mm512_set1_epi32(0x02020202);
  double best=1e9;
  for(int r=0;r<20;r++){ double t0=now();
    for(long it=0; it<1000000; it++){
      __asm__ volatile("":"+v"(a),"+v"(b));
      for(int i=0;i<24;i++) acc[i]=_mm512_dpbusd_epi32(acc[i],a,b);
    }
    double t=now()-t0; if(t<best)best=t;}
  int s=0; for(int i=0;i<24;i++) s+=_mm512_reduce_add_epi32(acc[i]);
  printf("%d zmm vpdpbusd ceiling: %.1f GOPS (%.2f G instr/s)\n", s&1, 24e6*128/best/1e9, 24e6/best/1e9);
}
