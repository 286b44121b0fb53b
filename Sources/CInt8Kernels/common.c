/* Dispatch, pinned scalar semantics, portable paths and naive references. */
#include "internal.h"
#include <limits.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

int i8k_isa_supported(int isa) {
    switch (isa) {
    case I8K_ISA_PORTABLE: return 1;
#ifdef I8K_X86
    case I8K_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case I8K_ISA_AVXVNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avxvnni");
    case I8K_ISA_AVX512VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case I8K_ISA_NEONDOT: return i8k_neon_dot_available();
#endif
    default: return 0;
    }
}

int i8k_isa_best(void) {
    static const int order[] = {I8K_ISA_AVX512VNNI, I8K_ISA_AVXVNNI, I8K_ISA_AVX2, I8K_ISA_NEONDOT};
    for (int i = 0; i < 4; i++)
        if (i8k_isa_supported(order[i])) return order[i];
    return I8K_ISA_PORTABLE;
}

/* ---------------- pinned requantization ---------------- */
int32_t i8k_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    /* == gemmlowp: (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with truncating division */
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

int32_t i8k_rdpot(int32_t x, int32_t exponent) {
    int32_t mask = (int32_t)((((int64_t)1) << exponent) - 1);
    int32_t rem = x & mask;
    int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (rem > thr ? 1 : 0);
}

int32_t i8k_requant(int32_t v, int32_t mult, int32_t shift, int32_t rounding) {
    if (rounding == I8K_ROUND_SINGLE) {
        int32_t total = 31 - shift;
        int64_t r = ((int64_t)v * (int64_t)mult + ((int64_t)1 << (total - 1))) >> total;
        if (r > INT32_MAX) r = INT32_MAX;
        if (r < INT32_MIN) r = INT32_MIN;
        return (int32_t)r;
    }
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift > 0 ? 0 : -shift;
    int32_t x = (int32_t)((uint32_t)v << left);
    return i8k_rdpot(i8k_srdhm(x, mult), right);
}

size_t i8k_out_elsize(const i8k_output *o) {
    return (o->kind == I8K_OUT_INT8 || o->kind == I8K_OUT_UINT8) ? 1 : 4;
}

void i8k_out_scalar(const i8k_output *o, int32_t acc, size_t n, void *dst, size_t idx) {
    int32_t v = i8k_out_pre(o, acc, n);
    switch (o->kind) {
    case I8K_OUT_INT32: ((int32_t *)dst)[idx] = v; break;
    case I8K_OUT_FLOAT: {
        float f = (float)v * o->scale[n];
        if (o->fbias) f = f + o->fbias[n];
        ((float *)dst)[idx] = f;
        break;
    }
    default: {
        int64_t r = (int64_t)i8k_requant(v, o->mult[n], o->shift[n], o->rounding) + o->out_zero;
        if (r < o->qmin) r = o->qmin;
        if (r > o->qmax) r = o->qmax;
        if (o->kind == I8K_OUT_INT8) ((int8_t *)dst)[idx] = (int8_t)r;
        else ((uint8_t *)dst)[idx] = (uint8_t)r;
    }
    }
}

void i8k_output_scalar_block(const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *out,
                             size_t n0, void *dst, size_t ldd) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            i8k_out_scalar(out, (int32_t)((uint32_t)src[i * lds + j] + (uint32_t)i8k_row_term(out, i, n0 + j)), n0 + j, dst,
                           i * ldd + j);
}

void i8k_output_apply(int isa, const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *out,
                      size_t n0, void *dst, size_t ldd) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { i8k_output_avx512(src, lds, rows, cols, out, n0, dst, ldd); return; }
    if (isa == I8K_ISA_AVX2 || isa == I8K_ISA_AVXVNNI) { i8k_output_avx2(src, lds, rows, cols, out, n0, dst, ldd); return; }
#endif
    (void)isa;
    i8k_output_scalar_block(src, lds, rows, cols, out, n0, dst, ldd);
}

