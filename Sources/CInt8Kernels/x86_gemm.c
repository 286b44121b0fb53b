/* x86 microkernels: AVX-512 VNNI (8x48, 24 zmm accumulators), AVX-VNNI (6x16 ymm), AVX2. */
#include "internal.h"
#ifdef I8K_X86
#include <immintrin.h>
#include <limits.h>
#include <stdlib.h>

/* ======================= output stages ======================= */
/* m_min: lanes where the multiplier is INT32_MIN (only those can hit the single SRDHM overflow case) */
T512 static inline __m512i srdhm512(__m512i x, __m512i m, __m512i mo, __mmask16 m_min) {
    const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i pe = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge), 31);
    __m512i po = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), mo), nudge), 31);
    __m512i r = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    if (m_min) {
        __mmask16 sat = _mm512_mask_cmpeq_epi32_mask(m_min, x, _mm512_set1_epi32(INT32_MIN));
        r = _mm512_mask_mov_epi32(r, sat, _mm512_set1_epi32(INT32_MAX));
    }
    return r;
}

T512 static inline __m512i rdpot512(__m512i x, __m512i e) {
    const __m512i one = _mm512_set1_epi32(1);
    __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
    __m512i rem = _mm512_and_si512(x, mask);
    __m512i thr = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), _mm512_srli_epi32(x, 31));
    __m512i r = _mm512_srav_epi32(x, e);
    return _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, one);
}

T512 static inline __m512i single512(__m512i v, __m512i m, __m512i shift) {
    const __m512i one64 = _mm512_set1_epi64(1);
    const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFFLL);
    __m512i total = _mm512_sub_epi32(_mm512_set1_epi32(31), shift);
    __m512i te = _mm512_and_si512(total, lo32), to = _mm512_srli_epi64(total, 32);
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(v, m), _mm512_sllv_epi64(one64, _mm512_sub_epi64(te, one64)));
    __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(m, 32)),
                                  _mm512_sllv_epi64(one64, _mm512_sub_epi64(to, one64)));
    pe = _mm512_srav_epi64(pe, te);
    po = _mm512_srav_epi64(po, to);
    const __m512i mx = _mm512_set1_epi64(INT32_MAX), mn = _mm512_set1_epi64(INT32_MIN);
    pe = _mm512_max_epi64(_mm512_min_epi64(pe, mx), mn);
    po = _mm512_max_epi64(_mm512_min_epi64(po, mx), mn);
    return _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}

T512 void i8k_output_avx512(const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *o, size_t n0,
                            void *dst, size_t ldd) {
    const int kind = o->kind;
    const __m512i zero = _mm512_setzero_si512();
    const __m512i az = _mm512_set1_epi32(o->a_zero);
    const int use_cs = o->a_zero != 0 && o->colsum != NULL;
    const int use_rt = o->row_coef != NULL && o->row_sum != NULL;
    for (size_t j = 0; j < cols; j += 16) {
        size_t cn = cols - j < 16 ? cols - j : 16;
        __mmask16 mk = (__mmask16)((1u << cn) - 1);
        size_t n = n0 + j;
        __m512i add = o->bias ? _mm512_maskz_loadu_epi32(mk, o->bias + n) : zero;
        if (use_cs) add = _mm512_sub_epi32(add, _mm512_mullo_epi32(az, _mm512_maskz_loadu_epi32(mk, o->colsum + n)));
        const __m512i rc = use_rt ? _mm512_maskz_loadu_epi32(mk, o->row_coef + n) : zero;
#define RT512(v, i) (use_rt ? _mm512_add_epi32(v, _mm512_mullo_epi32(rc, _mm512_set1_epi32(o->row_sum[i]))) : (v))
        if (kind == I8K_OUT_INT32) {
            for (size_t i = 0; i < rows; i++) {
                __m512i v = RT512(_mm512_add_epi32(_mm512_maskz_loadu_epi32(mk, src + i * lds + j), add), i);
                _mm512_mask_storeu_epi32((int32_t *)dst + i * ldd + j, mk, v);
            }
        } else if (kind == I8K_OUT_FLOAT) {
            __m512 sc = _mm512_maskz_loadu_ps(mk, o->scale + n);
            __m512 fb = o->fbias ? _mm512_maskz_loadu_ps(mk, o->fbias + n) : _mm512_setzero_ps();
            for (size_t i = 0; i < rows; i++) {
                __m512i v = RT512(_mm512_add_epi32(_mm512_maskz_loadu_epi32(mk, src + i * lds + j), add), i);
                __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), sc);
                if (o->fbias) f = _mm512_add_ps(f, fb);
                _mm512_mask_storeu_ps((float *)dst + i * ldd + j, mk, f);
            }
        } else {
            __m512i m = _mm512_maskz_loadu_epi32(mk, o->mult + n);
            __m512i sh = _mm512_maskz_loadu_epi32(mk, o->shift + n);
            __m512i left = _mm512_max_epi32(sh, zero);
            __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, sh), zero);
            __m512i lo = _mm512_set1_epi32(o->qmin - o->out_zero), hi = _mm512_set1_epi32(o->qmax - o->out_zero);
            __m512i zp = _mm512_set1_epi32(o->out_zero);
            __m512i mo = _mm512_srli_epi64(m, 32);
            const __mmask16 m_min = _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(INT32_MIN));
            const int any_left = _mm512_cmpgt_epi32_mask(left, zero) != 0;
            for (size_t i = 0; i < rows; i++) {
                __m512i v = RT512(_mm512_add_epi32(_mm512_maskz_loadu_epi32(mk, src + i * lds + j), add), i);
                __m512i r;
                if (o->rounding == I8K_ROUND_SINGLE) r = single512(v, m, sh);
                else r = rdpot512(srdhm512(any_left ? _mm512_sllv_epi32(v, left) : v, m, mo, m_min), right);
                r = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(r, lo), hi), zp);
                _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)dst + i * ldd + j, mk, r);
            }
        }
#undef RT512
    }
}

TAVX2 void i8k_output_avx2(const int32_t *src, size_t lds, size_t rows, size_t cols, const i8k_output *o, size_t n0,
                           void *dst, size_t ldd) {
    const int kind = o->kind;
    if ((kind == I8K_OUT_INT8 || kind == I8K_OUT_UINT8) && o->rounding == I8K_ROUND_SINGLE) {
        i8k_output_scalar_block(src, lds, rows, cols, o, n0, dst, ldd);
        return;
    }
    const int use_cs = o->a_zero != 0 && o->colsum != NULL;
    const int use_rt = o->row_coef != NULL && o->row_sum != NULL;
    const __m256i az = _mm256_set1_epi32(o->a_zero);
    const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
    size_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        size_t n = n0 + j;
        __m256i add = o->bias ? _mm256_loadu_si256((const __m256i *)(o->bias + n)) : zero;
        if (use_cs) add = _mm256_sub_epi32(add, _mm256_mullo_epi32(az, _mm256_loadu_si256((const __m256i *)(o->colsum + n))));
        const __m256i rc = use_rt ? _mm256_loadu_si256((const __m256i *)(o->row_coef + n)) : zero;
#define RT256(v, i) (use_rt ? _mm256_add_epi32(v, _mm256_mullo_epi32(rc, _mm256_set1_epi32(o->row_sum[i]))) : (v))
        if (kind == I8K_OUT_INT32) {
            for (size_t i = 0; i < rows; i++) {
                __m256i v = RT256(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(src + i * lds + j)), add), i);
                _mm256_storeu_si256((__m256i *)((int32_t *)dst + i * ldd + j), v);
            }
        } else if (kind == I8K_OUT_FLOAT) {
            __m256 sc = _mm256_loadu_ps(o->scale + n);
            __m256 fb = o->fbias ? _mm256_loadu_ps(o->fbias + n) : _mm256_setzero_ps();
            for (size_t i = 0; i < rows; i++) {
                __m256i v = RT256(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(src + i * lds + j)), add), i);
                __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), sc);
                if (o->fbias) f = _mm256_add_ps(f, fb);
                _mm256_storeu_ps((float *)dst + i * ldd + j, f);
            }
        } else {
            __m256i m = _mm256_loadu_si256((const __m256i *)(o->mult + n));
            __m256i sh = _mm256_loadu_si256((const __m256i *)(o->shift + n));
            __m256i left = _mm256_max_epi32(sh, zero);
            __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, sh), zero);
            __m256i lo = _mm256_set1_epi32(o->qmin - o->out_zero), hi = _mm256_set1_epi32(o->qmax - o->out_zero);
            __m256i zp = _mm256_set1_epi32(o->out_zero);
            const __m256i nudge = _mm256_set1_epi64x((int64_t)1 << 30);
            __m256i mo = _mm256_srli_epi64(m, 32);
            __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
            __m256i thr0 = _mm256_srai_epi32(mask, 1);
            for (size_t i = 0; i < rows; i++) {
                __m256i v = RT256(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(src + i * lds + j)), add), i);
                __m256i x = _mm256_sllv_epi32(v, left);
                __m256i pe = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
                __m256i po = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), mo), nudge), 31);
                __m256i r = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
                __m256i sat = _mm256_and_si256(_mm256_cmpeq_epi32(x, _mm256_set1_epi32(INT32_MIN)),
                                               _mm256_cmpeq_epi32(m, _mm256_set1_epi32(INT32_MIN)));
                r = _mm256_blendv_epi8(r, _mm256_set1_epi32(INT32_MAX), sat);
                __m256i rem = _mm256_and_si256(r, mask);
                __m256i thr = _mm256_add_epi32(thr0, _mm256_srli_epi32(r, 31));
                r = _mm256_sub_epi32(_mm256_srav_epi32(r, right), _mm256_cmpgt_epi32(rem, thr));
                r = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(r, lo), hi), zp);
                /* pack 8 int32 (already in byte range) to bytes */
                __m256i p16 = _mm256_packs_epi32(r, r);           /* lanes: r0..3 r0..3 | r4..7 r4..7 */
                __m128i p = _mm_unpacklo_epi64(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
                __m128i b = kind == I8K_OUT_INT8 ? _mm_packs_epi16(p, p) : _mm_packus_epi16(p, p);
                _mm_storel_epi64((__m128i *)((uint8_t *)dst + i * ldd + j), b);
            }
        }
