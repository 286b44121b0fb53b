/* Element-wise and normalisation pieces. Every ISA path reproduces the portable one bit for bit:
 * float operations are done in the same order (16-lane strided partial sums, pinned trees), no FMA. */
#include "internal.h"
#include <math.h>
#ifdef I8K_X86
#include <immintrin.h>
#endif

/* ---------------- scalar pinned pieces ---------------- */
static inline int32_t quant1(float x, float scale, int32_t zero, int32_t qmin, int32_t qmax) {
    float r = rintf(x / scale) + (float)zero;
    if (!(r >= (float)qmin)) r = (float)qmin; /* NaN -> qmin */
    if (r > (float)qmax) r = (float)qmax;
    return (int32_t)r;
}

static const float EXP_HI = 88.3762626647949f, EXP_LO = -87.3365447504019f;
static const float LOG2E = 1.44269504088896341f, C1 = 0.693359375f, C2 = -2.12194440e-4f;
static const float P0 = 1.9875691500E-4f, P1 = 1.3981999507E-3f, P2 = 8.3334519073E-3f, P3 = 4.1665795894E-2f,
                   P4 = 1.6666665459E-1f, P5 = 5.0000001201E-1f;

float i8k_expf(float x) {
    if (x != x) return x;
    if (x > EXP_HI) x = EXP_HI;
    if (x < EXP_LO) x = EXP_LO;
    float n = rintf(x * LOG2E);
    float r = (x - n * C1) - n * C2;
    float z = r * r;
    float y = (((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5);
    y = ((y * z) + r) + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float sc;
    memcpy(&sc, &e, 4);
    return y * sc;
}

static const float E1 = 0.0705230784f, E2 = 0.0422820123f, E3 = 0.0092705272f, E4 = 0.0001520143f,
                   E5 = 0.0002765672f, E6 = 0.0000430638f;
static inline float gelu1(float x) {
    float t = x * 0.70710678118654752f;
    float a = fabsf(t);
    float d = 1.0f + a * (E1 + a * (E2 + a * (E3 + a * (E4 + a * (E5 + a * E6)))));
    d = d * d; d = d * d; d = d * d; d = d * d;
    float e = 1.0f - 1.0f / d;
    if (t < 0) e = -e;
    return (0.5f * x) * (1.0f + e);
}

/* 16-lane strided sum with the pinned tree s[j] += s[j+8], +4, +2, +1 */
static float sum16(const float *x, size_t n) {
    float s[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) s[j] = s[j] + x[i + j];
    if (i < n)
        for (int j = 0; j < 16; j++) s[j] = s[j] + (i + j < n ? x[i + j] : 0.0f);
    for (int w = 8; w >= 1; w >>= 1)
        for (int j = 0; j < w; j++) s[j] = s[j] + s[j + w];
    return s[0];
}

#ifdef I8K_X86
T512 static inline float hsum512(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    __m128 d = _mm_add_ss(c, _mm_shuffle_ps(c, c, 1));
    return _mm_cvtss_f32(d);
}
T512 static inline __m512i quant512(__m512 x, __m512 sc, __m512 z, __m512 lo, __m512 hi) {
    __m512 r = _mm512_add_ps(_mm512_roundscale_ps(_mm512_div_ps(x, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
    r = _mm512_min_ps(_mm512_max_ps(r, lo), hi); /* max(NaN, lo) = lo */
    return _mm512_cvtps_epi32(r);
}
/* The polynomial of exp on a clamped input xc: e^xc = y · 2^n. */
T512 static inline __m512 exp512_poly(__m512 xc, __m512 *n_out) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(_mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(C1))), _mm512_mul_ps(n, _mm512_set1_ps(C2)));
    __m512 z = _mm512_mul_ps(r, r);
    __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(P0), r), _mm512_set1_ps(P1));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(P2));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(P3));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(P4));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(P5));
    *n_out = n;
    return _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(y, z), r), _mm512_set1_ps(1.0f));
}
T512 static inline __m512 exp512(__m512 x) {
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512 n, y = exp512_poly(_mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(EXP_HI)), _mm512_set1_ps(EXP_LO)), &n);
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mask_mov_ps(_mm512_mul_ps(y, _mm512_castsi512_ps(e)), nan, x);
}
/* exp512 for x <= 0 (or NaN), as the softmax calls it: the same bits with two shortcuts that cannot change them:
 * min(x, EXP_HI) is x, and for n in [-126, 0] the scale 2^n is a normal float, so y * 2^n equals scalef(y, n)
 * (one rounding of the same exact product). */
T512 static inline __m512 exp512_nonpos(__m512 x) {
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512 n, y = exp512_poly(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), &n);
    return _mm512_mask_mov_ps(_mm512_scalef_ps(y, n), nan, x);
}
T512 static inline __m512 gelu512(__m512 x) {
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    __m512 a = _mm512_abs_ps(t);
    __m512 d = _mm512_add_ps(_mm512_set1_ps(E5), _mm512_mul_ps(a, _mm512_set1_ps(E6)));
    d = _mm512_add_ps(_mm512_set1_ps(E4), _mm512_mul_ps(a, d));
    d = _mm512_add_ps(_mm512_set1_ps(E3), _mm512_mul_ps(a, d));
    d = _mm512_add_ps(_mm512_set1_ps(E2), _mm512_mul_ps(a, d));
    d = _mm512_add_ps(_mm512_set1_ps(E1), _mm512_mul_ps(a, d));
    d = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(a, d));
    d = _mm512_mul_ps(d, d); d = _mm512_mul_ps(d, d); d = _mm512_mul_ps(d, d); d = _mm512_mul_ps(d, d);
    __m512 e = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_div_ps(_mm512_set1_ps(1.0f), d));
    __mmask16 neg = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_LT_OQ);
    e = _mm512_mask_sub_ps(e, neg, _mm512_setzero_ps(), e);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