/* ---------------- portable GEMM panels ---------------- */
static void gemm_u8_panel_portable(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel,
                                   size_t K, size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst,
                                   size_t ldd) {
    int32_t tile[I8K_MR * I8K_NR];
    const uint8_t flip = a_signed ? 0x80 : 0;
    size_t es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += I8K_MR) {
        size_t mr = m - m0 < I8K_MR ? m - m0 : I8K_MR;
        for (size_t i = 0; i < mr; i++) {
            const uint8_t *a = A + (m0 + i) * lda;
            int32_t *t = tile + i * I8K_NR;
            for (size_t j = 0; j < nr; j++) t[j] = 0;
            for (size_t k = 0; k < K; k++) {
                int32_t u = (int32_t)(uint8_t)(a[k] ^ flip);
                const int8_t *b = panel + (k >> 2) * pw * 4 + (k & 3);
                for (size_t j = 0; j < nr; j++) t[j] += u * (int32_t)b[j * 4];
            }
        }
        i8k_output tmp;
        i8k_output_scalar_block(tile, I8K_NR, mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd);
    }
}

static void gemm_s16_panel_portable(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K,
                                    size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    int32_t tile[I8K_MR * I8K_NR];
    size_t es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += I8K_MR) {
        size_t mr = m - m0 < I8K_MR ? m - m0 : I8K_MR;
        for (size_t i = 0; i < mr; i++) {
            const int16_t *a = A + (m0 + i) * lda;
            int32_t *t = tile + i * I8K_NR;
            for (size_t j = 0; j < nr; j++) t[j] = 0;
            for (size_t k = 0; k < K; k++) {
                int32_t u = a[k];
                const int16_t *b = panel + (k >> 1) * pw * 2 + (k & 1);
                for (size_t j = 0; j < nr; j++) t[j] += u * (int32_t)b[j * 2];
            }
        }
        i8k_output tmp;
        i8k_output_scalar_block(tile, I8K_NR, mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd);
    }
}

void i8k_gemm_u8_panel(int isa, const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                       size_t pw, size_t nr, int seven_bit, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    (void)seven_bit;
    switch (isa) {
#ifdef I8K_X86
    case I8K_ISA_AVX512VNNI: i8k_gemm_u8_panel_avx512(A, lda, m, a_signed, panel, K, pw, nr, out, n0, dst, ldd); return;
    case I8K_ISA_AVXVNNI: i8k_gemm_u8_panel_avxvnni(A, lda, m, a_signed, panel, K, pw, nr, out, n0, dst, ldd); return;
    case I8K_ISA_AVX2:
        i8k_gemm_u8_panel_avx2(A, lda, m, a_signed, panel, K, pw, nr, seven_bit, out, n0, dst, ldd);
        return;
#endif
#if defined(__aarch64__)
    case I8K_ISA_NEONDOT: i8k_gemm_u8_panel_neon(A, lda, m, a_signed, panel, K, pw, nr, out, n0, dst, ldd); return;
#endif
    default: gemm_u8_panel_portable(A, lda, m, a_signed, panel, K, pw, nr, out, n0, dst, ldd);
    }
}

void i8k_gemm_s16_panel(int isa, const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                        size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    switch (isa) {
#ifdef I8K_X86
    case I8K_ISA_AVX512VNNI: i8k_gemm_s16_panel_avx512(A, lda, m, panel, K, pw, nr, out, n0, dst, ldd); return;
    case I8K_ISA_AVXVNNI: i8k_gemm_s16_panel_avxvnni(A, lda, m, panel, K, pw, nr, out, n0, dst, ldd); return;
    case I8K_ISA_AVX2: i8k_gemm_s16_panel_avx2(A, lda, m, panel, K, pw, nr, out, n0, dst, ldd); return;
#endif
#if defined(__aarch64__)
    case I8K_ISA_NEONDOT: i8k_gemm_s16_panel_neon(A, lda, m, panel, K, pw, nr, out, n0, dst, ldd); return;
#endif
    default: gemm_s16_panel_portable(A, lda, m, panel, K, pw, nr, out, n0, dst, ldd);
    }
}