#undef RT256
    }
    if (j < cols) i8k_output_scalar_block(src + j, lds, rows, cols - j, o, n0 + j, (char *)dst + j * i8k_out_elsize(o), ldd);
}

/* the nbytes (< 4) trailing bytes at p, zero-padded, broadcast to every dword (masked load: no read past the end) */
I8K_INLINE T512 __m512i tail512(const void *p, size_t nbytes) {
    return _mm512_broadcastd_epi32(_mm_maskz_loadu_epi8((__mmask16)((1u << nbytes) - 1), p));
}

/* ======================= AVX-512 VNNI GEMM ======================= */
#define K512_BODY(LOADA, DOT)                                                                                         \
    __m512i acc[8][3];                                                                                                \
    for (int i = 0; i < MR; i++)                                                                                      \
        for (int j = 0; j < NV; j++)                                                                                  \
            acc[i][j] = INIT ? _mm512_loadu_si512(C + i * I8K_NR + j * 16) : _mm512_setzero_si512();                 \
    const int8_t *b = (const int8_t *)B;                                                                              \
    const size_t step = pw * 4;                                                                                       \
    for (size_t g = 0; g < KG; g++, b += step) {                                                                      \
        __m512i b0 = _mm512_loadu_si512(b), b1 = b0, b2 = b0;                                                         \
        if (NV > 1) b1 = _mm512_loadu_si512(b + 64);                                                                  \
        if (NV > 2) b2 = _mm512_loadu_si512(b + 128);                                                                 \
        for (int i = 0; i < MR; i++) {                                                                                \
            __m512i a = LOADA(i, g);                                                                                  \
            acc[i][0] = DOT(acc[i][0], a, b0);                                                                        \
            if (NV > 1) acc[i][1] = DOT(acc[i][1], a, b1);                                                            \
            if (NV > 2) acc[i][2] = DOT(acc[i][2], a, b2);                                                            \
        }                                                                                                             \
    }                                                                                                                 \
    if (KR) {                                                                                                         \
        __m512i b0 = _mm512_loadu_si512(b), b1 = b0, b2 = b0;                                                         \
        if (NV > 1) b1 = _mm512_loadu_si512(b + 64);                                                                  \
        if (NV > 2) b2 = _mm512_loadu_si512(b + 128);                                                                 \
        for (int i = 0; i < MR; i++) {                                                                                \
            __m512i a = LOADTAIL(i);                                                                                  \
            acc[i][0] = DOT(acc[i][0], a, b0);                                                                        \
            if (NV > 1) acc[i][1] = DOT(acc[i][1], a, b1);                                                            \
            if (NV > 2) acc[i][2] = DOT(acc[i][2], a, b2);                                                            \
        }                                                                                                             \
    }                                                                                                                 \
    for (int i = 0; i < MR; i++)                                                                                      \
        for (int j = 0; j < NV; j++) _mm512_storeu_si512(C + i * I8K_NR + j * 16, acc[i][j]);

#define DOT_BUSD(c, a, b) _mm512_dpbusd_epi32(c, a, b)
#define DOT_WSSD(c, a, b) _mm512_dpwssd_epi32(c, a, b)

/* u8: KG = K/4 groups, KR = K%4 tail bytes; XR: flip sign bit of A (int8 input) */
I8K_INLINE T512 void k512_u8(const int MR, const int NV, const int XR, const int INIT, const uint8_t *A, size_t lda, const int8_t *B,
                             size_t KG, size_t KR, size_t pw, int32_t *C) {
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u);
#define LOADA(i, g) (XR ? _mm512_xor_si512(_mm512_set1_epi32(i8k_load_u32(A + (i) * lda + 4 * (g))), flip) \
                        : _mm512_set1_epi32(i8k_load_u32(A + (i) * lda + 4 * (g))))
#define LOADTAIL(i) (XR ? _mm512_xor_si512(tail512(A + (i) * lda + 4 * KG, KR), flip) : tail512(A + (i) * lda + 4 * KG, KR))
    K512_BODY(LOADA, DOT_BUSD)
#undef LOADA
#undef LOADTAIL
}

/* s16: KG = K/2 pairs, KR = K%2 */
I8K_INLINE T512 void k512_s16(const int MR, const int NV, const int INIT, const int16_t *A, size_t lda, const int16_t *B, size_t KG,
                              size_t KR, size_t pw, int32_t *C) {
#define LOADA(i, g) _mm512_set1_epi32(i8k_load_u32(A + (i) * lda + 2 * (g)))
#define LOADTAIL(i) tail512(A + (i) * lda + 2 * KG, 2 * KR)
    K512_BODY(LOADA, DOT_WSSD)
#undef LOADA
#undef LOADTAIL
}

/* Fused epilogue: the output stage applied straight from the accumulator registers (no int32 tile round trip).
 * Per-column constants of one panel are computed once per panel call (ep512_setup); the arithmetic is exactly
 * that of i8k_output_avx512, so results are bit-identical. */
typedef struct {
    __m512i add[3], rc[3], m[3], mo[3], sh[3], left[3], right[3];
    __m512i rmask[3], rthr[3];            /* double rounding: RDPOT mask 2^e − 1 and mask >> 1 */
    __m512i te[3], to[3], re[3], ro[3];   /* single rounding: 64-bit shift counts and rounding addends (even/odd) */
    __m512 sc[3], fb[3];
    __m512i lo, hi, zp, lo64, hi64;
    __mmask16 mk[3], m_min[3];
    int any_left[3];
    int t32[3];                           /* single rounding: every shift count 31 − shift >= 32 in this vector */
    int hi32[3];                          /* single rounding, shifts in [−1 − hmax, −2] (ep512_setup): the high-half form */
    __m512i hrnd[3], hsh[3], qmin, qmax;  /* its addend 2^(t−33) + zp·2^(t−32) and shift t − 32 (t = 31 − shift) */
    int kind, rounding, has_fb;
    const int32_t *row_sum;               /* weight zero-point term: rc[j] * row_sum[i] (NULL: none) */
    int rc16;                             /* every rc lane fits int16 */
} ep512;

T512 static void ep512_setup(ep512 *e, const i8k_output *o, size_t n0, size_t nr) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i az = _mm512_set1_epi32(o->a_zero);
    const int use_cs = o->a_zero != 0 && o->colsum != NULL;
    e->kind = o->kind;
    e->rounding = o->rounding;
    e->has_fb = o->fbias != NULL;
    e->row_sum = (o->row_coef && o->row_sum) ? o->row_sum : NULL;
    e->lo = _mm512_set1_epi32(o->qmin - o->out_zero);
    e->hi = _mm512_set1_epi32(o->qmax - o->out_zero);
    e->zp = _mm512_set1_epi32(o->out_zero);
    e->qmin = _mm512_set1_epi32(o->qmin);
    e->qmax = _mm512_set1_epi32(o->qmax);
    e->lo64 = _mm512_set1_epi64((int64_t)o->qmin - o->out_zero);
    e->rc16 = 1;
    /* the high-half form's largest h (depends on the zero point only) */
    int hmax = 1;
    while (hmax < 30 && ((int64_t)1 << hmax) * llabs(1 + 2 * (int64_t)o->out_zero) < ((int64_t)1 << 30)) hmax++;
    e->hi64 = _mm512_set1_epi64((int64_t)o->qmax - o->out_zero);
    for (size_t j = 0; j < 3; j++) {
        size_t c0 = 16 * j, cn = c0 >= nr ? 0 : (nr - c0 < 16 ? nr - c0 : 16);
        __mmask16 mk = (__mmask16)((1u << cn) - 1);
        size_t n = n0 + c0;
        e->mk[j] = mk;
        e->any_left[j] = 0;
        e->t32[j] = 0;
        e->hi32[j] = 0;
        e->hrnd[j] = zero;
        e->hsh[j] = _mm512_set1_epi32(1);
        e->m_min[j] = 0;
        e->add[j] = e->rc[j] = e->m[j] = e->mo[j] = e->sh[j] = e->left[j] = e->right[j] = zero;
        e->rmask[j] = e->rthr[j] = e->te[j] = e->to[j] = e->re[j] = e->ro[j] = zero;
        e->sc[j] = e->fb[j] = _mm512_setzero_ps();
        if (cn == 0) continue;
        __m512i add = o->bias ? _mm512_maskz_loadu_epi32(mk, o->bias + n) : zero;
        if (use_cs) add = _mm512_sub_epi32(add, _mm512_mullo_epi32(az, _mm512_maskz_loadu_epi32(mk, o->colsum + n)));
        e->add[j] = add;
        if (e->row_sum) {
            e->rc[j] = _mm512_maskz_loadu_epi32(mk, o->row_coef + n);
            if (_mm512_cmpgt_epu32_mask(_mm512_abs_epi32(e->rc[j]), _mm512_set1_epi32(32767))) e->rc16 = 0;   /* unsigned: |INT32_MIN| */
        }
        if (o->kind == I8K_OUT_FLOAT) {
            e->sc[j] = _mm512_maskz_loadu_ps(mk, o->scale + n);
            if (o->fbias) e->fb[j] = _mm512_maskz_loadu_ps(mk, o->fbias + n);
        } else if (o->kind == I8K_OUT_INT8 || o->kind == I8K_OUT_UINT8) {
            __m512i m = _mm512_maskz_loadu_epi32(mk, o->mult + n);
            __m512i sh = _mm512_maskz_loadu_epi32(mk, o->shift + n);
            e->m[j] = m;
            e->mo[j] = _mm512_srli_epi64(m, 32);
            e->sh[j] = sh;
            e->left[j] = _mm512_max_epi32(sh, zero);
            e->right[j] = _mm512_max_epi32(_mm512_sub_epi32(zero, sh), zero);
            e->m_min[j] = _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(INT32_MIN));
            e->any_left[j] = _mm512_cmpgt_epi32_mask(e->left[j], zero) != 0;
            /* shift <= −1 on every valid lane: |v·M| < 2^62 and t >= 32 leave |result| <= 2^30 + 1, so no saturation */
            e->t32[j] = _mm512_mask_cmpgt_epi32_mask(mk, sh, _mm512_set1_epi32(-1)) == 0;
            /* shift <= −2 (t − 32 = h >= 1) on every valid lane, and h small enough that the addend
             * 2^(h−1)·(1 + 2·zp) plus the high half (|hi32(P)| <= 2^30) stays in int32 */
            e->hi32[j] = (_mm512_mask_cmpgt_epi32_mask(mk, sh, _mm512_set1_epi32(-2)) |
                          _mm512_mask_cmplt_epi32_mask(mk, sh, _mm512_set1_epi32(-1 - hmax))) == 0;
            if (e->hi32[j]) {
                const __m512i h = _mm512_mask_sub_epi32(_mm512_set1_epi32(1), mk, _mm512_set1_epi32(-1), sh);
                e->hsh[j] = h;
                e->hrnd[j] = _mm512_add_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), _mm512_sub_epi32(h, _mm512_set1_epi32(1))),
                                              _mm512_sllv_epi32(_mm512_set1_epi32(o->out_zero), h));
            }
            const __m512i one = _mm512_set1_epi32(1), one64 = _mm512_set1_epi64(1);
            e->rmask[j] = _mm512_sub_epi32(_mm512_sllv_epi32(one, e->right[j]), one);
            e->rthr[j] = _mm512_srai_epi32(e->rmask[j], 1);
            __m512i total = _mm512_sub_epi32(_mm512_set1_epi32(31), sh);
            e->te[j] = _mm512_and_si512(total, _mm512_set1_epi64(0xFFFFFFFFLL));
            e->to[j] = _mm512_srli_epi64(total, 32);
            e->re[j] = _mm512_sllv_epi64(one64, _mm512_sub_epi64(e->te[j], one64));
            e->ro[j] = _mm512_sllv_epi64(one64, _mm512_sub_epi64(e->to[j], one64));
        }
    }
}

