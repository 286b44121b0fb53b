#!/usr/bin/env python3
"""Compare cic_resize_crop_rgb8 (Sources/CImageCodecs) with Pillow's Image.resize on random images, sizes, filters
and crop windows. Evidence for the Pillow 13 pass-order rule (vertical first when the height shrinks by more than
twice as many pixels as the width) and for the fixed-point arithmetic.

    python3 tools/check_resample_random.py [N]

It builds the shim as a shared library with clang (needs libpng-dev, libjpeg-dev) in a temp folder.
"""
import ctypes, os, random, subprocess, sys, tempfile
import numpy as np
from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
tmp = tempfile.mkdtemp()
lib = os.path.join(tmp, "libcic.so")
subprocess.run(["clang", "-O2", "-shared", "-fPIC", "-I" + os.path.join(root, "Sources/CImageCodecs/include"),
                "-I/usr/include/libpng16", os.path.join(root, "Sources/CImageCodecs/cimagecodecs.c"),
                "-lpng16", "-ljpeg", "-o", lib], check=True)
L = ctypes.CDLL(lib)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
rng = np.random.default_rng(7)
random.seed(7)
bad = vfirst = 0
for _ in range(n):
    W, H = random.randint(1, 160), random.randint(1, 160)
    ow, oh = random.randint(1, 200), random.randint(1, 200)
    filt = random.choice([Image.BILINEAR, Image.BICUBIC])
    src = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(src).resize((ow, oh), filt))
    cw, ch = random.randint(1, ow), random.randint(1, oh)
    cx, cy = random.randint(0, ow - cw), random.randint(0, oh - ch)
    dst = np.zeros((ch, cw, 3), np.uint8)
    rc = L.cic_resize_crop_rgb8(src.ctypes.data_as(ctypes.c_void_p), W, H, ow, oh, cx, cy, cw, ch, int(filt), 0,
                                dst.ctypes.data_as(ctypes.c_void_p))
    vfirst += L.cic_resample_vertical_first(W, H, ow, oh, 0)
    if rc != 0 or not (dst == ref[cy:cy + ch, cx:cx + cw]).all():
        bad += 1
        print("mismatch", (W, H), "->", (ow, oh), "crop", (cx, cy, cw, ch), "filter", int(filt), "rc", rc)
print(f"{n} random resize+crop cases vs Pillow {Image.__version__}: {bad} mismatches "
      f"({vfirst} ran vertical first)")
