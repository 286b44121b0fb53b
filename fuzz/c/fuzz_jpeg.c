/* libFuzzer harness for the CImageCodecs JPEG decoder and header reader (clang, ASan + UBSan; tools/fuzz.sh jpeg).
 * Strict and lenient modes, EXIF orientation parsing on. */
#include "cimagecodecs.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    uint32_t w = 0, h = 0;
    int comps = 0;
    (void)cic_jpeg_read_header(data, size, &w, &h, &comps, err, sizeof err);
    for (int strict = 0; strict <= 1; strict++) {
        /* 2^16 pixels keeps one decode short under ASan+UBSan; the cap check itself is what matters here. */
        cic_decode_options opt = {.max_pixels = 1u << 16, .strict = strict, .read_orientation = 1};
        uint8_t *out = NULL;
        int orientation = 0, warnings = -1;
        int rc = cic_jpeg_decode_rgb(data, size, &opt, &out, &w, &h, &orientation, &warnings, err, sizeof err);
        if (orientation < 1 || orientation > 8) abort();
        if (rc == CIC_OK) {
            if (!out || w == 0 || h == 0 || (uint64_t)w * h > opt.max_pixels) abort();
            if (strict && warnings != 0) abort();
            volatile uint8_t sink = out[(size_t)w * h * 3 - 1];
            (void)sink;
            cic_free(out);
        } else {
            if (out) abort();
            if (rc < 0 || rc > CIC_ERR_ARGUMENT || memchr(err, 0, sizeof err) == NULL) abort();
        }
    }
    return 0;
}
