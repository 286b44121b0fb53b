#!/usr/bin/env python3
"""Regenerate Tests/ImagingTests/Fixtures: small synthetic images (no third-party photos) and Pillow/timm references.

    python3 tools/make_imaging_fixtures.py

Sources: photo.jpg (baseline, 300x260), photo_progressive.jpg, gray.jpg, cmyk.jpg (Adobe CMYK, as Pillow writes it),
exif1.jpg..exif8.jpg (EXIF orientation tags), portrait.png (130x290 RGB), palette_trns.png (Pillow P + tRNS),
tiny32.jpg (32x32). References: ref_*.png are Pillow's decoded RGB (convert('RGB'); exif_transpose for exif*) and
Pillow+torchvision resize+crop outputs; patch_*.npy are 3x16x16 patches (top-left of the center crop) of timm's
float tensors; numpy_written.npy is a float32 array written by numpy.
"""
import io, os
import numpy as np
from PIL import Image, ImageOps
import timm.data

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ImagingTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)


def synth(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * x / w
    b = 255 * (1 - y / h)
    img = np.stack([r, g, b], -1)
    # a few hard-edged shapes to exercise the filters' overshoot/clipping
    img[(x - w * 0.3) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.15) ** 2] = (250, 20, 30)
    img[int(h * 0.6):int(h * 0.8), int(w * 0.55):int(w * 0.9)] = (10, 10, 10)
    img[int(h * 0.65):int(h * 0.75), int(w * 0.6):int(w * 0.85)] = (255, 255, 255)
    img += rng.normal(0, 1.5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_png(arr, name):
    Image.fromarray(arr).save(os.path.join(OUT, name), optimize=True)


def pil_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


photo = synth(300, 260)
Image.fromarray(photo).save(os.path.join(OUT, "photo.jpg"), quality=90)
Image.fromarray(photo).save(os.path.join(OUT, "photo_progressive.jpg"), quality=90, progressive=True)
small = synth(61, 47)
Image.fromarray(small).convert("L").save(os.path.join(OUT, "gray.jpg"), quality=92)
Image.fromarray(small).convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=95)
for n in ["photo.jpg", "gray.jpg", "cmyk.jpg"]:
    save_png(pil_rgb(os.path.join(OUT, n)), "ref_decode_" + n.replace(".jpg", ".png"))
assert (pil_rgb(os.path.join(OUT, "photo_progressive.jpg")) == pil_rgb(os.path.join(OUT, "photo.jpg"))).sum() > 0

tiny = synth(24, 16)
for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    p = os.path.join(OUT, f"exif{o}.jpg")
    Image.fromarray(tiny).save(p, quality=95, exif=exif.tobytes())
    with Image.open(p) as im:
        save_png(np.asarray(ImageOps.exif_transpose(im).convert("RGB")), f"ref_exif{o}.png")

portrait = synth(130, 290)
save_png(portrait, "portrait.png")
pal = Image.fromarray(small).convert("P", palette=Image.ADAPTIVE, colors=16)
pal.info["transparency"] = 3
pal.save(os.path.join(OUT, "palette_trns.png"), transparency=3)
save_png(pil_rgb(os.path.join(OUT, "palette_trns.png")), "ref_decode_palette_trns.png")
Image.fromarray(synth(32, 32)).save(os.path.join(OUT, "tiny32.jpg"), quality=90)

SPECS = {
    "vit": dict(input_size=(3, 224, 224), crop_pct=0.9, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3),
    "effnet": dict(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bilinear", mean=(0.498,) * 3, std=(0.502,) * 3),
    "s64bicubic": dict(input_size=(3, 64, 64), crop_pct=0.875, interpolation="bicubic",
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "s64bilinear": dict(input_size=(3, 64, 64), crop_pct=0.875, interpolation="bilinear",
                        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "cifar10": dict(input_size=(3, 32, 32), crop_pct=1.0, interpolation="bicubic",
                    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
}
PAIRS = [("photo.jpg", "vit"), ("photo.jpg", "effnet"), ("photo.jpg", "s64bicubic"), ("portrait.png", "s64bicubic"),
         ("portrait.png", "s64bilinear"), ("tiny32.jpg", "cifar10"), ("gray.jpg", "s64bicubic")]
for src, spec in PAIRS:
    full = timm.data.create_transform(**SPECS[spec], is_training=False)
    geo = type(full)(full.transforms[:-2])
    with Image.open(os.path.join(OUT, src)) as im:
        rgb = im.convert("RGB")
    stem = src.split(".")[0]
    save_png(np.asarray(geo(rgb)), f"ref_{stem}_{spec}.png")
    t = full(rgb).numpy().astype(np.float32)
    np.save(os.path.join(OUT, f"patch_{stem}_{spec}.npy"), np.ascontiguousarray(t[:, :16, :16]))

np.save(os.path.join(OUT, "numpy_written.npy"), np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7)
total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KB in {OUT}")
