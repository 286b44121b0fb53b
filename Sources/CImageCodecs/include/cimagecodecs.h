/* CImageCodecs: the C shim that owns libpng/libjpeg error handling (setjmp/longjmp cannot cross Swift)
 * and the Pillow-compatible resampling inner loops.
 *
 * Decoders return CIC_OK (0) or an error code and fill `err` (NUL-terminated, at most errlen bytes).
 * On success *out is a malloc'd buffer of width*height*3 RGB8 bytes that the caller frees with cic_free. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CIC_OK = 0,
    CIC_ERR_EMPTY = 1,       /* no bytes at all */
    CIC_ERR_MAGIC = 2,       /* not this format */
    CIC_ERR_TRUNCATED = 3,   /* data ends early */
    CIC_ERR_CORRUPT = 4,     /* malformed/corrupt compressed data (or any other libpng/libjpeg error) */
    CIC_ERR_CRC = 5,         /* PNG chunk CRC mismatch */
    CIC_ERR_TOO_LARGE = 6,   /* dimensions exceed the caller's limit; refused before allocating */
    CIC_ERR_NOMEM = 7,       /* allocation failed */
    CIC_ERR_UNSUPPORTED = 8, /* valid file, unsupported variant (e.g. 12-bit JPEG) */
    CIC_ERR_ARGUMENT = 9     /* bad arguments to the shim */
};

typedef struct {
    uint64_t max_pixels;  /* refuse width*height above this (0 = no limit beyond libpng/libjpeg's own) */
    int strict;           /* JPEG: 1 = libjpeg warnings (premature EOF, corrupt data) are errors */
    int read_orientation; /* JPEG: 1 = parse the EXIF APP1 orientation tag into *orientation */
} cic_decode_options;

/* Decode PNG (any colour type / bit depth / interlace) to RGB8: palette expanded, gray replicated,
 * alpha and tRNS dropped (not composited, as Pillow's convert('RGB')), 16-bit rounded with png_set_scale_16. */
int cic_png_decode_rgb(const uint8_t *data, size_t len, const cic_decode_options *opt,
                       uint8_t **out, uint32_t *width, uint32_t *height, char *err, size_t errlen);

/* Decode JPEG (baseline, progressive, gray, YCbCr, CMYK, YCCK) to RGB8. CMYK is converted as Pillow does
 * (R = (255-K) - round(C*(255-K)/255)), with Adobe-inverted data un-inverted. *orientation receives the EXIF
 * orientation 1..8 (1 when absent or unreadable); the pixels are NOT rotated here. *warnings receives the number
 * of libjpeg warnings (always 0 in strict mode, which fails on the first). */
int cic_jpeg_decode_rgb(const uint8_t *data, size_t len, const cic_decode_options *opt,
                        uint8_t **out, uint32_t *width, uint32_t *height, int *orientation, int *warnings,
                        char *err, size_t errlen);

/* Read only the header: dimensions and number of components. Returns a CIC_* code. */
int cic_jpeg_read_header(const uint8_t *data, size_t len, uint32_t *width, uint32_t *height, int *components,
                         char *err, size_t errlen);

/* Encoders (used to make test fixtures). components: 1 (gray), 3 (RGB) or 4 (CMYK, stored Adobe-inverted as
 * Photoshop/Pillow do). ycck=1 with 4 components writes YCCK. exif_orientation 1..8 writes an EXIF APP1 with that
 * tag (0 = none). *out is malloc'd (free with cic_free). */
int cic_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int components, int quality,
                    int progressive, int ycck, int exif_orientation, uint8_t **out, size_t *outlen,
                    char *err, size_t errlen);

/* color_type: PNG_COLOR_TYPE_* value (0 gray, 2 rgb, 3 palette, 4 gray+alpha, 6 rgba); bit_depth 1..16; samples are
 * packed big-endian for 16-bit (2 bytes/sample), one byte per sample/index otherwise (packed by libpng for <8).
 * palette: 3*palette_len bytes; trns: trns_len alpha bytes (palette) or NULL. interlace: 1 = Adam7. */
int cic_png_encode(const uint8_t *samples, uint32_t width, uint32_t height, int color_type, int bit_depth,
                   const uint8_t *palette, int palette_len, const uint8_t *trns, int trns_len, int interlace,
                   uint8_t **out, size_t *outlen, char *err, size_t errlen);

void cic_free(void *p);

/* ---- Pillow-compatible resampling (libImaging/Resample.c, 8 bits per channel) ---- */

enum { CIC_FILTER_BILINEAR = 2, CIC_FILTER_BICUBIC = 3 };

/* Which pass Pillow runs first when both are needed. Pillow <= 12 always ran horizontal first; Pillow 13
 * (python-pillow/Pillow#9549) runs vertical first when the height shrinks much more than the width. The order changes
 * results by a few levels on some images, because the intermediate image is rounded to uint8. */
enum { CIC_PASS_PILLOW13 = 0, CIC_PASS_HORIZONTAL_FIRST = 1 };

/* 1 when Pillow (with `pass_order`) runs the vertical pass first for this resize. */
int cic_resample_vertical_first(uint32_t src_w, uint32_t src_h, uint32_t out_w, uint32_t out_h, int pass_order);

/* Resize an RGB8 image (src_w x src_h, tightly packed) to out_w x out_h exactly as Pillow's
 * Image.resize(resample=filter) does, but compute only the crop window [crop_x, crop_x+crop_w) x
 * [crop_y, crop_y+crop_h) of the resized image (the other output pixels are never needed; each output pixel depends
 * only on its own coefficients, so this is exact). dst receives crop_w*crop_h*3 bytes. The crop window must lie
 * inside the resized image. Returns a CIC_* code. */
int cic_resize_crop_rgb8(const uint8_t *src, uint32_t src_w, uint32_t src_h, uint32_t out_w, uint32_t out_h,
                         uint32_t crop_x, uint32_t crop_y, uint32_t crop_w, uint32_t crop_h, int filter,
                         int pass_order, uint8_t *dst);

/* Resampling uses an AVX2 build of its loops when the CPU has AVX2 (identical results). 1 forces the portable loops
 * (for tests and comparisons), 0 restores automatic selection. */
void cic_resample_set_portable(int portable_only);

/* HWC uint8 RGB -> CHW float32 ((v/255) - mean[c]) / std[c], computed in float32 as torchvision's
 * ToTensor + Normalize. */
void cic_normalize_chw(const uint8_t *src, size_t pixels, const float mean[3], const float std[3], float *dst);

#ifdef __cplusplus
}
#endif
