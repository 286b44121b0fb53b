/* One attention head on int16 operands (adalog.md §4.2–§4.4), fused per query row:
 *   logits_j = (float)(Σ_c q[i][c]·k[j][c]) · logit_scale        (exact int32 dot product)
 *   p = softmax(logits)                                           (i8k_softmax_row, pinned float)
 *   L_j = table[AdaLog code of p_j]  or  uniform code of p_j      (i8k_adalog_encode / i8k_quantize)
 *         (an int32 table is passed as two int16 halves, L = high·2^15 + low, and accumulated twice)
 *   out[i][c] = Σ_j L_j·v[j][c]  → output stage                   (exact int32)
 * Q, K, V hold stored values (zero points removed) as int16, so an 8-bit quantizer with any zero point fits
 * (|value| ≤ 255) and nothing is clamped. K and V are repacked into pairs for vpdpwssd/vpmaddwd once per call
 * into the caller's workspace; nothing is allocated. Every ISA path gives the portable path's bits: the integer
 * parts are exact and the float parts go through the pinned element-wise kernels. */
#include "internal.h"
#include <math.h>
#ifdef I8K_X86
#include <immintrin.h>
#endif

/* Query rows handled together: the AVX-512 path computes Q·Kᵀ and P·V for ROWS rows per pass over K and V, so each
 * K/V load feeds ROWS dot products and ROWS·4 accumulator chains hide the dpwssd latency. */
#define ROWS 4

typedef struct {
    size_t tp16, tp2, dp2, dp16;
    int16_t *kp, *vp, *qrow, *L, *Lh;   /* qrow: ROWS × dp2·2, L/Lh: ROWS × tp2 */
    float *logits, *p;                  /* logits: ROWS × tp16 */
    uint8_t *codes;
    int32_t *acc;                       /* ROWS × dp16 */
} layout;

static size_t up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static void dims(size_t T, size_t d, layout *w) { w->tp16 = up(T, 16); w->tp2 = up(T, 2); w->dp2 = (d + 1) / 2; w->dp16 = up(d, 16); }

/* One head's packed K and V (64-byte aligned pieces): kp, then vp. Returns the bytes; `kv` may be NULL to only size. */
static size_t carve_kv(size_t T, size_t d, const void *kv, layout *w) {
    dims(T, d, w);
    size_t kb = up(w->dp2 * w->tp16 * 2 * sizeof(int16_t), 64), vb = up((w->tp2 / 2) * w->dp16 * 2 * sizeof(int16_t), 64);
    if (kv) { w->kp = (int16_t *)kv; w->vp = (int16_t *)((uint8_t *)kv + kb); }
    return kb + vb;
}

/* The per-call row scratch (64-byte aligned pieces); returns the bytes it needs. `work` may be NULL to only size. */
static size_t carve_rows(size_t T, size_t d, void *work, layout *w) {
    dims(T, d, w);
    size_t sizes[7] = {
        ROWS * w->dp2 * 2 * sizeof(int16_t), ROWS * w->tp2 * sizeof(int16_t), ROWS * w->tp2 * sizeof(int16_t),
        ROWS * w->tp16 * sizeof(float), w->tp16 * sizeof(float), w->tp16, ROWS * w->dp16 * sizeof(int32_t)};
    size_t off[7], total = 0;
    for (int i = 0; i < 7; i++) { off[i] = total; total += up(sizes[i], 64); }
    if (work) {
        uint8_t *p = (uint8_t *)work;
        w->qrow = (int16_t *)(p + off[0]); w->L = (int16_t *)(p + off[1]); w->Lh = (int16_t *)(p + off[2]);
        w->logits = (float *)(p + off[3]); w->p = (float *)(p + off[4]); w->codes = p + off[5]; w->acc = (int32_t *)(p + off[6]);
    }
    return total;
}

size_t i8k_attention_kv_bytes(size_t T, size_t d) {
    layout w;
    return carve_kv(T, d, NULL, &w);
}

size_t i8k_attention_row_workspace(size_t T, size_t d) {
    layout w;
    return carve_rows(T, d, NULL, &w);
}

size_t i8k_attention_workspace(size_t T, size_t d) { return i8k_attention_kv_bytes(T, d) + i8k_attention_row_workspace(T, d); }

