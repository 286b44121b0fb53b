#!/usr/bin/env python3
"""Parity of the Swift float executor against onnxruntime on real models (not part of the test suite).

usage: tools/parity_real_models.py [--quantize .build/release/quantize] [--batch 2] MODEL.onnx ...
Feeds random N(0,1) inputs (fixed seed), runs `quantize run-raw` and onnxruntime (float, intra_op 2), and prints
max abs diff, max |logit|, their ratio and top-1 agreement per model.
"""
import argparse, os, subprocess, sys, tempfile
import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("models", nargs="+")
ap.add_argument("--quantize", default=".build/release/quantize")
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
ok = True
for path in a.models:
    so = ort.SessionOptions(); so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [a.batch if not isinstance(d, int) else d for d in inp.shape]
    x = np.random.default_rng(a.seed).standard_normal(shape).astype(np.float32)
    ref = sess.run(None, {inp.name: x})[0]
    with tempfile.TemporaryDirectory() as td:
        xi, yo = os.path.join(td, "x.f32"), os.path.join(td, "y.f32")
        x.tofile(xi)
        r = subprocess.run([a.quantize, "run-raw", path, "--input", xi, "--batch", str(a.batch), "--output", yo],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{os.path.basename(path)}: FAILED\n{r.stderr}"); ok = False; continue
        y = np.fromfile(yo, dtype=np.float32).reshape(ref.shape)
    diff = float(np.abs(y - ref).max()); mx = float(np.abs(ref).max())
    top1 = bool((y.reshape(len(y), -1).argmax(1) == ref.reshape(len(ref), -1).argmax(1)).all())
    good = diff <= 1e-3 * mx and top1
    ok &= good
    print(f"{os.path.basename(path)}: batch {a.batch} max_abs_diff {diff:.3e} max_abs_logit {mx:.3f} "
          f"ratio {diff / mx:.2e} top1_equal {top1} {'PASS' if good else 'FAIL'} ({r.stdout.strip()})")
sys.exit(0 if ok else 1)
