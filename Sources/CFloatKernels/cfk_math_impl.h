/* Element-wise math, softmax, layernorm, binary ops and depthwise conv, written once as branch-free
 * scalar C and compiled per ISA (included by cfk_math.c with CFK_SFX / CFK_TGT / CFK_FMA defined),
 * so the loop vectoriser emits AVX-512 or AVX2 code for the same source.
 * Polynomial coefficients: tools/fit_float_math.py. */

#define CFK_CAT2(a, b) a##b
#define CFK_CAT(a, b) CFK_CAT2(a, b)
#define FN(name) CFK_CAT(name, CFK_SFX)
#define SFN static inline __attribute__((always_inline)) CFK_TGT

SFN float FN(as_float)(int32_t i) { float f; memcpy(&f, &i, 4); return f; }

/* exp(x) to ~1 ulp: x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial, 2^n applied in two
 * halves so results in the subnormal range come out right. */
SFN float FN(vexp)(float x) {
    x = x > 88.8f ? 88.8f : x;
    x = x < -104.0f ? -104.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = CFK_FMA(n, -0.693145751953125f, x);
    r = CFK_FMA(n, -1.428606765330187e-06f, r);
    float p = 1.0f / 5040.0f;
    p = CFK_FMA(p, r, 1.0f / 720.0f);
    p = CFK_FMA(p, r, 1.0f / 120.0f);
    p = CFK_FMA(p, r, 1.0f / 24.0f);
    p = CFK_FMA(p, r, 1.0f / 6.0f);
    p = CFK_FMA(p, r, 0.5f);
    p = CFK_FMA(p, r, 1.0f);
    p = CFK_FMA(p, r, 1.0f);
    int32_t ni = (int32_t)n;
    int32_t n1 = ni >> 1, n2 = ni - n1;
    return p * FN(as_float)((n1 + 127) << 23) * FN(as_float)((n2 + 127) << 23);
}

/* exp(-z*z) with z*z split into hi + lo (FMA) so large z keep full relative accuracy. */
SFN float FN(vexp_negsq)(float z) {
    float hi = z * z;
    float lo = CFK_FMA(z, z, -hi);
    return FN(vexp)(-hi) * (1.0f - lo);
}

/* erf(z) = z P(z^2) for |z| < 0.75 */
SFN float FN(erf_small)(float z) {
    float t = z * z;
    float p = -6.775743503e-04f;
    p = CFK_FMA(p, t, 5.118288281e-03f);
    p = CFK_FMA(p, t, -2.683675132e-02f);
    p = CFK_FMA(p, t, 1.128342553e-01f);
    p = CFK_FMA(p, t, -3.761262310e-01f);
    p = CFK_FMA(p, t, 1.128379166e+00f);
    return z * p;
}

/* erfc(z) for z >= 0.75 given e = exp(-z^2): e * t * Q(t), t = 1/(1 + z/2) */
SFN float FN(erfc_large)(float z, float e) {
    float t = 1.0f / CFK_FMA(0.5f, z, 1.0f);
    float q = -5.518554853e-02f;
    q = CFK_FMA(q, t, 1.653847262e-01f);
    q = CFK_FMA(q, t, -1.062913971e-01f);
    q = CFK_FMA(q, t, -1.069749700e-01f);
    q = CFK_FMA(q, t, 5.199499604e-02f);
    q = CFK_FMA(q, t, 5.782570738e-02f);
    q = CFK_FMA(q, t, 1.830902457e-01f);
    q = CFK_FMA(q, t, 2.457846045e-01f);
    q = CFK_FMA(q, t, 2.821840956e-01f);
    q = CFK_FMA(q, t, 2.820915579e-01f);
    return e * t * q;
}

SFN float FN(verf)(float x) {
    float z = fabsf(x);
    float zc = z > 10.0f ? 10.0f : z;
    float small = FN(erf_small)(x);
    float big = 1.0f - FN(erfc_large)(zc, FN(vexp_negsq)(zc));
    big = x < 0 ? -big : big;
    return z < 0.75f ? small : big;
}

/* gelu(x) = x/2 (1 + erf(x/sqrt2)); for x < 0 it is x/2 erfc(|x|/sqrt2), computed with
 * exp(-x^2/2) split hi+lo so the tail keeps its relative accuracy. */