/* ---------------- naive references ---------------- */
void i8k_ref_gemm_u8(const uint8_t *A, size_t lda, int a_signed, const int8_t *B, size_t ldb, size_t M, size_t N,
                     size_t K, int32_t a_zero_raw, const i8k_output *out, void *dst, size_t ldd) {
    i8k_output o = *out;
    o.a_zero = 0; /* the reference subtracts the zero point directly */
    o.row_coef = NULL; o.row_sum = NULL; /* and adds the weight zero-point term itself */
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            int64_t s = 0;
            int64_t c = out->row_coef ? out->row_coef[j] : 0;
            for (size_t k = 0; k < K; k++) {
                int32_t a = a_signed ? (int32_t)(int8_t)A[i * lda + k] : (int32_t)A[i * lda + k];
                s += (int64_t)(a - a_zero_raw) * ((int64_t)B[k * ldb + j] + c);
            }
            i8k_out_scalar(&o, (int32_t)(uint32_t)(uint64_t)s, j, dst, i * ldd + j);
        }
}

void i8k_ref_gemm_s16(const int16_t *A, size_t lda, const int16_t *B, size_t ldb, size_t M, size_t N, size_t K,
                      const i8k_output *out, void *dst, size_t ldd) {
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            int64_t s = 0;
            for (size_t k = 0; k < K; k++) s += (int64_t)A[i * lda + k] * B[k * ldb + j];
            i8k_out_scalar(out, (int32_t)(uint32_t)(uint64_t)s, j, dst, i * ldd + j);
        }
}

/* ---------------- row sums (weight zero-point term) ---------------- */
static void row_sums_portable(const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst) {
    for (size_t i = 0; i < m; i++) {
        const uint8_t *a = A + i * lda;
        uint32_t s = 0;
        if (a_signed) for (size_t k = 0; k < K; k++) s += (uint32_t)(int32_t)(int8_t)a[k];
        else for (size_t k = 0; k < K; k++) s += a[k];
        dst[i] = (int32_t)(s - (uint32_t)zero * (uint32_t)K);
    }
}

void i8k_row_sums(int isa, const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { i8k_row_sums_avx512(A, lda, m, K, a_signed, zero, dst); return; }
    if (isa == I8K_ISA_AVX2 || isa == I8K_ISA_AVXVNNI) { i8k_row_sums_avx2(A, lda, m, K, a_signed, zero, dst); return; }
#endif
    (void)isa;
    row_sums_portable(A, lda, m, K, a_signed, zero, dst);
}

/* ---------------- im2col ---------------- */
/* n bytes from s to d with fixed-size copies (inlined moves, no libc call for the short runs of im2col) */
static inline void copy_run(uint8_t *d, const uint8_t *s, size_t n) {
    if (n >= 16) {
        while (n >= 16) { memcpy(d, s, 16); d += 16; s += 16; n -= 16; }
        if (n) memcpy(d + n - 16, s + n - 16, 16);   /* overlapping tail */
        return;
    }
    /* short runs (the stem's 3-channel taps): two overlapping fixed-size moves */
    if (n >= 8) { memcpy(d, s, 8); memcpy(d + n - 8, s + n - 8, 8); return; }
    if (n >= 4) { memcpy(d, s, 4); memcpy(d + n - 4, s + n - 4, 4); return; }
    while (n--) *d++ = *s++;
}

static inline void fill_run(uint8_t *d, uint8_t v, size_t n) {
    if (n >= 16) { memset(d, v, n); return; }
    while (n--) *d++ = v;
}