#define MASK16(n) ((__mmask16)((n) >= 16 ? 0xFFFF : ((1u << (n)) - 1)))
#endif

/* ---------------- quantize / dequantize / add / gelu ---------------- */
void i8k_quantize(int isa, const float *x, size_t n, float scale, int32_t zero, int32_t qmin, int32_t qmax,
                  int out_unsigned, void *dst);
#ifdef I8K_X86
T512 static void quantize512(const float *x, size_t n, float scale, int32_t zero, int32_t qmin, int32_t qmax,
                             void *dst) {
    __m512 sc = _mm512_set1_ps(scale), z = _mm512_set1_ps((float)zero), lo = _mm512_set1_ps((float)qmin),
           hi = _mm512_set1_ps((float)qmax);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        __m512i q = quant512(_mm512_maskz_loadu_ps(mk, x + i), sc, z, lo, hi);
        _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)dst + i, mk, q);
    }
}
T512 static void dequantize512(const void *q, int in_unsigned, size_t n, float scale, int32_t zero, float *dst) {
    __m512 sc = _mm512_set1_ps(scale);
    __m512i z = _mm512_set1_epi32(zero);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        __m128i r = _mm_maskz_loadu_epi8(mk, (const uint8_t *)q + i);
        __m512i v = in_unsigned ? _mm512_cvtepu8_epi32(r) : _mm512_cvtepi8_epi32(r);
        _mm512_mask_storeu_ps(dst + i, mk, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, z)), sc));
    }
}
T512 static void add512(const float *a, const float *b, size_t n, float *dst) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        _mm512_mask_storeu_ps(dst + i, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, a + i), _mm512_maskz_loadu_ps(mk, b + i)));
    }
}
T512 static void gelu512_arr(const float *x, size_t n, float *dst) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        _mm512_mask_storeu_ps(dst + i, mk, gelu512(_mm512_maskz_loadu_ps(mk, x + i)));
    }
}
#endif

void i8k_quantize(int isa, const float *x, size_t n, float scale, int32_t zero, int32_t qmin, int32_t qmax,
                  int out_unsigned, void *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { quantize512(x, n, scale, zero, qmin, qmax, dst); return; }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) {
        int32_t q = quant1(x[i], scale, zero, qmin, qmax);
        if (out_unsigned) ((uint8_t *)dst)[i] = (uint8_t)q;
        else ((int8_t *)dst)[i] = (int8_t)q;
    }
}

#ifdef I8K_X86
T512 static void quantize_s16_512(const float *x, size_t n, float scale, int32_t qmin, int32_t qmax, int16_t *dst) {
    __m512 sc = _mm512_set1_ps(scale), z = _mm512_setzero_ps(), lo = _mm512_set1_ps((float)qmin), hi = _mm512_set1_ps((float)qmax);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, mk, quant512(_mm512_maskz_loadu_ps(mk, x + i), sc, z, lo, hi));
    }
}
#endif

void i8k_quantize_s16(int isa, const float *x, size_t n, float scale, int32_t qmin, int32_t qmax, int16_t *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { quantize_s16_512(x, n, scale, qmin, qmax, dst); return; }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) dst[i] = (int16_t)quant1(x[i], scale, 0, qmin, qmax);
}

void i8k_dequantize(int isa, const void *q, int in_unsigned, size_t n, float scale, int32_t zero, float *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { dequantize512(q, in_unsigned, n, scale, zero, dst); return; }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) {
        int32_t v = in_unsigned ? (int32_t)((const uint8_t *)q)[i] : (int32_t)((const int8_t *)q)[i];
        dst[i] = (float)(v - zero) * scale;
    }
}

void i8k_add(int isa, const float *a, const float *b, size_t n, float *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { add512(a, b, n, dst); return; }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) dst[i] = a[i] + b[i];
}

void i8k_gelu(int isa, const float *x, size_t n, float *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { gelu512_arr(x, n, dst); return; }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) dst[i] = gelu1(x[i]);
}

/* ---------------- LayerNorm + quantize ---------------- */
#ifdef I8K_X86
T512 static void ln512(const float *x, size_t C, const float *g, const float *b, float eps, float scale, int32_t zero,
                       int32_t qmin, int32_t qmax, uint8_t *dst) {
    __m512 s = _mm512_setzero_ps();
    for (size_t i = 0; i < C; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(MASK16(C - i), x + i));
    float mean = hsum512(s) / (float)C;
    __m512 mv = _mm512_set1_ps(mean);
    s = _mm512_setzero_ps();
    for (size_t i = 0; i < C; i += 16) {
        __mmask16 mk = MASK16(C - i);
        __m512 d = _mm512_maskz_sub_ps(mk, _mm512_maskz_loadu_ps(mk, x + i), mv);
        s = _mm512_add_ps(s, _mm512_mul_ps(d, d));
    }
    float var = hsum512(s) / (float)C;
    float rstd = 1.0f / sqrtf(var + eps);
    __m512 rv = _mm512_set1_ps(rstd);
    __m512 sc = _mm512_set1_ps(scale), z = _mm512_set1_ps((float)zero), lo = _mm512_set1_ps((float)qmin),
           hi = _mm512_set1_ps((float)qmax);
    for (size_t i = 0; i < C; i += 16) {
        __mmask16 mk = MASK16(C - i);
        __m512 y = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), mv), rv);
        y = _mm512_add_ps(_mm512_mul_ps(y, _mm512_maskz_loadu_ps(mk, g + i)), _mm512_maskz_loadu_ps(mk, b + i));
        _mm512_mask_cvtepi32_storeu_epi8(dst + i, mk, quant512(y, sc, z, lo, hi));
    }
}
#endif

