/* CImageCodecs: libpng/libjpeg decoding with setjmp kept in C, fixture encoders, and the Pillow-compatible
 * resampling loops. See include/cimagecodecs.h for the contract. */
#include "cimagecodecs.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

void cic_free(void *p) { free(p); }

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen > 0) snprintf(err, errlen, "%s", msg);
}

/* =========================================================================================== PNG */

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    int overrun;
    char *err;
    size_t errlen;
} cic_png_src;

static void cic_png_read(png_structp png, png_bytep out, size_t n) {
    cic_png_src *s = (cic_png_src *)png_get_io_ptr(png);
    if (n > s->len - s->pos) {
        s->overrun = 1;
        png_error(png, "read beyond end of data");
    }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void cic_png_error(png_structp png, png_const_charp msg) {
    cic_png_src *s = (cic_png_src *)png_get_error_ptr(png);
    if (s) set_err(s->err, s->errlen, msg);
    png_longjmp(png, 1);
}

static void cic_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static int classify_png_error(const cic_png_src *s, const char *msg) {
    if (s->overrun) return CIC_ERR_TRUNCATED;
    if (strstr(msg, "CRC error")) return CIC_ERR_CRC;
    if (strstr(msg, "exceeds user limit") || strstr(msg, "too large") || strstr(msg, "Image too")) return CIC_ERR_TOO_LARGE;
    if (strstr(msg, "Out of memory") || strstr(msg, "out of memory")) return CIC_ERR_NOMEM;
    return CIC_ERR_CORRUPT;
}

int cic_png_decode_rgb(const uint8_t *data, size_t len, const cic_decode_options *opt,
                       uint8_t **out, uint32_t *width, uint32_t *height, char *err, size_t errlen) {
    if (!data || !out || !width || !height || !opt) { set_err(err, errlen, "bad arguments"); return CIC_ERR_ARGUMENT; }
    *out = NULL;
    if (len == 0) { set_err(err, errlen, "empty input"); return CIC_ERR_EMPTY; }
    if (len < 8 || png_sig_cmp(data, 0, 8) != 0) { set_err(err, errlen, "not a PNG file (bad signature)"); return CIC_ERR_MAGIC; }

    /* Walk the chunk list before libpng sees it: a chunk that declares more bytes than the file still holds is
     * truncation, refused here. libpng only *warns* ("chunk data is too large", a benign error) about an oversized
     * ancillary chunk and then allocates its declared length (up to 2 GiB for a 100-byte file; found by fuzzing).
     * Lenient mode tolerates a cut inside IDAT (libpng reads IDAT incrementally and allocates nothing for it). */
    for (size_t pos = 8; pos + 8 <= len;) {
        uint32_t clen = ((uint32_t)data[pos] << 24) | ((uint32_t)data[pos + 1] << 16) | ((uint32_t)data[pos + 2] << 8) | data[pos + 3];
        const uint8_t *type = data + pos + 4;
        int is_idat = memcmp(type, "IDAT", 4) == 0;
        if (clen > 0x7fffffffu) {
            char msg[120];
            snprintf(msg, sizeof msg, "chunk length %u at offset %zu exceeds the PNG maximum 2^31-1", (unsigned)clen, pos);
            set_err(err, errlen, msg);
            return CIC_ERR_CORRUPT;
        }
        if ((uint64_t)clen + 12 > (uint64_t)(len - pos)) {
            if (is_idat && !opt->strict) break;
            char msg[160];
            snprintf(msg, sizeof msg, "chunk '%c%c%c%c' at offset %zu declares %u bytes but only %zu remain",
                     isprint(type[0]) ? type[0] : '?', isprint(type[1]) ? type[1] : '?', isprint(type[2]) ? type[2] : '?',
                     isprint(type[3]) ? type[3] : '?', pos, (unsigned)clen, len - pos - 8);
            set_err(err, errlen, msg);
            return CIC_ERR_TRUNCATED;
        }
        if (memcmp(type, "IEND", 4) == 0) break;
        pos += 12 + (size_t)clen;
    }

    cic_png_src src = {data, len, 8, 0, err, errlen};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, cic_png_error, cic_png_warning);
    if (!png) { set_err(err, errlen, "out of memory (png_create_read_struct)"); return CIC_ERR_NOMEM; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_err(err, errlen, "out of memory (png_create_info_struct)");
        return CIC_ERR_NOMEM;
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int code = CIC_OK;

    if (setjmp(png_jmpbuf(png))) {
        if (code == CIC_OK) code = classify_png_error(&src, err ? err : "");
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return code;
    }
    png_set_read_fn(png, &src, cic_png_read);
    png_set_sig_bytes(png, 8);
    if (opt->strict) png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    /* Text, ICC, palette-suggestion and EXIF chunks are never used: skip them unparsed (CRC still checked), so
     * libpng neither allocates nor decompresses them. */
    static const png_byte unused_chunks[] = {'t', 'E', 'X', 't', '\0', 'z', 'T', 'X', 't', '\0', 'i', 'T', 'X', 't', '\0',
                                             'i', 'C', 'C', 'P', '\0', 's', 'P', 'L', 'T', '\0', 'e', 'X', 'I', 'f', '\0'};
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, unused_chunks, 6);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);
    uint64_t npix = (uint64_t)w * (uint64_t)h;
    if (w == 0 || h == 0) { code = CIC_ERR_CORRUPT; png_error(png, "zero image dimension"); }
    if (opt->max_pixels && npix > opt->max_pixels) {
        char msg[160];
        snprintf(msg, sizeof msg, "image is %ux%u = %llu pixels, above the limit of %llu pixels", (unsigned)w,
                 (unsigned)h, (unsigned long long)npix, (unsigned long long)opt->max_pixels);
        code = CIC_ERR_TOO_LARGE;
        png_error(png, msg);
    }
    if (npix * 3 > (uint64_t)SIZE_MAX / 2) { code = CIC_ERR_TOO_LARGE; png_error(png, "image too large for memory"); }

    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16) png_set_scale_16(png);
    png_set_strip_alpha(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 || png_get_rowbytes(png, info) != (size_t)w * 3) {
        code = CIC_ERR_UNSUPPORTED;
        png_error(png, "unexpected PNG layout after conversion to RGB8");
    }
    pixels = (uint8_t *)malloc((size_t)npix * 3);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) { code = CIC_ERR_NOMEM; png_error(png, "out of memory for the pixel buffer"); }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    if (opt->strict) png_read_end(png, NULL);

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *out = pixels;
    *width = w;
    *height = h;
    return CIC_OK;
}

