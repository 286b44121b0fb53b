/* CInt8Kernels: ISA-specific integer inner loops for Int8Kernels.
 *
 * Implementation detail of the Swift `Int8Kernels` module: the Swift side packs, tiles and threads;
 * this C target owns the microkernels (AVX-512 VNNI, AVX-VNNI, AVX2, NEON dot-product, portable C),
 * vectorised output stages and element-wise pieces, each selected at run time by an `isa` argument.
 *
 * Packed weight layout (shared by every ISA): panels of at most I8K_NR = 48 output columns; the last
 * panel is rounded up to a multiple of 16 columns. Inside a panel of width W, k is grouped by 4 (int8)
 * or 2 (int16): byte offset of (kgroup g, column j, element e) = g*W*4 + j*4 + e*elsize.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define I8K_NR 48
#define I8K_MR 8

enum {
    I8K_ISA_PORTABLE = 0,
    I8K_ISA_AVX2 = 1,
    I8K_ISA_AVXVNNI = 2,
    I8K_ISA_AVX512VNNI = 3,
    I8K_ISA_NEONDOT = 4,
    I8K_ISA_COUNT = 5
};

/* 1 when the running CPU (and this build) can execute `isa`. */
int i8k_isa_supported(int isa);
/* The fastest supported ISA. */
int i8k_isa_best(void);

/* Runs fn(ctx, i) for every i in [0, count) on up to `threads` threads of a persistent pool whose workers spin
 * briefly between jobs (the caller runs items too). Returns 1 when every item has run; 0, having run nothing, when
 * threads < 2 or the pool is busy with another job (a concurrent or nested loop): run the loop another way then. */
typedef void (*i8k_task_fn)(void *ctx, size_t index);
int i8k_parallel_for(size_t count, size_t threads, i8k_task_fn fn, void *ctx);
/* The same, also passing the slot of the thread running the item: 0 for the caller, 1 ... min(threads, count) - 1 for
 * the workers taking part; no two items run at once in one slot, so per-slot scratch needs no locking. */
typedef void (*i8k_slot_task_fn)(void *ctx, size_t index, size_t slot);
int i8k_parallel_for_slots(size_t count, size_t threads, i8k_slot_task_fn fn, void *ctx);

enum { I8K_OUT_INT32 = 0, I8K_OUT_INT8 = 1, I8K_OUT_UINT8 = 2, I8K_OUT_FLOAT = 3 };
enum { I8K_ROUND_DOUBLE = 0, I8K_ROUND_SINGLE = 1 };

/* Output stage applied to each int32 accumulator acc[m][n] (n is the absolute output column, m the row of this
 * call: row 0 is the first row of A / dst handed to the function):
 *   v = acc + bias[n] - a_zero * colsum[n] + row_coef[n] * row_sum[m]     (int32, wrapping)
 *   The last term is the per-output-channel weight zero-point term (gemmlowp's "rank-one update"): with weights
 *   stored as W - z_store and a real per-column offset c[n] = z_store - z_w[n], the exact accumulator of
 *   sum_k x~[m][k] * (W[k][n] - z_w[n]) is acc + c[n] * sum_k x~[m][k]; row_sum[m] = sum_k x~[m][k] (activation
 *   zero point removed, see i8k_row_sums) is computed once per row of A by the caller. Skipped when either is NULL.
 *   8-bit x and zero points keep |row_sum| <= 255 K (the AVX-512 kernel forms the term in int16 for K <= 128).
 *   INT32: v
 *   INT8/UINT8: clamp(out_zero + requant(v, mult[n], shift[n]), qmin, qmax), computed without overflow
 *     DOUBLE (TFLite default / gemmlowp): RDPOT(SRDHM(v * 2^max(shift,0) [wrapping], mult), max(-shift,0))
 *     SINGLE (TFLITE_SINGLE_ROUNDING): (v * mult + 2^(30-shift)) >> (31-shift), saturated to int32
 *   FLOAT: (float)v * scale[n] (+ fbias[n])          (separate multiply and add, no FMA) */