/* 16-column vectors through the stage, one function per kind so the accumulators stay in registers */
I8K_INLINE T512 void ep512_i32(const ep512 *e, int j, __m512i v, char *dst) {
    int32_t *d = (int32_t *)dst + 16 * j;
    if (e->mk[j] == 0xFFFF) _mm512_storeu_si512(d, v);
    else _mm512_mask_storeu_epi32(d, e->mk[j], v);
}
I8K_INLINE T512 void ep512_f32(const ep512 *e, int j, __m512i v, char *dst) {
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), e->sc[j]);
    if (e->has_fb) f = _mm512_add_ps(f, e->fb[j]);
    float *d = (float *)dst + 16 * j;
    if (e->mk[j] == 0xFFFF) _mm512_storeu_ps(d, f);
    else _mm512_mask_storeu_ps(d, e->mk[j], f);
}
/* single rounding, requantize-to-8-bit fast form: the 64-bit results are clamped straight to [qmin, qmax] − zero point
 * (equal to saturating to int32 first, since that range lies inside int32) */
I8K_INLINE T512 void ep512_q8s(const ep512 *e, int j, __m512i v, char *dst) {
    if (e->hi32[j]) {
        /* t >= 33: (P + 2^(t−1)) >> t == (hi32(P) + 2^(t−33)) >> (t − 32) for the 64-bit product P (the low half only
         * adds a fraction below 1 before the floor), and adding zp·2^(t−32) first adds zp after the shift */
        const __m512i idx = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1);
        __m512i pe = _mm512_mul_epi32(v, e->m[j]);
        __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(v, 32), e->mo[j]);
        __m512i r = _mm512_srav_epi32(_mm512_add_epi32(_mm512_permutex2var_epi32(pe, idx, po), e->hrnd[j]), e->hsh[j]);
        r = _mm512_min_epi32(_mm512_max_epi32(r, e->qmin), e->qmax);
        uint8_t *d = (uint8_t *)dst + 16 * j;
        if (e->mk[j] == 0xFFFF) _mm_storeu_si128((__m128i *)d, _mm512_cvtepi32_epi8(r));
        else _mm512_mask_cvtepi32_storeu_epi8(d, e->mk[j], r);
        return;
    }
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(v, e->m[j]), e->re[j]);
    __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), e->mo[j]), e->ro[j]);
    pe = _mm512_srav_epi64(pe, e->te[j]);
    po = _mm512_srav_epi64(po, e->to[j]);
    __m512i r;
    if (e->t32[j]) {
        /* results fit int32: combine first, clamp in 32-bit lanes */
        r = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
        r = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(r, e->lo), e->hi), e->zp);
    } else {
        pe = _mm512_max_epi64(_mm512_min_epi64(pe, e->hi64), e->lo64);
        po = _mm512_max_epi64(_mm512_min_epi64(po, e->hi64), e->lo64);
        r = _mm512_add_epi32(_mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32)), e->zp);
    }
    uint8_t *d = (uint8_t *)dst + 16 * j;
    if (e->mk[j] == 0xFFFF) _mm_storeu_si128((__m128i *)d, _mm512_cvtepi32_epi8(r));
    else _mm512_mask_cvtepi32_storeu_epi8(d, e->mk[j], r);
}
I8K_INLINE T512 void ep512_q8(const ep512 *e, int j, __m512i v, char *dst) {
    __m512i r;
    if (e->rounding == I8K_ROUND_SINGLE) {
        /* single512 with the per-column shift counts and addends precomputed */
        __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(v, e->m[j]), e->re[j]);
        __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), e->mo[j]), e->ro[j]);
        pe = _mm512_srav_epi64(pe, e->te[j]);
        po = _mm512_srav_epi64(po, e->to[j]);
        const __m512i mx = _mm512_set1_epi64(INT32_MAX), mn = _mm512_set1_epi64(INT32_MIN);
        pe = _mm512_max_epi64(_mm512_min_epi64(pe, mx), mn);
        po = _mm512_max_epi64(_mm512_min_epi64(po, mx), mn);
        r = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    } else {
        /* rdpot512 with mask and threshold precomputed */
        __m512i x = srdhm512(e->any_left[j] ? _mm512_sllv_epi32(v, e->left[j]) : v, e->m[j], e->mo[j], e->m_min[j]);
        __m512i rem = _mm512_and_si512(x, e->rmask[j]);
        __m512i thr = _mm512_add_epi32(e->rthr[j], _mm512_srli_epi32(x, 31));
        r = _mm512_srav_epi32(x, e->right[j]);
        r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, _mm512_set1_epi32(1));
    }
    r = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(r, e->lo), e->hi), e->zp);
    uint8_t *d = (uint8_t *)dst + 16 * j;
    if (e->mk[j] == 0xFFFF) _mm_storeu_si128((__m128i *)d, _mm512_cvtepi32_epi8(r));
    else _mm512_mask_cvtepi32_storeu_epi8(d, e->mk[j], r);
}

/* Microkernel with the fused epilogue (single K slice): MR x (16*NV) outputs written to dst (row stride ldd_bytes).
 * u8 (S16 = 0): A is uint8 (row stride lda bytes), K = 4·KG + KR, dpbusd. S16: A is int16 pairs read as the same 4-byte
 * groups (lda in bytes, KR = 2 bytes when K is odd), dpwssd against the int16 panel (also pw·4 bytes per group).
 * Q8S: the stage is known to be single-rounding requantization to 8 bits (the runtime default): no kind dispatch.
 * RS16: every row sum and weight zero-point coefficient fits int16 */
I8K_INLINE T512 void k512_fused(const int MR, const int NV, const int XR, const int Q8S, const int RS16, const int S16,
                                const uint8_t *A, size_t lda, const int8_t *B, size_t KG, size_t KR, size_t pw,
                                const ep512 *ep, const int32_t *rs, char *dst, size_t ldd_bytes) {
    const __m512i flip = _mm512_set1_epi32((int32_t)0x80808080u);
#define DOT_FUSED(c, a, b) (S16 ? _mm512_dpwssd_epi32(c, a, b) : _mm512_dpbusd_epi32(c, a, b))
    /* accumulators start at the per-column add (bias − a_zero·colsum): int32 addition wraps, so the order does
     * not change the result, and the epilogue saves one add per vector */
    __m512i acc[8][3];
    if (rs && RS16) {
        /* plus the weight zero-point term rc[n]·rowsum[i] in one vpdpwssd: rowsum and rc both fit int16, so the dword
         * pair (rowsum, 0) · (rc, sign bits) is exactly rc·rowsum (vpmulld costs two uops and an add) */
        for (int i = 0; i < MR; i++) {
            const __m512i r = _mm512_set1_epi32(rs[i] & 0xFFFF);
            for (int j = 0; j < NV; j++) acc[i][j] = _mm512_dpwssd_epi32(ep->add[j], r, ep->rc[j]);
        }
    } else if (rs) {
        /* plus the weight zero-point term rc[n]·rowsum[i] (same wrapping int32 sum) */
        for (int i = 0; i < MR; i++) {
            const __m512i r = _mm512_set1_epi32(rs[i]);
            for (int j = 0; j < NV; j++) acc[i][j] = _mm512_add_epi32(ep->add[j], _mm512_mullo_epi32(ep->rc[j], r));
        }
    } else {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) acc[i][j] = ep->add[j];
    }
    const int8_t *b = B;
    const size_t step = pw * 4;
    const uint8_t *a = A;
    for (size_t g = 0; g < KG; g++, b += step, a += 4) {
        __m512i b0 = _mm512_loadu_si512(b), b1 = b0, b2 = b0;
        if (NV > 1) b1 = _mm512_loadu_si512(b + 64);
        if (NV > 2) b2 = _mm512_loadu_si512(b + 128);
        for (int i = 0; i < MR; i++) {
            __m512i av = _mm512_set1_epi32(i8k_load_u32(a + (size_t)i * lda));
            if (XR) av = _mm512_xor_si512(av, flip);
            acc[i][0] = DOT_FUSED(acc[i][0], av, b0);
            if (NV > 1) acc[i][1] = DOT_FUSED(acc[i][1], av, b1);
            if (NV > 2) acc[i][2] = DOT_FUSED(acc[i][2], av, b2);
        }
    }
    if (KR) {
        __m512i b0 = _mm512_loadu_si512(b), b1 = b0, b2 = b0;
        if (NV > 1) b1 = _mm512_loadu_si512(b + 64);
        if (NV > 2) b2 = _mm512_loadu_si512(b + 128);
        for (int i = 0; i < MR; i++) {
            __m512i av = tail512(a + (size_t)i * lda, KR);
            if (XR) av = _mm512_xor_si512(av, flip);
            acc[i][0] = DOT_FUSED(acc[i][0], av, b0);
            if (NV > 1) acc[i][1] = DOT_FUSED(acc[i][1], av, b1);
            if (NV > 2) acc[i][2] = DOT_FUSED(acc[i][2], av, b2);
        }
    }