/* ========================================================================================== JPEG */

typedef struct {
    struct jpeg_error_mgr pub; /* must be first */
    jmp_buf jb;
    int strict;
    int code;
    int warnings;
    char *err;
    size_t errlen;
} cic_jpeg_err;

static int classify_jpeg_code(int msg_code) {
    switch (msg_code) {
    case JERR_INPUT_EMPTY: return CIC_ERR_EMPTY;
    case JERR_NO_SOI: return CIC_ERR_MAGIC;
    case JERR_INPUT_EOF:
    case JWRN_JPEG_EOF: return CIC_ERR_TRUNCATED;
    case JERR_OUT_OF_MEMORY: return CIC_ERR_NOMEM;
    case JERR_IMAGE_TOO_BIG: return CIC_ERR_TOO_LARGE;
    case JERR_BAD_PRECISION:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED: return CIC_ERR_UNSUPPORTED;
    default: return CIC_ERR_CORRUPT;
    }
}

static void cic_jpeg_error_exit(j_common_ptr c) {
    cic_jpeg_err *e = (cic_jpeg_err *)c->err;
    char buf[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, buf);
    set_err(e->err, e->errlen, buf);
    e->code = classify_jpeg_code(c->err->msg_code);
    longjmp(e->jb, 1);
}

static void cic_jpeg_emit(j_common_ptr c, int level) {
    if (level >= 0) return; /* trace messages */
    cic_jpeg_err *e = (cic_jpeg_err *)c->err;
    char buf[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, buf);
    if (e->strict) {
        set_err(e->err, e->errlen, buf);
        e->code = classify_jpeg_code(c->err->msg_code);
        longjmp(e->jb, 1);
    }
    if (e->warnings == 0) set_err(e->err, e->errlen, buf);
    e->warnings++;
    c->err->num_warnings++;
}

