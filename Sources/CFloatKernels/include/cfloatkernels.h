/* CFloatKernels: float32 compute kernels for FloatEngine.
 *
 * ISA-specific code uses per-function target attributes with runtime dispatch
 * (__builtin_cpu_supports); there is always a portable C path. Every entry point takes
 * the ISA to use explicitly (see cfk_best_isa / cfk_isa_supported) so callers can force one.
 *
 * Layouts: row-major with explicit leading dimensions. A packed B operand is stored as
 * ceil(n/16) panels of 16 columns; panel j holds rows 0..k-1, 16 floats each, zero-padded:
 *   packed[(j * k + p) * 16 + l] = B(p, 16 j + l).
 */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CFK_ISA_PORTABLE = 0,
    CFK_ISA_AVX2 = 1,   /* AVX2 + FMA */
    CFK_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + FMA */
};

/** Best ISA this CPU supports. */
int cfk_best_isa(void);
/** 1 if this CPU can run `isa`. */
int cfk_isa_supported(int isa);

/** Panel width of the packed B layout. */
#define CFK_NR 16

/** Number of floats a packed k x n B needs: ceil(n/16) * k * 16. */
size_t cfk_packed_b_size(long k, long n);

/** Pack B (k x n, row stride ldb) or, with trans != 0, Bt (n x k, row stride ldb) into panels. */
void cfk_pack_b(const float *b, long ldb, int trans, long k, long n, float *out);

/** Epilogue activation: CFK_ACT_CLAMP clamps to [lo, hi] (ReLU is lo = 0, hi = +inf). */
enum { CFK_ACT_NONE = 0, CFK_ACT_CLAMP = 1 };

/** C[m x n] (+)= A[m x k] * Bpacked + bias[n], then activation (bias/activation applied once, at the end).
 *  bp points at panel 0 of the columns handled (n0 must be a multiple of 16); bps is the distance
 *  in floats between consecutive panels (= 16 * total k for a full packed matrix).
 *  `row_bias` (optional) is added per row instead of per column (conv layout). */
void cfk_sgemm_packed(int isa, long m, long n, long k,
                      const float *a, long lda,
                      const float *bp, long bps,
                      float *c, long ldc,
                      const float *bias, const float *row_bias,
                      int act, float lo, float hi, int accumulate);

/** Convolution geometry for one image, NCHW. */
typedef struct {
    long in_c, in_h, in_w;
    long out_c, out_h, out_w;
    long kh, kw, sh, sw, pt, pl, dh, dw;
    long groups;
} cfk_conv_geom;

/** Scratch floats `cfk_conv_gemm` needs per call. */
size_t cfk_conv_scratch_size(void);

/** Convolution of one group as a GEMM: out[o][n] for o in [0, og), n in [n0, n1) of the out_h*out_w
 *  plane, with weights w[og][K] (K = cin_per_group*kh*kw, row-major) and input channels starting at
 *  `cin0`. The im2col operand is built in `scratch` block by block (1x1 stride-1 convs copy rows). */
void cfk_conv_gemm(int isa, const float *input, const cfk_conv_geom *g, long cin0,
                   const float *w, long og, long n0, long n1,
                   float *out, const float *bias,
                   int act, float lo, float hi, float *scratch);

/** im2row for output pixels [n0, n1): out[(n - n0) * K + k] (K = in_c/groups * kh * kw), input
 *  channels from cin0. Used for convs with a small output plane (run as pixels x O GEMMs). */
void cfk_im2row(const float *input, const cfk_conv_geom *g, long cin0, long n0, long n1, float *out);

/** im2row from a zero-padded input P [in_c][Hp][Wp] (see cfk_pad_input); requires kh*kw <= 64. */
void cfk_im2row_padded(const float *P, long Hp, long Wp, const cfk_conv_geom *g, long cin0, long n0, long n1, float *out);

/** dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols. */
void cfk_transpose(const float *src, long rows, long cols, long lds, float *dst, long ldd);

