/* Internal declarations shared by the CInt8Kernels translation units. */
#pragma once
#include "cint8kernels.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) || defined(__i386__)
#define I8K_X86 1
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define TAVX2 __attribute__((target("avx2,fma")))
#define TVNNI __attribute__((target("avx2,fma,avxvnni")))
#endif
#define I8K_INLINE static inline __attribute__((always_inline))

static inline int32_t i8k_load_u32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }
/* little-endian load of nbytes < 4 bytes, zero-padded (no memcpy call: keeps accumulators in registers) */
static inline int32_t i8k_load_tail(const void *p, size_t nbytes) {
    const uint8_t *b = (const uint8_t *)p;
    uint32_t v = 0;
    for (size_t i = 0; i < nbytes && i < 4; i++) v |= (uint32_t)b[i] << (8 * i);
    return (int32_t)v;
}

/* v = acc + bias - a_zero*colsum (wrapping) */
static inline int32_t i8k_out_pre(const i8k_output *o, int32_t acc, size_t n) {
    uint32_t v = (uint32_t)acc;
    if (o->bias) v += (uint32_t)o->bias[n];
    if (o->a_zero != 0 && o->colsum) v -= (uint32_t)o->a_zero * (uint32_t)o->colsum[n];
    return (int32_t)v;
}
/* the weight zero-point term row_coef[n] * row_sum[i] (wrapping), 0 when absent */
static inline int32_t i8k_row_term(const i8k_output *o, size_t i, size_t n) {
    if (!o->row_coef || !o->row_sum) return 0;
    return (int32_t)((uint32_t)o->row_coef[n] * (uint32_t)o->row_sum[i]);
}
/* The output stage as the depthwise kernels apply it: they subtract the activation zero point themselves and hold
 * W − z exactly (int16), so neither the a_zero·colsum term nor the weight zero-point term applies. */
static inline i8k_output i8k_dw_output(const i8k_output *out) {
    i8k_output o = *out;
    o.a_zero = 0;
    o.row_coef = NULL; o.row_sum = NULL;
    return o;
}
/* `o` with row_sum advanced by m0 rows (tmp holds the copy when needed) */
static inline const i8k_output *i8k_out_at(const i8k_output *o, size_t m0, i8k_output *tmp) {
    if (!o->row_sum || m0 == 0) return o;
    *tmp = *o;
    tmp->row_sum = o->row_sum + m0;
    return tmp;
}
/* scalar output of one element */
void i8k_out_scalar(const i8k_output *o, int32_t acc, size_t n, void *dst, size_t idx);
void i8k_output_scalar_block(const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *out,
                             size_t n0, void *dst, size_t ldd);
size_t i8k_out_elsize(const i8k_output *o);

#ifdef I8K_X86
void i8k_output_avx512(const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *out,
                       size_t n0, void *dst, size_t ldd);
void i8k_output_avx2(const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *out,
                     size_t n0, void *dst, size_t ldd);
void i8k_gemm_u8_panel_avx512(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                              size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
void i8k_gemm_u8_panel_avxvnni(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                               size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
void i8k_gemm_u8_panel_avx2(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                            size_t pw, size_t nr, int seven_bit, const i8k_output *out, size_t n0, void *dst,
                            size_t ldd);
void i8k_gemm_s16_panel_avx512(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                               size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
void i8k_gemm_s16_panel_avxvnni(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                                size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
void i8k_gemm_s16_panel_avx2(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                             size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
void i8k_row_sums_avx512(const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst);
void i8k_row_sums_avx2(const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst);
void i8k_dwconv_row_packed_avx512(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                                  const int16_t *wp, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                                  size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst);
void i8k_dwconv_row_avx512(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                           const int16_t *w, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                           size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst);
void i8k_dwq_quads_avx512(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C, long iy0,
                          size_t rows, long p0, size_t ps, size_t nq, size_t g0, size_t g1, uint8_t *dst);
void i8k_dwconv_quads_avx512(const uint8_t *quads, int a_signed, int32_t a_zero, size_t C, const int8_t *wq,
                             const int32_t *wsum, const uint8_t *wide, size_t KH, size_t KW, size_t sh, size_t sw, size_t dh, size_t ps,
                             size_t nq, size_t OW, size_t oy0, size_t oy1, size_t g0, size_t g1, const i8k_output *out,
                             void *dst);
#endif
#if defined(__aarch64__)
int i8k_neon_dot_available(void);
void i8k_gemm_u8_panel_neon(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                            size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
void i8k_gemm_s16_panel_neon(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                             size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd);
#endif