/* K as pairs of channels: kp[(c/2)][j][c%2], keys padded to tp16 with zeros; V as pairs of keys:
 * vp[(j/2)][c][j%2], channels padded to dp16. */
static void pack(const int16_t *k, size_t ldk, const int16_t *v, size_t ldv, size_t T, size_t d, const layout *w) {
    memset(w->kp, 0, w->dp2 * w->tp16 * 2 * sizeof(int16_t));
    memset(w->vp, 0, (w->tp2 / 2) * w->dp16 * 2 * sizeof(int16_t));
    /* K: one 32-bit channel pair per key, moved as one word; V: two keys' values interleaved per channel, built as
     * 32-bit words (contiguous inner loops; little-endian: the first element is the low half) */
    for (size_t cp = 0; cp < d / 2; cp++) {
        int16_t *dst = w->kp + cp * w->tp16 * 2;
        for (size_t j = 0; j < T; j++) memcpy(dst + 2 * j, k + j * ldk + 2 * cp, 4);
    }
    if (d & 1)
        for (size_t j = 0; j < T; j++) w->kp[((d >> 1) * w->tp16 + j) * 2] = k[j * ldk + d - 1];
    for (size_t jp = 0; jp < T / 2; jp++) {
        const int16_t *v0 = v + 2 * jp * ldv, *v1 = v0 + ldv;
        int16_t *dst = w->vp + jp * w->dp16 * 2;
        for (size_t c = 0; c < d; c++) {
            uint32_t pr = (uint32_t)(uint16_t)v0[c] | (uint32_t)(uint16_t)v1[c] << 16;
            memcpy(dst + 2 * c, &pr, 4);
        }
    }
    if (T & 1) {
        const int16_t *v0 = v + (T - 1) * ldv;
        int16_t *dst = w->vp + (T / 2) * w->dp16 * 2;
        for (size_t c = 0; c < d; c++) dst[2 * c] = v0[c];
    }
}

void i8k_attention_pack_kv(const int16_t *k, size_t ldk, const int16_t *v, size_t ldv, size_t T, size_t d, void *kv) {
    if (T == 0 || d == 0) return;
    layout w;
    carve_kv(T, d, kv, &w);
    pack(k, ldk, v, ldv, T, d, &w);
}

/* Channels [c0, c0 + cn) of key j's K and V values (zero points removed; kr, vr hold those cn values) into the packed
 * layout of pack(): K channel pairs (c0 even), and key j's half of the V pair words (the other key of the pair writes
 * the other half); the last piece (c0 + cn == d) also writes the padding channels. */
static void put_key_portable(const layout *w, size_t j, const int16_t *kr, const int16_t *vr, size_t c0, size_t cn, size_t d) {
    for (size_t cp = 0; cp < cn / 2; cp++) memcpy(w->kp + ((c0 / 2 + cp) * w->tp16 + j) * 2, kr + 2 * cp, 4);
    if (cn & 1) {
        int16_t *kk = w->kp + ((d >> 1) * w->tp16 + j) * 2;
        kk[0] = kr[cn - 1]; kk[1] = 0;
    }
    int16_t *dv = w->vp + (j / 2) * w->dp16 * 2 + (j & 1);
    for (size_t c = 0; c < cn; c++) dv[2 * (c0 + c)] = vr[c];
    if (c0 + cn == d) for (size_t c = d; c < w->dp16; c++) dv[2 * c] = 0;
}

#ifdef I8K_X86
/* put_key_portable for pieces of whole vectors (cn and d multiples of 16: no padding channels), the V half-words
 * written 16 channels per masked store */
T512 static void put_key512(const layout *w, size_t j, const int16_t *kr, const int16_t *vr, size_t c0, size_t cn) {
    for (size_t cp = 0; cp < cn / 2; cp++) memcpy(w->kp + ((c0 / 2 + cp) * w->tp16 + j) * 2, kr + 2 * cp, 4);
    int16_t *dv = w->vp + ((j / 2) * w->dp16 + c0) * 2;
    const __mmask32 half = (j & 1) ? 0xAAAAAAAAu : 0x55555555u;
    for (size_t c = 0; c < cn; c += 16) {
        __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(vr + c)));
        if (j & 1) x = _mm512_slli_epi32(x, 16);
        _mm512_mask_storeu_epi16(dv + 2 * c, half, x);
    }
}
#endif