typedef struct {
    int32_t kind;
    int32_t rounding;
    int32_t a_zero;
    int32_t out_zero;
    int32_t qmin;
    int32_t qmax;
    const int32_t *colsum; /* may be NULL when a_zero == 0 */
    const int32_t *bias;   /* may be NULL */
    const int32_t *mult;   /* INT8/UINT8 */
    const int32_t *shift;  /* INT8/UINT8, TFLite convention: positive = left shift */
    const float *scale;    /* FLOAT */
    const float *fbias;    /* FLOAT, may be NULL */
    const int32_t *row_coef; /* per column (absolute n), may be NULL */
    const int32_t *row_sum;  /* per row of this call, may be NULL */
} i8k_output;

/* Scalar definitions (the pinned reference semantics). */
int32_t i8k_srdhm(int32_t a, int32_t b);
int32_t i8k_rdpot(int32_t x, int32_t exponent);
int32_t i8k_requant(int32_t v, int32_t mult, int32_t shift, int32_t rounding);

/* Applies the output stage to rows x cols int32 values src (row stride lds) for columns n0.. into dst
 * (row stride ldd elements of the output type). */
void i8k_output_apply(int isa, const int32_t *src, size_t lds, size_t rows, size_t cols,
                      const i8k_output *out, size_t n0, void *dst, size_t ldd);

/* GEMM on one packed panel: for rows [0, m) of A (row stride lda) against the panel (width pw, valid
 * columns nr <= pw) over K; result columns n0 .. n0+nr-1 through the output stage into dst.
 * u8 form: A is uint8; a_signed=1 means A holds int8 (the kernel flips the sign bit: u = a ^ 0x80, the
 * caller then uses a_zero = z + 128). `seven_bit` = all weights in [-64, 63] (AVX2 may use vpmaddubsw). */
void i8k_gemm_u8_panel(int isa, const uint8_t *A, size_t lda, size_t m, int a_signed,
                       const int8_t *panel, size_t K, size_t pw, size_t nr, int seven_bit,
                       const i8k_output *out, size_t n0, void *dst, size_t ldd);

/* int16 x int16 -> int32 GEMM on one packed int16 panel (k grouped by 2). Used for AdaLog table values
 * (P.V, fc2) against int8 weights widened to int16 at pack time. */
void i8k_gemm_s16_panel(int isa, const int16_t *A, size_t lda, size_t m,
                        const int16_t *panel, size_t K, size_t pw, size_t nr,
                        const i8k_output *out, size_t n0, void *dst, size_t ldd);

/* Packing into the panel layout (see top of file). w is N x K (output_major) or K x N. */
void i8k_pack_s8(const int8_t *w, size_t k, size_t n, int output_major, int8_t *dst, int32_t *colsum, int *seven_bit);
void i8k_pack_s16(const int16_t *w, size_t k, size_t n, int output_major, int16_t *dst); /* int16: 8-bit W − z needs 9 bits */

/* Naive references on unpacked data. B is K x N row-major (ldb). Output stage as above, with the
 * u8 form computing sum_k (A - a_zero_raw) * (B + row_coef[n]) directly (a_signed: A is int8; out->row_sum is
 * ignored: the reference forms the weight zero-point term itself). */
void i8k_ref_gemm_u8(const uint8_t *A, size_t lda, int a_signed, const int8_t *B, size_t ldb,
                     size_t M, size_t N, size_t K, int32_t a_zero_raw, const i8k_output *out,
                     void *dst, size_t ldd);
void i8k_ref_gemm_s16(const int16_t *A, size_t lda, const int16_t *B, size_t ldb, size_t M, size_t N,
                      size_t K, const i8k_output *out, void *dst, size_t ldd);

/* Row sums for the weight zero-point term: dst[i] = sum_{k<K} (a[i][k] - zero), a read as uint8 (a_signed = 0)
 * or int8 (a_signed = 1), rows of stride lda. Wrapping int32 (exact for K < 2^23). */
void i8k_row_sums(int isa, const uint8_t *A, size_t lda, size_t m, size_t K, int a_signed, int32_t zero, int32_t *dst);

/* Depthwise conv, NHWC, one output row oy: input H x W x C (uint8 or int8 via a_signed), weights
 * KH x KW x C int16 in [-255, 255] (channel multiplier 1; an 8-bit weight minus any zero point fits, so no
 * weight zero-point term is needed), accumulates sum over in-bounds taps of (x - a_zero) * w
 * (padding equals the zero point and contributes 0), then the output stage (a_zero, row_coef and row_sum of
 * `out` unused). Weights outside [-255, 255] are not supported by the vector paths. */