/** Implicit-GEMM conv (AVX-512 only; returns 0 without doing anything otherwise).
 *  P: phase planes from cfk_phase_input, [sh*sw][in_c][Hp][Wp] with Hp/Wp the phase-plane size
 *  (for stride 1 simply the zero-padded input), plus (kw-1)*dw floats of slack; wt: tap-major weights
 *  [kh*kw][out_c][cin_per_group]; computes T[o][n'] (row stride ldt) for output channels [o0, o1) of
 *  group `grp` (o relative to the group) and padded-grid columns n' = oy*Wp + ox in [n0, n1), plus bias
 *  and activation. Columns with ox >= out_w are garbage. */
int cfk_conv_implicit(int isa, const float *P, long Hp, long Wp, const cfk_conv_geom *g, const float *wt, long grp,
                      long o0, long o1, long n0, long n1, float *T, long ldt, const float *bias,
                      int act, float lo, float hi);
/** Phase planes of the zero-padded input for stride (sh, sw) (stride 1: the padded input), channels [c0, c1). */
void cfk_phase_input(const float *input, const cfk_conv_geom *g, long pb, long pr, long c0, long c1, float *P);
/** Copy channels [c0, c1) of input into the zero-padded P (pads pt/pl from g, pb/pr given). */
void cfk_pad_input(const float *input, const cfk_conv_geom *g, long pb, long pr, long c0, long c1, float *P);
/** out[c][y][0..cols) = T[c*rows + y][0..cols) with T row stride ldt_row, for channels [c0, c1). */
void cfk_compact_rows(const float *T, long ldt_row, long rows_per_ch, long cols, long c0, long c1, float *out);

/** Depthwise / per-channel direct convolution for channels [c0, c1) (groups == in_c, any multiplier
 *  out_c/in_c): weights [out_c][1][kh][kw]. */
void cfk_conv_depthwise(int isa, const float *input, const cfk_conv_geom *g, const float *w,
                        long oc0, long oc1, float *out, const float *bias,
                        int act, float lo, float hi);

/** Depthwise conv (groups == in_c) on phase planes from cfk_phase_input (AVX-512 only; returns 0
 *  without doing anything otherwise). Output channels [oc0, oc1). */
int cfk_depthwise_phase(int isa, const float *P, long Hq, long Wq, const cfk_conv_geom *g, const float *w,
                        long oc0, long oc1, float *out, const float *bias, int act, float lo, float hi);

/* ---- element-wise math (in place unless noted) ---- */
enum { CFK_UNARY_EXP = 0, CFK_UNARY_ERF = 1, CFK_UNARY_TANH = 2, CFK_UNARY_SIGMOID = 3,
       CFK_UNARY_GELU = 4 };
void cfk_unary(int isa, int op, float *x, long n);

void cfk_softmax_rows(int isa, float *x, long rows, long cols);
void cfk_layernorm_rows(int isa, const float *x, long rows, long cols, const float *gamma,
                        const float *beta, float eps, float *out);

/** Binary ops: out = a (op) b where b is either a full vector (b_period == n) or a row repeated
 *  (b_period divides n: b index = i % b_period), or per-channel (b_repeat > 1: b index = (i / b_repeat) % b_len). */
enum { CFK_BIN_ADD = 0, CFK_BIN_SUB = 1, CFK_BIN_MUL = 2, CFK_BIN_DIV = 3 };
void cfk_binary(int isa, int op, const float *a, const float *b, long b_len, long b_repeat,
                float *out, long n);

#ifdef __cplusplus
}
#endif

/* ---- thread pool ---- */
#ifdef __cplusplus
extern "C" {
#endif
typedef void (*cfk_task_fn)(void *ctx, long index);
/** Run fn(ctx, i) for i in [0, n) on up to `threads` threads (the caller is one of them). Workers are
 *  created on first use, spin for a while after each job, then sleep. Nested or concurrent calls run inline. */
void cfk_parallel_for(long n, int threads, cfk_task_fn fn, void *ctx);
/** How many pause iterations an idle worker spins before sleeping (default 2000, about 70 us here;
 *  the environment variable CFK_POOL_SPIN overrides it at first use). */
void cfk_pool_set_spin(long iterations);
/** Jobs (n > 1) run on the pool / run inline (threads <= 1, nested or concurrent) since start. */
void cfk_pool_stats(long *pooled_jobs, long *inline_jobs);
/** Times a worker thread took part in a job (0 means the pool never ran anything in parallel). */
long cfk_pool_worker_joins(void);
#ifdef __cplusplus
}
#endif
