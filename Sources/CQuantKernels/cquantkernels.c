#include "cquantkernels.h"
/* No a*b+c fusing anywhere: the ISA-specific forms (and their scalar tails) must round like the portable code. */
#pragma STDC FP_CONTRACT OFF
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Round half to even (the FPU default mode) for |v| <= 2^22; larger values are clamped first, which
 * is harmless because every caller clamps codes to at most 2^8. C without -ffast-math keeps the
 * two additions as written. */
static inline float rne(float v) {
    const float magic = 12582912.0f;
    v = v > 4194304.0f ? 4194304.0f : v;
    v = v < -4194304.0f ? -4194304.0f : v;
    return (v + magic) - magic;
}

static inline float fq1(float x, float s, float z, float qmin, float qmax) {
    float q = rne(x / s) + z;
    q = q < qmin ? qmin : q;
    q = q > qmax ? qmax : q;
    return (q - z) * s;
}

static void uniform_fq_portable(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode) {
    if (mode == 0) {
        for (long i = 0; i < n; i++) out[i] = fq1(x[i], s, z, qmin, qmax);
    } else {
        for (long i = 0; i < n; i++) out[i] = x[i] - fq1(x[i], s, z, qmin, qmax);
    }
}

/* One 512-value block from j on: the squared errors go into the 8 partial sums acc (the portable order), which
 * are then added in double. Shared by the portable loop and the vector form's tail. */
static double uniform_sse_block(const float *x, long j, long end, float s, float z, float qmin, float qmax, float *acc) {
    for (; j + 8 <= end; j += 8) {
        for (int u = 0; u < 8; u++) {
            float d = x[j + u] - fq1(x[j + u], s, z, qmin, qmax);
            acc[u] += d * d;
        }
    }
    for (; j < end; j++) { float d = x[j] - fq1(x[j], s, z, qmin, qmax); acc[0] += d * d; }
    double total = 0;
    for (int u = 0; u < 8; u++) total += acc[u];
    return total;
}

static double uniform_sse_portable(const float *x, long n, float s, float z, float qmin, float qmax) {
    double total = 0;
    for (long i = 0; i < n; i += 512) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        total += uniform_sse_block(x, i, i + 512 < n ? i + 512 : n, s, z, qmin, qmax, acc);
    }
    return total;
}

/* One row of n columns: part[c] += (x - fq(x))^2 with column c's (s, z). */
typedef void (*sse_row_fn)(const float *row, long n, const float *s, const float *z, float qmin, float qmax, float *part);

static void uniform_sse_row_portable(const float *row, long n, const float *s, const float *z, float qmin, float qmax,
                                     float *part) {
    for (long c = 0; c < n; c++) {
        float d = row[c] - fq1(row[c], s[c], z[c], qmin, qmax);
        part[c] += d * d;
    }
}

/* The per-column sums over blocks of 256 rows (float partial sums per block, added into acc in double), with the
 * row loop of either ISA: both orders are the same, so the results are too. */
static void uniform_sse_cols_blocked(const float *x, long rows, long cols, const float *s, const float *z, float qmin,
                                     float qmax, double *acc, sse_row_fn row_fn) {
    float part[4096];
    for (long c0 = 0; c0 < cols; c0 += 4096) {
        long cn = cols - c0 < 4096 ? cols - c0 : 4096;
        for (long r0 = 0; r0 < rows; r0 += 256) {
            long r1 = r0 + 256 < rows ? r0 + 256 : rows;
            for (long c = 0; c < cn; c++) part[c] = 0;
            for (long r = r0; r < r1; r++) row_fn(x + r * cols + c0, cn, s + c0, z + c0, qmin, qmax, part);
            for (long c = 0; c < cn; c++) acc[c0 + c] += part[c];
        }
    }
}

static void uniform_sse_cols_portable(const float *x, long rows, long cols, const float *s, const float *z,
                                      float qmin, float qmax, double *acc) {
    uniform_sse_cols_blocked(x, rows, cols, s, z, qmin, qmax, acc, uniform_sse_row_portable);
}

void qk_uniform_fq_cols(const float *x, long rows, long cols, const float *s, const float *z,
                        float qmin, float qmax, float *out, int mode) {
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        float *o = out + r * cols;
        if (mode == 0) {
            for (long c = 0; c < cols; c++) o[c] = fq1(row[c], s[c], z[c], qmin, qmax);
        } else {
            for (long c = 0; c < cols; c++) o[c] = row[c] - fq1(row[c], s[c], z[c], qmin, qmax);
        }
    }
}