void i8k_dwconv_row(int isa, const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                    const int16_t *w, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                    size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst);
void i8k_ref_dwconv_row(const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                        const int16_t *w, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw,
                        size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst);

/* Depthwise weights packed in tap pairs for the AVX-512 kernel: per block of 32 channels, per pair p of taps
 * (2p, 2p+1; the second is 0 when KH*KW is odd), 64 int16 = 32 (w[2p][c], w[2p+1][c]) pairs in vpunpck{l,h}wd order:
 * pair d of half h (0, 1) holds channel 32*block + (d/4)*8 + 4*h + d%4. i8k_dw_packed_size gives the int16 count. */
size_t i8k_dw_packed_size(size_t T, size_t C);
void i8k_dw_pack(const int16_t *w, size_t T, size_t C, int16_t *dst);
/* i8k_dwconv_row with the packed weights (NULL: the unpacked path); same results on every ISA. */
void i8k_dwconv_row_packed(int isa, const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C,
                           const int16_t *w, const int16_t *packed, size_t KH, size_t KW, size_t sh, size_t sw, size_t ph,
                           size_t pw, size_t dh, size_t dw, size_t OW, size_t oy, const i8k_output *out, void *dst);

/* Depthwise conv through horizontal tap quads (vpdpbusd), for weights in [-255, 255] and no dilation along x. Each
 * activation is stored once per position p of an input row as the quad of bytes x[p], x[p+1], x[p+2], x[p+3] (one dword
 * per channel, pixels outside the input read the zero point; int8 input flipped to x ^ 0x80), so a row of KW taps is
 * ceil(KW/4) u8 x s8 dot products against the weight quads, with no shuffles in the inner loop.
 * Weights: per group of 16 channels two blocks of KH x ceil(KW/4) x 64 bytes (per ky, per quad j: 16 channels x
 * (w[ky][4j..4j+3][c], 0 past KW)). A group whose weights all fit int8 uses the first block only (wide[g] = 0); otherwise
 * (wide[g] = 1) the first holds w >> 1 and the second w & 1, and the sum is 2 * first + second.
 * wsum[c] = sum_t w[t][c] (16 * groups entries, 0 past C). Returns 0 (nothing usable) for a weight outside [-255, 255]. */
size_t i8k_dwq_weights_size(size_t KH, size_t KW, size_t C);
int i8k_dwq_pack(const int16_t *w, size_t KH, size_t KW, size_t C, int8_t *dst, int32_t *wsum, uint8_t *wide);
/* Quads of input rows iy0 + r, r in [0, rows) (rows outside [0, H) are all padding), channel groups [g0, g1), positions
 * p = p0 + k * ps, k in [0, nq): 64 bytes at dst + ((r * (g1 - g0) + g - g0) * nq + k) * 64. */
void i8k_dwq_quads(int isa, const uint8_t *in, int a_signed, int32_t a_zero, size_t H, size_t W, size_t C, long iy0,
                   size_t rows, long p0, size_t ps, size_t nq, size_t g0, size_t g1, uint8_t *dst);
/* Output rows [oy0, oy1), channel groups [g0, g1) of the depthwise conv from quads built by i8k_dwq_quads with
 * iy0 = oy0 * sh - ph, p0 = -pw, the same groups, and ps dividing both sw and 4; dst is the whole output image
 * (OW pixels a row, C channels). Same results as i8k_ref_dwconv_row. */
void i8k_dwconv_quads(int isa, const uint8_t *quads, int a_signed, int32_t a_zero, size_t C, const int8_t *wq,
                      const int32_t *wsum, const uint8_t *wide, size_t KH, size_t KW, size_t sh, size_t sw, size_t dh, size_t ps, size_t nq,
                      size_t OW, size_t oy0, size_t oy1, size_t g0, size_t g1, const i8k_output *out, void *dst);

/* im2col for NHWC input into rows [r0, r1) of the patch matrix (row = output pixel oy*OW+ox,
 * columns ordered (ky, kx, c) over channels [c0, c0+cg)); padding bytes = pad_value. Portable C. */
