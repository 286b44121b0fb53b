/* ARM NEON dot-product microkernels (compiled only on AArch64). u8 A is mapped to s8 (u ^ 0x80) for SDOT and
 * the 128 * column-sum correction is added back, so the result equals sum(u * w) like every other path. */
#include "internal.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

int i8k_neon_dot_available(void) {
#if defined(__APPLE__)
    return 1;
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}

#define TDOT __attribute__((target("dotprod")))

/* 4 rows x 16 columns */
TDOT static void kneon_u8(int mr, int xr, const uint8_t *A, size_t lda, const int8_t *B, size_t K, size_t pw,
                          int32_t *C) {
    int32x4_t acc[4][4], cs[4];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = vdupq_n_s32(0);
    for (int j = 0; j < 4; j++) cs[j] = vdupq_n_s32(0);
    const int8x16_t ones = vdupq_n_s8(1);
    const uint32_t fl = xr ? 0u : 0x80808080u; /* a_signed: a is already s8; unsigned: flip to s8 */
    size_t KG = (K + 3) / 4;
    for (size_t g = 0; g < KG; g++) {
        const int8_t *b = B + g * pw * 4;
        int8x16_t bv[4];
        for (int j = 0; j < 4; j++) { bv[j] = vld1q_s8(b + 16 * j); cs[j] = vdotq_s32(cs[j], bv[j], ones); }
        size_t nb = (g * 4 + 4 <= K) ? 4 : K - g * 4;
        for (int i = 0; i < mr; i++) {
            uint32_t w = (uint32_t)(nb == 4 ? i8k_load_u32(A + i * lda + 4 * g) : i8k_load_tail(A + i * lda + 4 * g, nb));
            w ^= fl;
            if (nb < 4) w &= (uint32_t)((1ull << (8 * nb)) - 1); /* B is zero there anyway */
            int8x16_t a = vreinterpretq_s8_u32(vdupq_n_u32(w));
            for (int j = 0; j < 4; j++) acc[i][j] = vdotq_s32(acc[i][j], bv[j], a);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < 4; j++) {
            /* sum(s*w) + 128*sum(w) = sum(u*w) where u = s + 128 (only for the unsigned-flip and signed-flip) */
            int32x4_t r = vaddq_s32(acc[i][j], vshlq_n_s32(cs[j], 7));
            vst1q_s32(C + i * I8K_NR + 4 * j, r);
        }
}

void i8k_gemm_u8_panel_neon(const uint8_t *A, size_t lda, size_t m, int a_signed, const int8_t *panel, size_t K,
                            size_t pw, size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    int32_t tile[4 * I8K_NR];
    size_t es = i8k_out_elsize(out);
    for (size_t m0 = 0; m0 < m; m0 += 4) {
        int mr = (int)(m - m0 < 4 ? m - m0 : 4);
        for (size_t s = 0; s < nr; s += 16) kneon_u8(mr, a_signed, A + m0 * lda, lda, panel + s * 4, K, pw, tile + s);
        i8k_output tmp;
        i8k_output_scalar_block(tile, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd);
    }
}

void i8k_gemm_s16_panel_neon(const int16_t *A, size_t lda, size_t m, const int16_t *panel, size_t K, size_t pw,
                             size_t nr, const i8k_output *out, size_t n0, void *dst, size_t ldd) {
    int32_t tile[4 * I8K_NR];
    size_t es = i8k_out_elsize(out);
    size_t KG = (K + 1) / 2;
    for (size_t m0 = 0; m0 < m; m0 += 4) {
        int mr = (int)(m - m0 < 4 ? m - m0 : 4);
        for (size_t s = 0; s < nr; s += 4) {
            for (int i = 0; i < mr; i++) {
                const int16_t *a = A + (m0 + i) * lda;
                int32x4_t acc = vdupq_n_s32(0);
                for (size_t g = 0; g < KG; g++) {
                    int16x8_t b = vld1q_s16(panel + g * pw * 2 + s * 2);
                    int16_t a0 = a[2 * g], a1 = (2 * g + 1 < K) ? a[2 * g + 1] : 0;
                    int16x4_t av = {a0, a1, a0, a1};
                    int32x4_t lo = vmull_s16(vget_low_s16(b), av), hi = vmull_s16(vget_high_s16(b), av);
                    acc = vaddq_s32(acc, vpaddq_s32(lo, hi));
                }
                vst1q_s32(tile + i * I8K_NR + s, acc);
            }
        }
        i8k_output tmp;
        i8k_output_scalar_block(tile, I8K_NR, (size_t)mr, nr, i8k_out_at(out, m0, &tmp), n0, (char *)dst + m0 * ldd * es, ldd);
    }
}
#endif
