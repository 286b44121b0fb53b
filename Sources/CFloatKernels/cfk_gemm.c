/* SGEMM microkernels (AVX-512 FMA 8x48, AVX2 FMA 6x16, portable 4x16), the blocked macro kernel,
 * B packing and the im2col-to-panels conv path. */
#include "cfloatkernels.h"
#include <immintrin.h>
#include <string.h>
#include <math.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define T256 __attribute__((target("avx2,fma")))
#define AINL static inline __attribute__((always_inline))

int cfk_isa_supported(int isa) {
    __builtin_cpu_init();
    switch (isa) {
    case CFK_ISA_PORTABLE: return 1;
    case CFK_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CFK_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
    default: return 0;
    }
}

int cfk_best_isa(void) {
    if (cfk_isa_supported(CFK_ISA_AVX512)) return CFK_ISA_AVX512;
    if (cfk_isa_supported(CFK_ISA_AVX2)) return CFK_ISA_AVX2;
    return CFK_ISA_PORTABLE;
}

size_t cfk_packed_b_size(long k, long n) {
    return (size_t)((n + CFK_NR - 1) / CFK_NR) * (size_t)k * CFK_NR;
}

void cfk_pack_b(const float *b, long ldb, int trans, long k, long n, float *out) {
    long np = (n + CFK_NR - 1) / CFK_NR;
    for (long j = 0; j < np; j++) {
        long c0 = j * CFK_NR, w = n - c0 < CFK_NR ? n - c0 : CFK_NR;
        float *o = out + j * k * CFK_NR;
        if (!trans) {
            for (long p = 0; p < k; p++) {
                const float *src = b + p * ldb + c0;
                float *d = o + p * CFK_NR;
                if (w == CFK_NR) memcpy(d, src, CFK_NR * sizeof(float));
                else { long l = 0; for (; l < w; l++) d[l] = src[l]; for (; l < CFK_NR; l++) d[l] = 0; }
            }
        } else {
            if (w < CFK_NR) memset(o, 0, (size_t)k * CFK_NR * sizeof(float));
            for (long l = 0; l < w; l++) {
                const float *src = b + (c0 + l) * ldb;
                for (long p = 0; p < k; p++) o[p * CFK_NR + l] = src[p];
            }
        }
    }
}

/* flags for the microkernels */
#define F_LOADC 1
#define F_EPI 2

typedef struct {
    const float *bias;     /* per column, already offset to the tile's first column */
    const float *row_bias; /* per row, already offset to the tile's first row */
    int act;
    float lo, hi;
} epi_t;

/* Scalar epilogue for a tile held in tmp[mr_max][ldt]. */
AINL void store_tile_scalar(const float *tmp, long ldt, float *c, long ldc, int mr, int nr, int flags,
                            const epi_t *e) {
    for (int i = 0; i < mr; i++) {
        for (int j = 0; j < nr; j++) {
            float x = tmp[i * ldt + j];
            if (flags & F_LOADC) x += c[i * ldc + j];
            if (flags & F_EPI) {
                if (e->bias) x += e->bias[j];
                if (e->row_bias) x += e->row_bias[i];
                if (e->act == CFK_ACT_CLAMP) { x = x < e->lo ? e->lo : x; x = x > e->hi ? e->hi : x; }
            }
            c[i * ldc + j] = x;
        }
    }
}