void i8k_layernorm_quant(int isa, const float *x, size_t rows, size_t C, const float *gamma, const float *beta,
                         float eps, float scale, int32_t zero, int32_t qmin, int32_t qmax, int out_unsigned, void *dst,
                         size_t ldd) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        uint8_t *d = (uint8_t *)dst + r * ldd;
#ifdef I8K_X86
        if (isa == I8K_ISA_AVX512VNNI) { ln512(xr, C, gamma, beta, eps, scale, zero, qmin, qmax, d); continue; }
#endif
        float mean = sum16(xr, C) / (float)C;
        float s[16] = {0};
        for (size_t i = 0; i < C; i += 16)
            for (int j = 0; j < 16; j++) {
                float dd = (i + j < C) ? xr[i + j] - mean : 0.0f;
                s[j] = s[j] + dd * dd;
            }
        for (int w = 8; w >= 1; w >>= 1)
            for (int j = 0; j < w; j++) s[j] = s[j] + s[j + w];
        float var = s[0] / (float)C;
        float rstd = 1.0f / sqrtf(var + eps);
        for (size_t i = 0; i < C; i++) {
            float y = (xr[i] - mean) * rstd;
            y = y * gamma[i] + beta[i];
            int32_t q = quant1(y, scale, zero, qmin, qmax);
            if (out_unsigned) d[i] = (uint8_t)q;
            else ((int8_t *)d)[i] = (int8_t)q;
        }
    }
}

/* ---------------- softmax ---------------- */
#ifdef I8K_X86
/* max, then exp and the pinned 16-lane sum into e (softmax512's first two passes); returns the sum */
T512 static inline float softmax512_exp(const float *x, size_t n, float *e_out) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), MASK16(n - i), x + i));
    float mx = _mm512_reduce_max_ps(m);
    __m512 mv = _mm512_set1_ps(mx), s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        /* x − max <= 0 (or NaN) */
        __m512 e = _mm512_maskz_mov_ps(mk, exp512_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), mv)));
        s = _mm512_add_ps(s, e);
        _mm512_mask_storeu_ps(e_out + i, mk, e);
    }
    return hsum512(s);
}

T512 static void softmax512(const float *x, size_t n, float *p) {
    __m512 sv = _mm512_set1_ps(softmax512_exp(x, n, p));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        _mm512_mask_storeu_ps(p + i, mk, _mm512_div_ps(_mm512_maskz_loadu_ps(mk, p + i), sv));
    }
}
#endif

void i8k_softmax_row(int isa, const float *x, size_t n, float *p) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI) { softmax512(x, n, p); return; }
#endif
    (void)isa;
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (size_t i = 0; i < n; i++) p[i] = i8k_expf(x[i] - mx);
    float s = sum16(p, n);
    for (size_t i = 0; i < n; i++) p[i] = p[i] / s;
}

/* ---------------- AdaLog codes ---------------- */
/* The portable definition for one value (NaN -> nt; code 255 doubles as the 8-bit zero state). */
static inline uint8_t encode1(float x, const float *tau, int32_t nt) {
    int32_t c = 0;
    if (x != x) c = nt;
    else
        for (int32_t j = 0; j < nt; j++) c += x < tau[j] ? 1 : 0;
    return (uint8_t)(c > 255 ? 255 : c);
}

static const float LG0 = 1.253882419e-05f, LG1 = 1.441684604e+00f, LG2 = -7.079926133e-01f, LG3 = 4.136300087e-01f,
                   LG4 = -1.921955198e-01f, LG5 = 4.487356171e-02f;
#define LG_EPS 1.3e-5   /* the scan gives 1.2656e-5 */
static inline float lg_poly1(float t) {
    float p = fmaf(LG5, t, LG4);
    p = fmaf(p, t, LG3); p = fmaf(p, t, LG2); p = fmaf(p, t, LG1);
    return fmaf(p, t, LG0);
}
double i8k_adalog_log2_poly_error(void) {
    double mx = 0;
    for (uint32_t m = 0; m < (1u << 23); m++) {
        float t = (float)m * (1.0f / 8388608.0f);
        double err = fabs((double)lg_poly1(t) - log2(1.0 + (double)t));
        if (err > mx) mx = err;
    }
    return mx;
}
double i8k_adalog_log2_poly_bound(void) { return LG_EPS; }