static void adalog_portable(const float *l, const float *x, long n, float log2s, float dmax, float r, float q,
                            int nlev, const float *levels, float s, float shift, float *out, int mode) {
    const float fnlev = (float)nlev;
    int idx[256];
    for (long i0 = 0; i0 < n; i0 += 256) {
        long m = n - i0 < 256 ? n - i0 : 256;
        for (long j = 0; j < m; j++) {
            float d = log2s - l[i0 + j];
            d = d < 0.0f ? 0.0f : d;
            d = d > dmax ? dmax : d; /* also maps +inf (l = -inf) to dmax */
            float k = rne((d * r) / q);
            k = k > fnlev ? fnlev : k;
            idx[j] = (int)k;
        }
        for (long j = 0; j < m; j++) {
            int k = idx[j];
            float v = k >= nlev ? 0.0f : levels[k];
            float xh = v * s - shift;
            out[i0 + j] = mode == 0 ? xh : x[i0 + j] - xh;
        }
    }
}

#if defined(__x86_64__)
/* 16 lanes; the <= 32-entry table (b <= 4) lives in two registers and is read with vpermi2ps. */
__attribute__((target("avx512f")))
static void adalog_avx512(const float *l, const float *x, long n, float log2s, float dmax, float r, float q,
                          int nlev, const float *levels, float s, float shift, float *out, int mode) {
    float tab[32];
    for (int i = 0; i < 32; i++) tab[i] = i < nlev ? levels[i] : 0.0f;
    const __m512 lo = _mm512_loadu_ps(tab), hi = _mm512_loadu_ps(tab + 16);
    const __m512 vlog2s = _mm512_set1_ps(log2s), vzero = _mm512_setzero_ps(), vdmax = _mm512_set1_ps(dmax);
    const __m512 vr = _mm512_set1_ps(r), vq = _mm512_set1_ps(q), magic = _mm512_set1_ps(12582912.0f);
    const __m512 vnlev = _mm512_set1_ps((float)nlev), vs = _mm512_set1_ps(s), vshift = _mm512_set1_ps(shift);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(vlog2s, _mm512_loadu_ps(l + i));
        d = _mm512_max_ps(d, vzero);   /* d < 0 -> 0 */
        d = _mm512_min_ps(d, vdmax);   /* d > dmax (incl. +inf) -> dmax */
        __m512 t = _mm512_div_ps(_mm512_mul_ps(d, vr), vq);
        __m512 k = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
        k = _mm512_min_ps(k, vnlev);
        __m512i ki = _mm512_cvttps_epi32(k);
        __m512 v = _mm512_permutex2var_ps(lo, ki, hi);
        __m512 xh = _mm512_sub_ps(_mm512_mul_ps(v, vs), vshift);
        if (mode != 0) xh = _mm512_sub_ps(_mm512_loadu_ps(x + i), xh);
        _mm512_storeu_ps(out + i, xh);
    }
    if (i < n) adalog_portable(l + i, x + i, n - i, log2s, dmax, r, q, nlev, levels, s, shift, out + i, mode);
}
#endif

#if defined(__x86_64__)
/* The AVX-512 forms of the uniform loops. Every lane does the portable arithmetic in the same order (x / s, the
 * magic-number rounding, the clamps written as min/max with the portable comparisons' NaN behaviour, (q - z) * s,
 * no FMA), and the squared errors go into the same 8 partial sums in the same order (the low 8 lanes, then the high
 * 8), so results are bit-identical to the portable code, only faster (the division dominates). */
#define QK512 __attribute__((target("avx512f")))
QK512 static inline __m512 fq512(__m512 x, __m512 s, __m512 z, __m512 qmin, __m512 qmax) {
    const __m512 big = _mm512_set1_ps(4194304.0f), nbig = _mm512_set1_ps(-4194304.0f);
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 v = _mm512_div_ps(x, s);
    v = _mm512_min_ps(big, v);    /* v > 2^22 ? 2^22 : v  (NaN stays NaN) */
    v = _mm512_max_ps(nbig, v);   /* v < -2^22 ? -2^22 : v */
    __m512 q = _mm512_add_ps(_mm512_sub_ps(_mm512_add_ps(v, magic), magic), z);
    q = _mm512_max_ps(qmin, q);   /* q < qmin ? qmin : q */
    q = _mm512_min_ps(qmax, q);   /* q > qmax ? qmax : q */
    return _mm512_mul_ps(_mm512_sub_ps(q, z), s);
}