/* ---------------- AVX-512: MR rows x NV*16 columns ---------------- */
AINL T512 void k512(const int MR, const int NV, long kc, const float *a, long lda, const float *b, long bps,
                    float *c, long ldc, int mr, int nr, int flags, const epi_t *e) {
    __m512 acc[8][3];
    const float *ap[8];
    for (int i = 0; i < MR; i++) {
        ap[i] = a + (i < mr ? i : mr - 1) * lda;
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    }
    const float *b0 = b, *b1 = b + bps, *b2 = b + 2 * bps;
    for (long p = 0; p < kc; p++) {
        __m512 bv0 = _mm512_loadu_ps(b0 + p * 16);
        __m512 bv1 = NV > 1 ? _mm512_loadu_ps(b1 + p * 16) : bv0;
        __m512 bv2 = NV > 2 ? _mm512_loadu_ps(b2 + p * 16) : bv0;
        for (int i = 0; i < MR; i++) {
            __m512 av = _mm512_set1_ps(ap[i][p]);
            acc[i][0] = _mm512_fmadd_ps(av, bv0, acc[i][0]);
            if (NV > 1) acc[i][1] = _mm512_fmadd_ps(av, bv1, acc[i][1]);
            if (NV > 2) acc[i][2] = _mm512_fmadd_ps(av, bv2, acc[i][2]);
        }
    }
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
    for (int v = 0; v < NV; v++) {
        int rem = nr - v * 16;
        __mmask16 mk = rem >= 16 ? (__mmask16)0xFFFF : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1);
        __m512 bvec = _mm512_setzero_ps();
        if ((flags & F_EPI) && e->bias) bvec = _mm512_maskz_loadu_ps(mk, e->bias + v * 16);
        for (int i = 0; i < MR; i++) {
            if (i >= mr) break;
            __m512 x = acc[i][v];
            float *cp = c + i * ldc + v * 16;
            if (flags & F_LOADC) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk, cp));
            if (flags & F_EPI) {
                x = _mm512_add_ps(x, bvec);
                if (e->row_bias) x = _mm512_add_ps(x, _mm512_set1_ps(e->row_bias[i]));
                if (e->act == CFK_ACT_CLAMP) x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
            }
            _mm512_mask_storeu_ps(cp, mk, x);
        }
    }
}