#ifdef I8K_X86
T512 static void encode512(const float *u, size_t n, const float *tau, int32_t nt, uint8_t *codes) {
    /* branchless binary search over the descending thresholds; gathers from tau */
    const __m512i ntv = _mm512_set1_epi32(nt);
    /* up to 32 thresholds live in two registers (vpermt2ps instead of gathers) */
    const int small = nt <= 32;
    float tpad[32] = {0};
    for (int32_t j = 0; j < nt && j < 32; j++) tpad[j] = tau[j];
    const __m512 t_lo = _mm512_loadu_ps(tpad), t_hi = _mm512_loadu_ps(tpad + 16);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        __m512 x = _mm512_maskz_loadu_ps(mk, u + i);
        __m512i k = _mm512_setzero_si512();
#define TAU_AT(idx) (small ? _mm512_permutex2var_ps(t_lo, (idx), t_hi) : _mm512_i32gather_ps((idx), tau, 4))
        for (int32_t s = nt >> 1; s >= 1; s >>= 1) {
            __m512i idx = _mm512_add_epi32(k, _mm512_set1_epi32(s - 1));
            __m512 t = TAU_AT(idx);
            __mmask16 lt = _mm512_cmp_ps_mask(x, t, _CMP_LT_OQ);
            k = _mm512_mask_add_epi32(k, lt, k, _mm512_set1_epi32(s));
        }
        __m512 t = TAU_AT(k);
#undef TAU_AT
        __mmask16 lt = _mm512_cmp_ps_mask(x, t, _CMP_LT_OQ);
        k = _mm512_mask_add_epi32(k, lt, k, _mm512_set1_epi32(1));
        k = _mm512_mask_mov_epi32(k, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), ntv);
        k = _mm512_min_epi32(k, _mm512_set1_epi32(255)); /* 8-bit AdaLog: code 255 doubles as the zero state */
        _mm512_mask_cvtepi32_storeu_epi8(codes + i, mk, k);
    }
}
/* tb[c] for codes c in [0, 256): eight two-register permutes (low five bits) and a blend tree on bits 5-7. A gather
 * does the same in one instruction, but gathers are microcoded, and on Intel cores with the Gather Data Sampling
 * mitigation much slower; the permutes cost the same everywhere. (On the Cascade Lake this was measured on, the
 * encode took about the same time either way.) */
T512 static inline __m512 lookup256_ps(const __m512 *tb, __m512i c) {
    __m512 r0 = _mm512_permutex2var_ps(tb[0], c, tb[1]), r1 = _mm512_permutex2var_ps(tb[2], c, tb[3]);
    __m512 r2 = _mm512_permutex2var_ps(tb[4], c, tb[5]), r3 = _mm512_permutex2var_ps(tb[6], c, tb[7]);
    __m512 r4 = _mm512_permutex2var_ps(tb[8], c, tb[9]), r5 = _mm512_permutex2var_ps(tb[10], c, tb[11]);
    __m512 r6 = _mm512_permutex2var_ps(tb[12], c, tb[13]), r7 = _mm512_permutex2var_ps(tb[14], c, tb[15]);
    __mmask16 m5 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(32));
    __mmask16 m6 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(64));
    __mmask16 m7 = _mm512_test_epi32_mask(c, _mm512_set1_epi32(128));
    __m512 s0 = _mm512_mask_blend_ps(m5, r0, r1), s1 = _mm512_mask_blend_ps(m5, r2, r3);
    __m512 s2 = _mm512_mask_blend_ps(m5, r4, r5), s3 = _mm512_mask_blend_ps(m5, r6, r7);
    return _mm512_mask_blend_ps(m7, _mm512_mask_blend_ps(m6, s0, s1), _mm512_mask_blend_ps(m6, s2, s3));
}

/* Many thresholds (6- and 8-bit AdaLog): estimate the code from log2(x) (the thresholds are geometric,
 * tau_k = tau_0 * 2^(-k*step), so code = #{k : tau_k > x} = ceil(e), e = (log2 tau_0 - log2 x) / step).
 * The estimate ê is within 0.15 codes of e (log2 error < 0.014 octaves, step > 0.1 octaves; AdaLog's is >= 0.27), so with
 * c0 = ceil(ê - 1/4) the code is c0 or c0 + 1, and one looked-up comparison (tau[c0] > x) decides: the result
 * equals counting thresholds (the portable path). */
/* nnorm: the leading thresholds that are normal positive floats and verified geometric. Values at or above
 * tau[nnorm-1] take the estimate; the rest (x <= 0, NaN, below the smallest normal threshold, where float
 * thresholds underflow to denormals or 0) are counted exactly, lane by lane. */
T512 static void encode512_geometric(const float *u, size_t n, const float *tau, int32_t nt, int32_t nnorm, float l0, float inv_step,
                                     uint8_t *codes) {
    __m512 tb[16];   /* the normal thresholds, zero-padded to 256 (codes are clamped below nnorm) */
    for (int32_t k = 0; k < 16; k++) {
        int32_t left = nnorm - 16 * k;
        tb[k] = _mm512_maskz_loadu_ps(left <= 0 ? 0 : (left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1)), tau + (left > 0 ? 16 * k : 0));
    }
    const __m512 vl0 = _mm512_set1_ps(l0), vinv = _mm512_set1_ps(inv_step), vmaxf = _mm512_set1_ps((float)(nnorm - 1));
    const __m512 tlim = _mm512_set1_ps(tau[nnorm - 1]);
    const __m512i one = _mm512_set1_epi32(1);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        __m512 x = _mm512_maskz_loadu_ps(mk, u + i);
        __mmask16 fast = _mm512_cmp_ps_mask(x, tlim, _CMP_GE_OQ) & mk;
        __m512 e = _mm512_getexp_ps(x);
        __m512 t = _mm512_sub_ps(_mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero), _mm512_set1_ps(1.0f));
        /* log2(1 + t) on [0, 1): cubic, error < 0.014 */
        __m512 lg = _mm512_fmadd_ps(t, _mm512_fmadd_ps(t, _mm512_fmadd_ps(t, _mm512_set1_ps(0.2788f), _mm512_set1_ps(-0.7213f)),
                                                        _mm512_set1_ps(1.4425f)), e);
        __m512 est = _mm512_sub_ps(_mm512_mul_ps(_mm512_sub_ps(vl0, lg), vinv), _mm512_set1_ps(0.25f));
        est = _mm512_max_ps(_mm512_min_ps(est, vmaxf), _mm512_setzero_ps());
        __m512i c = _mm512_cvt_roundps_epi32(est, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
        __m512 g = lookup256_ps(tb, c);
        c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(x, g, _CMP_LT_OQ) & fast, c, one);
        c = _mm512_min_epi32(c, _mm512_set1_epi32(255));
        _mm512_mask_cvtepi32_storeu_epi8(codes + i, fast, c);
        __mmask16 slow = mk & (__mmask16)~fast;
        while (slow) {
            int l = __builtin_ctz(slow);
            codes[i + l] = encode1(u[i + l], tau, nt);
            slow &= (__mmask16)(slow - 1);
        }
    }
}

