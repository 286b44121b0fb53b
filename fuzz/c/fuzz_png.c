/* libFuzzer harness for the CImageCodecs PNG decoder (clang, ASan + UBSan; see tools/fuzz.sh png).
 * Every input must return a CIC_* code; on success the buffer must hold width*height*3 bytes (ASan checks it). */
#include "cimagecodecs.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int strict = 0; strict <= 1; strict++) {
        cic_decode_options opt = {.max_pixels = 1u << 22, .strict = strict, .read_orientation = 0};
        uint8_t *out = NULL;
        uint32_t w = 0, h = 0;
        char err[256];
        int rc = cic_png_decode_rgb(data, size, &opt, &out, &w, &h, err, sizeof err);
        if (rc == CIC_OK) {
            if (!out || w == 0 || h == 0 || (uint64_t)w * h > opt.max_pixels) abort();
            volatile uint8_t sink = out[(size_t)w * h * 3 - 1]; /* touches the last byte: ASan checks the size */
            (void)sink;
            cic_free(out);
        } else {
            if (out) abort(); /* no buffer may escape on failure */
            if (rc < 0 || rc > CIC_ERR_ARGUMENT || memchr(err, 0, sizeof err) == NULL) abort();
        }
    }
    return 0;
}