static T512 void k512_8x3(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(8, 3, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_8x2(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(8, 2, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_8x1(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(8, 1, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_4x3(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(4, 3, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_4x2(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(4, 2, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_4x1(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(4, 1, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_1x3(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(1, 3, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_1x2(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(1, 2, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }
static T512 void k512_1x1(long kc, const float *a, long lda, const float *b, long bps, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k512(1, 1, kc, a, lda, b, bps, c, ldc, mr, nr, f, e); }

typedef void (*kern_fn)(long, const float *, long, const float *, long, float *, long, int, int, int, const epi_t *);

static T512 void macro512(long m, long n, long kc, const float *a, long lda, const float *bp, long bps,
                          float *c, long ldc, int flags, const epi_t *e0) {
    static const kern_fn k8[3] = {k512_8x1, k512_8x2, k512_8x3};
    static const kern_fn k4[3] = {k512_4x1, k512_4x2, k512_4x3};
    static const kern_fn k1[3] = {k512_1x1, k512_1x2, k512_1x3};
    for (long j = 0; j < n; j += 48) {
        int nr = (int)(n - j < 48 ? n - j : 48);
        int nv = (nr + 15) / 16;
        const float *bj = bp + (j / 16) * bps;
        epi_t e = *e0;
        if (e.bias) e.bias += j;
        long i = 0;
        for (; i + 8 <= m; i += 8) {
            epi_t ee = e; if (ee.row_bias) ee.row_bias += i;
            k8[nv - 1](kc, a + i * lda, lda, bj, bps, c + i * ldc + j, ldc, 8, nr, flags, &ee);
        }
        for (; i < m;) {
            long rem = m - i;
            epi_t ee = e; if (ee.row_bias) ee.row_bias += i;
            if (rem >= 4) { k4[nv - 1](kc, a + i * lda, lda, bj, bps, c + i * ldc + j, ldc, 4, nr, flags, &ee); i += 4; }
            else if (rem == 1) { k1[nv - 1](kc, a + i * lda, lda, bj, bps, c + i * ldc + j, ldc, 1, nr, flags, &ee); i += 1; }
            else { k4[nv - 1](kc, a + i * lda, lda, bj, bps, c + i * ldc + j, ldc, (int)rem, nr, flags, &ee); i += rem; }
        }
    }
}

/* ---------------- AVX2: MR rows x 16 columns ---------------- */
AINL T256 void k256(const int MR, long kc, const float *a, long lda, const float *b,
                    float *c, long ldc, int mr, int nr, int flags, const epi_t *e) {
    __m256 acc[6][2];
    const float *ap[6];
    for (int i = 0; i < MR; i++) {
        ap[i] = a + (i < mr ? i : mr - 1) * lda;
        acc[i][0] = _mm256_setzero_ps(); acc[i][1] = _mm256_setzero_ps();
    }
    for (long p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b + p * 16), b1 = _mm256_loadu_ps(b + p * 16 + 8);
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(ap[i] + p);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    if (mr == MR && nr == 16) {
        __m256 lo = _mm256_set1_ps(e->lo), hi = _mm256_set1_ps(e->hi);
        __m256 bb0 = _mm256_setzero_ps(), bb1 = _mm256_setzero_ps();
        if ((flags & F_EPI) && e->bias) { bb0 = _mm256_loadu_ps(e->bias); bb1 = _mm256_loadu_ps(e->bias + 8); }
        for (int i = 0; i < MR; i++) {
            __m256 x0 = acc[i][0], x1 = acc[i][1];
            float *cp = c + i * ldc;
            if (flags & F_LOADC) { x0 = _mm256_add_ps(x0, _mm256_loadu_ps(cp)); x1 = _mm256_add_ps(x1, _mm256_loadu_ps(cp + 8)); }
            if (flags & F_EPI) {
                x0 = _mm256_add_ps(x0, bb0); x1 = _mm256_add_ps(x1, bb1);
                if (e->row_bias) { __m256 rb = _mm256_set1_ps(e->row_bias[i]); x0 = _mm256_add_ps(x0, rb); x1 = _mm256_add_ps(x1, rb); }
                if (e->act == CFK_ACT_CLAMP) {
                    x0 = _mm256_min_ps(_mm256_max_ps(x0, lo), hi); x1 = _mm256_min_ps(_mm256_max_ps(x1, lo), hi);
                }
            }
            _mm256_storeu_ps(cp, x0); _mm256_storeu_ps(cp + 8, x1);
        }
    } else {
        float tmp[6 * 16];
        for (int i = 0; i < MR; i++) { _mm256_storeu_ps(tmp + i * 16, acc[i][0]); _mm256_storeu_ps(tmp + i * 16 + 8, acc[i][1]); }
        store_tile_scalar(tmp, 16, c, ldc, mr, nr, flags, e);
    }
}
static T256 void k256_6(long kc, const float *a, long lda, const float *b, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k256(6, kc, a, lda, b, c, ldc, mr, nr, f, e); }
static T256 void k256_1(long kc, const float *a, long lda, const float *b, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { k256(1, kc, a, lda, b, c, ldc, mr, nr, f, e); }

static T256 void macro256(long m, long n, long kc, const float *a, long lda, const float *bp, long bps,
                          float *c, long ldc, int flags, const epi_t *e0) {
    for (long j = 0; j < n; j += 16) {
        int nr = (int)(n - j < 16 ? n - j : 16);
        const float *bj = bp + (j / 16) * bps;
        epi_t e = *e0;
        if (e.bias) e.bias += j;
        for (long i = 0; i < m; i += 6) {
            long rem = m - i < 6 ? m - i : 6;
            epi_t ee = e; if (ee.row_bias) ee.row_bias += i;
            if (rem == 1) k256_1(kc, a + i * lda, lda, bj, c + i * ldc + j, ldc, 1, nr, flags, &ee);
            else k256_6(kc, a + i * lda, lda, bj, c + i * ldc + j, ldc, (int)rem, nr, flags, &ee);
        }
    }
}

/* ---------------- portable: 4 x 16 ---------------- */
static void macro_portable(long m, long n, long kc, const float *a, long lda, const float *bp, long bps,
                           float *c, long ldc, int flags, const epi_t *e0) {
    for (long j = 0; j < n; j += 16) {
        int nr = (int)(n - j < 16 ? n - j : 16);
        const float *bj = bp + (j / 16) * bps;
        epi_t e = *e0;
        if (e.bias) e.bias += j;
        for (long i = 0; i < m; i += 4) {
            int mr = (int)(m - i < 4 ? m - i : 4);
            float acc[4][16];
            memset(acc, 0, sizeof acc);
            const float *ar = a + i * lda;
            for (long p = 0; p < kc; p++) {
                const float *bv = bj + p * 16;
                for (int r = 0; r < mr; r++) {
                    float av = ar[r * lda + p];
                    for (int l = 0; l < 16; l++) acc[r][l] += av * bv[l];
                }
            }
            epi_t ee = e; if (ee.row_bias) ee.row_bias += i;
            store_tile_scalar(&acc[0][0], 16, c + i * ldc + j, ldc, mr, nr, flags, &ee);
        }
    }
}

#define KC 256

void cfk_sgemm_packed(int isa, long m, long n, long k, const float *a, long lda, const float *bp, long bps,
                      float *c, long ldc, const float *bias, const float *row_bias,
                      int act, float lo, float hi, int accumulate) {
    if (m <= 0 || n <= 0) return;
    epi_t e = {bias, row_bias, act, lo, hi};
    if (k <= 0) {
        /* C = (accumulate ? C : 0) + bias, activation */
        float zero[16] = {0};
        for (long i = 0; i < m; i++) {
            epi_t ee = e; if (ee.row_bias) ee.row_bias += i;
            for (long j = 0; j < n; j += 16) {
                int nr = (int)(n - j < 16 ? n - j : 16);
                epi_t e2 = ee; if (e2.bias) e2.bias += j;
                store_tile_scalar(zero, 16, c + i * ldc + j, ldc, 1, nr, (accumulate ? F_LOADC : 0) | F_EPI, &e2);
            }
        }
        return;
    }
    long pc = 0;
    while (pc < k) {
        long kc = k - pc < KC ? k - pc : KC;
        /* avoid a tiny last block: split the remainder evenly */
        if (k - pc > KC && k - pc < KC + KC / 4) kc = (k - pc + 1) / 2;
        int flags = ((accumulate || pc > 0) ? F_LOADC : 0) | (pc + kc >= k ? F_EPI : 0);
        const float *ak = a + pc, *bk = bp + pc * 16;
        switch (isa) {
        case CFK_ISA_AVX512: macro512(m, n, kc, ak, lda, bk, bps, c, ldc, flags, &e); break;
        case CFK_ISA_AVX2: macro256(m, n, kc, ak, lda, bk, bps, c, ldc, flags, &e); break;
        default: macro_portable(m, n, kc, ak, lda, bk, bps, c, ldc, flags, &e); break;
        }
        pc += kc;
    }
}

/* ---------------- convolution ---------------- */
#define CONV_NB 192 /* im2col columns per block (multiple of 48) */
#define CONV_KC 256

size_t cfk_conv_scratch_size(void) { return (size_t)CONV_NB * CONV_KC; }

/* Pack rows [k0, k0+kc) x columns [n0, n0+nw) of the im2col matrix into 16-wide panels (bps = kc*16). */
static void pack_im2col(const float *input, const cfk_conv_geom *g, long cin0, long k0, long kc,
                        long n0, long nw, float *out) {
    long khw = g->kh * g->kw, H = g->in_h, W = g->in_w, OW = g->out_w;
    long np = (nw + 15) / 16;
    int pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0;
    for (long kk = 0; kk < kc; kk++) {
        long kidx = k0 + kk;
        long ci = kidx / khw, r = kidx % khw, ky = r / g->kw, kx = r % g->kw;
        const float *plane = input + (cin0 + ci) * H * W;
        if (pointwise) {
            for (long jp = 0; jp < np; jp++) {
                float *d = out + (jp * kc + kk) * 16;
                long c0 = jp * 16, w = nw - c0 < 16 ? nw - c0 : 16;
                if (w == 16) memcpy(d, plane + n0 + c0, 64);
                else { long l = 0; for (; l < w; l++) d[l] = plane[n0 + c0 + l]; for (; l < 16; l++) d[l] = 0; }
            }
            continue;
        }
        long yoff = ky * g->dh - g->pt, xoff = kx * g->dw - g->pl, sw = g->sw;
        /* output x range whose input x is inside the row: ix = ox*sw + xoff in [0, W) */
        long vlo = xoff >= 0 ? 0 : (-xoff + sw - 1) / sw;
        long vhi = (W - 1 - xoff) < 0 ? 0 : (W - 1 - xoff) / sw + 1;
        long oy = n0 / OW, ox = n0 % OW, j = 0;
        float *dk = out + kk * 16;
        while (j < nw) {
            long run = OW - ox < nw - j ? OW - ox : nw - j;
            long iy = oy * g->sh + yoff;
            long lo = ox, hi = ox + run;
            if (iy < 0 || iy >= H) { lo = hi; }
            else { if (lo < vlo) lo = vlo; if (hi > vhi) hi = vhi; if (lo > hi) lo = hi; }
            const float *row = plane + (iy < 0 || iy >= H ? 0 : iy * W);
            /* [ox, lo): zeros, [lo, hi): copy, [hi, ox+run): zeros; j tracks the destination column */
            long t = ox, end = ox + run;
            while (t < end) {
                long lane = j & 15;
                float *d = dk + (j >> 4) * kc * 16 + lane;
                long chunk = 16 - lane;
                if (chunk > end - t) chunk = end - t;
                if (t < lo) {
                    long c = lo - t < chunk ? lo - t : chunk;
                    for (long q = 0; q < c; q++) d[q] = 0;
                    t += c; j += c; continue;
                }
                if (t < hi) {
                    long c = hi - t < chunk ? hi - t : chunk;
                    const float *src = row + t * sw + xoff;
                    if (sw == 1) memcpy(d, src, (size_t)c * sizeof(float));
                    else for (long q = 0; q < c; q++) d[q] = src[q * sw];
                    t += c; j += c; continue;
                }
                for (long q = 0; q < chunk; q++) d[q] = 0;
                t += chunk; j += chunk;
            }
            ox = 0; oy++;
        }
        /* zero the padding lanes of the last panel */
        for (long jj = nw; jj < np * 16; jj++) out[(jj >> 4) * kc * 16 + kk * 16 + (jj & 15)] = 0;
    }
}

void cfk_conv_gemm(int isa, const float *input, const cfk_conv_geom *g, long cin0, const float *w, long og,
                   long n0, long n1, float *out, const float *bias, int act, float lo, float hi, float *scratch) {
    long K = (g->in_c / g->groups) * g->kh * g->kw;
    long ohw = g->out_h * g->out_w;
    for (long nb = n0; nb < n1; nb += CONV_NB) {
        long nw = n1 - nb < CONV_NB ? n1 - nb : CONV_NB;
        for (long pc = 0; pc < K; pc += CONV_KC) {
            long kc = K - pc < CONV_KC ? K - pc : CONV_KC;
            pack_im2col(input, g, cin0, pc, kc, nb, nw, scratch);
            int last = pc + kc >= K;
            epi_t e = {NULL, last ? bias : NULL, last ? act : CFK_ACT_NONE, lo, hi};
            int flags = (pc > 0 ? F_LOADC : 0) | (last ? F_EPI : 0);
            const float *ak = w + pc;
            float *cp = out + nb;
            switch (isa) {
            case CFK_ISA_AVX512: macro512(og, nw, kc, ak, K, scratch, kc * 16, cp, ohw, flags, &e); break;
            case CFK_ISA_AVX2: macro256(og, nw, kc, ak, K, scratch, kc * 16, cp, ohw, flags, &e); break;
            default: macro_portable(og, nw, kc, ak, K, scratch, kc * 16, cp, ohw, flags, &e); break;
            }
        }
    }
}

/* im2row: out[n - n0][K] (row-major, K = cin_per_group*kh*kw) for output pixels n in [n0, n1).
 * Built 16 pixels at a time as an im2col panel (segment copies) and transposed in cache. */
void cfk_im2row(const float *input, const cfk_conv_geom *g, long cin0, long n0, long n1, float *out) {
    long K = (g->in_c / g->groups) * g->kh * g->kw;
    float panel[CONV_KC * 16];
    for (long nb = n0; nb < n1; nb += 16) {
        long w = n1 - nb < 16 ? n1 - nb : 16;
        for (long k0 = 0; k0 < K; k0 += CONV_KC) {
            long kc = K - k0 < CONV_KC ? K - k0 : CONV_KC;
            pack_im2col(input, g, cin0, k0, kc, nb, w, panel);
            for (long r = 0; r < w; r++) {
                float *d = out + (nb - n0 + r) * K + k0;
                for (long k = 0; k < kc; k++) d[k] = panel[k * 16 + r];
            }
        }
    }
}

/* dst[c][r] = src[r][c] for r < rows, c < cols (ld = row strides), in 16x16 blocks. */
void cfk_transpose(const float *src, long rows, long cols, long lds, float *dst, long ldd) {
    for (long r0 = 0; r0 < rows; r0 += 16) {
        long r1 = r0 + 16 < rows ? r0 + 16 : rows;
        for (long c0 = 0; c0 < cols; c0 += 16) {
            long c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (long c = c0; c < c1; c++)
                for (long r = r0; r < r1; r++) dst[c * ldd + r] = src[r * lds + c];
        }
    }
}

/* ---------------- implicit-GEMM convolution (stride 1, AVX-512) ----------------
 * The output is computed on the padded-width grid: column n' = oy*Wp + ox (ox < Wp; columns with
 * ox >= out_w are garbage and dropped later). For tap (ky, kx) the B operand is the padded input
 * shifted by ky*dh*Wp + kx*dw, with row (channel) stride Hp*Wp: no im2col at all. Weights are tap-major:
 * wt[(tap * out_c + o) * cpg + c]. */
AINL T512 void k512i(const int MR, const int NV, int ntaps, const long *btap, long atap, long kc,
                     const float *a, long lda, const float *b, long bks, float *c, long ldc, int mr, int nr,
                     int flags, const epi_t *e) {
    __m512 acc[8][3];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    __mmask16 mk[3];
    for (int v = 0; v < 3; v++) {
        int rem = nr - v * 16;
        mk[v] = rem >= 16 ? (__mmask16)0xFFFF : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1);
    }
    for (int t = 0; t < ntaps; t++) {
        const float *ap[8];
        for (int i = 0; i < MR; i++) ap[i] = a + t * atap + (i < mr ? i : mr - 1) * lda;
        const float *bt = b + btap[t];
        for (long p = 0; p < kc; p++) {
            const float *bp = bt + p * bks;
            __m512 bv0 = _mm512_maskz_loadu_ps(mk[0], bp);
            __m512 bv1 = NV > 1 ? _mm512_maskz_loadu_ps(mk[1], bp + 16) : bv0;
            __m512 bv2 = NV > 2 ? _mm512_maskz_loadu_ps(mk[2], bp + 32) : bv0;
            for (int i = 0; i < MR; i++) {
                __m512 av = _mm512_set1_ps(ap[i][p]);
                acc[i][0] = _mm512_fmadd_ps(av, bv0, acc[i][0]);
                if (NV > 1) acc[i][1] = _mm512_fmadd_ps(av, bv1, acc[i][1]);
                if (NV > 2) acc[i][2] = _mm512_fmadd_ps(av, bv2, acc[i][2]);
            }
        }
    }
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
    for (int v = 0; v < NV; v++) {
        for (int i = 0; i < MR; i++) {
            if (i >= mr) break;
            __m512 x = acc[i][v];
            float *cp = c + i * ldc + v * 16;
            if (flags & F_LOADC) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk[v], cp));
            if (flags & F_EPI) {
                if (e->row_bias) x = _mm512_add_ps(x, _mm512_set1_ps(e->row_bias[i]));
                if (e->act == CFK_ACT_CLAMP) x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
            }
            _mm512_mask_storeu_ps(cp, mk[v], x);
        }
    }
}

typedef void (*kerni_fn)(int, const long *, long, long, const float *, long, const float *, long, float *, long, int, int, int, const epi_t *);
#define KI(MR, NV) static T512 void k512i_##MR##x##NV(int nt, const long *bt, long at, long kc, const float *a, long lda, \
    const float *b, long bks, float *c, long ldc, int mr, int nr, int f, const epi_t *e) { \
    k512i(MR, NV, nt, bt, at, kc, a, lda, b, bks, c, ldc, mr, nr, f, e); }
KI(8, 1) KI(8, 2) KI(8, 3) KI(4, 1) KI(4, 2) KI(4, 3) KI(1, 1) KI(1, 2) KI(1, 3)

#define CONVI_KC 256

static T512 void conv_implicit512(const float *P, long Hp, long Wp, const cfk_conv_geom *g, const float *wt, long grp,
                                  long o0, long o1, long n0, long n1, float *T, long ldt, const float *bias,
                                  int act, float lo, float hi) {
    static const kerni_fn k8[3] = {k512i_8x1, k512i_8x2, k512i_8x3};
    static const kerni_fn k4[3] = {k512i_4x1, k512i_4x2, k512i_4x3};
    static const kerni_fn k1[3] = {k512i_1x1, k512i_1x2, k512i_1x3};
    long cpg = g->in_c / g->groups, og = g->out_c / g->groups, plane = Hp * Wp;
    int ntaps = (int)(g->kh * g->kw);
    /* tap (ky, kx) reads phase plane ((ky*dh) % sh, (kx*dw) % sw) shifted by ((ky*dh)/sh, (kx*dw)/sw) */
    long btap[64];
    for (long ky = 0; ky < g->kh; ky++)
        for (long kx = 0; kx < g->kw; kx++) {
            long ry = ky * g->dh, rx = kx * g->dw;
            long phase = (ry % g->sh) * g->sw + rx % g->sw;
            btap[ky * g->kw + kx] = phase * g->in_c * plane + (ry / g->sh) * Wp + rx / g->sw;
        }
    long atap = g->out_c * cpg;
    for (long cb = 0; cb < cpg; cb += CONVI_KC) {
        long kc = cpg - cb < CONVI_KC ? cpg - cb : CONVI_KC;
        int last = cb + kc >= cpg;
        int flags = (cb > 0 ? F_LOADC : 0) | (last ? F_EPI : 0);
        const float *bbase = P + (grp * cpg + cb) * plane;
        for (long j = n0; j < n1; j += 48) {
            int nr = (int)(n1 - j < 48 ? n1 - j : 48);
            int nv = (nr + 15) / 16;
            for (long i = o0; i < o1;) {
                long rem = o1 - i;
                long oabs = grp * og + i;
                epi_t e = {NULL, bias ? bias + oabs : NULL, act, lo, hi};
                const float *a = wt + oabs * cpg + cb;
                float *cp = T + oabs * ldt + j;
                if (rem >= 8) { k8[nv - 1](ntaps, btap, atap, kc, a, cpg, bbase + j, plane, cp, ldt, 8, nr, flags, &e); i += 8; }
                else if (rem >= 4) { k4[nv - 1](ntaps, btap, atap, kc, a, cpg, bbase + j, plane, cp, ldt, 4, nr, flags, &e); i += 4; }
                else if (rem == 1) { k1[nv - 1](ntaps, btap, atap, kc, a, cpg, bbase + j, plane, cp, ldt, 1, nr, flags, &e); i += 1; }
                else { k4[nv - 1](ntaps, btap, atap, kc, a, cpg, bbase + j, plane, cp, ldt, (int)rem, nr, flags, &e); i += rem; }
            }
        }
    }
}

int cfk_conv_implicit(int isa, const float *P, long Hp, long Wp, const cfk_conv_geom *g, const float *wt, long grp,
                      long o0, long o1, long n0, long n1, float *T, long ldt, const float *bias,
                      int act, float lo, float hi) {
    if (isa != CFK_ISA_AVX512 || g->kh * g->kw > 64) return 0;
    conv_implicit512(P, Hp, Wp, g, wt, grp, o0, o1, n0, n1, T, ldt, bias, act, lo, hi);
    return 1;
}

void cfk_pad_input(const float *input, const cfk_conv_geom *g, long pb, long pr, long c0, long c1, float *P) {
    long H = g->in_h, W = g->in_w, Hp = H + g->pt + pb, Wp = W + g->pl + pr;
    for (long c = c0; c < c1; c++) {
        float *pc = P + c * Hp * Wp;
        const float *ic = input + c * H * W;
        memset(pc, 0, (size_t)(g->pt * Wp) * sizeof(float));
        for (long y = 0; y < H; y++) {
            float *row = pc + (g->pt + y) * Wp;
            for (long x = 0; x < g->pl; x++) row[x] = 0;
            memcpy(row + g->pl, ic + y * W, (size_t)W * sizeof(float));
            for (long x = g->pl + W; x < Wp; x++) row[x] = 0;
        }
        memset(pc + (g->pt + H) * Wp, 0, (size_t)(pb * Wp) * sizeof(float));
    }
}

/* Phase planes for a strided conv: P[(py*sw + px)][c][i][j] = padded[c][i*sh + py][j*sw + px]
 * (zero outside the padded input), each plane Hq x Wq with Hq = ceil(Hp/sh), Wq = ceil(Wp/sw). */
void cfk_phase_input(const float *input, const cfk_conv_geom *g, long pb, long pr, long c0, long c1, float *P) {
    long H = g->in_h, W = g->in_w, sh = g->sh, sw = g->sw;
    long Hp = H + g->pt + pb, Wp = W + g->pl + pr;
    long Hq = (Hp + sh - 1) / sh, Wq = (Wp + sw - 1) / sw, plane = Hq * Wq;
    for (long py = 0; py < sh; py++)
        for (long px = 0; px < sw; px++) {
            float *base = P + ((py * sw + px) * g->in_c) * plane;
            for (long c = c0; c < c1; c++) {
                float *pc = base + c * plane;
                const float *ic = input + c * H * W;
                for (long i = 0; i < Hq; i++) {
                    long y = i * sh + py - g->pt;
                    float *row = pc + i * Wq;
                    if (y < 0 || y >= H) { memset(row, 0, (size_t)Wq * sizeof(float)); continue; }
                    const float *irow = ic + y * W;
                    if (sw == 1) {
                        long j = 0;
                        for (; j < g->pl && j < Wq; j++) row[j] = 0;
                        long n = W < Wq - j ? W : Wq - j;
                        memcpy(row + j, irow, (size_t)n * sizeof(float));
                        for (j += n; j < Wq; j++) row[j] = 0;
                    } else {
                        for (long j = 0; j < Wq; j++) {
                            long x = j * sw + px - g->pl;
                            row[j] = (x >= 0 && x < W) ? irow[x] : 0.0f;
                        }
                    }
                }
            }
        }
}

void cfk_compact_rows(const float *T, long ldt_row, long rows_per_ch, long cols, long c0, long c1, float *out) {
    for (long c = c0; c < c1; c++)
        for (long y = 0; y < rows_per_ch; y++)
            memcpy(out + (c * rows_per_ch + y) * cols, T + (c * rows_per_ch + y) * ldt_row, (size_t)cols * sizeof(float));
}

/* im2row from a zero-padded input P [in_c][Hp][Wp] (cfk_pad_input): out[(n - n0) * K + ci*taps + t]. */
void cfk_im2row_padded(const float *P, long Hp, long Wp, const cfk_conv_geom *g, long cin0, long n0, long n1, float *out) {
    long cpg = g->in_c / g->groups, taps = g->kh * g->kw, K = cpg * taps, plane = Hp * Wp, OW = g->out_w;
    long toff[64];
    if (taps > 64) return;
    for (long ky = 0; ky < g->kh; ky++)
        for (long kx = 0; kx < g->kw; kx++) toff[ky * g->kw + kx] = ky * g->dh * Wp + kx * g->dw;
    for (long n = n0; n < n1; n++) {
        long oy = n / OW, ox = n % OW;
        const float *base = P + cin0 * plane + oy * g->sh * Wp + ox * g->sw;
        float *d = out + (n - n0) * K;
        for (long ci = 0; ci < cpg; ci++) {
            const float *b = base + ci * plane;
            for (long t = 0; t < taps; t++) d[ci * taps + t] = b[toff[t]];
        }
    }
}

/* Depthwise conv on phase planes (cfk_phase_input; stride 1: the padded input), AVX-512:
 * out[oc][y][x] = bias + sum_t w[oc][t] * P[phase_t][oc / mult][y + dy_t][x + dx_t], 16 outputs at a time. */
static T512 void depthwise_phase512(const float *P, long Hq, long Wq, const cfk_conv_geom *g, const float *w,
                                    long oc0, long oc1, float *out, const float *bias, int act, float lo, float hi) {
    long taps = g->kh * g->kw, plane = Hq * Wq, OH = g->out_h, OW = g->out_w, mult = g->out_c / g->in_c;
    long off[64];
    for (long ky = 0; ky < g->kh; ky++)
        for (long kx = 0; kx < g->kw; kx++) {
            long ry = ky * g->dh, rx = kx * g->dw;
            long phase = (ry % g->sh) * g->sw + rx % g->sw;
            off[ky * g->kw + kx] = phase * g->in_c * plane + (ry / g->sh) * Wq + rx / g->sw;
        }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (long oc = oc0; oc < oc1; oc++) {
        const float *pc = P + (oc / mult) * plane;
        const float *wk = w + oc * taps;
        __m512 wv[64];
        for (long t = 0; t < taps; t++) wv[t] = _mm512_set1_ps(wk[t]);
        __m512 b0 = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
        for (long y = 0; y < OH; y++) {
            const float *row = pc + y * Wq;
            float *orow = out + (oc * OH + y) * OW;
            for (long x = 0; x < OW; x += 16) {
                long rem = OW - x;
                __mmask16 mk = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
                __m512 acc0 = b0, acc1 = _mm512_setzero_ps();
                long t = 0;
                for (; t + 1 < taps; t += 2) {
                    acc0 = _mm512_fmadd_ps(wv[t], _mm512_maskz_loadu_ps(mk, row + off[t] + x), acc0);
                    acc1 = _mm512_fmadd_ps(wv[t + 1], _mm512_maskz_loadu_ps(mk, row + off[t + 1] + x), acc1);
                }
                if (t < taps) acc0 = _mm512_fmadd_ps(wv[t], _mm512_maskz_loadu_ps(mk, row + off[t] + x), acc0);
                acc0 = _mm512_add_ps(acc0, acc1);
                if (act == CFK_ACT_CLAMP) acc0 = _mm512_min_ps(_mm512_max_ps(acc0, vlo), vhi);
                _mm512_mask_storeu_ps(orow + x, mk, acc0);
            }
        }
    }
}

int cfk_depthwise_phase(int isa, const float *P, long Hq, long Wq, const cfk_conv_geom *g, const float *w,
                        long oc0, long oc1, float *out, const float *bias, int act, float lo, float hi) {
    if (isa != CFK_ISA_AVX512 || g->kh * g->kw > 64) return 0;
    depthwise_phase512(P, Hq, Wq, g, w, oc0, oc1, out, bias, act, lo, hi);
    return 1;
}