/* True (with log2(tau_0), 1/step and nnorm, the count of leading thresholds >= FLT_MIN) when those thresholds
 * are geometric, each within 0.01 steps. */
static int geometric_thresholds(const float *tau, int32_t nt, float *l0, float *inv_step, int32_t *nnorm) {
    int32_t m = 0;
    while (m < nt && tau[m] >= 1.17549435e-38f && tau[m] <= 3.4e38f) m++;
    if (m < 8 || m > 256 || !(tau[0] > tau[1])) return 0; /* the lookup holds 256 thresholds */
    float a = log2f(tau[0]), step = a - log2f(tau[1]);
    if (!(step > 0.1f)) return 0; /* the one-gather encode needs the log2 estimate within 1/4 code */
    for (int32_t j = 2; j < m; j++)
        if (!(fabsf((a - log2f(tau[j])) / step - (float)j) <= 0.01f)) return 0;
    *l0 = a;
    *inv_step = 1.0f / step;
    *nnorm = m;
    return 1;
}

/* ---- the arithmetic fast path ----
 * With E(x) = c0 − inv·log2(x) (c0, inv the plan's floats), every normal threshold satisfies |E(tau_k) − k| ≤ B
 * (checked in double for each k at prepare time). For x in [tau[nnorm-1], xcap] the vector computes
 *   e = exponent of x, t = mantissa − 1 (both exact), P = the polynomial below (|P(t) − log2(1+t)| ≤ LG_EPS for every
 *   float t in [0, 1): an exhaustive scan, i8k_adalog_log2_poly_error), a = RN(c0 − inv·e), ê = RN(a − inv·P)
 * (two fused multiply-adds), so |ê − E(x)| ≤ A = u·|c0 − inv·e| + u·|a − inv·P| + inv·LG_EPS (u = 2^-24), bounded
 * over the exponent range at prepare time. Where ê is farther than delta ≥ A + B from every integer, the thresholds
 * k < ê are exactly those above x (E is decreasing: x < tau_k ⟺ E(x) > E(tau_k), and E(x) > ê − A > k + B for
 * k < ê − delta, E(x) < ê + A < k − B for k > ê + delta), and the later non-normal ones are ≤ tau[nnorm-1] ≤ x:
 * code = clamp(ceil(ê), 0, nnorm). A lane within delta of an integer k0 is decided by one exact comparison,
 * code = clamp(k0, 0, nnorm) + (0 ≤ k0 < nnorm and x < tau[k0]) (fixup16). Values above xcap = 2·tau_0 (code 0
 * either way) are clamped to it first. */
/* Sets the fast-path fields of a geometric plan when the margin proof goes through (see above). */
static void fast_plan(const float *tau, int32_t nt, i8k_adalog_plan *p) {
    const int32_t m = p->nnorm;
    for (int32_t j = 1; j < nt; j++) if (!(tau[j] <= tau[j - 1])) return; /* non-increasing, no NaN */
    if (!(tau[0] <= 1e38f)) return;
    double step = (log2((double)tau[0]) - log2((double)tau[m - 1])) / (double)(m - 1);
    if (!(step > 1e-3)) return;
    const float inv = (float)(1.0 / step);
    double lo = INFINITY, hi = -INFINITY;
    for (int32_t k = 0; k < m; k++) {
        double r = (double)k + (double)inv * log2((double)tau[k]);
        lo = fmin(lo, r); hi = fmax(hi, r);
    }
    const float c0 = (float)(0.5 * (lo + hi));
    double B = 0;
    for (int32_t k = 0; k < m; k++) B = fmax(B, fabs((double)c0 - (double)inv * log2((double)tau[k]) - (double)k));
    const float xcap = 2.0f * tau[0];
    const double u = ldexp(1.0, -24), iv = inv;
    const int emin = ilogbf(tau[m - 1]), emax = ilogbf(xcap);
    const double M1 = fmax(fabs((double)c0 - emin * iv), fabs((double)c0 - emax * iv)); /* ≥ |c0 − inv·e| */
    const double A = u * M1 + u * (M1 * (1 + u) + iv * (1 + LG_EPS)) + iv * LG_EPS;
    const double delta = (A + B) * 1.01 + 1e-6; /* slack for the double arithmetic here */
    if (!(delta < 0.25)) return;
    float df = (float)delta;
    if ((double)df < delta) df = nextafterf(df, INFINITY);
    int below = m < 255 ? m : 255;
    for (int32_t k = m; k < nt; k++) if (!(tau[k] <= 0)) below = -1;
    p->inv_step = inv; p->c0 = c0; p->delta = df; p->xcap = xcap; p->below = below;
    p->fast = 1;
}

