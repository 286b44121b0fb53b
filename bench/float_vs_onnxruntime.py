#!/usr/bin/env python3
"""Batch-1 float latency: the Swift executor (`quantize run-raw --repeats`) vs onnxruntime (intra_op 2), same run.

Exports ViT-Tiny/16-224 and ResNet-50 from timm with random weights to /tmp (not committed), then prints
best-of-N latency for both and the ratio (goal: ≤ 1.25× onnxruntime).
usage: python3 bench/float_vs_onnxruntime.py [--quantize .build/release/quantize] [--repeats 10] [--models vit,resnet50]
Build first: swift build -c release --product quantize
"""
import argparse, os, re, subprocess, time, warnings
import numpy as np
import onnxruntime as ort
import torch, timm

warnings.filterwarnings("ignore")
ap = argparse.ArgumentParser()
ap.add_argument("--quantize", default=".build/release/quantize")
ap.add_argument("--repeats", type=int, default=10)
ap.add_argument("--models", default="vit_tiny,resnet50")
a = ap.parse_args()

SPECS = {"vit_tiny": "vit_tiny_patch16_224", "resnet50": "resnet50"}
for key in a.models.split(","):
    path = f"/tmp/bench_{key}.onnx"
    if not os.path.exists(path):
        torch.manual_seed(0)
        m = timm.create_model(SPECS[key], pretrained=False).eval()
        x = torch.randn(1, 3, 224, 224)
        torch.onnx.export(m, x, path, opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    sess.run(None, {"input": x})
    best_ort = float("inf")
    for _ in range(a.repeats):
        t = time.perf_counter(); ref = sess.run(None, {"input": x})[0]; best_ort = min(best_ort, time.perf_counter() - t)
    x.tofile("/tmp/bench_x.f32")
    r = subprocess.run([a.quantize, "run-raw", path, "--input", "/tmp/bench_x.f32", "--output", "/tmp/bench_y.f32",
                        "--repeats", str(a.repeats)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{key}: quantize failed: {r.stderr[-500:]}"); continue
    best_ours = float(re.search(r"best_ms ([0-9.]+)", r.stdout).group(1)) / 1000
    y = np.fromfile("/tmp/bench_y.f32", dtype=np.float32).reshape(ref.shape)
    diff = float(np.abs(y - ref).max())
    print(f"{key}: ours {best_ours * 1000:.2f} ms, onnxruntime {best_ort * 1000:.2f} ms, ratio {best_ours / best_ort:.2f}x "
          f"(best of {a.repeats}; max abs diff {diff:.2e})")