static uint32_t rd16(const uint8_t *p, int le) { return le ? (uint32_t)(p[0] | (p[1] << 8)) : (uint32_t)((p[0] << 8) | p[1]); }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? ((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24))
              : (((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3]);
}

/* EXIF APP1 payload ("Exif\0\0" + TIFF) -> orientation 1..8, or 1 when absent/invalid. Every read is bounds-checked. */
static int exif_orientation(const uint8_t *d, size_t len) {
    if (len < 6 + 8 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    const uint8_t *t = d + 6;
    size_t n = len - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 1;
    if (rd16(t + 2, le) != 42) return 1;
    uint32_t ifd = rd32(t + 4, le);
    if ((size_t)ifd + 2 > n) return 1;
    uint32_t count = rd16(t + ifd, le);
    for (uint32_t i = 0; i < count; i++) {
        size_t off = (size_t)ifd + 2 + 12 * (size_t)i;
        if (off + 12 > n) break;
        if (rd16(t + off, le) == 0x0112) {
            uint32_t type = rd16(t + off + 2, le);
            uint32_t v = type == 3 ? rd16(t + off + 8, le) : (type == 4 ? rd32(t + off + 8, le) : 0);
            return (v >= 1 && v <= 8) ? (int)v : 1;
        }
    }
    return 1;
}

int cic_jpeg_read_header(const uint8_t *data, size_t len, uint32_t *width, uint32_t *height, int *components,
                         char *err, size_t errlen) {
    if (!data || len == 0) { set_err(err, errlen, "empty input"); return CIC_ERR_EMPTY; }
    struct jpeg_decompress_struct cinfo;
    cic_jpeg_err jerr;
    memset(&jerr, 0, sizeof jerr);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = cic_jpeg_error_exit;
    jerr.pub.emit_message = cic_jpeg_emit;
    jerr.strict = 1;
    jerr.err = err;
    jerr.errlen = errlen;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        return jerr.code ? jerr.code : CIC_ERR_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    *width = cinfo.image_width;
    *height = cinfo.image_height;
    *components = cinfo.num_components;
    jpeg_destroy_decompress(&cinfo);
    return CIC_OK;
}

static inline uint8_t muldiv255(int a, int b) {
    int tmp = a * b + 128;
    return (uint8_t)(((tmp >> 8) + tmp) >> 8);
}

int cic_jpeg_decode_rgb(const uint8_t *data, size_t len, const cic_decode_options *opt,
                        uint8_t **out, uint32_t *width, uint32_t *height, int *orientation, int *warnings,
                        char *err, size_t errlen) {
    if (!data || !out || !width || !height || !opt) { set_err(err, errlen, "bad arguments"); return CIC_ERR_ARGUMENT; }
    *out = NULL;
    if (orientation) *orientation = 1;
    if (warnings) *warnings = 0;
    if (len == 0) { set_err(err, errlen, "empty input"); return CIC_ERR_EMPTY; }
    if (len < 3 || data[0] != 0xFF || data[1] != 0xD8) { set_err(err, errlen, "not a JPEG file (no SOI marker)"); return CIC_ERR_MAGIC; }

    struct jpeg_decompress_struct cinfo;
    cic_jpeg_err jerr;
    memset(&jerr, 0, sizeof jerr);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = cic_jpeg_error_exit;
    jerr.pub.emit_message = cic_jpeg_emit;
    jerr.strict = opt->strict;
    jerr.err = err;
    jerr.errlen = errlen;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile cmyk = NULL;

    if (setjmp(jerr.jb)) {
        free(pixels);
        free(cmyk);
        jpeg_destroy_decompress(&cinfo);
        return jerr.code ? jerr.code : CIC_ERR_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    if (opt->read_orientation) jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    uint64_t npix = (uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height;
    if (opt->max_pixels && npix > opt->max_pixels) {
        char msg[160];
        snprintf(msg, sizeof msg, "image is %ux%u = %llu pixels, above the limit of %llu pixels",
                 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, (unsigned long long)npix,
                 (unsigned long long)opt->max_pixels);
        set_err(err, errlen, msg);
        jpeg_destroy_decompress(&cinfo);
        return CIC_ERR_TOO_LARGE;
    }
    if (opt->read_orientation && orientation) {
        for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
            if (m->marker == JPEG_APP0 + 1 && m->data && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
                *orientation = exif_orientation(m->data, m->data_length);
                break;
            }
        }
    }
    int is_cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    uint32_t w = cinfo.output_width, h = cinfo.output_height;
    if ((int)cinfo.output_components != (is_cmyk ? 4 : 3)) {
        set_err(err, errlen, "unexpected number of output components");
        jerr.code = CIC_ERR_UNSUPPORTED;
        longjmp(jerr.jb, 1);
    }
    pixels = (uint8_t *)malloc((size_t)w * h * 3);
    if (is_cmyk) cmyk = (uint8_t *)malloc((size_t)w * 4);
    if (!pixels || (is_cmyk && !cmyk)) {
        set_err(err, errlen, "out of memory for the pixel buffer");
        jerr.code = CIC_ERR_NOMEM;
        longjmp(jerr.jb, 1);
    }
    int invert = is_cmyk && cinfo.saw_Adobe_marker; /* Adobe CMYK is stored inverted */
    while (cinfo.output_scanline < h) {
        if (!is_cmyk) {
            JSAMPROW rowp[16];
            int n = 0;
            for (; n < 16 && cinfo.output_scanline + (uint32_t)n < h; n++)
                rowp[n] = pixels + (size_t)(cinfo.output_scanline + n) * w * 3;
            if (jpeg_read_scanlines(&cinfo, rowp, (JDIMENSION)n) == 0) {
                set_err(err, errlen, "libjpeg returned no scanlines");
                jerr.code = CIC_ERR_CORRUPT;
                longjmp(jerr.jb, 1);
            }
        } else {
            uint32_t y = cinfo.output_scanline;
            JSAMPROW rowp[1] = {cmyk};
            if (jpeg_read_scanlines(&cinfo, rowp, 1) != 1) {
                set_err(err, errlen, "libjpeg returned no scanlines");
                jerr.code = CIC_ERR_CORRUPT;
                longjmp(jerr.jb, 1);
            }
            uint8_t *o = pixels + (size_t)y * w * 3;
            for (uint32_t x = 0; x < w; x++) {
                int c = cmyk[4 * x], m = cmyk[4 * x + 1], yy = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
                if (invert) { c = 255 - c; m = 255 - m; yy = 255 - yy; k = 255 - k; }
                int nk = 255 - k; /* Pillow's cmyk2rgb */
                o[3 * x] = (uint8_t)(nk - muldiv255(c, nk));
                o[3 * x + 1] = (uint8_t)(nk - muldiv255(m, nk));
                o[3 * x + 2] = (uint8_t)(nk - muldiv255(yy, nk));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    if (warnings) *warnings = jerr.warnings;
    free(cmyk);
    jpeg_destroy_decompress(&cinfo);
    *out = pixels;
    *width = w;
    *height = h;
    return CIC_OK;
}

/* ====================================================================================== Encoders */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char *err;
    size_t errlen;
} cic_jpeg_cerr;

static void cic_jpeg_cerror_exit(j_common_ptr c) {
    cic_jpeg_cerr *e = (cic_jpeg_cerr *)c->err;
    char buf[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, buf);
    set_err(e->err, e->errlen, buf);
    longjmp(e->jb, 1);
}

int cic_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int components, int quality,
                    int progressive, int ycck, int exif_orientation_tag, uint8_t **out, size_t *outlen,
                    char *err, size_t errlen) {
    if (!pixels || !out || !outlen || width == 0 || height == 0 || (components != 1 && components != 3 && components != 4)) {
        set_err(err, errlen, "bad arguments");
        return CIC_ERR_ARGUMENT;
    }
    struct jpeg_compress_struct cinfo;
    cic_jpeg_cerr jerr;
    memset(&jerr, 0, sizeof jerr);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = cic_jpeg_cerror_exit;
    jerr.err = err;
    jerr.errlen = errlen;
    unsigned char *volatile buf = NULL;
    unsigned long buflen = 0;
    uint8_t *volatile inv = NULL;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_compress(&cinfo);
        free(buf);
        free(inv);
        return CIC_ERR_CORRUPT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buf, &buflen);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : (components == 3 ? JCS_RGB : JCS_CMYK);
    jpeg_set_defaults(&cinfo);
    if (components == 4) jpeg_set_colorspace(&cinfo, ycck ? JCS_YCCK : JCS_CMYK); /* writes an Adobe marker */
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    if (exif_orientation_tag >= 1 && exif_orientation_tag <= 8) {
        /* "Exif\0\0" + big-endian TIFF header + IFD0 with one entry (Orientation, SHORT, 1) */
        static const uint8_t tmpl[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                                       0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
        uint8_t app1[sizeof tmpl];
        memcpy(app1, tmpl, sizeof tmpl);
        app1[25] = (uint8_t)exif_orientation_tag;
        jpeg_write_marker(&cinfo, JPEG_APP0 + 1, app1, sizeof app1);
    }
    size_t stride = (size_t)width * components;
    if (components == 4) {
        inv = (uint8_t *)malloc(stride);
        if (!inv) longjmp(jerr.jb, 1);
    }
    while (cinfo.next_scanline < height) {
        const uint8_t *row = pixels + (size_t)cinfo.next_scanline * stride;
        JSAMPROW rp[1];
        if (components == 4) { /* Adobe convention: store inverted CMYK */
            for (size_t i = 0; i < stride; i++) inv[i] = (uint8_t)(255 - row[i]);
            rp[0] = inv;
        } else {
            rp[0] = (JSAMPROW)row;
        }
        jpeg_write_scanlines(&cinfo, rp, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(inv);
    *out = buf;
    *outlen = buflen;
    return CIC_OK;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int oom;
} cic_png_sink;

static void cic_png_write(png_structp png, png_bytep data, size_t n) {
    cic_png_sink *s = (cic_png_sink *)png_get_io_ptr(png);
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n) cap *= 2;
        uint8_t *nb = (uint8_t *)realloc(s->buf, cap);
        if (!nb) { s->oom = 1; png_error(png, "out of memory"); }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}
static void cic_png_flush(png_structp png) { (void)png; }

int cic_png_encode(const uint8_t *samples, uint32_t width, uint32_t height, int color_type, int bit_depth,
                   const uint8_t *palette, int palette_len, const uint8_t *trns, int trns_len, int interlace,
                   uint8_t **out, size_t *outlen, char *err, size_t errlen) {
    if (!samples || !out || !outlen || width == 0 || height == 0) { set_err(err, errlen, "bad arguments"); return CIC_ERR_ARGUMENT; }
    int channels;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: channels = 1; break;
    case PNG_COLOR_TYPE_RGB: channels = 3; break;
    case PNG_COLOR_TYPE_PALETTE: channels = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    default: set_err(err, errlen, "bad color type"); return CIC_ERR_ARGUMENT;
    }
    cic_png_src esrc = {NULL, 0, 0, 0, err, errlen};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &esrc, cic_png_error, cic_png_warning);
    if (!png) return CIC_ERR_NOMEM;
    png_infop info = png_create_info_struct(png);
    cic_png_sink sink = {NULL, 0, 0, 0};
    uint8_t *volatile packed = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(sink.buf);
        free(packed);
        return CIC_ERR_CORRUPT;
    }
    png_set_write_fn(png, &sink, cic_png_write, cic_png_flush);
    png_set_IHDR(png, info, width, height, bit_depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE && palette) png_set_PLTE(png, info, (png_const_colorp)palette, palette_len);
    if (trns && trns_len > 0) {
        if (color_type == PNG_COLOR_TYPE_PALETTE) {
            png_set_tRNS(png, info, trns, trns_len, NULL);
        } else if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_RGB) {
            /* trns holds the transparent colour as 16-bit big-endian gray or r,g,b */
            png_color_16 c;
            memset(&c, 0, sizeof c);
            if (color_type == PNG_COLOR_TYPE_GRAY && trns_len >= 2) c.gray = (png_uint_16)((trns[0] << 8) | trns[1]);
            if (color_type == PNG_COLOR_TYPE_RGB && trns_len >= 6) {
                c.red = (png_uint_16)((trns[0] << 8) | trns[1]);
                c.green = (png_uint_16)((trns[2] << 8) | trns[3]);
                c.blue = (png_uint_16)((trns[4] << 8) | trns[5]);
            }
            png_set_tRNS(png, info, NULL, 0, &c);
        }
    }
    png_write_info(png, info);
    size_t in_stride = (size_t)width * channels * (bit_depth == 16 ? 2 : 1);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (bit_depth < 8) {
        packed = (uint8_t *)calloc(1, rowbytes);
        if (!packed) png_error(png, "out of memory");
    }
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++) {
        for (uint32_t y = 0; y < height; y++) {
            const uint8_t *row = samples + (size_t)y * in_stride;
            if (bit_depth < 8) {
                memset(packed, 0, rowbytes);
                int per = 8 / bit_depth;
                for (uint32_t x = 0; x < width; x++) {
                    int shift = 8 - bit_depth * (1 + (int)(x % (uint32_t)per));
                    packed[x / (uint32_t)per] |= (uint8_t)((row[x] & ((1 << bit_depth) - 1)) << shift);
                }
                png_write_row(png, packed);
            } else {
                png_write_row(png, (png_const_bytep)row);
            }
        }
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(packed);
    *out = sink.buf;
    *outlen = sink.len;
    return CIC_OK;
}