/* Lanes the vector left open: near an integer (near) or outside [tau[nnorm-1], ∞) without a fixed code (slow). */
static __attribute__((noinline)) void fixup16(const float *x, const float *eh, uint32_t near, uint32_t slow, const float *tau,
                                              int32_t nt, int32_t m, int32_t *c) {
    while (near) {
        int l = __builtin_ctz(near);
        int32_t k0 = (int32_t)rintf(eh[l]);
        int32_t v = k0 < 0 ? 0 : (k0 > m ? m : k0);
        if (k0 >= 0 && k0 < m && x[l] < tau[k0]) v++;
        c[l] = v > 255 ? 255 : v;
        near &= near - 1;
    }
    while (slow) {
        int l = __builtin_ctz(slow);
        c[l] = encode1(x[l], tau, nt);
        slow &= slow - 1;
    }
}

typedef struct {
    __m512 c0, inv, delta, xcap, tlim;
    __m512i hi, below;
    __mmask16 use_below;
    const float *tau;
    int32_t nt, m;
} fastk;

T512 static inline void fast_init(fastk *k, const i8k_adalog_plan *p, const float *tau, int32_t nt) {
    k->c0 = _mm512_set1_ps(p->c0); k->inv = _mm512_set1_ps(p->inv_step); k->delta = _mm512_set1_ps(p->delta);
    k->xcap = _mm512_set1_ps(p->xcap); k->tlim = _mm512_set1_ps(tau[p->nnorm - 1]);
    k->hi = _mm512_set1_epi32(p->nnorm < 255 ? p->nnorm : 255);
    k->below = _mm512_set1_epi32(p->below);
    k->use_below = p->below >= 0 ? 0xFFFF : 0;
    k->tau = tau; k->nt = nt; k->m = p->nnorm;
}

T512 static __attribute__((noinline)) __m512i fix_vec(__m512 x, __m512 eh, __mmask16 near, __mmask16 slow, const fastk *k, __m512i c) {
    float xs[16], es[16];
    int32_t cs[16];
    _mm512_storeu_ps(xs, x); _mm512_storeu_ps(es, eh); _mm512_storeu_si512(cs, c);
    fixup16(xs, es, near, slow, k->tau, k->nt, k->m, cs);
    return _mm512_loadu_si512(cs);
}

/* The estimate for the lanes in mk: codes (int32 lanes), and the lanes it cannot decide: near an integer (near) or
 * outside [tau[nnorm-1], ∞) without a fixed code (slow), for fix_vec. No branches, so that several vectors interleave
 * (the chain from x to the code is long). */
I8K_INLINE T512 __m512i encode16_est(__m512 x, __mmask16 mk, const fastk *k, __m512 *eh_out, __mmask16 *near_out,
                                    __mmask16 *slow_out) {
    __mmask16 fast = _mm512_cmp_ps_mask(x, k->tlim, _CMP_GE_OQ) & mk;
    __m512 xc = _mm512_min_ps(x, k->xcap);
    __m512 e = _mm512_getexp_ps(xc);
    __m512 t = _mm512_sub_ps(_mm512_getmant_ps(xc, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero), _mm512_set1_ps(1.0f));
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(LG5), t, _mm512_set1_ps(LG4));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LG3));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LG2));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LG1));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LG0));
    __m512 eh = _mm512_fnmadd_ps(p, k->inv, _mm512_fnmadd_ps(e, k->inv, k->c0));
    __m512 r = _mm512_roundscale_ps(eh, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask16 near = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(eh, r)), k->delta, _CMP_LE_OQ) & fast;
    __m512i c = _mm512_cvt_roundps_epi32(eh, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    c = _mm512_min_epi32(_mm512_max_epi32(c, _mm512_setzero_si512()), k->hi);
    __mmask16 below = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ) & mk & (__mmask16)~fast & k->use_below;
    *eh_out = eh; *near_out = near; *slow_out = mk & (__mmask16)~(fast | below);
    return _mm512_mask_mov_epi32(c, below, k->below);
}

/* Exact codes of one vector's lanes in mk. */
I8K_INLINE T512 __m512i encode16_fast(__m512 x, __mmask16 mk, const fastk *k) {
    __m512 eh;
    __mmask16 near, slow;
    __m512i c = encode16_est(x, mk, k, &eh, &near, &slow);
    if (__builtin_expect((near | slow) != 0, 0)) c = fix_vec(x, eh, near, slow, k, c);
    return c;
}

/* Exact codes of four vectors (64 lanes, all valid), their estimates interleaved. */
I8K_INLINE T512 void encode64_fast(const __m512 x[4], const fastk *k, __m512i c[4]) {
    __m512 eh[4];
    __mmask16 near[4], slow[4];
    for (int j = 0; j < 4; j++) c[j] = encode16_est(x[j], 0xFFFF, k, &eh[j], &near[j], &slow[j]);
    if (__builtin_expect((near[0] | slow[0] | near[1] | slow[1] | near[2] | slow[2] | near[3] | slow[3]) != 0, 0))
        for (int j = 0; j < 4; j++)
            if (near[j] | slow[j]) c[j] = fix_vec(x[j], eh[j], near[j], slow[j], k, c[j]);
}