void i8k_attention_quantize_rows(int isa, const float *x, size_t ldx, size_t T, size_t heads, size_t d, const float *scale,
                                 const int32_t *qmin, const int32_t *qmax, size_t r0, size_t r1, int16_t *q, size_t ldq, void *kv) {
    if (T == 0 || d == 0 || heads == 0 || r1 <= r0) return;
    layout w;
    const size_t kvb = carve_kv(T, d, NULL, &w);
    const size_t c = heads * d;
    int16_t tk[256], tv[256];
    for (size_t j = r0; j < r1; j++) {
        const float *xr = x + j * ldx;
        i8k_quantize_s16_groups(isa, xr, 1, heads, d, scale, qmin, qmax, q + j * ldq);
        for (size_t h = 0; h < heads; h++) {
            carve_kv(T, d, (uint8_t *)kv + h * kvb, &w);
            /* K and V of this head in pieces of up to 256 channels (even, so K pairs stay whole) */
            for (size_t c0 = 0; c0 < d; c0 += 256) {
                const size_t cn = d - c0 < 256 ? d - c0 : 256;
                i8k_quantize_s16(isa, xr + c + h * d + c0, cn, scale[heads + h], qmin[heads + h], qmax[heads + h], tk);
                i8k_quantize_s16(isa, xr + 2 * c + h * d + c0, cn, scale[2 * heads + h], qmin[2 * heads + h], qmax[2 * heads + h], tv);
#ifdef I8K_X86
                if (isa == I8K_ISA_AVX512VNNI && d % 16 == 0) put_key512(&w, j, tk, tv, c0, cn);
                else
#endif
                    put_key_portable(&w, j, tk, tv, c0, cn, d);
            }
        }
    }
    if (r1 == T)
        /* the padding: keys T..tp16 of K, and the second key of the last V pair when T is odd */
        for (size_t h = 0; h < heads; h++) {
            carve_kv(T, d, (uint8_t *)kv + h * kvb, &w);
            for (size_t cp = 0; cp < w.dp2; cp++) memset(w.kp + (cp * w.tp16 + T) * 2, 0, (w.tp16 - T) * 2 * sizeof(int16_t));
            if (T & 1) for (size_t cc = 0; cc < w.dp16; cc++) w.vp[((T / 2) * w.dp16 + cc) * 2 + 1] = 0;
        }
}

static void logits_portable(const layout *w, size_t T, float scale) {
    for (size_t j = 0; j < T; j++) {
        int32_t s = 0;
        for (size_t cp = 0; cp < w->dp2; cp++) {
            const int16_t *kk = w->kp + (cp * w->tp16 + j) * 2;
            s += (int32_t)w->qrow[2 * cp] * kk[0] + (int32_t)w->qrow[2 * cp + 1] * kk[1];
        }
        w->logits[j] = (float)s * scale;
    }
}

/* Σ_j L_j·v[j][c], with L = high·2^15 + low when the table is split (split != 0). Accumulates in uint32: the
 * halves may wrap, the combined value is exact whenever it fits int32 (the table's F is chosen so). */
static void pv_portable(const layout *w, size_t d, int split) {
    for (size_t c = 0; c < d; c++) {
        uint32_t lo = 0, hi = 0;
        for (size_t jp = 0; jp < w->tp2 / 2; jp++) {
            const int16_t *vv = w->vp + (jp * w->dp16 + c) * 2;
            lo += (uint32_t)((int32_t)w->L[2 * jp] * vv[0] + (int32_t)w->L[2 * jp + 1] * vv[1]);
            if (split) hi += (uint32_t)((int32_t)w->Lh[2 * jp] * vv[0] + (int32_t)w->Lh[2 * jp + 1] * vv[1]);
        }
        w->acc[c] = (int32_t)((hi << 15) + lo);
    }
}