/* ==================================================================== Pillow-compatible resample */

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc, for output positions [first, first+count) only.
 * bounds[2*i] = xmin, bounds[2*i+1] = number of taps; kk[i*ksize + t] = fixed-point coefficient. */
static int precompute_coeffs(int in_size, int out_size, int first, int count, int filter, int **boundsp, int32_t **kkp) {
    double (*fn)(double) = filter == CIC_FILTER_BILINEAR ? bilinear_filter : bicubic_filter;
    double fsupport = filter == CIC_FILTER_BILINEAR ? 1.0 : 2.0;
    double scale = (double)in_size / out_size; /* box = (0, in_size) */
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = fsupport * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = (int *)malloc(sizeof(int) * 2 * (size_t)count);
    int32_t *kk = (int32_t *)malloc(sizeof(int32_t) * (size_t)ksize * (size_t)count);
    double *k = (double *)malloc(sizeof(double) * (size_t)ksize);
    if (!bounds || !kk || !k) { free(bounds); free(kk); free(k); return -1; }
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        int32_t *kf = kk + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? k[x] : 0.0;
            kf[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * i] = xmin;
        bounds[2 * i + 1] = xmax;
    }
    free(k);
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static inline uint8_t clip8(int32_t in) {
    int32_t v = in >> PRECISION_BITS;
    return v < 0 ? 0 : (v > 255 ? 255 : (uint8_t)v);
}