QK512 static void uniform_fq_avx512(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode) {
    const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z), lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i), f = fq512(xv, vs, vz, lo, hi);
        _mm512_storeu_ps(out + i, mode == 0 ? f : _mm512_sub_ps(xv, f));
    }
    if (i < n) uniform_fq_portable(x + i, n - i, s, z, qmin, qmax, out + i, mode);
}

QK512 static double uniform_sse_avx512(const float *x, long n, float s, float z, float qmin, float qmax) {
    const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z), lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
    double total = 0;
    long i = 0;
    while (i < n) {
        long end = i + 512 < n ? i + 512 : n;
        __m256 acc = _mm256_setzero_ps();
        long j = i;
        for (; j + 16 <= end; j += 16) {
            __m512 xv = _mm512_loadu_ps(x + j), d = _mm512_sub_ps(xv, fq512(xv, vs, vz, lo, hi));
            __m512 d2 = _mm512_mul_ps(d, d);
            acc = _mm256_add_ps(acc, _mm512_castps512_ps256(d2));
            acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d2), 1)));
        }
        float a[8];
        _mm256_storeu_ps(a, acc);
        total += uniform_sse_block(x, j, end, s, z, qmin, qmax, a);
        i = end;
    }
    return total;
}

QK512 static void uniform_sse_row_avx512(const float *row, long n, const float *s, const float *z, float qmin, float qmax,
                                         float *part) {
    const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
    long c = 0;
    for (; c + 16 <= n; c += 16) {
        __m512 xv = _mm512_loadu_ps(row + c);
        __m512 d = _mm512_sub_ps(xv, fq512(xv, _mm512_loadu_ps(s + c), _mm512_loadu_ps(z + c), lo, hi));
        _mm512_storeu_ps(part + c, _mm512_add_ps(_mm512_loadu_ps(part + c), _mm512_mul_ps(d, d)));
    }
    if (c < n) uniform_sse_row_portable(row + c, n - c, s + c, z + c, qmin, qmax, part + c);
}

static int has_avx512f(void) {
    static int has = -1;
    if (has < 0) { __builtin_cpu_init(); has = __builtin_cpu_supports("avx512f") ? 1 : 0; }
    return has;
}
#endif

void qk_uniform_fq(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode) {
#if defined(__x86_64__)
    if (has_avx512f()) { uniform_fq_avx512(x, n, s, z, qmin, qmax, out, mode); return; }
#endif
    uniform_fq_portable(x, n, s, z, qmin, qmax, out, mode);
}

double qk_uniform_sse(const float *x, long n, float s, float z, float qmin, float qmax) {
#if defined(__x86_64__)
    if (has_avx512f()) return uniform_sse_avx512(x, n, s, z, qmin, qmax);
#endif
    return uniform_sse_portable(x, n, s, z, qmin, qmax);
}

void qk_uniform_sse_cols(const float *x, long rows, long cols, const float *s, const float *z,
                         float qmin, float qmax, double *acc) {
#if defined(__x86_64__)
    if (has_avx512f()) { uniform_sse_cols_blocked(x, rows, cols, s, z, qmin, qmax, acc, uniform_sse_row_avx512); return; }
#endif
    uniform_sse_cols_portable(x, rows, cols, s, z, qmin, qmax, acc);
}

/* Portable forms, for tests that pin the vector forms to them bit for bit. */
void qk_uniform_fq_portable(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode) {
    uniform_fq_portable(x, n, s, z, qmin, qmax, out, mode);
}
double qk_uniform_sse_portable(const float *x, long n, float s, float z, float qmin, float qmax) {
    return uniform_sse_portable(x, n, s, z, qmin, qmax);
}
void qk_uniform_sse_cols_portable(const float *x, long rows, long cols, const float *s, const float *z,
                                  float qmin, float qmax, double *acc) {
    uniform_sse_cols_portable(x, rows, cols, s, z, qmin, qmax, acc);
}

void qk_adalog_fq_log(const float *l, const float *x, long n, float log2s, float dmax, float r, float q,
                      int nlev, const float *levels, float s, float shift, float *out, int mode) {
#if defined(__x86_64__)
    if (has_avx512f() && nlev < 32) {
        adalog_avx512(l, x, n, log2s, dmax, r, q, nlev, levels, s, shift, out, mode);
        return;
    }
#endif
    adalog_portable(l, x, n, log2s, dmax, r, q, nlev, levels, s, shift, out, mode);
}

/* One 512-value block from j on, continuing the 8 partial sums acc (the portable order), then their double total.
 * Shared by the portable loops and the vector forms' tails. */