#ifdef I8K_X86
T512 static void logits512(const layout *w, float scale) {
    const __m512 sv = _mm512_set1_ps(scale);
    const int32_t *qp = (const int32_t *)w->qrow;
    size_t jb = 0;
    for (; jb + 64 <= w->tp16; jb += 64) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t cp = 0; cp < w->dp2; cp++) {
            __m512i qq = _mm512_set1_epi32(qp[cp]);
            const int16_t *kr = w->kp + (cp * w->tp16 + jb) * 2;
            a0 = _mm512_dpwssd_epi32(a0, qq, _mm512_loadu_si512(kr));
            a1 = _mm512_dpwssd_epi32(a1, qq, _mm512_loadu_si512(kr + 32));
            a2 = _mm512_dpwssd_epi32(a2, qq, _mm512_loadu_si512(kr + 64));
            a3 = _mm512_dpwssd_epi32(a3, qq, _mm512_loadu_si512(kr + 96));
        }
        _mm512_storeu_ps(w->logits + jb, _mm512_mul_ps(_mm512_cvtepi32_ps(a0), sv));
        _mm512_storeu_ps(w->logits + jb + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(a1), sv));
        _mm512_storeu_ps(w->logits + jb + 32, _mm512_mul_ps(_mm512_cvtepi32_ps(a2), sv));
        _mm512_storeu_ps(w->logits + jb + 48, _mm512_mul_ps(_mm512_cvtepi32_ps(a3), sv));
    }
    for (; jb < w->tp16; jb += 16) {
        __m512i a0 = _mm512_setzero_si512();
        for (size_t cp = 0; cp < w->dp2; cp++)
            a0 = _mm512_dpwssd_epi32(a0, _mm512_set1_epi32(qp[cp]), _mm512_loadu_si512(w->kp + (cp * w->tp16 + jb) * 2));
        _mm512_storeu_ps(w->logits + jb, _mm512_mul_ps(_mm512_cvtepi32_ps(a0), sv));
    }
}

/* h[b] += Σ_jp hp[jp]·(V pair jp, columns c0 + 16b .. + 16) over the pairs whose hp[jp] is not zero: the high halves of
 * a split table are non-zero only for the larger probabilities, which sit anywhere in the row, so a test per pair
 * mispredicts; a bit mask of the non-zero ones walks just those (int32 sums: the order does not change them). */
I8K_INLINE T512 void high_pairs512(const int32_t *hp, size_t np, const int16_t *vp, size_t dp16, size_t c0, size_t nb, __m512i h[4]) {
    for (size_t j0 = 0; j0 < np; j0 += 16) {
        const __mmask16 mk = np - j0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (np - j0)) - 1);
        const __m512i x = _mm512_maskz_loadu_epi32(mk, hp + j0);
        unsigned nz = _mm512_test_epi32_mask(x, x);
        while (nz) {
            const size_t jp = j0 + (size_t)__builtin_ctz(nz);
            nz &= nz - 1;
            const __m512i lh = _mm512_set1_epi32(hp[jp]);
            const int16_t *vr = vp + (jp * dp16 + c0) * 2;
            for (size_t b = 0; b < nb; b++) h[b] = _mm512_dpwssd_epi32(h[b], lh, _mm512_loadu_si512(vr + b * 32));
        }
    }
}

