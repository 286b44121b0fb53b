/* Per-ISA instantiation of cfk_math_impl.h and the dispatching entry points. */
#include "cfloatkernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define CFK_SFX _avx512
#define CFK_TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define CFK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#include "cfk_math_impl.h"
#undef CFK_SFX
#undef CFK_TGT
#undef CFK_FMA

#define CFK_SFX _avx2
#define CFK_TGT __attribute__((target("avx2,fma")))
#define CFK_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#include "cfk_math_impl.h"
#undef CFK_SFX
#undef CFK_TGT
#undef CFK_FMA

/* Portable build of the same code for softmax/layernorm/binary/depthwise (plain multiply-add). */
#define CFK_SFX _portable
#define CFK_TGT
#define CFK_FMA(a, b, c) ((a) * (b) + (c))
#include "cfk_math_impl.h"
#undef CFK_SFX
#undef CFK_TGT
#undef CFK_FMA

/* Portable unary math: libm in double, rounded to float (this is also the accuracy reference). */
static void unary_libm(int op, float *x, long n) {
    for (long i = 0; i < n; i++) {
        double v = x[i];
        switch (op) {
        case CFK_UNARY_EXP: x[i] = expf(x[i]); break;
        case CFK_UNARY_ERF: x[i] = (float)erf(v); break;
        case CFK_UNARY_TANH: x[i] = (float)tanh(v); break;
        case CFK_UNARY_SIGMOID: x[i] = (float)(1.0 / (1.0 + exp(-v))); break;
        case CFK_UNARY_GELU: x[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440)); break;
        default: break;
        }
    }
}

void cfk_unary(int isa, int op, float *x, long n) {
    switch (isa) {
    case CFK_ISA_AVX512: unary_avx512(op, x, n); break;
    case CFK_ISA_AVX2: unary_avx2(op, x, n); break;
    default: unary_libm(op, x, n); break;
    }
}

void cfk_softmax_rows(int isa, float *x, long rows, long cols) {
    switch (isa) {
    case CFK_ISA_AVX512: softmax_rows_avx512(x, rows, cols); break;
    case CFK_ISA_AVX2: softmax_rows_avx2(x, rows, cols); break;
    default:
        for (long r = 0; r < rows; r++) {
            float *p = x + r * cols, mx = -INFINITY, s = 0;
            for (long j = 0; j < cols; j++) mx = p[j] > mx ? p[j] : mx;
            for (long j = 0; j < cols; j++) { p[j] = expf(p[j] - mx); s += p[j]; }
            float inv = 1.0f / s;
            for (long j = 0; j < cols; j++) p[j] *= inv;
        }
        break;
    }
}

void cfk_layernorm_rows(int isa, const float *x, long rows, long cols, const float *gamma, const float *beta,
                        float eps, float *out) {
    switch (isa) {
    case CFK_ISA_AVX512: layernorm_rows_avx512(x, rows, cols, gamma, beta, eps, out); break;
    case CFK_ISA_AVX2: layernorm_rows_avx2(x, rows, cols, gamma, beta, eps, out); break;
    default: layernorm_rows_portable(x, rows, cols, gamma, beta, eps, out); break;
    }
}

void cfk_binary(int isa, int op, const float *a, const float *b, long b_len, long b_repeat, float *out, long n) {
    if (n <= 0 || b_len <= 0) return;
    switch (isa) {
    case CFK_ISA_AVX512: binary_avx512(op, a, b, b_len, b_repeat, out, n); break;
    case CFK_ISA_AVX2: binary_avx2(op, a, b, b_len, b_repeat, out, n); break;
    default: binary_portable(op, a, b, b_len, b_repeat, out, n); break;
    }
}

void cfk_conv_depthwise(int isa, const float *input, const cfk_conv_geom *g, const float *w, long oc0, long oc1,
                        float *out, const float *bias, int act, float lo, float hi) {
    switch (isa) {
    case CFK_ISA_AVX512: depthwise_avx512(input, g, w, oc0, oc1, out, bias, act, lo, hi); break;
    case CFK_ISA_AVX2: depthwise_avx2(input, g, w, oc0, oc1, out, bias, act, lo, hi); break;
    default: depthwise_portable(input, g, w, oc0, oc1, out, bias, act, lo, hi); break;
    }
}
