#!/usr/bin/env python3
"""Compare our preprocessing (imaging-bench --dump) with Pillow + timm on a folder of images.

For each preset it builds timm's eval transform (timm.data.create_transform, i.e. torchvision Resize(shorter side,
PIL resample) -> CenterCrop -> ToTensor -> Normalize), dumps our uint8 crop and float tensor for the same files,
and reports the share of values within 1 level (uint8) / 1/255/std (float) and the max differences. It also counts
images with an EXIF orientation other than 1.

    swift build -c release --product imaging-bench
    python3 tools/check_preprocess_parity.py /work/shared/data/imagenet-sample --presets vit efficientnet-lite0
"""
import argparse, os, subprocess, sys, tempfile
import numpy as np
from PIL import Image
import timm.data

PRESETS = {
    "vit": dict(input_size=(3, 224, 224), crop_pct=0.9, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3),
    "imagenet": dict(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic",
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "efficientnet-lite0": dict(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bilinear",
                               mean=(0.498,) * 3, std=(0.502,) * 3),
    "cifar10": dict(input_size=(3, 32, 32), crop_pct=1.0, interpolation="bicubic",
                    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
}


def list_images(folder):
    out = []
    for root, _, files in os.walk(folder):
        for f in files:
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(root, f))
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--presets", nargs="+", default=["vit", "efficientnet-lite0"])
    ap.add_argument("--bench", default=".build/release/imaging-bench")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    files = list_images(args.folder)
    if args.limit:
        files = files[: args.limit]
    names = ["%06d" % k for k in range(len(files))]

    exif_counts = {}
    for f in files:
        with Image.open(f) as im:
            o = im.getexif().get(0x0112, 1)
        exif_counts[o] = exif_counts.get(o, 0) + 1
    print(f"{len(files)} images; EXIF orientation counts: {dict(sorted(exif_counts.items()))}")

    for preset in args.presets:
        cfg = PRESETS[preset]
        full = timm.data.create_transform(**cfg, is_training=False)
        geo = type(full)(full.transforms[:-2])  # Resize + CenterCrop only
        with tempfile.TemporaryDirectory() as tmp:
            lst = os.path.join(tmp, "files.txt")
            with open(lst, "w") as fh:
                fh.write("\n".join(files) + "\n")
            subprocess.run([args.bench, "@" + lst, "--preset", preset, "--dump", tmp], check=True, stdout=subprocess.DEVNULL)
            n_u8 = n_u8_1 = 0
            max_u8 = 0
            n_f = n_f_1 = 0
            max_f = 0.0
            worst = (0, "")
            imgs_all1 = 0
            for f, name in zip(files, names):
                with Image.open(f) as im:
                    rgb = im.convert("RGB")
                ref_u8 = np.asarray(geo(rgb), dtype=np.int16)
                ref_f = full(rgb).numpy()
                ours_u8 = np.load(os.path.join(tmp, name + ".u8.npy")).astype(np.int16)
                ours_f = np.load(os.path.join(tmp, name + ".f32.npy"))
                d = np.abs(ours_u8 - ref_u8)
                n_u8 += d.size
                n_u8_1 += int((d <= 1).sum())
                max_u8 = max(max_u8, int(d.max()))
                if int(d.max()) > worst[0]:
                    worst = (int(d.max()), f)
                imgs_all1 += int(d.max() == 0)
                # float bound: one uint8 level is 1/255/std in normalised units
                lvl = 1.0 / 255.0 / np.array(cfg["std"], dtype=np.float32)[:, None, None]
                df = np.abs(ours_f - ref_f) / lvl
                n_f += df.size
                n_f_1 += int((df <= 1 + 1e-3).sum())
                max_f = max(max_f, float(df.max()))
            print(f"[{preset}] uint8 after resize+crop: {100.0 * n_u8_1 / n_u8:.4f}% within 1 level, max diff {max_u8} "
                  f"levels, {imgs_all1}/{len(files)} images bit-identical"
                  + (f" (worst: {os.path.basename(worst[1])})" if max_u8 else ""))
            print(f"[{preset}] float tensor: {100.0 * n_f_1 / n_f:.4f}% within 1 level, max diff {max_f:.4f} levels")


if __name__ == "__main__":
    main()
