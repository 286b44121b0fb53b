#!/usr/bin/env python3
"""Decode + preprocess speed: Pillow/numpy vs our imaging-bench on the same files, single thread, same run.

Pillow side per image: Image.open(BytesIO(bytes)) -> convert('RGB') -> torchvision-style resize of the shorter side
(Image.resize, same filter) -> center crop -> numpy float32 /255, normalize, HWC->CHW. File bytes are read into memory
first on both sides, so the timing is decode + preprocess only. Prints best-of-N images/s and the ratio.

    swift build -c release --product imaging-bench
    python3 bench/decode_vs_pillow.py /work/shared/data/imagenet-sample --preset vit
    python3 bench/decode_vs_pillow.py /work/shared/data/cifar10/test --preset cifar10 --limit 2000
"""
import argparse, io, math, os, re, subprocess, tempfile, time
import numpy as np
from PIL import Image

PRESETS = {
    "vit": (224, 0.9, Image.BICUBIC, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": (224, 0.875, Image.BICUBIC, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "efficientnet-lite0": (224, 0.875, Image.BILINEAR, (0.498,) * 3, (0.502,) * 3),
    "cifar10": (32, 1.0, Image.BICUBIC, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


def pillow_pipeline(blob, size, crop_pct, filt, mean, std):
    im = Image.open(io.BytesIO(blob)).convert("RGB")
    w, h = im.size
    target = math.floor(size / crop_pct)
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(target * long / short)
    nw, nh = (target, new_long) if w <= h else (new_long, target)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), filt)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    a = np.asarray(im, dtype=np.float32) / 255.0
    a = (a - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--preset", default="vit")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--bench", default=".build/release/imaging-bench")
    args = ap.parse_args()
    files = []
    for root, _, fs in os.walk(args.folder):
        files += [os.path.join(root, f) for f in fs if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    files.sort()
    if args.limit:
        files = files[: args.limit]
    blobs = [open(f, "rb").read() for f in files]
    cfg = PRESETS[args.preset]
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for b in blobs:
            pillow_pipeline(b, *cfg)
        best = min(best, time.perf_counter() - t0)
    pil_ips = len(files) / best
    print(f"pillow: {len(files)} images, preset {args.preset}, best of {args.repeat}: {best:.3f} s, {pil_ips:.1f} images/s")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(files) + "\n")
        lst = fh.name
    try:
        out = subprocess.run([args.bench, "@" + lst, "--preset", args.preset, "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(lst)
    print(out.strip())
    ours = float(re.search(r"([0-9.]+) images/s", out).group(1))
    print(f"ratio ours/pillow: {ours / pil_ips:.2f}x  (Pillow {Image.__version__}, numpy {np.__version__})")


if __name__ == "__main__":
    main()