void i8k_im2col_nhwc(const uint8_t *in, size_t H, size_t W, size_t C, size_t c0, size_t cg, size_t KH, size_t KW,
                     size_t sh, size_t sw, size_t ph, size_t pw, size_t dh, size_t dw, size_t OW, size_t r0, size_t r1,
                     uint8_t pad_value, uint8_t *dst, size_t ldd) {
    /* all channels, no dilation along x: for each ky the in-bounds taps kx are consecutive input pixels, one
     * contiguous run of (kx_hi - kx_lo) * C bytes */
    const int runs = cg == C && dw == 1;
    size_t oy = r0 / OW, ox = r0 % OW;
    for (size_t r = r0; r < r1; r++, ox = ox + 1 == OW ? 0 : ox + 1, oy += ox == 0) {
        uint8_t *d = dst + (r - r0) * ldd;
        if (runs) {
            long ix0 = (long)(ox * sw) - (long)pw;
            size_t lo = ix0 < 0 ? (size_t)(-ix0) : 0;                      /* first in-bounds kx */
            long hi_l = (long)W - ix0;                                      /* kx < hi_l in bounds */
            size_t hi = hi_l < 0 ? 0 : ((size_t)hi_l < KW ? (size_t)hi_l : KW);
            if (lo > hi) lo = hi;
            for (size_t ky = 0; ky < KH; ky++) {
                long iy = (long)(oy * sh + ky * dh) - (long)ph;
                if (iy < 0 || iy >= (long)H) {
                    fill_run(d, pad_value, KW * C);
                } else {
                    fill_run(d, pad_value, lo * C);
                    copy_run(d + lo * C, in + ((size_t)iy * W + (size_t)(ix0 + (long)lo)) * C, (hi - lo) * C);
                    fill_run(d + hi * C, pad_value, (KW - hi) * C);
                }
                d += KW * C;
            }
            continue;
        }
        for (size_t ky = 0; ky < KH; ky++) {
            long iy = (long)(oy * sh + ky * dh) - (long)ph;
            for (size_t kx = 0; kx < KW; kx++) {
                long ix = (long)(ox * sw + kx * dw) - (long)pw;
                if (iy < 0 || iy >= (long)H || ix < 0 || ix >= (long)W) {
                    if (cg < 16) for (size_t c = 0; c < cg; c++) d[c] = pad_value;
                    else memset(d, pad_value, cg);
                } else {
                    const uint8_t *sp = in + ((size_t)iy * W + (size_t)ix) * C + c0;
                    if (cg < 16) for (size_t c = 0; c < cg; c++) d[c] = sp[c]; /* few channels (stem): no call */
                    else memcpy(d, sp, cg);
                }
                d += cg;
            }
        }
    }
}

/* ---------------- depthwise ---------------- */
void i8k_ref_dwconv_row(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C, const int16_t *w,
                        size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw, size_t dh, size_t dw,
                        size_t OW, size_t oy, const i8k_output *out, void *dst) {
    i8k_output o = i8k_dw_output(out);
    for (size_t ox = 0; ox < OW; ox++)
        for (size_t c = 0; c < C; c++) {
            int32_t s = 0;
            for (size_t ky = 0; ky < KH; ky++) {
                long iy = (long)(oy * sh + ky * dh) - (long)ph;
                if (iy < 0 || iy >= (long)H) continue;
                for (size_t kx = 0; kx < KW; kx++) {
                    long ix = (long)(ox * sw + kx * dw) - (long)pw;
                    if (ix < 0 || ix >= (long)W) continue;
                    uint8_t raw = in[((size_t)iy * W + (size_t)ix) * C + c];
                    int32_t x = a_signed ? (int32_t)(int8_t)raw : (int32_t)raw;
                    s += (x - a_zero) * (int32_t)w[(ky * KW + kx) * C + c];
                }
            }
            i8k_out_scalar(&o, s, c, dst, ox * C + c);
        }
}

void i8k_dwconv_row(int isa, const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                    const int16_t *w, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw, size_t dh,
                    size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) {
        i8k_dwconv_row_avx512(in, a_signed, a_zero, H, W, C, w, KH, KW, sh, sw, ph, pw, dh, dw, OW, oy, out, dst);
        return;
    }