#undef DOT_FUSED
    if (Q8S) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) ep512_q8s(ep, j, acc[i][j], dst + (size_t)i * ldd_bytes);
        return;
    }
    switch (ep->kind) {
    case I8K_OUT_INT32:
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) ep512_i32(ep, j, acc[i][j], dst + (size_t)i * ldd_bytes);
        break;
    case I8K_OUT_FLOAT:
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) ep512_f32(ep, j, acc[i][j], dst + (size_t)i * ldd_bytes);
        break;
    default:
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) ep512_q8(ep, j, acc[i][j], dst + (size_t)i * ldd_bytes);
        break;
    }
}

#define NV_SWITCH(CALL_MR, MRV)                                                                                       \
    case MRV:                                                                                                         \
        if (nv == 3) CALL_MR(MRV, 3);                                                                                 \
        else if (nv == 2) CALL_MR(MRV, 2);                                                                            \
        else CALL_MR(MRV, 1);                                                                                         \
        break;
#define MR_SWITCH8(CALL)                                                                                              \
    switch (mr) {                                                                                                     \
        NV_SWITCH(CALL, 1) NV_SWITCH(CALL, 2) NV_SWITCH(CALL, 3) NV_SWITCH(CALL, 4)                                  \
        NV_SWITCH(CALL, 5) NV_SWITCH(CALL, 6) NV_SWITCH(CALL, 7) NV_SWITCH(CALL, 8)                                  \
    }

/* K is processed in slices of KC (the B slice, KC x 48 bytes, stays in L1); partial sums of all m rows are kept
 * in an int32 buffer (m <= I8K_MC) between slices, then the output stage runs once. */
#define I8K_KC 1024
#define I8K_MC 256
T512 void i8k_gemm_u8_panel_avx512(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel,
                                   size_t K, size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst,
                                   size_t ldd) {
    int32_t buf[I8K_MC * I8K_NR] __attribute__((aligned(64)));
    const int nv = (int)((nr + 15) / 16);
    const size_t es = i8k_out_elsize(out);
    if (K <= I8K_KC) {
        /* single K slice: the output stage runs on the accumulators in registers (fused epilogue) */
        const size_t KG = K / 4, KR = K % 4;
        ep512 ep;
        ep512_setup(&ep, out, n0, nr);
        const int q8s = (out->kind == I8K_OUT_INT8 || out->kind == I8K_OUT_UINT8) && out->rounding == I8K_ROUND_SINGLE;
        /* |row sum| <= K * 255 (8-bit x minus its zero point) */
        const int rs16 = ep.rc16 && K <= 128;
        const size_t ldb = ldd * es;
        for (size_t m0 = 0; m0 < m; m0 += I8K_MR) {
            const int mr = (int)(m - m0 < I8K_MR ? m - m0 : I8K_MR);
            const uint8_t *a = A + m0 * lda;
            const int32_t *rs = ep.row_sum ? ep.row_sum + m0 : NULL;
            char *d = (char *)dst + m0 * ldb;
            if (q8s && rs16 && rs) {
                if (a_signed) {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 1, 1, 1, 0, a, lda, panel, KG, KR, pw, &ep, rs, d, ldb)
                    MR_SWITCH8(CALL)
#undef CALL
                } else {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 0, 1, 1, 0, a, lda, panel, KG, KR, pw, &ep, rs, d, ldb)
                    MR_SWITCH8(CALL)
#undef CALL
                }
            } else if (q8s) {
                if (a_signed) {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 1, 1, 0, 0, a, lda, panel, KG, KR, pw, &ep, rs, d, ldb)
                    MR_SWITCH8(CALL)
#undef CALL
                } else {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 0, 1, 0, 0, a, lda, panel, KG, KR, pw, &ep, rs, d, ldb)
                    MR_SWITCH8(CALL)
#undef CALL
                }
            } else if (a_signed) {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 1, 0, 0, 0, a, lda, panel, KG, KR, pw, &ep, rs, d, ldb)
                MR_SWITCH8(CALL)
#undef CALL
            } else {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 0, 0, 0, 0, a, lda, panel, KG, KR, pw, &ep, rs, d, ldb)
                MR_SWITCH8(CALL)
#undef CALL
            }
        }
        return;
    }
    for (size_t mb = 0; mb < m; mb += I8K_MC) {
        const size_t mm = m - mb < I8K_MC ? m - mb : I8K_MC;
        for (size_t k0 = 0; k0 < K; k0 += I8K_KC) {
            const size_t kc = K - k0 < I8K_KC ? K - k0 : I8K_KC;
            const size_t KG = kc / 4, KR = kc % 4;
            const int8_t *bp = panel + (k0 / 4) * pw * 4;
            for (size_t m0 = 0; m0 < mm; m0 += I8K_MR) {
                const int mr = (int)(mm - m0 < I8K_MR ? mm - m0 : I8K_MR);
                const uint8_t *a = A + (mb + m0) * lda + k0;
                int32_t *tile = buf + m0 * I8K_NR;
                if (k0 == 0) {
                    if (a_signed) {
#define CALL(MRV, NVV) k512_u8(MRV, NVV, 1, 0, a, lda, bp, KG, KR, pw, tile)
                        MR_SWITCH8(CALL)
#undef CALL
                    } else {
#define CALL(MRV, NVV) k512_u8(MRV, NVV, 0, 0, a, lda, bp, KG, KR, pw, tile)
                        MR_SWITCH8(CALL)
#undef CALL
                    }
                } else {
                    if (a_signed) {
#define CALL(MRV, NVV) k512_u8(MRV, NVV, 1, 1, a, lda, bp, KG, KR, pw, tile)
                        MR_SWITCH8(CALL)
#undef CALL
                    } else {
#define CALL(MRV, NVV) k512_u8(MRV, NVV, 0, 1, a, lda, bp, KG, KR, pw, tile)
                        MR_SWITCH8(CALL)
#undef CALL
                    }
                }
            }
        }
        { i8k_output tmp; i8k_output_avx512(buf, I8K_NR, mm, nr, i8k_out_at(out, mb, &tmp), n0, (char *)dst + mb * ldd * es, ldd); }
    }
}

/* int16: same blocking; K slices of I8K_KC16 elements (k pairs x 48 columns x 4 bytes = 48 KB of B). Up to
 * I8K_KF16 (fc2's 768 and more) one slice with the fused epilogue instead: B streams from L2 either way (a 512 slice
 * already exceeds L1), and the int32 tile round trip and the separate output pass go away. */
#define I8K_KC16 512
#define I8K_KF16 2048
T512 void i8k_gemm_s16_panel_avx512(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                                    size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    int32_t buf[I8K_MC * I8K_NR] __attribute__((aligned(64)));
    const int nv = (int)((nr + 15) / 16);
    const size_t es = i8k_out_elsize(out);
    if (K <= I8K_KF16 && !(out->row_coef && out->row_sum)) {
        const size_t KG = K / 2, KR = 2 * (K % 2);
        ep512 ep;
        ep512_setup(&ep, out, n0, nr);
        const int q8s = (out->kind == I8K_OUT_INT8 || out->kind == I8K_OUT_UINT8) && out->rounding == I8K_ROUND_SINGLE;
        const size_t ldb = ldd * es;
        const int8_t *bp = (const int8_t *)panel;
        for (size_t m0 = 0; m0 < m; m0 += I8K_MR) {
            const int mr = (int)(m - m0 < I8K_MR ? m - m0 : I8K_MR);
            const uint8_t *a = (const uint8_t *)(A + m0 * lda);
            char *d = (char *)dst + m0 * ldb;
            if (q8s) {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 0, 1, 0, 1, a, lda * 2, bp, KG, KR, pw, &ep, NULL, d, ldb)
                MR_SWITCH8(CALL)
#undef CALL
            } else {
#define CALL(MRV, NVV) k512_fused(MRV, NVV, 0, 0, 0, 1, a, lda * 2, bp, KG, KR, pw, &ep, NULL, d, ldb)
                MR_SWITCH8(CALL)
#undef CALL
            }
        }
        return;
    }
    if (K <= I8K_KC16) {
        const size_t KG = K / 2, KR = K % 2;
        for (size_t m0 = 0; m0 < m; m0 += I8K_MR) {
            const int mr = (int)(m - m0 < I8K_MR ? m - m0 : I8K_MR);
            const int16_t *a = A + m0 * lda;
#define CALL(MRV, NVV) k512_s16(MRV, NVV, 0, a, lda, panel, KG, KR, pw, buf)
            MR_SWITCH8(CALL)
#undef CALL
            { i8k_output tmp; i8k_output_avx512(buf, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd); }
        }
        return;
    }
    for (size_t mb = 0; mb < m; mb += I8K_MC) {
        const size_t mm = m - mb < I8K_MC ? m - mb : I8K_MC;
        for (size_t k0 = 0; k0 < K; k0 += I8K_KC16) {
            const size_t kc = K - k0 < I8K_KC16 ? K - k0 : I8K_KC16;
            const size_t KG = kc / 2, KR = kc % 2;
            const int16_t *bp = panel + (k0 / 2) * pw * 2;
            for (size_t m0 = 0; m0 < mm; m0 += I8K_MR) {
                const int mr = (int)(mm - m0 < I8K_MR ? mm - m0 : I8K_MR);
                const int16_t *a = A + (mb + m0) * lda + k0;
                int32_t *tile = buf + m0 * I8K_NR;
                if (k0 == 0) {
#define CALL(MRV, NVV) k512_s16(MRV, NVV, 0, a, lda, bp, KG, KR, pw, tile)
                    MR_SWITCH8(CALL)
#undef CALL
                } else {
#define CALL(MRV, NVV) k512_s16(MRV, NVV, 1, a, lda, bp, KG, KR, pw, tile)
                    MR_SWITCH8(CALL)
#undef CALL
                }
            }
        }
        { i8k_output tmp; i8k_output_avx512(buf, I8K_NR, mm, nr, i8k_out_at(out, mb, &tmp), n0, (char *)dst + mb * ldd * es, ldd); }
    }
}