SFN float FN(vgelu)(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float zc = z > 10.0f ? 10.0f : z;
    float ax = fabsf(x) > 14.2f ? 14.2f : fabsf(x);
    float hi = ax * ax, lo = CFK_FMA(ax, ax, -hi);
    float e = FN(vexp)(-0.5f * hi) * (1.0f - 0.5f * lo);
    float erfc_z = FN(erfc_large)(zc, e);
    float erf_z = z < 0.75f ? FN(erf_small)(z) : 1.0f - erfc_z;
    float one_plus = x >= 0 ? 1.0f + erf_z : (z < 0.75f ? 1.0f - erf_z : erfc_z);
    return 0.5f * x * one_plus;
}

SFN float FN(vtanh)(float x) {
    float z = fabsf(x);
    float t = x * x;
    float p = 2.540047403e-03f;
    p = CFK_FMA(p, t, -8.537373967e-03f);
    p = CFK_FMA(p, t, 2.182165252e-02f);
    p = CFK_FMA(p, t, -5.396509709e-02f);
    p = CFK_FMA(p, t, 1.333332609e-01f);
    p = CFK_FMA(p, t, -3.333333332e-01f);
    float small = CFK_FMA(x * t, p, x);
    float zc = z > 9.5f ? 9.5f : z;
    float big = 1.0f - 2.0f / (FN(vexp)(2.0f * zc) + 1.0f);
    big = x < 0 ? -big : big;
    return z < 0.55f ? small : big;
}

SFN float FN(vsigmoid)(float x) { return 1.0f / (1.0f + FN(vexp)(-x)); }

static CFK_TGT void FN(unary)(int op, float *restrict x, long n) {
    switch (op) {
    case CFK_UNARY_EXP:
#pragma clang loop vectorize(enable)
        for (long i = 0; i < n; i++) x[i] = FN(vexp)(x[i]);
        break;
    case CFK_UNARY_ERF:
#pragma clang loop vectorize(enable)
        for (long i = 0; i < n; i++) x[i] = FN(verf)(x[i]);
        break;
    case CFK_UNARY_TANH:
#pragma clang loop vectorize(enable)
        for (long i = 0; i < n; i++) x[i] = FN(vtanh)(x[i]);
        break;
    case CFK_UNARY_SIGMOID:
#pragma clang loop vectorize(enable)
        for (long i = 0; i < n; i++) x[i] = FN(vsigmoid)(x[i]);
        break;
    case CFK_UNARY_GELU:
#pragma clang loop vectorize(enable)
        for (long i = 0; i < n; i++) x[i] = FN(vgelu)(x[i]);
        break;
    default: break;
    }
}

/* Sum with 16 independent partial sums (vectorises without reassociation flags). */
SFN float FN(sum16)(const float *restrict x, long n) {
    float s[16] = {0};
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) s[l] += x[j + l];
    float t = 0;
    for (; j < n; j++) t += x[j];
    for (int l = 0; l < 16; l++) t += s[l];
    return t;
}

static CFK_TGT void FN(softmax_rows)(float *restrict x, long rows, long cols) {
    for (long r = 0; r < rows; r++) {
        float *p = x + r * cols;
        float m[16];
        for (int l = 0; l < 16; l++) m[l] = -INFINITY;
        long j = 0;
        for (; j + 16 <= cols; j += 16)
            for (int l = 0; l < 16; l++) m[l] = p[j + l] > m[l] ? p[j + l] : m[l];
        float mx = -INFINITY;
        for (; j < cols; j++) mx = p[j] > mx ? p[j] : mx;
        for (int l = 0; l < 16; l++) mx = m[l] > mx ? m[l] : mx;
#pragma clang loop vectorize(enable)
        for (long i = 0; i < cols; i++) p[i] = FN(vexp)(p[i] - mx);
        float inv = 1.0f / FN(sum16)(p, cols);
#pragma clang loop vectorize(enable)
        for (long i = 0; i < cols; i++) p[i] *= inv;
    }
}

static CFK_TGT void FN(layernorm_rows)(const float *restrict x, long rows, long cols, const float *restrict gamma,
                                     const float *restrict beta, float eps, float *restrict out) {
    for (long r = 0; r < rows; r++) {
        const float *p = x + r * cols;
        float *o = out + r * cols;
        float mean = FN(sum16)(p, cols) / (float)cols;
        float s[16] = {0};
        long j = 0;
        for (; j + 16 <= cols; j += 16)
            for (int l = 0; l < 16; l++) { float d = p[j + l] - mean; s[l] += d * d; }
        float v = 0;
        for (; j < cols; j++) { float d = p[j] - mean; v += d * d; }
        for (int l = 0; l < 16; l++) v += s[l];
        float inv = 1.0f / sqrtf(v / (float)cols + eps);
        if (gamma && beta) {
#pragma clang loop vectorize(enable)
            for (long i = 0; i < cols; i++) o[i] = (p[i] - mean) * inv * gamma[i] + beta[i];
        } else if (gamma) {
#pragma clang loop vectorize(enable)
            for (long i = 0; i < cols; i++) o[i] = (p[i] - mean) * inv * gamma[i];
        } else {
#pragma clang loop vectorize(enable)
            for (long i = 0; i < cols; i++) o[i] = (p[i] - mean) * inv + (beta ? beta[i] : 0.0f);
        }
    }
}