void i8k_im2col_nhwc(const uint8_t *in, size_t H, size_t W, size_t C, size_t c0, size_t cg,
                     size_t KH, size_t KW, size_t sh, size_t sw, size_t ph, size_t pw, size_t dh, size_t dw,
                     size_t OW, size_t r0, size_t r1, uint8_t pad_value, uint8_t *dst, size_t ldd);

/* Element-wise (all bit-exact across ISAs; float op order pinned, no FMA). */
/* q = clamp(rint(x / scale) + zero, qmin, qmax), rint = round half to even; NaN -> qmin. */
void i8k_quantize(int isa, const float *x, size_t n, float scale, int32_t zero, int32_t qmin, int32_t qmax,
                  int out_unsigned, void *dst);
/* x = (float)(q - zero) * scale. */
void i8k_dequantize(int isa, const void *q, int in_unsigned, size_t n, float scale, int32_t zero, float *dst);
/* y = a + b. */
void i8k_add(int isa, const float *a, const float *b, size_t n, float *dst);
/* GELU, erf form with a pinned rational erf (A&S 7.1.28, |err| < 3e-7). */
void i8k_gelu(int isa, const float *x, size_t n, float *dst);
/* LayerNorm of `rows` rows of length C (16-lane pinned summation order), y = ((x-mean)*rstd)*gamma+beta,
 * then quantized like i8k_quantize. */
void i8k_layernorm_quant(int isa, const float *x, size_t rows, size_t C, const float *gamma, const float *beta,
                         float eps, float scale, int32_t zero, int32_t qmin, int32_t qmax, int out_unsigned,
                         void *dst, size_t ldd);
/* Pinned exp (Cephes-style polynomial), used by the softmax. */
float i8k_expf(float x);
/* Row softmax of n logits (float) into p (16-lane pinned order). */
void i8k_softmax_row(int isa, const float *x, size_t n, float *p);
/* AdaLog code: count of thresholds tau[0..nt-1] (descending) with u < tau[j]; nt = 2^b; nt is the zero
 * code; NaN -> zero code. */
void i8k_adalog_encode(int isa, const float *u, size_t n, const float *tau, int32_t nt, uint8_t *codes);
/* The same with the threshold analysis done once (i8k_adalog_prepare) for repeated calls on one quantizer. */
typedef struct {
    int32_t geometric;
    int32_t nnorm;
    float l0;
    float inv_step;
    /* Arithmetic fast path (elementwise.c, encode16_fast): code = ceil(c0 − inv_step·log2 x) wherever that estimate is
     * farther than delta from an integer; delta is proven at prepare time. fast = 0: not usable. */
    int32_t fast;
    float c0;
    float delta;
    float xcap;
    int32_t below;   /* the code of every 0 < x < tau[nnorm-1] (all later thresholds are <= 0), or -1 */
} i8k_adalog_plan;
void i8k_adalog_prepare(const float *tau, int32_t nt, i8k_adalog_plan *plan);
void i8k_adalog_encode_planned(int isa, const float *u, size_t n, const float *tau, int32_t nt, const i8k_adalog_plan *plan,
                               uint8_t *codes);
/* GELU, then + shift (skipped when shift is 0), then AdaLog codes: the bytes of i8k_gelu, the float add and
 * i8k_adalog_encode_planned, in one pass; with values != NULL also i8k_codes_to_s16(codes, table, table_nt) into
 * values (the int16 operands of the fc2 that consumes the codes). */
void i8k_gelu_adalog_encode(int isa, const float *x, size_t n, float shift, const float *tau, int32_t nt,
                            const i8k_adalog_plan *plan, uint8_t *codes, const int16_t *table, int32_t table_nt,
                            int16_t *values);
/* Softmax of one row, AdaLog codes of the probabilities and their table values: the results of i8k_softmax_row into
 * `work` (n floats, used as scratch), i8k_adalog_encode_planned into codes, then i8k_codes_to_s16 with table into L
 * and, when table_high is not NULL, with table_high into Lh. */
void i8k_softmax_adalog_row(int isa, const float *x, size_t n, float *work, const float *tau, int32_t nt,
                            const i8k_adalog_plan *plan, const int16_t *table, const int16_t *table_high, uint8_t *codes,
                            int16_t *L, int16_t *Lh);
/* The largest |P(t) - log2(1 + t)| of the fast encode's float polynomial over every float t in [0, 1) (an exhaustive
 * scan, for the tests), and the bound the fast path's margin assumes. */