/* ======================= AVX-VNNI (ymm) GEMM: 6 rows x 16 columns per microtile ======================= */
#define K256_BODY(LOADA, LOADTAIL, DOT)                                                                              \
    __m256i acc[6][2];                                                                                                \
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();                                      \
    const int8_t *b = (const int8_t *)B;                                                                              \
    const size_t step = pw * 4;                                                                                       \
    for (size_t g = 0; g < KG; g++, b += step) {                                                                      \
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 32));     \
        for (int i = 0; i < MR; i++) {                                                                                \
            __m256i a = LOADA(i, g);                                                                                  \
            acc[i][0] = DOT(acc[i][0], a, b0);                                                                        \
            acc[i][1] = DOT(acc[i][1], a, b1);                                                                        \
        }                                                                                                             \
    }                                                                                                                 \
    if (KR) {                                                                                                         \
        __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 32));     \
        for (int i = 0; i < MR; i++) {                                                                                \
            __m256i a = LOADTAIL(i);                                                                                  \
            acc[i][0] = DOT(acc[i][0], a, b0);                                                                        \
            acc[i][1] = DOT(acc[i][1], a, b1);                                                                        \
        }                                                                                                             \
    }                                                                                                                 \
    for (int i = 0; i < MR; i++) {                                                                                    \
        _mm256_storeu_si256((__m256i *)(C + i * I8K_NR), acc[i][0]);                                                  \
        _mm256_storeu_si256((__m256i *)(C + i * I8K_NR + 8), acc[i][1]);                                              \
    }

#define DOTV_BUSD(c, a, b) _mm256_dpbusd_avx_epi32(c, a, b)
#define DOTV_WSSD(c, a, b) _mm256_dpwssd_avx_epi32(c, a, b)

I8K_INLINE TVNNI void kvnni_u8(const int MR, const int XR, const uint8_t *A, size_t lda, const int8_t *B, size_t KG,
                               size_t KR, size_t pw, int32_t *C) {
    const __m256i flip = _mm256_set1_epi32((int32_t)0x80808080u);
#define LOADA(i, g) (XR ? _mm256_xor_si256(_mm256_set1_epi32(i8k_load_u32(A + (i) * lda + 4 * (g))), flip) \
                        : _mm256_set1_epi32(i8k_load_u32(A + (i) * lda + 4 * (g))))
#define LOADTAIL(i) (XR ? _mm256_xor_si256(_mm256_set1_epi32(i8k_load_tail(A + (i) * lda + 4 * KG, KR)), flip) \
                        : _mm256_set1_epi32(i8k_load_tail(A + (i) * lda + 4 * KG, KR)))
    K256_BODY(LOADA, LOADTAIL, DOTV_BUSD)
#undef LOADA
#undef LOADTAIL
}

I8K_INLINE TVNNI void kvnni_s16(const int MR, const int16_t *A, size_t lda, const int16_t *B, size_t KG, size_t KR,
                                size_t pw, int32_t *C) {
#define LOADA(i, g) _mm256_set1_epi32(i8k_load_u32(A + (i) * lda + 2 * (g)))
#define LOADTAIL(i) _mm256_set1_epi32(i8k_load_tail(A + (i) * lda + 2 * KG, 2 * KR))
    K256_BODY(LOADA, LOADTAIL, DOTV_WSSD)
#undef LOADA
#undef LOADTAIL
}

#define MR_SWITCH6(CALL)                                                                                              \
    switch (mr) {                                                                                                     \
    case 1: CALL(1); break;                                                                                           \
    case 2: CALL(2); break;                                                                                           \
    case 3: CALL(3); break;                                                                                           \
    case 4: CALL(4); break;                                                                                           \
    case 5: CALL(5); break;                                                                                           \
    default: CALL(6); break;                                                                                          \
    }

TVNNI void i8k_gemm_u8_panel_avxvnni(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel,
                                     size_t K, size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst,
                                     size_t ldd) {
    int32_t tile[6 * I8K_NR] __attribute__((aligned(64)));
    const size_t KG = K / 4, KR = K % 4, es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += 6) {
        const int mr = (int)(m - m0 < 6 ? m - m0 : 6);
        const uint8_t *a = A + m0 * lda;
        for (size_t s = 0; s < nr; s += 16) {
            const int8_t *bp = panel + s * 4;
            if (a_signed) {
#define CALL(MRV) kvnni_u8(MRV, 1, a, lda, bp, KG, KR, pw, tile + s)
                MR_SWITCH6(CALL)
#undef CALL
            } else {
#define CALL(MRV) kvnni_u8(MRV, 0, a, lda, bp, KG, KR, pw, tile + s)
                MR_SWITCH6(CALL)
#undef CALL
            }
        }
        { i8k_output tmp; i8k_output_avx2(tile, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd); }
    }
}

TVNNI void i8k_gemm_s16_panel_avxvnni(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K,
                                      size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    int32_t tile[6 * I8K_NR] __attribute__((aligned(64)));
    const size_t KG = K / 2, KR = K % 2, es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += 6) {
        const int mr = (int)(m - m0 < 6 ? m - m0 : 6);
        const int16_t *a = A + m0 * lda;
        for (size_t s = 0; s < nr; s += 16) {
            const int16_t *bp = panel + s * 2;
#define CALL(MRV) kvnni_s16(MRV, a, lda, bp, KG, KR, pw, tile + s)
            MR_SWITCH6(CALL)
#undef CALL
        }
        { i8k_output tmp; i8k_output_avx2(tile, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd); }
    }
}

/* ======================= AVX2 GEMM ======================= */
/* vpmaddubsw path (exact only for weights in [-64, 63]): 4 rows x 16 columns */
#define DOTV_MADDUBS(c, a, b) _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones))
#define DOTV_MADDWD(c, a, b) _mm256_add_epi32(c, _mm256_madd_epi16(a, b))
I8K_INLINE TAVX2 void kavx2_u8_7bit(const int MR, const int XR, const uint8_t *A, size_t lda, const int8_t *B,
                                    size_t KG, size_t KR, size_t pw, int32_t *C) {
    const __m256i flip = _mm256_set1_epi32((int32_t)0x80808080u);
    const __m256i ones = _mm256_set1_epi16(1);
#define LOADA(i, g) (XR ? _mm256_xor_si256(_mm256_set1_epi32(i8k_load_u32(A + (i) * lda + 4 * (g))), flip) \
                        : _mm256_set1_epi32(i8k_load_u32(A + (i) * lda + 4 * (g))))
#define LOADTAIL(i) (XR ? _mm256_xor_si256(_mm256_set1_epi32(i8k_load_tail(A + (i) * lda + 4 * KG, KR)), flip) \
                        : _mm256_set1_epi32(i8k_load_tail(A + (i) * lda + 4 * KG, KR)))
    K256_BODY(LOADA, LOADTAIL, DOTV_MADDUBS)
#undef LOADA
#undef LOADTAIL
}

I8K_INLINE TAVX2 void kavx2_s16(const int MR, const int16_t *A, size_t lda, const int16_t *B, size_t KG, size_t KR,
                                size_t pw, int32_t *C) {
#define LOADA(i, g) _mm256_set1_epi32(i8k_load_u32(A + (i) * lda + 2 * (g)))
#define LOADTAIL(i) _mm256_set1_epi32(i8k_load_tail(A + (i) * lda + 2 * KG, 2 * KR))
    K256_BODY(LOADA, LOADTAIL, DOTV_MADDWD)
#undef LOADA
#undef LOADTAIL
}

/* exact widening path for full-range int8 weights: 4 rows x 8 columns, B widened to int16 in registers */
I8K_INLINE TAVX2 void kavx2_u8_wide(const int MR, const int XR, const uint8_t *A, size_t lda, const int8_t *B,
                                    size_t KG, size_t KR, size_t pw, int32_t *C) {
    __m256i lo[4], hi[4];
    for (int i = 0; i < MR; i++) lo[i] = hi[i] = _mm256_setzero_si256();
    const uint32_t fl = XR ? 0x80808080u : 0u;
    const int8_t *b = B;
    for (size_t g = 0; g <= KG; g++, b += pw * 4) {
        if (g == KG && KR == 0) break;
        __m256i braw = _mm256_loadu_si256((const __m256i *)b);
        __m256i b0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(braw));
        __m256i b1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(braw, 1));
        for (int i = 0; i < MR; i++) {
            uint32_t w = (uint32_t)(g < KG ? i8k_load_u32(A + i * lda + 4 * g) : i8k_load_tail(A + i * lda + 4 * KG, KR));
            __m256i a = _mm256_cvtepu8_epi16(_mm_set1_epi32((int32_t)(w ^ fl)));
            lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(a, b0));
            hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(a, b1));
        }
    }
    for (int i = 0; i < MR; i++) {
        __m256i s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[i], hi[i]), 0xD8);
        _mm256_storeu_si256((__m256i *)(C + i * I8K_NR), s);
    }
}

