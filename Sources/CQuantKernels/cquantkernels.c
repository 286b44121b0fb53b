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

void qk_adalog_fq_log(const float *l, const float *x, long n, float log2s, float dmax, float r, float q,
                      int nlev, const float *levels, float s, float shift, float *out, int mode) {
    const float fnlev = (float)nlev;
    for (long i = 0; i < n; i++) {
        float d = log2s - l[i];
        d = d < 0.0f ? 0.0f : d;
        d = d > dmax ? dmax : d; /* also maps +inf (l = -inf) to dmax */
        float k = rne((d * r) / q);
        float v = k >= fnlev ? 0.0f : levels[(int)k];
        float xh = v * s - shift;
        out[i] = mode == 0 ? xh : x[i] - xh;
    }
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