static double dot_tail(const float *a, const float *b, long j, long end, float *acc) {
    for (; j + 8 <= end; j += 8)
        for (int u = 0; u < 8; u++) acc[u] += a[j + u] * b[j + u];
    for (; j < end; j++) acc[0] += a[j] * b[j];
    double total = 0;
    for (int u = 0; u < 8; u++) total += acc[u];
    return total;
}
static double sum_sq_of_sum_tail(const float *a, const float *b, long j, long end, float *acc) {
    for (; j + 8 <= end; j += 8)
        for (int u = 0; u < 8; u++) { float t = a[j + u] + b[j + u]; acc[u] += t * t; }
    for (; j < end; j++) { float t = a[j] + b[j]; acc[0] += t * t; }
    double total = 0;
    for (int u = 0; u < 8; u++) total += acc[u];
    return total;
}
static double sse_tail(const float *a, const float *b, long j, long end, float *acc) {
    for (; j + 8 <= end; j += 8)
        for (int u = 0; u < 8; u++) { float t = a[j + u] - b[j + u]; acc[u] += t * t; }
    for (; j < end; j++) { float t = a[j] - b[j]; acc[0] += t * t; }
    double total = 0;
    for (int u = 0; u < 8; u++) total += acc[u];
    return total;
}
#define QK_SUM_PORTABLE(NAME)                                                    \
    static double NAME##_portable(const float *a, const float *b, long n) {     \
        double total = 0;                                                        \
        for (long i = 0; i < n; i += 512) {                                      \
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                             \
            total += NAME##_tail(a, b, i, i + 512 < n ? i + 512 : n, acc);       \
        }                                                                        \
        return total;                                                            \
    }
QK_SUM_PORTABLE(dot)
QK_SUM_PORTABLE(sum_sq_of_sum)
QK_SUM_PORTABLE(sse)

#if defined(__x86_64__)
/* AVX-512 forms of the three sums: 16 products per step, added to the same 8 partial sums in the portable order
 * (low 8 lanes, then high 8), so the results are bit-identical. OP combines a and b lane-wise. */
#define QK_SUM512(NAME, OP)                                                                                   \
    QK512 static double NAME##_avx512(const float *a, const float *b, long n) {                              \
        double total = 0;                                                                                     \
        for (long i = 0; i < n; i += 512) {                                                                   \
            long end = i + 512 < n ? i + 512 : n;                                                             \
            __m256 acc = _mm256_setzero_ps();                                                                 \
            long j = i;                                                                                       \
            for (; j + 16 <= end; j += 16) {                                                                  \
                __m512 va = _mm512_loadu_ps(a + j), vb = _mm512_loadu_ps(b + j);                              \
                __m512 t = OP;                                                                                \
                acc = _mm256_add_ps(acc, _mm512_castps512_ps256(t));                                          \
                acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));  \
            }                                                                                                 \
            float part[8];                                                                                    \
            _mm256_storeu_ps(part, acc);                                                                      \
            total += NAME##_tail(a, b, j, end, part);                                                         \
        }                                                                                                     \
        return total;                                                                                         \
    }
QK_SUM512(dot, _mm512_mul_ps(va, vb))
QK_SUM512(sum_sq_of_sum, _mm512_mul_ps(_mm512_add_ps(va, vb), _mm512_add_ps(va, vb)))
QK_SUM512(sse, _mm512_mul_ps(_mm512_sub_ps(va, vb), _mm512_sub_ps(va, vb)))
#endif

double qk_dot(const float *a, const float *b, long n) {
#if defined(__x86_64__)
    if (has_avx512f()) return dot_avx512(a, b, n);
#endif
    return dot_portable(a, b, n);
}
double qk_sum_sq_of_sum(const float *a, const float *b, long n) {
#if defined(__x86_64__)
    if (has_avx512f()) return sum_sq_of_sum_avx512(a, b, n);
#endif
    return sum_sq_of_sum_portable(a, b, n);
}
double qk_sse(const float *a, const float *b, long n) {
#if defined(__x86_64__)
    if (has_avx512f()) return sse_avx512(a, b, n);
#endif
    return sse_portable(a, b, n);
}
double qk_dot_portable(const float *a, const float *b, long n) { return dot_portable(a, b, n); }
double qk_sum_sq_of_sum_portable(const float *a, const float *b, long n) { return sum_sq_of_sum_portable(a, b, n); }
double qk_sse_portable(const float *a, const float *b, long n) { return sse_portable(a, b, n); }