T512 static void encode512_fast(const float *u, size_t n, const float *tau, int32_t nt, const i8k_adalog_plan *p, uint8_t *codes) {
    fastk k;
    fast_init(&k, p, tau, nt);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 x[4];
        __m512i c[4];
        for (int j = 0; j < 4; j++) x[j] = _mm512_loadu_ps(u + i + 16 * j);
        encode64_fast(x, &k, c);
        for (int j = 0; j < 4; j++) _mm_storeu_si128((__m128i *)(codes + i + 16 * j), _mm512_cvtepi32_epi8(c[j]));
    }
    for (; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        _mm512_mask_cvtepi32_storeu_epi8(codes + i, mk, encode16_fast(_mm512_maskz_loadu_ps(mk, u + i), mk, &k));
    }
}

/* 256-entry int16 table in eight registers: entries 0...nt of the table, zeros above (masked loads, no copy). */
T512 static inline void load_table256_epi16(const int16_t *table, int32_t nt, __m512i tb[8]) {
    for (int32_t k = 0; k < 8; k++) {
        int32_t left = nt + 1 - 32 * k;
        __mmask32 m = left <= 0 ? 0 : (left >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << left) - 1));
        tb[k] = _mm512_maskz_loadu_epi16(m, table + (left > 0 ? 32 * k : 0));
    }
}
/* tb[c] for 32 int16 codes c in [0, 256): vpermt2w looks up 64 entries per register pair, bits 6-7 of the code pick
 * the pair (no gathers). */
T512 static inline __m512i lookup256_epi16(const __m512i tb[8], __m512i c) {
    __m512i r0 = _mm512_permutex2var_epi16(tb[0], c, tb[1]), r1 = _mm512_permutex2var_epi16(tb[2], c, tb[3]);
    __m512i r2 = _mm512_permutex2var_epi16(tb[4], c, tb[5]), r3 = _mm512_permutex2var_epi16(tb[6], c, tb[7]);
    __mmask32 m6 = _mm512_test_epi16_mask(c, _mm512_set1_epi16(64)), m7 = _mm512_test_epi16_mask(c, _mm512_set1_epi16(128));
    return _mm512_mask_blend_epi16(m7, _mm512_mask_blend_epi16(m6, r0, r1), _mm512_mask_blend_epi16(m6, r2, r3));
}

/* codes -> int16 table values; codes above nt read 0. */
T512 static void codes512(const uint8_t *codes, size_t n, const int16_t *table, int32_t nt, int16_t *dst) {
    /* entries 0...nt of the table, zeros above: masked loads (no copy; this runs once per attention row) */
    __m512i tb[8];
    load_table256_epi16(table, nt, tb);
    for (size_t i = 0; i < n; i += 32) {
        __mmask32 mk = (n - i) >= 32 ? 0xFFFFFFFFu : ((1u << (n - i)) - 1);
        __m512i c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mk, codes + i));
        _mm512_mask_storeu_epi16(dst + i, mk, lookup256_epi16(tb, c));
    }
}
#endif

void i8k_adalog_prepare(const float *tau, int32_t nt, i8k_adalog_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->below = -1;
#ifdef I8K_X86
    if (nt > 32) plan->geometric = geometric_thresholds(tau, nt, &plan->l0, &plan->inv_step, &plan->nnorm);
    if (plan->geometric) fast_plan(tau, nt, plan);
#else
    (void)tau; (void)nt;
#endif
}

void i8k_adalog_encode_planned(int isa, const float *u, size_t n, const float *tau, int32_t nt, const i8k_adalog_plan *plan,
                               uint8_t *codes) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI && plan->fast) { encode512_fast(u, n, tau, nt, plan, codes); return; }
    if (isa == I8K_ISA_AVX512VNNI && plan->geometric) {
        encode512_geometric(u, n, tau, nt, plan->nnorm, plan->l0, plan->inv_step, codes);
        return;
    }
    if (isa == I8K_ISA_AVX512VNNI && nt >= 1 && (nt & (nt - 1)) == 0) { encode512(u, n, tau, nt, codes); return; }
#endif
    (void)isa; (void)plan;
    for (size_t i = 0; i < n; i++) codes[i] = encode1(u[i], tau, nt); /* 8-bit AdaLog: code 255 doubles as the zero state */
}

void i8k_adalog_encode(int isa, const float *u, size_t n, const float *tau, int32_t nt, uint8_t *codes) {
    i8k_adalog_plan plan;
    i8k_adalog_prepare(tau, nt, &plan);
    i8k_adalog_encode_planned(isa, u, n, tau, nt, &plan, codes);
}

void i8k_codes_to_s16(int isa, const uint8_t *codes, size_t n, const int16_t *table, int32_t nt, int16_t *dst) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI && nt <= 256) { codes512(codes, n, table, nt, dst); return; }
#endif
    (void)isa;
    for (size_t i = 0; i < n; i++) dst[i] = codes[i] <= nt ? table[codes[i]] : 0;
}

/* ---------------- fused GELU + shift + codes (+ table values) ---------------- */
#ifdef I8K_X86
T512 static void gelu_encode512(const float *x, size_t n, float shift, const float *tau, int32_t nt, const i8k_adalog_plan *p,
                                uint8_t *codes, const int16_t *table, int32_t table_nt, int16_t *values) {
    fastk k;
    fast_init(&k, p, tau, nt);
    __m512i tb[8];
    if (values) load_table256_epi16(table, table_nt, tb);
    const __m512 sh = _mm512_set1_ps(shift);
    const int add = shift != 0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 g[4];
        __m512i c[4];
        for (int j = 0; j < 4; j++) {
            g[j] = gelu512(_mm512_loadu_ps(x + i + 16 * j));
            if (add) g[j] = _mm512_add_ps(g[j], sh);
        }
        encode64_fast(g, &k, c);
        for (int j = 0; j < 4; j++) _mm_storeu_si128((__m128i *)(codes + i + 16 * j), _mm512_cvtepi32_epi8(c[j]));
        if (values)
            for (int h = 0; h < 2; h++) {
                __m512i c16 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(c[2 * h])), _mm512_cvtepi32_epi16(c[2 * h + 1]), 1);
                _mm512_storeu_si512(values + i + 32 * h, lookup256_epi16(tb, c16));
            }
    }
    for (; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        __m512 g = gelu512(_mm512_maskz_loadu_ps(mk, x + i));
        if (add) g = _mm512_add_ps(g, sh);
        __m512i c = encode16_fast(g, mk, &k);
        _mm512_mask_cvtepi32_storeu_epi8(codes + i, mk, c);
        if (values) _mm512_mask_storeu_epi16(values + i, (__mmask32)mk, lookup256_epi16(tb, _mm512_zextsi256_si512(_mm512_cvtepi32_epi16(c))));
    }
}
#endif