double i8k_adalog_log2_poly_error(void);
double i8k_adalog_log2_poly_bound(void);
/* codes -> int16 via table (nt+1 entries); codes > nt map to 0. */
void i8k_codes_to_s16(int isa, const uint8_t *codes, size_t n, const int16_t *table, int32_t nt, int16_t *dst);
/* clamp(rint(x / scale), qmin, qmax) as int16 (NaN -> qmin): attention operands with their zero point removed. */
void i8k_quantize_s16(int isa, const float *x, size_t n, float scale, int32_t qmin, int32_t qmax, int16_t *dst);
/* The same over rows x groups contiguous blocks of d values, group g with its own scale/bounds (per-head Q, K, V). */
void i8k_quantize_s16_groups(int isa, const float *x, size_t rows, size_t groups, size_t d, const float *scale,
                             const int32_t *qmin, const int32_t *qmax, int16_t *dst);

/* How an attention head codes its probabilities: AdaLog (tau != NULL: nt thresholds at scale 1 and the
 * nt+1-entry table, int16, or int32 split as table_high·2^15 + table with table in [0, 32767]; table_high NULL
 * when not split) or uniform (code = clamp(rint(p / p_scale), 0, p_qmax), table value = code). */
typedef struct {
    const float *tau;
    int32_t nt;
    const int16_t *table;
    const int16_t *table_high;
    float p_scale;
    int32_t p_qmax;
    i8k_adalog_plan plan; /* i8k_adalog_prepare(tau, nt) */
} i8k_probs;
/* Bytes of workspace i8k_attention_rows needs for T tokens and head size d. */
size_t i8k_attention_workspace(size_t T, size_t d);
/* One head's K and V packed for i8k_attention_rows_packed: its bytes (a multiple of 64) for T tokens and head size d,
 * and the packing of T x d int16 K and V (row strides ldk, ldv) into kv (64-byte aligned). */
size_t i8k_attention_kv_bytes(size_t T, size_t d);
void i8k_attention_pack_kv(const int16_t *k, size_t ldk, const int16_t *v, size_t ldv, size_t T, size_t d, void *kv);
/* Rows [r0, r1) of a float q, k, v tensor [T][3·H·d] (row stride ldx floats; head h at column h·d of each block)
 * quantized like i8k_quantize_s16_groups(x, rows, 3·H, d, scale, qmin, qmax): Q into q (row stride ldq int16), and
 * K and V of head h straight into the packed area kv + h·i8k_attention_kv_bytes(T, d) (the bytes
 * i8k_attention_pack_kv writes; the call with r1 == T also writes the padding). Several calls with disjoint row
 * ranges may run at once. */
void i8k_attention_quantize_rows(int isa, const float *x, size_t ldx, size_t T, size_t heads, size_t d, const float *scale,
                                 const int32_t *qmin, const int32_t *qmax, size_t r0, size_t r1, int16_t *q, size_t ldq, void *kv);
/* Query rows [r0, r1) of one head on its packed K and V (i8k_attention_rows without the packing); `work` holds
 * i8k_attention_row_workspace(T, d) bytes, 64-byte aligned. */
size_t i8k_attention_row_workspace(size_t T, size_t d);
void i8k_attention_rows_packed(int isa, const int16_t *q, size_t ldq, const void *kv, size_t T, size_t d, float logit_scale,
                               const i8k_probs *probs, size_t r0, size_t r1, const i8k_output *out, void *dst, size_t ldd,
                               void *work, uint8_t *codes_out);
/* Query rows [r0, r1) of one head (see attention.c): q, k, v are T x d int16 with row strides; the output
 * stage (columns 0..d-1) writes row i at dst + i*ldd elements. codes_out (T x T, may be NULL) receives the
 * probability codes of those rows. `work` holds i8k_attention_workspace(T, d) bytes, 64-byte aligned. */
void i8k_attention_rows(int isa, const int16_t *q, size_t ldq, const int16_t *k, size_t ldk, const int16_t *v, size_t ldv,
                        size_t T, size_t d, float logit_scale, const i8k_probs *probs, size_t r0, size_t r1,
                        const i8k_output *out, void *dst, size_t ldd, void *work, uint8_t *codes_out);

#ifdef __cplusplus
}
#endif