#endif
    (void)isa;
    /* portable: per pixel, int32 channel accumulators then the output stage */
    i8k_output o = i8k_dw_output(out);
    int32_t acc[256];
    for (size_t ox = 0; ox < OW; ox++)
        for (size_t c0 = 0; c0 < C; c0 += 256) {
            size_t cn = C - c0 < 256 ? C - c0 : 256;
            for (size_t c = 0; c < cn; c++) acc[c] = 0;
            for (size_t ky = 0; ky < KH; ky++) {
                long iy = (long)(oy * sh + ky * dh) - (long)ph;
                if (iy < 0 || iy >= (long)H) continue;
                for (size_t kx = 0; kx < KW; kx++) {
                    long ix = (long)(ox * sw + kx * dw) - (long)pw;
                    if (ix < 0 || ix >= (long)W) continue;
                    const uint8_t *x = in + ((size_t)iy * W + (size_t)ix) * C + c0;
                    const int16_t *wk = w + (ky * KW + kx) * C + c0;
                    if (a_signed)
                        for (size_t c = 0; c < cn; c++) acc[c] += ((int32_t)(int8_t)x[c] - a_zero) * wk[c];
                    else
                        for (size_t c = 0; c < cn; c++) acc[c] += ((int32_t)x[c] - a_zero) * wk[c];
                }
            }
            i8k_output_scalar_block(acc, 0, 1, cn, &o, c0, (char *)dst + (ox * C + c0) * i8k_out_elsize(&o), 0);
        }
}

/* packed tap pairs for the AVX-512 depthwise kernel (see cint8kernels.h) */
size_t i8k_dw_packed_size(size_t T, size_t C) { return ((C + 31) / 32) * ((T + 1) / 2) * 64; }

void i8k_dw_pack(const int16_t *w, size_t T, size_t C, int16_t *dst) {
    const size_t P = (T + 1) / 2, nb = (C + 31) / 32;
    memset(dst, 0, i8k_dw_packed_size(T, C) * sizeof(int16_t));
    for (size_t b = 0; b < nb; b++)
        for (size_t p = 0; p < P; p++)
            for (size_t h = 0; h < 2; h++)
                for (size_t d = 0; d < 16; d++) {
                    size_t c = b * 32 + (d / 4) * 8 + h * 4 + d % 4;
                    int16_t *q = dst + ((b * P + p) * 64) + h * 32 + d * 2;
                    if (c >= C) continue;
                    q[0] = w[(2 * p) * C + c];
                    q[1] = 2 * p + 1 < T ? w[(2 * p + 1) * C + c] : 0;
                }
}

void i8k_dwconv_row_packed(int isa, const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                           const int16_t *w, const int16_t *packed, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph,
                           size_t pw, size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI && packed && C <= 8192 && KH * KW <= 64 &&
        (a_signed ? (a_zero >= -128 && a_zero <= 127) : (a_zero >= 0 && a_zero <= 255))) {
        i8k_dwconv_row_packed_avx512(in, a_signed, a_zero, H, W, C, packed, KH, KW, sh, sw, ph, pw, dh, dw, OW, oy, out, dst);
        return;
    }
#endif
    (void)packed;
    i8k_dwconv_row(isa, in, a_signed, a_zero, H, W, C, w, KH, KW, sh, sw, ph, pw, dh, dw, OW, oy, out, dst);
}

/* ---------------- depthwise through tap quads (see cint8kernels.h) ---------------- */
size_t i8k_dwq_weights_size(size_t KH, size_t KW, size_t C) { return ((C + 15) / 16) * 2 * KH * ((KW + 3) / 4) * 64; }