SFN float FN(binop)(int op, float a, float b) {
    return op == CFK_BIN_ADD ? a + b : op == CFK_BIN_SUB ? a - b : op == CFK_BIN_MUL ? a * b : a / b;
}

static CFK_TGT void FN(binary_op)(const int op, const float *restrict a, const float *restrict b, long b_len,
                                  long b_repeat, float *out, long n) {
    if (b_repeat <= 1) {
        /* b repeats with period b_len along the contiguous axis */
        for (long base = 0; base < n; base += b_len) {
            long w = n - base < b_len ? n - base : b_len;
            const float *ap = a + base;
            float *op_ = out + base;
#pragma clang loop vectorize(enable)
            for (long i = 0; i < w; i++) op_[i] = FN(binop)(op, ap[i], b[i]);
        }
    } else {
        /* per channel: one b value for each run of b_repeat elements */
        long runs = (n + b_repeat - 1) / b_repeat;
        for (long r = 0; r < runs; r++) {
            float bv = b[r % b_len];
            long s0 = r * b_repeat, w = n - s0 < b_repeat ? n - s0 : b_repeat;
            const float *ap = a + s0;
            float *op_ = out + s0;
#pragma clang loop vectorize(enable)
            for (long i = 0; i < w; i++) op_[i] = FN(binop)(op, ap[i], bv);
        }
    }
}

static CFK_TGT void FN(binary)(int op, const float *a, const float *b, long b_len, long b_repeat, float *out, long n) {
    switch (op) { /* constant op per instantiation so the select folds away */
    case CFK_BIN_ADD: FN(binary_op)(CFK_BIN_ADD, a, b, b_len, b_repeat, out, n); break;
    case CFK_BIN_SUB: FN(binary_op)(CFK_BIN_SUB, a, b, b_len, b_repeat, out, n); break;
    case CFK_BIN_MUL: FN(binary_op)(CFK_BIN_MUL, a, b, b_len, b_repeat, out, n); break;
    default: FN(binary_op)(CFK_BIN_DIV, a, b, b_len, b_repeat, out, n); break;
    }
}

/* Depthwise: one output channel at a time; per output row, accumulate each tap over the interior x
 * range (contiguous for stride 1), borders handled by the range computation. */
static CFK_TGT void FN(depthwise)(const float *input, const cfk_conv_geom *g, const float *w, long oc0, long oc1,
                                  float *out, const float *bias, int act, float lo, float hi) {
    long H = g->in_h, W = g->in_w, OH = g->out_h, OW = g->out_w;
    long mult = g->out_c / g->in_c;
    for (long oc = oc0; oc < oc1; oc++) {
        const float *plane = input + (oc / mult) * H * W;
        const float *wk = w + oc * g->kh * g->kw;
        float b0 = bias ? bias[oc] : 0.0f;
        for (long oy = 0; oy < OH; oy++) {
            float *restrict orow = out + (oc * OH + oy) * OW;
            for (long x = 0; x < OW; x++) orow[x] = b0;
            for (long ky = 0; ky < g->kh; ky++) {
                long iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= H) continue;
                const float *restrict irow = plane + iy * W;
                for (long kx = 0; kx < g->kw; kx++) {
                    float wv = wk[ky * g->kw + kx];
                    long off = kx * g->dw - g->pl;
                    /* valid x: 0 <= x*sw + off < W */
                    long x0 = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
                    long x1 = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / g->sw + 1;
                    if (x1 > OW) x1 = OW;
                    if (g->sw == 1) {
                        const float *restrict src = irow + off;
#pragma clang loop vectorize(enable)
                        for (long x = x0; x < x1; x++) orow[x] = CFK_FMA(wv, src[x], orow[x]);
                    } else {
                        const long sw = g->sw;
#pragma clang loop vectorize(enable)
                        for (long x = x0; x < x1; x++) orow[x] = CFK_FMA(wv, irow[x * sw + off], orow[x]);
                    }
                }
            }
            if (act == CFK_ACT_CLAMP) {
#pragma clang loop vectorize(enable)
                for (long x = 0; x < OW; x++) { float v = orow[x]; v = v < lo ? lo : v; orow[x] = v > hi ? hi : v; }
            }
        }
    }
}

#undef FN
#undef SFN