T512 static void pv512(const layout *w, int split) {
    const int32_t *lp = (const int32_t *)w->L, *hp = (const int32_t *)w->Lh;
    size_t np = w->tp2 / 2;
    for (size_t c0 = 0; c0 < w->dp16; c0 += 64) {
        size_t nb = (w->dp16 - c0) / 16;
        if (nb > 4) nb = 4;
        __m512i a[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        __m512i h[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        if (split) high_pairs512(hp, np, w->vp, w->dp16, c0, nb, h);
        /* two key pairs per step into two accumulator sets: the dpwssd latency chains are half as long, and no
         * data-dependent branch (most 8-bit table values are non-zero) */
        __m512i a2[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        size_t jp = 0;
        if (nb == 4) {
            for (; jp + 2 <= np; jp += 2) {
                __m512i l0 = _mm512_set1_epi32(lp[jp]), l1 = _mm512_set1_epi32(lp[jp + 1]);
                const int16_t *v0 = w->vp + (jp * w->dp16 + c0) * 2, *v1 = v0 + w->dp16 * 2;
                a[0] = _mm512_dpwssd_epi32(a[0], l0, _mm512_loadu_si512(v0));
                a[1] = _mm512_dpwssd_epi32(a[1], l0, _mm512_loadu_si512(v0 + 32));
                a[2] = _mm512_dpwssd_epi32(a[2], l0, _mm512_loadu_si512(v0 + 64));
                a[3] = _mm512_dpwssd_epi32(a[3], l0, _mm512_loadu_si512(v0 + 96));
                a2[0] = _mm512_dpwssd_epi32(a2[0], l1, _mm512_loadu_si512(v1));
                a2[1] = _mm512_dpwssd_epi32(a2[1], l1, _mm512_loadu_si512(v1 + 32));
                a2[2] = _mm512_dpwssd_epi32(a2[2], l1, _mm512_loadu_si512(v1 + 64));
                a2[3] = _mm512_dpwssd_epi32(a2[3], l1, _mm512_loadu_si512(v1 + 96));
            }
        }
        for (; jp < np; jp++) {
            __m512i ll = _mm512_set1_epi32(lp[jp]);
            const int16_t *vr = w->vp + (jp * w->dp16 + c0) * 2;
            for (size_t b = 0; b < nb; b++) a[b] = _mm512_dpwssd_epi32(a[b], ll, _mm512_loadu_si512(vr + b * 32));
        }
        for (size_t b = 0; b < nb; b++) a[b] = _mm512_add_epi32(a[b], a2[b]);
        for (size_t b = 0; b < nb; b++) _mm512_storeu_si512(w->acc + c0 + b * 16, _mm512_add_epi32(_mm512_slli_epi32(h[b], 15), a[b]));
    }
}

/* The micro-kernel both Q·Kᵀ and P·V use: acc[r][b] = Σ_k a[r·lda + k] · B_k[16b..16b+16), for ROWS rows and 64
 * columns, where a holds int16 pairs as int32 (one broadcast per row and k) and B_k = b + k·ldb holds 64 pair-
 * interleaved int16 columns. Each B load feeds ROWS dpwssd; ROWS·4 accumulator chains hide their latency. */
I8K_INLINE T512 void rows_x64(const int32_t *a, size_t lda, const int16_t *b, size_t ldb, size_t kn, __m512i acc[ROWS][4]) {
    for (int r = 0; r < ROWS; r++) for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_si512();
    for (size_t k = 0; k < kn; k++) {
        const int16_t *bk = b + k * ldb;
        __m512i b0 = _mm512_loadu_si512(bk), b1 = _mm512_loadu_si512(bk + 32);
        __m512i b2 = _mm512_loadu_si512(bk + 64), b3 = _mm512_loadu_si512(bk + 96);
        for (int r = 0; r < ROWS; r++) {
            __m512i x = _mm512_set1_epi32(a[r * lda + k]);
            acc[r][0] = _mm512_dpwssd_epi32(acc[r][0], x, b0);
            acc[r][1] = _mm512_dpwssd_epi32(acc[r][1], x, b1);
            acc[r][2] = _mm512_dpwssd_epi32(acc[r][2], x, b2);
            acc[r][3] = _mm512_dpwssd_epi32(acc[r][3], x, b3);
        }
    }
}

/* Q·Kᵀ for ROWS query rows (qrow r at w->qrow + r·dp2·2) into logits r·tp16: 64 keys × ROWS rows per pass. */
T512 static void logits512_rows(const layout *w, float scale) {
    const __m512 sv = _mm512_set1_ps(scale);
    const size_t qs = w->dp2;   /* int32 pairs per query row */
    const int32_t *qp = (const int32_t *)w->qrow;
    size_t jb = 0;
    for (; jb + 64 <= w->tp16; jb += 64) {
        __m512i a[ROWS][4];
        rows_x64(qp, qs, w->kp + jb * 2, w->tp16 * 2, w->dp2, a);
        for (int r = 0; r < ROWS; r++)
            for (int b = 0; b < 4; b++)
                _mm512_storeu_ps(w->logits + r * w->tp16 + jb + 16 * b, _mm512_mul_ps(_mm512_cvtepi32_ps(a[r][b]), sv));
    }
    for (; jb < w->tp16; jb += 16) {
        __m512i a[ROWS];
        for (int r = 0; r < ROWS; r++) a[r] = _mm512_setzero_si512();
        for (size_t cp = 0; cp < w->dp2; cp++) {
            __m512i kk = _mm512_loadu_si512(w->kp + (cp * w->tp16 + jb) * 2);
            for (int r = 0; r < ROWS; r++) a[r] = _mm512_dpwssd_epi32(a[r], _mm512_set1_epi32(qp[r * qs + cp]), kk);
        }
        for (int r = 0; r < ROWS; r++) _mm512_storeu_ps(w->logits + r * w->tp16 + jb, _mm512_mul_ps(_mm512_cvtepi32_ps(a[r]), sv));
    }
}

/* P·V for ROWS rows (L r at w->L + r·tp2) into acc r·dp16, for head sizes that are a multiple of 64: each V load
 * feeds ROWS rows. The sparse high halves of a split table are added per row. */
T512 static void pv512_rows(const layout *w, int split) {
    const size_t np = w->tp2 / 2, ls = w->tp2 / 2;   /* int32 pairs per row */
    const int32_t *lp = (const int32_t *)w->L, *hp = (const int32_t *)w->Lh;
    for (size_t c0 = 0; c0 < w->dp16; c0 += 64) {
        __m512i a[ROWS][4];
        rows_x64(lp, ls, w->vp + c0 * 2, w->dp16 * 2, np, a);
        for (int r = 0; r < ROWS; r++) {
            __m512i h[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
            if (split) high_pairs512(hp + r * ls, np, w->vp, w->dp16, c0, 4, h);
            for (int b = 0; b < 4; b++)
                _mm512_storeu_si512(w->acc + r * w->dp16 + c0 + b * 16, _mm512_add_epi32(_mm512_slli_epi32(h[b], 15), a[r][b]));
        }
    }
}

/* AVX2 / AVX-VNNI: vpmaddwd is exact here (|L| ≤ 32767 and |v| ≤ 255, |q|,|k| ≤ 255: no pair reaches 2^31). */
TAVX2 static void logits256(const layout *w, float scale) {
    const __m256 sv = _mm256_set1_ps(scale);
    const int32_t *qp = (const int32_t *)w->qrow;
    for (size_t jb = 0; jb < w->tp16; jb += 16) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        for (size_t cp = 0; cp < w->dp2; cp++) {
            __m256i qq = _mm256_set1_epi32(qp[cp]);
            const int16_t *kr = w->kp + (cp * w->tp16 + jb) * 2;
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(qq, _mm256_loadu_si256((const __m256i *)kr)));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(qq, _mm256_loadu_si256((const __m256i *)(kr + 16))));
        }
        _mm256_storeu_ps(w->logits + jb, _mm256_mul_ps(_mm256_cvtepi32_ps(a0), sv));
        _mm256_storeu_ps(w->logits + jb + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(a1), sv));
    }
}