#define MR_SWITCH4(CALL)                                                                                              \
    switch (mr) {                                                                                                     \
    case 1: CALL(1); break;                                                                                           \
    case 2: CALL(2); break;                                                                                           \
    case 3: CALL(3); break;                                                                                           \
    default: CALL(4); break;                                                                                          \
    }

TAVX2 void i8k_gemm_u8_panel_avx2(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                                  size_t pw, size_t nr, int seven_bit, const i8k_output *out, size_t n0, void *dst,
                                  size_t ldd) {
    int32_t tile[4 * I8K_NR] __attribute__((aligned(64)));
    const size_t KG = K / 4, KR = K % 4, es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += 4) {
        const int mr = (int)(m - m0 < 4 ? m - m0 : 4);
        const uint8_t *a = A + m0 * lda;
        if (seven_bit) {
            for (size_t s = 0; s < nr; s += 16) {
                const int8_t *bp = panel + s * 4;
                if (a_signed) {
#define CALL(MRV) kavx2_u8_7bit(MRV, 1, a, lda, bp, KG, KR, pw, tile + s)
                    MR_SWITCH4(CALL)
#undef CALL
                } else {
#define CALL(MRV) kavx2_u8_7bit(MRV, 0, a, lda, bp, KG, KR, pw, tile + s)
                    MR_SWITCH4(CALL)
#undef CALL
                }
            }
        } else {
            for (size_t s = 0; s < nr; s += 8) {
                const int8_t *bp = panel + s * 4;
                if (a_signed) {
#define CALL(MRV) kavx2_u8_wide(MRV, 1, a, lda, bp, KG, KR, pw, tile + s)
                    MR_SWITCH4(CALL)
#undef CALL
                } else {
#define CALL(MRV) kavx2_u8_wide(MRV, 0, a, lda, bp, KG, KR, pw, tile + s)
                    MR_SWITCH4(CALL)
#undef CALL
                }
            }
        }
        { i8k_output tmp; i8k_output_avx2(tile, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd); }
    }
}

TAVX2 void i8k_gemm_s16_panel_avx2(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                                   size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    int32_t tile[4 * I8K_NR] __attribute__((aligned(64)));
    const size_t KG = K / 2, KR = K % 2, es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += 4) {
        const int mr = (int)(m - m0 < 4 ? m - m0 : 4);
        const int16_t *a = A + m0 * lda;
        for (size_t s = 0; s < nr; s += 16) {
            const int16_t *bp = panel + s * 2;
#define CALL(MRV) kavx2_s16(MRV, a, lda, bp, KG, KR, pw, tile + s)
            MR_SWITCH4(CALL)
#undef CALL
        }
        { i8k_output tmp; i8k_output_avx2(tile, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd); }
    }
}

/* ======================= depthwise (AVX-512, channels in zmm lanes) ======================= */
I8K_INLINE T512 void dw_pixel512(const int KHc, const int KWc, const uint8_t *in, int a_signed, int32_t a_zero,
                                 size_t H, size_t W, size_t C, const int16_t *w, size_t KH, size_t KW, size_t sh,
                                 size_t sw, size_t ph, size_t pw, size_t dh, size_t dw, size_t oy, size_t ox,
                                 size_t cb, size_t ce, int32_t *acc) {
    const size_t kh = KHc ? (size_t)KHc : KH, kw = KWc ? (size_t)KWc : KW;
    const __m512i z = _mm512_set1_epi32(a_zero);
    for (size_t c = cb; c < ce; c += 16) {
        size_t cn = ce - c < 16 ? ce - c : 16;
        __mmask16 mk = (__mmask16)((1u << cn) - 1);
        __m512i s = _mm512_setzero_si512();
        for (size_t ky = 0; ky < kh; ky++) {
            long iy = (long)(oy * sh + ky * dh) - (long)ph;
            if (iy < 0 || iy >= (long)H) continue;
            for (size_t kx = 0; kx < kw; kx++) {
                long ix = (long)(ox * sw + kx * dw) - (long)pw;
                if (ix < 0 || ix >= (long)W) continue;
                __m128i xr = _mm_maskz_loadu_epi8(mk, in + ((size_t)iy * W + (size_t)ix) * C + c);
                __m256i wr = _mm256_maskz_loadu_epi16(mk, w + (ky * kw + kx) * C + c);
                __m512i x = a_signed ? _mm512_cvtepi8_epi32(xr) : _mm512_cvtepu8_epi32(xr);
                s = _mm512_add_epi32(s, _mm512_mullo_epi32(_mm512_sub_epi32(x, z), _mm512_cvtepi16_epi32(wr)));
            }
        }
        _mm512_mask_storeu_epi32(acc + (c - cb), mk, s);
    }
}

T512 void i8k_dwconv_row_avx512(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                                const int16_t *w, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                                size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst) {
    i8k_output o = i8k_dw_output(out);
    enum { CAP = 8192 };
    int32_t acc[CAP] __attribute__((aligned(64)));
    const size_t es = i8k_out_elsize(&o);
    /* channel chunks of at most CAP; pixels batched so one output-stage call covers px x cn values */
    for (size_t cb = 0; cb < C; cb += CAP) {
        const size_t ce = C - cb < CAP ? C : cb + CAP, cn = ce - cb;
        const size_t px = CAP / cn;
        for (size_t ox0 = 0; ox0 < OW; ox0 += px) {
            const size_t np = OW - ox0 < px ? OW - ox0 : px;
            for (size_t p = 0; p < np; p++) {
                int32_t *a = acc + p * cn;
                const size_t ox = ox0 + p;
#define DWCALL(KHV, KWV) dw_pixel512(KHV, KWV, in, a_signed, a_zero, H, W, C, w, KH, KW, sh, sw, ph, pw, dh, dw, oy, ox, cb, ce, a)
                if (KH == 3 && KW == 3) DWCALL(3, 3);
                else if (KH == 5 && KW == 5) DWCALL(5, 5);
                else DWCALL(0, 0);
#undef DWCALL
            }
            i8k_output_avx512(acc, cn, np, cn, &o, cb, (char *)dst + (ox0 * C + cb) * es, C);
        }
    }
}
/* ======================= row sums (weight zero-point term) ======================= */
/* sum of bytes with vpsadbw (u64 lanes); int8 input: bytes ^ 0x80 = a + 128, then 128·K removed */
T512 void i8k_row_sums_avx512(const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst) {
    const __m512i z = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const uint32_t off = (uint32_t)zero * (uint32_t)K + (a_signed ? 128u * (uint32_t)K : 0u);
    if (K <= 16) {
        /* short rows (1x1 convs on few channels, the stem's patches): one 128-bit vpsadbw per row */
        const __mmask16 mk = (__mmask16)((1u << K) - 1);
        const __m128i fl = _mm_set1_epi8((char)0x80), z1 = _mm_setzero_si128();
        for (size_t i = 0; i < m; i++) {
            __m128i v = _mm_maskz_loadu_epi8(mk, A + i * lda);
            if (a_signed) v = _mm_maskz_mov_epi8(mk, _mm_xor_si128(v, fl));
            __m128i sd = _mm_sad_epu8(v, z1);
            dst[i] = (int32_t)((uint32_t)(_mm_cvtsi128_si32(sd) + _mm_extract_epi32(sd, 2)) - off);
        }
        return;
    }
    if (K <= 32) {
        const __mmask32 mk = (__mmask32)(K == 32 ? 0xFFFFFFFFu : (1u << K) - 1);
        const __m256i fl = _mm256_set1_epi8((char)0x80), z1 = _mm256_setzero_si256();
        for (size_t i = 0; i < m; i++) {
            __m256i v = _mm256_maskz_loadu_epi8(mk, A + i * lda);
            if (a_signed) v = _mm256_maskz_mov_epi8(mk, _mm256_xor_si256(v, fl));
            __m256i sd = _mm256_sad_epu8(v, z1);
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(sd), _mm256_extracti128_si256(sd, 1));
            dst[i] = (int32_t)((uint32_t)(_mm_cvtsi128_si32(h) + _mm_extract_epi32(h, 2)) - off);
        }
        return;
    }
    for (size_t i = 0; i < m; i++) {
        const uint8_t *a = A + i * lda;
        __m512i acc = z;
        size_t k = 0;
        for (; k + 64 <= K; k += 64) {
            __m512i v = _mm512_loadu_si512(a + k);
            if (a_signed) v = _mm512_xor_si512(v, flip);
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, z));
        }
        if (k < K) {
            const __mmask64 mk = (__mmask64)(~0ULL >> (64 - (K - k)));
            __m512i v = _mm512_maskz_loadu_epi8(mk, a + k);
            if (a_signed) v = _mm512_maskz_mov_epi8(mk, _mm512_xor_si512(v, flip));
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, z));
        }
        dst[i] = (int32_t)((uint32_t)_mm512_reduce_add_epi64(acc) - off);
    }
}

TAVX2 void i8k_row_sums_avx2(const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst) {
    const __m256i z = _mm256_setzero_si256();
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const uint32_t off = (uint32_t)zero * (uint32_t)K + (a_signed ? 128u * (uint32_t)K : 0u);
    for (size_t i = 0; i < m; i++) {
        const uint8_t *a = A + i * lda;
        __m256i acc = z;
        size_t k = 0;
        for (; k + 32 <= K; k += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(a + k));
            if (a_signed) v = _mm256_xor_si256(v, flip);
            acc = _mm256_add_epi64(acc, _mm256_sad_epu8(v, z));
        }
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        uint32_t s = (uint32_t)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1));
        for (; k < K; k++) s += a_signed ? (uint32_t)((uint8_t)(a[k] ^ 0x80)) : a[k];
        dst[i] = (int32_t)(s - off);
    }
}
/* ======================= depthwise, packed tap pairs (AVX-512BW vpmaddwd) ======================= */
/* x in int16 (32 channels per zmm), two taps interleaved with vpunpck{l,h}wd, one vpmaddwd per 16 channels against
 * the packed weight pairs (layout: i8k_dw_pack), int32 accumulators started at −z·Σ_t w_t, so the sum is
 * Σ_t (x_t − z)·w_t; an out-of-bounds tap reads x = z (padding equals the zero point) and adds 0. |x|, |w| ≤ 255, so a
 * pair sum stays below 2^17 and 32 pairs below 2^22. The unpack order is undone with one permute per 16 channels. */