void i8k_gelu_adalog_encode(int isa, const float *x, size_t n, float shift, const float *tau, int32_t nt,
                            const i8k_adalog_plan *plan, uint8_t *codes, const int16_t *table, int32_t table_nt,
                            int16_t *values) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI && plan->fast && (!values || table_nt <= 256)) {
        gelu_encode512(x, n, shift, tau, nt, plan, codes, table, table_nt, values);
        return;
    }
#endif
    float tmp[512];
    for (size_t i = 0; i < n; i += 512) {
        size_t m = n - i < 512 ? n - i : 512;
        i8k_gelu(isa, x + i, m, tmp);
        if (shift != 0) for (size_t j = 0; j < m; j++) tmp[j] = tmp[j] + shift;
        i8k_adalog_encode_planned(isa, tmp, m, tau, nt, plan, codes + i);
        if (values) i8k_codes_to_s16(isa, codes + i, m, table, table_nt, values + i);
    }
}

/* ---------------- fused softmax + codes + table values ---------------- */
#ifdef I8K_X86
T512 static void softmax_adalog512(const float *x, size_t n, float *work, const float *tau, int32_t nt, const i8k_adalog_plan *p,
                                   const int16_t *table, const int16_t *table_high, uint8_t *codes, int16_t *L, int16_t *Lh) {
    const __m512 sv = _mm512_set1_ps(softmax512_exp(x, n, work));
    fastk k;
    fast_init(&k, p, tau, nt);
    __m512i tb[8], th[8];
    load_table256_epi16(table, nt, tb);
    /* the high halves are non-zero only for the largest probabilities (the first codes): when they all sit in the
     * first 64 entries, one permute and a mask look them up */
    int32_t hlast = -1;
    if (table_high) {
        load_table256_epi16(table_high, nt, th);
        for (int32_t j = 0; j <= nt; j++) if (table_high[j] != 0) hlast = j;
    }
    const int h64 = hlast < 64;
#define LOOKUP_HIGH(c) (h64 ? _mm512_maskz_permutex2var_epi16(_mm512_cmplt_epu16_mask((c), _mm512_set1_epi16(64)), th[0], (c), th[1]) \
                            : lookup256_epi16(th, (c)))
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        /* p = e / s with softmax512's bits */
        __m512 pv[4];
        __m512i c[4];
        for (int j = 0; j < 4; j++) pv[j] = _mm512_div_ps(_mm512_loadu_ps(work + i + 16 * j), sv);
        encode64_fast(pv, &k, c);
        for (int h = 0; h < 2; h++) {
            __m512i c16 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(c[2 * h])), _mm512_cvtepi32_epi16(c[2 * h + 1]), 1);
            _mm256_storeu_si256((__m256i *)(codes + i + 32 * h), _mm512_cvtepi16_epi8(c16));
            _mm512_storeu_si512(L + i + 32 * h, lookup256_epi16(tb, c16));
            if (table_high) _mm512_storeu_si512(Lh + i + 32 * h, LOOKUP_HIGH(c16));
        }
    }
    for (; i < n; i += 16) {
        __mmask16 mk = MASK16(n - i);
        __m512i c = encode16_fast(_mm512_div_ps(_mm512_maskz_loadu_ps(mk, work + i), sv), mk, &k);
        __m512i c16 = _mm512_zextsi256_si512(_mm512_cvtepi32_epi16(c));
        _mm512_mask_cvtepi32_storeu_epi8(codes + i, mk, c);
        _mm512_mask_storeu_epi16(L + i, (__mmask32)mk, lookup256_epi16(tb, c16));
        if (table_high) _mm512_mask_storeu_epi16(Lh + i, (__mmask32)mk, LOOKUP_HIGH(c16));
    }
#undef LOOKUP_HIGH
}
#endif

void i8k_softmax_adalog_row(int isa, const float *x, size_t n, float *work, const float *tau, int32_t nt,
                            const i8k_adalog_plan *plan, const int16_t *table, const int16_t *table_high, uint8_t *codes,
                            int16_t *L, int16_t *Lh) {
#ifdef I8K_X86
    if (isa == I8K_ISA_AVX512VNNI && plan->fast && nt <= 256) {
        softmax_adalog512(x, n, work, tau, nt, plan, table, table_high, codes, L, Lh);
        return;
    }
#endif
    i8k_softmax_row(isa, x, n, work);
    i8k_adalog_encode_planned(isa, work, n, tau, nt, plan, codes);
    i8k_codes_to_s16(isa, codes, n, table, nt, L);
    if (table_high) i8k_codes_to_s16(isa, codes, n, table_high, nt, Lh);
}