int i8k_dwq_pack(const int16_t *w, size_t KH, size_t KW, size_t C, int8_t *dst, int32_t *wsum, uint8_t *wide) {
    for (size_t t = 0; t < KH * KW * C; t++)
        if (w[t] < -255 || w[t] > 255) return 0;
    const size_t G = (C + 15) / 16, QX = (KW + 3) / 4, B = KH * QX * 64;
    memset(dst, 0, i8k_dwq_weights_size(KH, KW, C));
    for (size_t g = 0; g < G; g++) {
        int fits = 1;
        for (size_t c = g * 16; c < C && c < g * 16 + 16; c++)
            for (size_t t = 0; t < KH * KW; t++)
                if (w[t * C + c] < -128 || w[t * C + c] > 127) fits = 0;
        wide[g] = (uint8_t)!fits;
        for (size_t l = 0; l < 16; l++) {
            const size_t c = g * 16 + l;
            wsum[c] = 0;
            if (c >= C) continue;
            for (size_t ky = 0; ky < KH; ky++)
                for (size_t kx = 0; kx < KW; kx++) {
                    const int16_t v = w[(ky * KW + kx) * C + c];
                    const size_t at = g * 2 * B + (ky * QX + kx / 4) * 64 + l * 4 + kx % 4;
                    /* wide: v = 2 * (v >> 1) + (v & 1), both parts in int8 for v in [-255, 255] */
                    dst[at] = (int8_t)(fits ? v : v >> 1);
                    dst[at + B] = (int8_t)(fits ? 0 : v & 1);
                    wsum[c] += v;
                }
        }
    }
    return 1;
}

static void dwq_quads_portable(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C, long iy0,
                               size_t rows, long p0, size_t ps, size_t nq, size_t g0, size_t g1, uint8_t *dst) {
    const uint8_t flip = a_signed ? 0x80 : 0, pad = (uint8_t)((uint8_t)a_zero ^ flip);
    for (size_t r = 0; r < rows; r++) {
        const long iy = iy0 + (long)r;
        for (size_t g = g0; g < g1; g++) {
            uint8_t *q = dst + ((r * (g1 - g0) + g - g0) * nq) * 64;
            for (size_t k = 0; k < nq; k++)
                for (size_t l = 0; l < 16; l++)
                    for (size_t e = 0; e < 4; e++) {
                        const long ix = p0 + (long)(k * ps + e);
                        const size_t c = g * 16 + l;
                        uint8_t v = pad;
                        if (iy >= 0 && iy < (long)H && ix >= 0 && ix < (long)W && c < C)
                            v = in[((size_t)iy * W + (size_t)ix) * C + c] ^ flip;
                        q[k * 64 + l * 4 + e] = v;
                    }
        }
    }
}

static void dwconv_quads_portable(const uint8_t *quads, int a_signed, int32_t a_zero, size_t C, const int8_t *wq,
                                  const int32_t *wsum, const uint8_t *wide, size_t KH, size_t KW, size_t sh, size_t sw, size_t dh, size_t ps,
                                  size_t nq, size_t OW, size_t oy0, size_t oy1, size_t g0, size_t g1, const i8k_output *out,
                                  void *dst) {
    i8k_output o = i8k_dw_output(out);
    const size_t QX = (KW + 3) / 4, ng = g1 - g0;
    const int32_t zq = a_signed ? a_zero + 128 : a_zero;   /* the zero point as the quads hold it */
    for (size_t oy = oy0; oy < oy1; oy++)
        for (size_t ox = 0; ox < OW; ox++)
            for (size_t g = g0; g < g1; g++)
                for (size_t l = 0; l < 16 && g * 16 + l < C; l++) {
                    const size_t c = g * 16 + l;
                    uint32_t s = (uint32_t)(-zq) * (uint32_t)wsum[c];
                    for (size_t ky = 0; ky < KH; ky++) {
                        const uint8_t *row = quads + (((oy - oy0) * sh + ky * dh) * ng + g - g0) * nq * 64;
                        for (size_t j = 0; j < QX; j++) {
                            const uint8_t *x = row + ((ox * sw + 4 * j) / ps) * 64 + l * 4;
                            const int8_t *wv = wq + (g * 2 * KH * QX + ky * QX + j) * 64 + l * 4;
                            const int32_t f = wide[g] ? 2 : 1;
                            for (size_t e = 0; e < 4; e++)
                                s += (uint32_t)((int32_t)x[e] * (f * (int32_t)wv[e] + (int32_t)wv[e + KH * QX * 64]));
                        }
                    }
                    i8k_out_scalar(&o, (int32_t)s, c, dst, (oy * OW + ox) * C + c);
                }
}