/* a tap as int16 x (no zero-point subtraction): lanes outside `mk` (all of them for a tap outside the input) read the
 * zero point z from `zb`, so that they contribute z·w, which the per-channel correction −z·Σ_t w_t cancels */
I8K_INLINE T512 __m512i dw_tapz512(const int XS, const uint8_t *p, __mmask32 mk, __m256i zb) {
    __m256i r = _mm256_mask_loadu_epi8(zb, mk, p);
    return XS ? _mm512_cvtepi8_epi16(r) : _mm512_cvtepu8_epi16(r);
}
I8K_INLINE T512 __m512i dw_tapf512(const int XS, const uint8_t *p) {
    __m256i r = _mm256_loadu_si256((const __m256i *)p);
    return XS ? _mm512_cvtepi8_epi16(r) : _mm512_cvtepu8_epi16(r);
}
/* one pair of taps into the (unpack-ordered) accumulators */
#define DW_PAIR(x0, x1, wq)                                                                                            \
    do {                                                                                                               \
        lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(x0, x1), _mm512_loadu_si512(wq)));           \
        hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(x0, x1), _mm512_loadu_si512((wq) + 32)));    \
    } while (0)

/* T = KH*KW <= I8K_DW_MAXT taps (the dispatcher checks). Interior pixels (every tap in bounds) read the taps at fixed
 * offsets from one base pointer (the pair loop unrolls for 3x3 and 5x5); border pixels substitute x~ = 0. */
#define I8K_DW_MAXT 64
I8K_INLINE T512 void dw_packed_pixels512(const int KHc, const int KWc, const int XS, const uint8_t *in, int32_t a_zero,
                                         size_t H, size_t W, size_t C, const int16_t *wp, size_t KH, size_t KW, size_t sh,
                                         size_t sw, size_t ph, size_t pw, size_t dh, size_t dw, size_t oy, size_t ox0,
                                         size_t np, const i8k_output *o, char *dst) {
    const size_t es = i8k_out_elsize(o);
    const size_t kh = KHc ? (size_t)KHc : KH, kw = KWc ? (size_t)KWc : KW;
    const size_t T = kh * kw, P = (T + 1) / 2, TP = T / 2;
    const __m256i zb = _mm256_set1_epi8((char)a_zero);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i ones16 = _mm512_set1_epi16(1), negz = _mm512_set1_epi32(-a_zero);
    const __m512i idx0 = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i idx1 = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    size_t off[I8K_DW_MAXT];
    for (size_t ky = 0; ky < kh; ky++)
        for (size_t kx = 0; kx < kw; kx++) off[ky * kw + kx] = ((ky * dh) * W + kx * dw) * C;
    unsigned char tky[I8K_DW_MAXT], tkx[I8K_DW_MAXT];
    for (size_t t = 0; t < T; t++) { tky[t] = (unsigned char)(t / kw); tkx[t] = (unsigned char)(t % kw); }
    const long iy0 = (long)(oy * sh) - (long)ph;
    const int row_inside = iy0 >= 0 && iy0 + (long)((kh - 1) * dh) < (long)H;
    uint64_t rowm = 0;
    for (size_t ky = 0; ky < kh; ky++) {
        const long iy = iy0 + (long)(ky * dh);
        if (iy >= 0 && iy < (long)H) rowm |= (uint64_t)1 << ky;
    }
    for (size_t cb = 0; cb < C; cb += 32) {
        const size_t cn = C - cb < 32 ? C - cb : 32;
        const __mmask32 mk = cn == 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << cn) - 1);
        const int16_t *wb = wp + (cb / 32) * P * 64;
        /* fused output stage: the per-channel constants of this block once, then straight from the registers */
        ep512 ep;
        ep512_setup(&ep, o, cb, cn);
        /* −z·Σ_t w_t per channel (unpack order): every tap reads x, not x − z (padding reads z) */
        __m512i corr_lo = zero, corr_hi = zero;
        for (size_t q = 0; q < P; q++) {
            corr_lo = _mm512_add_epi32(corr_lo, _mm512_madd_epi16(ones16, _mm512_loadu_si512(wb + q * 64)));
            corr_hi = _mm512_add_epi32(corr_hi, _mm512_madd_epi16(ones16, _mm512_loadu_si512(wb + q * 64 + 32)));
        }
        corr_lo = _mm512_mullo_epi32(corr_lo, negz);
        corr_hi = _mm512_mullo_epi32(corr_hi, negz);
        const __m512i zx = XS ? _mm512_cvtepi8_epi16(zb) : _mm512_cvtepu8_epi16(zb);   /* the odd tap's partner */
        for (size_t p = 0; p < np; p++) {
            const size_t ox = ox0 + p;
            const long ix0 = (long)(ox * sw) - (long)pw;
            __m512i lo = corr_lo, hi = corr_hi;
            if (row_inside && ix0 >= 0 && ix0 + (long)((kw - 1) * dw) < (long)W) {
                const uint8_t *base = in + ((size_t)iy0 * W + (size_t)ix0) * C + cb;
                if (cn == 32) {
                    for (size_t q = 0; q < TP; q++) {
                        __m512i x0 = dw_tapf512(XS, base + off[2 * q]);
                        __m512i x1 = dw_tapf512(XS, base + off[2 * q + 1]);
                        DW_PAIR(x0, x1, wb + q * 64);
                    }
                    if (T & 1) DW_PAIR(dw_tapf512(XS, base + off[T - 1]), zx, wb + TP * 64);
                } else {
                    for (size_t q = 0; q < TP; q++) {
                        __m512i x0 = dw_tapz512(XS, base + off[2 * q], mk, zb);
                        __m512i x1 = dw_tapz512(XS, base + off[2 * q + 1], mk, zb);
                        DW_PAIR(x0, x1, wb + q * 64);
                    }
                    if (T & 1) DW_PAIR(dw_tapz512(XS, base + off[T - 1], mk, zb), zx, wb + TP * 64);
                }
            } else {
                /* border pixel: the same fixed offsets from a (possibly out-of-range) base, each tap loaded under a
                 * mask that is empty when the tap is outside the input (masked loads do not fault) and x~ zeroed */
                uint64_t colm = 0;
                for (size_t kx = 0; kx < kw; kx++) {
                    const long ix = ix0 + (long)(kx * dw);
                    if (ix >= 0 && ix < (long)W) colm |= (uint64_t)1 << kx;
                }
                /* integer address arithmetic: the base may lie outside the input (never dereferenced there) */
                const uintptr_t base = (uintptr_t)in + (uintptr_t)((iy0 * (long)W + ix0) * (long)C + (long)cb);
#define DW_VALID(t) ((rowm >> tky[t]) & (colm >> tkx[t]) & 1)
#define DW_TAPM(t) dw_tapz512(XS, (const uint8_t *)(base + (uintptr_t)off[t]), DW_VALID(t) ? mk : 0, zb)
                for (size_t q = 0; q < TP; q++) {
                    __m512i x0 = DW_TAPM(2 * q), x1 = DW_TAPM(2 * q + 1);
                    DW_PAIR(x0, x1, wb + q * 64);
                }
                if (T & 1) DW_PAIR(DW_TAPM(T - 1), zx, wb + TP * 64);
#undef DW_TAPM
#undef DW_VALID
            }
            __m512i o0 = _mm512_add_epi32(_mm512_permutex2var_epi32(lo, idx0, hi), ep.add[0]);
            __m512i o1 = _mm512_add_epi32(_mm512_permutex2var_epi32(lo, idx1, hi), ep.add[1]);
            char *d = dst + ((ox0 + p) * C + cb) * es;
            switch (ep.kind) {
            case I8K_OUT_INT32: ep512_i32(&ep, 0, o0, d); if (cn > 16) ep512_i32(&ep, 1, o1, d); break;
            case I8K_OUT_FLOAT: ep512_f32(&ep, 0, o0, d); if (cn > 16) ep512_f32(&ep, 1, o1, d); break;
            default:
                if (ep.rounding == I8K_ROUND_SINGLE) { ep512_q8s(&ep, 0, o0, d); if (cn > 16) ep512_q8s(&ep, 1, o1, d); }
                else { ep512_q8(&ep, 0, o0, d); if (cn > 16) ep512_q8(&ep, 1, o1, d); }
                break;
            }
        }
    }
}
#undef DW_PAIR

T512 void i8k_dwconv_row_packed_avx512(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                                       const int16_t *wp, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                                       size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst) {
    i8k_output o = i8k_dw_output(out);
    {
        const size_t ox0 = 0, np = OW;
#define DWP(KHV, KWV, XSV) dw_packed_pixels512(KHV, KWV, XSV, in, a_zero, H, W, C, wp, KH, KW, sh, sw, ph, pw, dh, dw, oy, ox0, np, &o, (char *)dst)
        if (a_signed) {
            if (KH == 3 && KW == 3) DWP(3, 3, 1); else if (KH == 5 && KW == 5) DWP(5, 5, 1); else DWP(0, 0, 1);
        } else {
            if (KH == 3 && KW == 3) DWP(3, 3, 0); else if (KH == 5 && KW == 5) DWP(5, 5, 0); else DWP(0, 0, 0);
        }
#undef DWP
    }
}
/* ======================= depthwise through tap quads (AVX-512 VNNI vpdpbusd) ======================= */
/* Quads of one input row and channel group, right to left: Q(p) = (Q(p + 1) << 8) | x[p] per dword, so each pixel is
 * loaded and widened once (one vpmovzxbd) and every position costs a shift and an or. */