/* The two passes are written once (always inlined) and compiled twice: a portable baseline-x86-64/any-ISA version and
 * an AVX2 version (per-function target attribute; the compiler vectorizes the integer loops with vpmulld), chosen at
 * run time with __builtin_cpu_supports. Integer sums are exact, so both give identical bytes. */
#define CIC_INLINE static inline __attribute__((always_inline))

/* Horizontal pass: for each of `rows` rows, out[xx] = clip8(sum_t in[(bounds[2xx]-col0)+t] * k[t]) per channel. */
CIC_INLINE void hpass_body(const uint8_t *in, size_t in_stride, uint32_t rows, int col0, const int *bounds, const int32_t *kk,
                  int ksize, uint32_t out_w, uint8_t *out, size_t out_stride) {
    for (uint32_t y = 0; y < rows; y++) {
        const uint8_t *row = in + (size_t)y * in_stride;
        uint8_t *o = out + (size_t)y * out_stride;
        for (uint32_t xx = 0; xx < out_w; xx++) {
            int xmin = bounds[2 * xx] - col0, xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            const uint8_t *p = row + (size_t)xmin * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                int32_t c = k[x];
                s0 += p[3 * x] * c;
                s1 += p[3 * x + 1] * c;
                s2 += p[3 * x + 2] * c;
            }
            o[3 * xx] = clip8(s0);
            o[3 * xx + 1] = clip8(s1);
            o[3 * xx + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: out row yy = clip8(sum_t in row (bounds[2yy]-row0+t) * k[t]) over `rowlen` bytes.
 * Integer sums are exact, so accumulating row by row gives Pillow's per-pixel result. */
CIC_INLINE void vpass_body(const uint8_t *in, size_t in_stride, int row0, const int *bounds, const int32_t *kk, int ksize,
                           uint32_t out_h, size_t rowlen, uint8_t *out, size_t out_stride, int32_t *acc) {
    for (uint32_t yy = 0; yy < out_h; yy++) {
        int ymin = bounds[2 * yy] - row0, ymax = bounds[2 * yy + 1];
        const int32_t *k = kk + (size_t)yy * ksize;
        uint8_t *o = out + (size_t)yy * out_stride;
        for (size_t i = 0; i < rowlen; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ymax; y++) {
            const uint8_t *p = in + (size_t)(ymin + y) * in_stride;
            int32_t c = k[y];
            for (size_t i = 0; i < rowlen; i++) acc[i] += p[i] * c;
        }
        for (size_t i = 0; i < rowlen; i++) o[i] = clip8(acc[i]);
    }
}

#define HPASS_ARGS const uint8_t *in, size_t in_stride, uint32_t rows, int col0, const int *bounds, const int32_t *kk, \
                   int ksize, uint32_t out_w, uint8_t *out, size_t out_stride
#define HPASS_CALL in, in_stride, rows, col0, bounds, kk, ksize, out_w, out, out_stride
#define VPASS_ARGS const uint8_t *in, size_t in_stride, int row0, const int *bounds, const int32_t *kk, int ksize, \
                   uint32_t out_h, size_t rowlen, uint8_t *out, size_t out_stride, int32_t *acc
#define VPASS_CALL in, in_stride, row0, bounds, kk, ksize, out_h, rowlen, out, out_stride, acc

static void hpass_portable(HPASS_ARGS) { hpass_body(HPASS_CALL); }
static void vpass_portable(VPASS_ARGS) { vpass_body(VPASS_CALL); }
static _Atomic int cic_isa_override = 0; /* 0 = auto, 1 = portable only */
void cic_resample_set_portable(int portable_only) { cic_isa_override = portable_only ? 1 : 0; }

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) static void hpass_avx2(HPASS_ARGS) { hpass_body(HPASS_CALL); }
__attribute__((target("avx2"))) static void vpass_avx2(VPASS_ARGS) { vpass_body(VPASS_CALL); }
static int cic_use_avx2(void) {
    if (cic_isa_override) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#else
static int cic_use_avx2(void) { return 0; }
#define hpass_avx2 hpass_portable
#define vpass_avx2 vpass_portable
#endif

static void hpass(HPASS_ARGS) {
    if (cic_use_avx2()) hpass_avx2(HPASS_CALL);
    else hpass_portable(HPASS_CALL);
}

static int vpass(const uint8_t *in, size_t in_stride, int row0, const int *bounds, const int32_t *kk, int ksize,
                 uint32_t out_h, size_t rowlen, uint8_t *out, size_t out_stride) {
    int32_t *acc = (int32_t *)malloc(sizeof(int32_t) * rowlen);
    if (!acc) return CIC_ERR_NOMEM;
    if (cic_use_avx2()) vpass_avx2(VPASS_CALL);
    else vpass_portable(VPASS_CALL);
    free(acc);
    return CIC_OK;
}

int cic_resample_vertical_first(uint32_t src_w, uint32_t src_h, uint32_t out_w, uint32_t out_h, int pass_order) {
    if (pass_order == CIC_PASS_HORIZONTAL_FIRST) return 0;
    if (out_w == src_w || out_h == src_h) return 0; /* a single pass: order is moot */
    /* Pillow >= 13 (python-pillow/Pillow#9549): vertical pass first when the height shrinks by more than twice
     * the width's shrink, in pixels. Fitted and verified bit-exactly against Pillow 13.0.0 (see tests). */
    return out_h < src_h && ((int64_t)src_h - out_h) > 2 * ((int64_t)src_w - out_w);
}

int cic_resize_crop_rgb8(const uint8_t *src, uint32_t src_w, uint32_t src_h, uint32_t out_w, uint32_t out_h,
                         uint32_t crop_x, uint32_t crop_y, uint32_t crop_w, uint32_t crop_h, int filter,
                         int pass_order, uint8_t *dst) {
    if (!src || !dst || src_w == 0 || src_h == 0 || out_w == 0 || out_h == 0 || crop_w == 0 || crop_h == 0 ||
        (uint64_t)crop_x + crop_w > out_w || (uint64_t)crop_y + crop_h > out_h || src_w > INT_MAX / 4 ||
        src_h > INT_MAX / 4 || out_w > INT_MAX / 4 || out_h > INT_MAX / 4 ||
        (filter != CIC_FILTER_BILINEAR && filter != CIC_FILTER_BICUBIC))
        return CIC_ERR_ARGUMENT;
    int need_h = out_w != src_w;
    int need_v = out_h != src_h;
    int vfirst = cic_resample_vertical_first(src_w, src_h, out_w, out_h, pass_order);
    int *bv = NULL, *bh = NULL;
    int32_t *kv = NULL, *kh = NULL;
    int ksv = 0, ksh = 0, rc = CIC_OK;
    uint8_t *tmp = NULL;
    size_t src_stride = (size_t)src_w * 3, dst_stride = (size_t)crop_w * 3;
    if (need_v && (ksv = precompute_coeffs((int)src_h, (int)out_h, (int)crop_y, (int)crop_h, filter, &bv, &kv)) < 0) {
        rc = CIC_ERR_NOMEM;
        goto done;
    }
    if (need_h && (ksh = precompute_coeffs((int)src_w, (int)out_w, (int)crop_x, (int)crop_w, filter, &bh, &kh)) < 0) {
        rc = CIC_ERR_NOMEM;
        goto done;
    }
    if (need_h && need_v && vfirst) {
        /* vertical pass over the source columns the cropped outputs need, then horizontal */
        int col0 = bh[0], col1 = bh[2 * (crop_w - 1)] + bh[2 * (crop_w - 1) + 1];
        size_t tstride = (size_t)(col1 - col0) * 3;
        tmp = (uint8_t *)malloc(tstride * crop_h);
        if (!tmp) { rc = CIC_ERR_NOMEM; goto done; }
        rc = vpass(src + (size_t)col0 * 3, src_stride, 0, bv, kv, ksv, crop_h, tstride, tmp, tstride);
        if (rc == CIC_OK) hpass(tmp, tstride, crop_h, col0, bh, kh, ksh, crop_w, dst, dst_stride);
    } else if (need_h && need_v) {
        /* Pillow's classic order: horizontal pass over the rows the cropped outputs need, then vertical */
        int row0 = bv[0], row1 = bv[2 * (crop_h - 1)] + bv[2 * (crop_h - 1) + 1];
        tmp = (uint8_t *)malloc(dst_stride * (size_t)(row1 - row0));
        if (!tmp) { rc = CIC_ERR_NOMEM; goto done; }
        hpass(src + (size_t)row0 * src_stride, src_stride, (uint32_t)(row1 - row0), 0, bh, kh, ksh, crop_w, tmp, dst_stride);
        rc = vpass(tmp, dst_stride, row0, bv, kv, ksv, crop_h, dst_stride, dst, dst_stride);
    } else if (need_h) {
        hpass(src + (size_t)crop_y * src_stride, src_stride, crop_h, 0, bh, kh, ksh, crop_w, dst, dst_stride);
    } else if (need_v) {
        rc = vpass(src + (size_t)crop_x * 3, src_stride, 0, bv, kv, ksv, crop_h, dst_stride, dst, dst_stride);
    } else {
        for (uint32_t y = 0; y < crop_h; y++)
            memcpy(dst + (size_t)y * dst_stride, src + (size_t)(y + crop_y) * src_stride + (size_t)crop_x * 3, dst_stride);
    }
done:
    free(tmp);
    free(bv);
    free(kv);
    free(bh);
    free(kh);
    return rc;
}

void cic_normalize_chw(const uint8_t *src, size_t pixels, const float mean[3], const float std[3], float *dst) {
    for (int c = 0; c < 3; c++) {
        float m = mean[c], s = std[c];
        float *o = dst + (size_t)c * pixels;
        const uint8_t *p = src + c;
        for (size_t i = 0; i < pixels; i++) o[i] = ((float)p[3 * i] / 255.0f - m) / s;
    }
}
