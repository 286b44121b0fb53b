#include "cquantkernels.h"

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

void qk_uniform_fq(const float *x, long n, float s, float z, float qmin, float qmax, float *out, int mode) {
    if (mode == 0) {
        for (long i = 0; i < n; i++) out[i] = fq1(x[i], s, z, qmin, qmax);
    } else {
        for (long i = 0; i < n; i++) out[i] = x[i] - fq1(x[i], s, z, qmin, qmax);
    }
}

double qk_uniform_sse(const float *x, long n, float s, float z, float qmin, float qmax) {
    double total = 0;
    long i = 0;
    while (i < n) {
        long end = i + 512 < n ? i + 512 : n;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long j = i;
        for (; j + 8 <= end; j += 8) {
            for (int u = 0; u < 8; u++) {
                float d = x[j + u] - fq1(x[j + u], s, z, qmin, qmax);
                acc[u] += d * d;
            }
        }
        for (; j < end; j++) { float d = x[j] - fq1(x[j], s, z, qmin, qmax); acc[0] += d * d; }
        for (int u = 0; u < 8; u++) total += acc[u];
        i = end;
    }
    return total;
}

void qk_uniform_sse_cols(const float *x, long rows, long cols, const float *s, const float *z,
                         float qmin, float qmax, double *acc) {
    float part[4096];
    for (long c0 = 0; c0 < cols; c0 += 4096) {
        long cn = cols - c0 < 4096 ? cols - c0 : 4096;
        for (long r0 = 0; r0 < rows; r0 += 256) {
            long r1 = r0 + 256 < rows ? r0 + 256 : rows;
            for (long c = 0; c < cn; c++) part[c] = 0;
            for (long r = r0; r < r1; r++) {
                const float *row = x + r * cols + c0;
                for (long c = 0; c < cn; c++) {
                    float d = row[c] - fq1(row[c], s[c0 + c], z[c0 + c], qmin, qmax);
                    part[c] += d * d;
                }
            }
            for (long c = 0; c < cn; c++) acc[c0 + c] += part[c];
        }
    }
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
#include <immintrin.h>
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

void qk_adalog_fq_log(const float *l, const float *x, long n, float log2s, float dmax, float r, float q,
                      int nlev, const float *levels, float s, float shift, float *out, int mode) {
#if defined(__x86_64__)
    static int has512 = -1;
    if (has512 < 0) { __builtin_cpu_init(); has512 = __builtin_cpu_supports("avx512f") ? 1 : 0; }
    if (has512 && nlev < 32) {
        adalog_avx512(l, x, n, log2s, dmax, r, q, nlev, levels, s, shift, out, mode);
        return;
    }
#endif
    adalog_portable(l, x, n, log2s, dmax, r, q, nlev, levels, s, shift, out, mode);
}

double qk_dot(const float *a, const float *b, long n) {
    double total = 0;
    for (long i = 0; i < n; i += 512) {
        long end = i + 512 < n ? i + 512 : n;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long j = i;
        for (; j + 8 <= end; j += 8)
            for (int u = 0; u < 8; u++) acc[u] += a[j + u] * b[j + u];
        for (; j < end; j++) acc[0] += a[j] * b[j];
        for (int u = 0; u < 8; u++) total += acc[u];
    }
    return total;
}

double qk_sum_sq_of_sum(const float *a, const float *b, long n) {
    double total = 0;
    for (long i = 0; i < n; i += 512) {
        long end = i + 512 < n ? i + 512 : n;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long j = i;
        for (; j + 8 <= end; j += 8)
            for (int u = 0; u < 8; u++) { float t = a[j + u] + b[j + u]; acc[u] += t * t; }
        for (; j < end; j++) { float t = a[j] + b[j]; acc[0] += t * t; }
        for (int u = 0; u < 8; u++) total += acc[u];
    }
    return total;
}

double qk_sse(const float *a, const float *b, long n) {
    double total = 0;
    for (long i = 0; i < n; i += 512) {
        long end = i + 512 < n ? i + 512 : n;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        long j = i;
        for (; j + 8 <= end; j += 8)
            for (int u = 0; u < 8; u++) { float t = a[j + u] - b[j + u]; acc[u] += t * t; }
        for (; j < end; j++) { float t = a[j] - b[j]; acc[0] += t * t; }
        for (int u = 0; u < 8; u++) total += acc[u];
    }
    return total;
}