I8K_INLINE T512 __m512i dwq_pixel512(const int FULL, const uint8_t *p, __mmask16 mk) {
    return _mm512_cvtepu8_epi32(FULL ? _mm_loadu_si128((const __m128i *)p) : _mm_maskz_loadu_epi8(mk, p));
}
/* step 1 (every position stored): padding on the right, the in-bounds pixels without a branch, padding on the left */
I8K_INLINE T512 void dwq_row_step1(const int XS, const int FULL, const uint8_t *row, size_t W, size_t C, __mmask16 mk, long p0,
                                   size_t nq, __m512i padd, __m512i flip, __m512i *q) {
    const long plast = p0 + (long)nq - 1;
    __m512i acc = _mm512_setzero_si512();
    for (long px = plast + 3; px > plast; px--)
        acc = _mm512_or_si512(_mm512_slli_epi32(acc, 8), px < 0 || px >= (long)W ? padd : dwq_pixel512(FULL, row + (size_t)px * C, mk));
#define DWQ_STORE(px) _mm512_storeu_si512(q + ((px) - p0), XS ? _mm512_xor_si512(acc, flip) : acc)
    long px = plast;
    for (; px >= p0 && px >= (long)W; px--) { acc = _mm512_or_si512(_mm512_slli_epi32(acc, 8), padd); DWQ_STORE(px); }
    const long lo = p0 > 0 ? p0 : 0;
    for (; px >= lo; px--) {
        acc = _mm512_or_si512(_mm512_slli_epi32(acc, 8), dwq_pixel512(FULL, row + (size_t)px * C, mk));
        DWQ_STORE(px);
    }
    for (; px >= p0; px--) { acc = _mm512_or_si512(_mm512_slli_epi32(acc, 8), padd); DWQ_STORE(px); }
#undef DWQ_STORE
}

T512 void i8k_dwq_quads_avx512(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C, long iy0,
                               size_t rows, long p0, size_t ps, size_t nq, size_t g0, size_t g1, uint8_t *dst) {
    const uint32_t flipb = a_signed ? 0x80u : 0u, padb = ((uint32_t)a_zero & 0xFFu);
    const __m512i flip = _mm512_set1_epi32((int32_t)(flipb * 0x01010101u));
    const __m512i padd = _mm512_set1_epi32((int32_t)padb);                       /* a padding pixel, widened */
    const __m512i padq = _mm512_set1_epi32((int32_t)((padb ^ flipb) * 0x01010101u));
    const long plast = p0 + (long)((nq - 1) * ps);                              /* the last position */
    for (size_t r = 0; r < rows; r++) {
        const long iy = iy0 + (long)r;
        for (size_t g = g0; g < g1; g++) {
            __m512i *q = (__m512i *)(dst + ((r * (g1 - g0) + g - g0) * nq) * 64);
            if (iy < 0 || iy >= (long)H) {
                for (size_t k = 0; k < nq; k++) _mm512_storeu_si512(q + k, padq);
                continue;
            }
            const size_t cn = C - g * 16 < 16 ? C - g * 16 : 16;
            const __mmask16 mk = (__mmask16)((1u << cn) - 1);
            const uint8_t *row = in + (size_t)iy * W * C + g * 16;
            if (ps == 1) {
                if (a_signed) { if (cn == 16) dwq_row_step1(1, 1, row, W, C, mk, p0, nq, padd, flip, q); else dwq_row_step1(1, 0, row, W, C, mk, p0, nq, padd, flip, q); }
                else { if (cn == 16) dwq_row_step1(0, 1, row, W, C, mk, p0, nq, padd, flip, q); else dwq_row_step1(0, 0, row, W, C, mk, p0, nq, padd, flip, q); }
                continue;
            }
            /* pixels plast + 3 down to p0 (the first three only fill the quad); position k is p0 + k * ps */
            __m512i acc = _mm512_setzero_si512();
            long px = plast + 3;
            size_t k = nq, skip = 3;
            for (;;) {
                __m512i d;
                if (px < 0 || px >= (long)W) d = padd;
                else if (cn == 16) d = dwq_pixel512(1, row + (size_t)px * C, mk);
                else d = dwq_pixel512(0, row + (size_t)px * C, mk);
                acc = _mm512_or_si512(_mm512_slli_epi32(acc, 8), d);
                if (skip == 0) {
                    _mm512_storeu_si512(q + --k, a_signed ? _mm512_xor_si512(acc, flip) : acc);
                    if (k == 0) break;
                    skip = ps;
                }
                skip--;
                px--;
            }
        }
    }
}

/* one group of 16 channels over rows [oy0, oy1): KH x QX dot products a pixel (WIDE: twice, against w >> 1 and w & 1),
 * then the fused output stage (Q8S: single-rounding requantization to 8 bits, no kind dispatch). KHc, QXc > 0: unrolled
 * shapes with the weights held in registers. */
I8K_INLINE T512 void dwq_group512(const int KHc, const int QXc, const int WIDE, const int Q8S, const uint8_t *qg, size_t qrow,
                                  const int8_t *wg, __m512i init, size_t KH, size_t QX, size_t sh, size_t dh, size_t xs, size_t js,
                                  size_t OW, size_t oy0, size_t oy1, const ep512 *ep, char *dst, size_t C, size_t es) {
    const size_t kh = KHc ? (size_t)KHc : KH, qx = QXc ? (size_t)QXc : QX, B = kh * qx * 64;
    /* weights in registers: all of them, but for the two-part form only when small (3x3: 6 vectors) */
    const int HOLD = KHc && (!WIDE || KHc * QXc <= 3);
    __m512i wr[25], wl[3];
    if (HOLD)
        for (size_t t = 0; t < kh * qx; t++) {
            wr[t] = _mm512_loadu_si512(wg + t * 64);
            if (WIDE) wl[t] = _mm512_loadu_si512(wg + B + t * 64);
        }
    for (size_t oy = oy0; oy < oy1; oy++) {
        const uint8_t *q0 = qg + (oy - oy0) * sh * qrow;
        char *d = dst + oy * OW * C * es;
        for (size_t ox = 0; ox < OW; ox++, d += C * es) {
            const uint8_t *qp = q0 + ox * xs * 64;
            __m512i acc = init, hi = _mm512_setzero_si512();
            for (size_t ky = 0; ky < kh; ky++)
                for (size_t j = 0; j < qx; j++) {
                    const __m512i x = _mm512_loadu_si512(qp + ky * dh * qrow + j * js * 64);
                    const size_t t = ky * qx + j;
                    if (WIDE) {
                        hi = _mm512_dpbusd_epi32(hi, x, HOLD ? wr[t] : _mm512_loadu_si512(wg + t * 64));
                        acc = _mm512_dpbusd_epi32(acc, x, HOLD ? wl[t < 3 ? t : 0] : _mm512_loadu_si512(wg + B + t * 64));
                    } else {
                        acc = _mm512_dpbusd_epi32(acc, x, HOLD ? wr[t] : _mm512_loadu_si512(wg + t * 64));
                    }
                }
            if (WIDE) acc = _mm512_add_epi32(acc, _mm512_slli_epi32(hi, 1));
            if (Q8S) { ep512_q8s(ep, 0, acc, d); continue; }
            switch (ep->kind) {
            case I8K_OUT_INT32: ep512_i32(ep, 0, acc, d); break;
            case I8K_OUT_FLOAT: ep512_f32(ep, 0, acc, d); break;
            default: ep512_q8(ep, 0, acc, d); break;
            }
        }
    }
}

T512 void i8k_dwconv_quads_avx512(const uint8_t *quads, int a_signed, int32_t a_zero, size_t C, const int8_t *wq,
                                  const int32_t *wsum, const uint8_t *wide, size_t KH, size_t KW, size_t sh, size_t sw, size_t dh,
                                  size_t ps, size_t nq, size_t OW, size_t oy0, size_t oy1, size_t g0, size_t g1,
                                  const i8k_output *out, void *dst) {
    i8k_output o = i8k_dw_output(out);
    const size_t QX = (KW + 3) / 4, ng = g1 - g0, es = i8k_out_elsize(&o);
    const size_t qrow = ng * nq * 64;                       /* bytes from one quad row to the next */
    const size_t xs = sw / ps, js = 4 / ps;                 /* quad steps per output pixel and per quad of taps */
    const __m512i negz = _mm512_set1_epi32(-(a_signed ? a_zero + 128 : a_zero));
    const int q8s = (o.kind == I8K_OUT_INT8 || o.kind == I8K_OUT_UINT8) && o.rounding == I8K_ROUND_SINGLE;
    for (size_t g = g0; g < g1; g++) {
        const size_t cn = C - g * 16 < 16 ? C - g * 16 : 16;
        ep512 ep;
        ep512_setup(&ep, &o, g * 16, cn);
        /* accumulators start at bias − z·Σ_t w_t: the quads hold x (padding = z), not x − z */
        const __m512i init = _mm512_add_epi32(ep.add[0], _mm512_mullo_epi32(negz, _mm512_loadu_si512(wsum + g * 16)));
        const uint8_t *qg = quads + (g - g0) * nq * 64;
        const int8_t *wg = wq + g * 2 * KH * QX * 64;
        char *d = (char *)dst + g * 16 * es;
#define DWQ(KHV, QXV, WV, Q8) dwq_group512(KHV, QXV, WV, Q8, qg, qrow, wg, init, KH, QX, sh, dh, xs, js, OW, oy0, oy1, &ep, d, C, es)
        if (wide[g]) {
            if (KH == 3 && QX == 1) { if (q8s) DWQ(3, 1, 1, 1); else DWQ(3, 1, 1, 0); }
            else if (KH == 5 && QX == 2) { if (q8s) DWQ(5, 2, 1, 1); else DWQ(5, 2, 1, 0); }
            else DWQ(0, 0, 1, 0);
        } else {
            if (KH == 3 && QX == 1) { if (q8s) DWQ(3, 1, 0, 1); else DWQ(3, 1, 0, 0); }
            else if (KH == 5 && QX == 2) { if (q8s) DWQ(5, 2, 0, 1); else DWQ(5, 2, 0, 0); }
            else DWQ(0, 0, 0, 0);
        }
#undef DWQ
    }
}
#endif
