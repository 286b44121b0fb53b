/* Writes small seed images for the PNG/JPEG fuzzers with the shim's own encoders: every PNG colour type and bit
 * depth, interlaced or not, with palette/tRNS; JPEG gray/RGB/CMYK/YCCK, baseline/progressive, with EXIF tags.
 * Built and run once by tools/fuzz.sh seeds; the output is committed under fuzz/seeds/. */
#include "cimagecodecs.h"
#include <stdio.h>
#include <stdlib.h>

static void save(const char *dir, const char *name, const uint8_t *b, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: make_seeds PNGDIR JPEGDIR\n"); return 2; }
    enum { W = 7, H = 5 };
    uint8_t samples[W * H * 4 * 2];
    for (size_t i = 0; i < sizeof samples; i++) samples[i] = (uint8_t)(i * 37 + 11);
    uint8_t palette[16 * 3], trns[16];
    for (int i = 0; i < 48; i++) palette[i] = (uint8_t)(i * 5);
    for (int i = 0; i < 16; i++) trns[i] = (uint8_t)(i * 16);
    const int types[] = {0, 2, 3, 4, 6};
    const int depths[] = {1, 2, 4, 8, 16};
    char err[256], name[64];
    for (int ti = 0; ti < 5; ti++) for (int di = 0; di < 5; di++) for (int il = 0; il <= 1; il++) {
        int ct = types[ti], bd = depths[di];
        if (ct == 3 && bd == 16) continue;
        if ((ct == 2 || ct == 4 || ct == 6) && bd < 8) continue;
        uint8_t s[W * H * 4 * 2];
        int maxv = bd >= 8 ? 255 : (1 << bd) - 1;
        if (ct == 3) maxv = bd == 8 ? 15 : maxv;
        for (size_t i = 0; i < sizeof s; i++) s[i] = bd == 16 ? samples[i] : (uint8_t)(samples[i] % (maxv + 1));
        uint8_t *out = NULL; size_t len = 0;
        int rc = cic_png_encode(s, W, H, ct, bd, ct == 3 ? palette : NULL, ct == 3 ? 16 : 0, ct == 3 ? trns : NULL,
                                ct == 3 ? 16 : 0, il, &out, &len, err, sizeof err);
        if (rc != CIC_OK) { fprintf(stderr, "png ct %d bd %d: %s\n", ct, bd, err); continue; }
        snprintf(name, sizeof name, "ct%d_bd%d%s.png", ct, bd, il ? "_adam7" : "");
        save(argv[1], name, out, len);
        cic_free(out);
    }
    uint8_t px[16 * 12 * 4];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)((i * 29) ^ (i >> 3));
    const struct { int comps, prog, ycck, exif; const char *name; } js[] = {
        {1, 0, 0, 0, "gray.jpg"}, {3, 0, 0, 0, "rgb.jpg"}, {3, 1, 0, 0, "rgb_progressive.jpg"},
        {4, 0, 0, 0, "cmyk.jpg"}, {4, 0, 1, 0, "ycck.jpg"}, {3, 0, 0, 6, "rgb_exif6.jpg"}, {1, 1, 0, 3, "gray_prog_exif3.jpg"},
    };
    for (size_t i = 0; i < sizeof js / sizeof js[0]; i++) {
        uint8_t *out = NULL; size_t len = 0;
        int rc = cic_jpeg_encode(px, 16, 12, js[i].comps, 75, js[i].prog, js[i].ycck, js[i].exif, &out, &len, err, sizeof err);
        if (rc != CIC_OK) { fprintf(stderr, "%s: %s\n", js[i].name, err); continue; }
        save(argv[2], js[i].name, out, len);
        cic_free(out);
    }
    return 0;
}
