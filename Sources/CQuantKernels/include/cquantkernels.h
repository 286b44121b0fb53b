/* CQuantKernels: element-wise inner loops of the quantizer searches (fake-quant, residuals, sums).
 * Portable C that auto-vectorizes at the baseline ISA; the uniform fake-quant loops, which are bound by the
 * division x / s, also have AVX-512 forms chosen at run time that are bit-identical to the portable ones.
 * Rounding is ties-to-even (torch.round) via the 1.5*2^23 trick, exact for |v| <= 2^22. */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* mode 0: out = fq(x); mode 1: out = x - fq(x). fq(x) = (clamp(rne(x/s)+z, qmin, qmax) - z) * s. */
void qk_uniform_fq(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode);

/* Sum of squared fake-quant errors, sum (x - fq(x))^2, without writing. */
double qk_uniform_sse(const float *x, long n, float s, float z, float qmin, float qmax);

/* rows x cols matrix, one (s, z) per column; acc[c] += sum_r (x - fq(x))^2. */
void qk_uniform_sse_cols(const float *x, long rows, long cols, const float *s, const float *z,
                         float qmin, float qmax, double *acc);

/* rows x cols matrix, one (s, z) per column, written to out (mode as qk_uniform_fq). */
void qk_uniform_fq_cols(const float *x, long rows, long cols, const float *s, const float *z,
                        float qmin, float qmax, float *out, int mode);

/* The portable forms of the three above (tests compare the dispatched forms with them bit for bit). */
void qk_uniform_fq_portable(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode);
double qk_uniform_sse_portable(const float *x, long n, float s, float z, float qmin, float qmax);
void qk_uniform_sse_cols_portable(const float *x, long rows, long cols, const float *s, const float *z,
                                  float qmin, float qmax, double *acc);

/* AdaLog from precomputed l = log2(u) (u = x + shift): d = clamp(log2s - l, 0, dmax), k = rne(d*r/q);
 * k >= nlev -> value 0, else levels[k]; xhat = value * s - shift.
 * mode 0: out = xhat; mode 1: out = x - xhat (x given). */
void qk_adalog_fq_log(const float *l, const float *x, long n, float log2s, float dmax, float r, float q,
                      int nlev, const float *levels, float s, float shift, float *out, int mode);

/* sum a[i]*b[i] in double (8 float partial sums per 512-block). */
double qk_dot(const float *a, const float *b, long n);
/* sum (a[i]+b[i])^2 */
double qk_sum_sq_of_sum(const float *a, const float *b, long n);
/* sum (a[i]-b[i])^2 */
double qk_sse(const float *a, const float *b, long n);
/* The portable forms of the three sums (the dispatched ones equal them bit for bit). */
double qk_dot_portable(const float *a, const float *b, long n);
double qk_sum_sq_of_sum_portable(const float *a, const float *b, long n);
double qk_sse_portable(const float *a, const float *b, long n);

#ifdef __cplusplus
}
#endif