void i8k_dwq_quads(int isa, const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C, long iy0,
                   size_t rows, long p0, size_t ps, size_t nq, size_t g0, size_t g1, uint8_t *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) {
        i8k_dwq_quads_avx512(in, a_signed, a_zero, H, W, C, iy0, rows, p0, ps, nq, g0, g1, dst);
        return;
    }
#endif
    (void)isa;
    dwq_quads_portable(in, a_signed, a_zero, H, W, C, iy0, rows, p0, ps, nq, g0, g1, dst);
}

void i8k_dwconv_quads(int isa, const uint8_t *quads, int a_signed, int32_t a_zero, size_t C, const int8_t *wq,
                      const int32_t *wsum, const uint8_t *wide, size_t KH, size_t KW, size_t sh, size_t sw, size_t dh, size_t ps, size_t nq,
                      size_t OW, size_t oy0, size_t oy1, size_t g0, size_t g1, const i8k_output *out, void *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) {
        i8k_dwconv_quads_avx512(quads, a_signed, a_zero, C, wq, wsum, wide, KH, KW, sh, sw, dh, ps, nq, OW, oy0, oy1, g0, g1, out, dst);
        return;
    }
#endif
    (void)isa;
    dwconv_quads_portable(quads, a_signed, a_zero, C, wq, wsum, wide, KH, KW, sh, sw, dh, ps, nq, OW, oy0, oy1, g0, g1, out, dst);
}

/* ---------------- packing (layout decided by the Swift PanelGeometry: panels of 48 columns, the last
 * rounded up to 16; k grouped by 4 (int8) or 2 (int16); zero padding) ---------------- */
void i8k_pack_s8(const int8_t *w, size_t k, size_t n, int output_major, int8_t *dst, int32_t *colsum, int *seven_bit) {
    size_t kg = (k + 3) / 4, off = 0;
    int seven = 1;
    for (size_t j = 0; j < n; j++) colsum[j] = 0;
    for (size_t n0 = 0; n0 < n; n0 += I8K_NR) {
        size_t nr = n - n0 < I8K_NR ? n - n0 : I8K_NR, pw = (nr + 15) / 16 * 16;
        memset(dst + off, 0, kg * pw * 4);
        for (size_t j = 0; j < nr; j++) {
            int32_t s = 0;
            for (size_t kk = 0; kk < k; kk++) {
                int8_t v = output_major ? w[(n0 + j) * k + kk] : w[kk * n + n0 + j];
                dst[off + (kk >> 2) * pw * 4 + j * 4 + (kk & 3)] = v;
                s += v;
                if (v < -64 || v > 63) seven = 0;
            }
            colsum[n0 + j] = s;
        }
        off += kg * pw * 4;
    }
    *seven_bit = seven;
}

void i8k_pack_s16(const int16_t *w, size_t k, size_t n, int output_major, int16_t *dst) {
    size_t kg = (k + 1) / 2, off = 0;
    for (size_t n0 = 0; n0 < n; n0 += I8K_NR) {
        size_t nr = n - n0 < I8K_NR ? n - n0 : I8K_NR, pw = (nr + 15) / 16 * 16;
        memset(dst + off, 0, kg * pw * 2 * sizeof(int16_t));
        for (size_t j = 0; j < nr; j++)
            for (size_t kk = 0; kk < k; kk++)
                dst[off + (kk >> 1) * pw * 2 + j * 2 + (kk & 1)] = output_major ? w[(n0 + j) * k + kk] : w[kk * n + n0 + j];
        off += kg * pw * 2;
    }
}