TAVX2 static void pv256(const layout *w, int split) {
    const int32_t *lp = (const int32_t *)w->L, *hp = (const int32_t *)w->Lh;
    size_t np = w->tp2 / 2;
    for (size_t c0 = 0; c0 < w->dp16; c0 += 32) {
        size_t nb = (w->dp16 - c0) / 8;
        if (nb > 4) nb = 4;
        __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256i h[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (size_t jp = 0; jp < np; jp++) {
            int32_t hpair = split ? hp[jp] : 0;
            if ((lp[jp] | hpair) == 0) continue;
            __m256i ll = _mm256_set1_epi32(lp[jp]), lh = _mm256_set1_epi32(hpair);
            const int16_t *vr = w->vp + (jp * w->dp16 + c0) * 2;
            for (size_t b = 0; b < nb; b++) {
                __m256i vv = _mm256_loadu_si256((const __m256i *)(vr + b * 16));
                a[b] = _mm256_add_epi32(a[b], _mm256_madd_epi16(ll, vv));
                if (split) h[b] = _mm256_add_epi32(h[b], _mm256_madd_epi16(lh, vv));
            }
        }
        for (size_t b = 0; b < nb; b++) _mm256_storeu_si256((__m256i *)(w->acc + c0 + b * 8), _mm256_add_epi32(_mm256_slli_epi32(h[b], 15), a[b]));
    }
}
#endif

/* Softmax and coding of one row's logits into its L (and Lh) values; the codes go to `codes`. */
static void code_row(int isa, const layout *w, const float *logits, size_t T, const i8k_probs *probs, int split,
                     int16_t *L, int16_t *Lh, uint8_t *codes) {
    if (probs->tau) {
        /* softmax, codes and table values in one pass over the row where the ISA allows (same results) */
        i8k_softmax_adalog_row(isa, logits, T, w->p, probs->tau, probs->nt, &probs->plan, probs->table,
                               split ? probs->table_high : NULL, codes, L, Lh);
    } else {
        i8k_softmax_row(isa, logits, T, w->p);
        i8k_quantize(isa, w->p, T, probs->p_scale, 0, 0, probs->p_qmax, 1, codes);
        for (size_t j = 0; j < T; j++) L[j] = codes[j];
    }
    if (T & 1) { L[T] = 0; Lh[T] = 0; }
}

void i8k_attention_rows(int isa, const int16_t *q, size_t ldq, const int16_t *k, size_t ldk, const int16_t *v, size_t ldv,
                        size_t T, size_t d, float logit_scale, const i8k_probs *probs, size_t r0, size_t r1,
                        const i8k_output *out, void *dst, size_t ldd, void *work, uint8_t *codes_out) {
    if (T == 0 || d == 0 || r1 <= r0) return;
    const size_t kvb = i8k_attention_kv_bytes(T, d);
    i8k_attention_pack_kv(k, ldk, v, ldv, T, d, work);
    i8k_attention_rows_packed(isa, q, ldq, work, T, d, logit_scale, probs, r0, r1, out, dst, ldd, (uint8_t *)work + kvb, codes_out);
}

void i8k_attention_rows_packed(int isa, const int16_t *q, size_t ldq, const void *kv, size_t T, size_t d, float logit_scale,
                               const i8k_probs *probs, size_t r0, size_t r1, const i8k_output *out, void *dst, size_t ldd,
                               void *work, uint8_t *codes_out) {
    if (T == 0 || d == 0 || r1 <= r0) return;
    layout w;
    carve_kv(T, d, kv, &w);
    carve_rows(T, d, work, &w);
    size_t es = i8k_out_elsize(out);
    const int split = probs->tau && probs->table_high;
    size_t i = r0;
#ifdef I8K_X86
    /* ROWS rows at a time (head sizes that are multiples of 64), then single rows */
    if (isa == I8K_ISA_AVX512VNNI && w.dp16 % 64 == 0 && w.dp16 == d) {
        for (; i + ROWS <= r1; i += ROWS) {
            memset(w.qrow, 0, ROWS * w.dp2 * 2 * sizeof(int16_t));
            for (int r = 0; r < ROWS; r++) memcpy(w.qrow + r * w.dp2 * 2, q + (i + r) * ldq, d * sizeof(int16_t));
            logits512_rows(&w, logit_scale);
            for (int r = 0; r < ROWS; r++) {
                uint8_t *codes = codes_out ? codes_out + (i + r) * T : w.codes;
                code_row(isa, &w, w.logits + r * w.tp16, T, probs, split, w.L + r * w.tp2, w.Lh + r * w.tp2, codes);
            }
            pv512_rows(&w, split);
            /* one output-stage call for the ROWS rows (acc row r at r·dp16): its per-column setup is shared */
            i8k_output_apply(isa, w.acc, w.dp16, ROWS, d, out, 0, (uint8_t *)dst + i * ldd * es, ldd);
        }
    }
#endif
    for (; i < r1; i++) {
        memset(w.qrow, 0, w.dp2 * 2 * sizeof(int16_t));
        memcpy(w.qrow, q + i * ldq, d * sizeof(int16_t));
#ifdef I8K_X86
        if (isa == I8K_ISA_AVX512VNNI) logits512(&w, logit_scale);
        else if (isa == I8K_ISA_AVX2 || isa == I8K_ISA_AVXVNNI) logits256(&w, logit_scale);
        else
#endif
            logits_portable(&w, T, logit_scale);
        code_row(isa, &w, w.logits, T, probs, split, w.L, w.Lh, codes_out ? codes_out + i * T : w.codes);
#ifdef I8K_X86
        if (isa == I8K_ISA_AVX512VNNI) pv512(&w, split);
        else if (isa == I8K_ISA_AVX2 || isa == I8K_ISA_AVXVNNI) pv256(&w, split);
        else
#endif
            pv_portable(&w, d, split);
        i8k_output_apply(isa, w.acc, d, 1, d, out, 0, (uint8_t *)dst + i * ldd * es, ldd);
    }
}

/* ---------------- Q, K, V into int16 ---------------- */
void i8k_quantize_s16_groups(int isa, const float *x, size_t rows, size_t groups, size_t d, const float *scale,
                             const int32_t *qmin, const int32_t *qmax, int16_t *dst) {
    for (size_t r = 0; r < rows; r++)
        for (size_t g = 0; g < groups; g++)
            i8k_quantize_s16(isa, x + (r * groups + g) * d, d, scale[g], qmin[g], qmax[g], dst + (r * groups + g) * d);
}
