#!/usr/bin/env python3
"""Our int8 runtime and float engine against onnxruntime float and onnxruntime int8, in one run on one machine.

Times (batch 1, --threads threads, default 2):
  * ours int8:    `quantize bench X.qmodel --json`
  * ours float:   `quantize bench MODEL.onnx --json`
  * ORT float:    onnxruntime on MODEL.onnx
  * ORT int8:     MODEL.onnx quantized by onnxruntime.quantization.quantize_static (QDQ, per-channel, u8 activations /
                  s8 weights), calibrated on the same images our quantizer used (the calibration file list of X.json)
The engines run in interleaved rounds (the machine may be shared); each engine's best median over the rounds is used.
Accuracy on the evaluation images (the folder minus the calibration images): ORT float, ORT int8, and ours
(int8 runtime and its fake-quant simulation, from `quantize eval X.qmodel --simulation X.json --json`).

    swift build -c release --product quantize
    Q=.build/release/quantize
    $Q MODEL.onnx --calib DIR --labels L --bits W8A8 --preset vit --seed 5 -o X.json
    $Q export X.json -o X.qmodel
    python3 bench/runtime_vs_onnxruntime.py --model MODEL.onnx --json X.json --qmodel X.qmodel --preset vit \
        --data /work/shared/data/imagenet-sample --labels /work/shared/data/imagenet-synsets.txt
"""
import argparse, json, os, subprocess, sys, tempfile, time
import numpy as np
import onnxruntime as ort
from onnxruntime import quantization as oq
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


def load_labels(path):
    """synset list (index<TAB>synset<TAB>name) → {synset: index}"""
    out = {}
    with open(path) as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            syn = parts[1] if len(parts) >= 2 and parts[0].isdigit() else parts[0].split()[0]
            out[syn] = int(parts[0]) if parts[0].isdigit() else i
    return out


def label_of(path, labels, root):
    """ImageNet-named flat folder with a synset list, or an ImageFolder (class = sorted sub-folder index)."""
    name = os.path.basename(path)
    if labels is not None:
        return labels.get(name.split("_")[0])
    rel = os.path.relpath(path, root).split(os.sep)
    if len(rel) == 2:
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        return classes.index(rel[0])
    return None


def list_images(folder):
    out = []
    for root, _, files in os.walk(folder):
        for f in files:
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(root, f))
    return sorted(out)


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_ort(sess, x, iterations, warmup=5):
    name = sess.get_inputs()[0].name
    for _ in range(warmup):
        sess.run(None, {name: x})
    t = []
    for _ in range(iterations):
        a = time.perf_counter()
        sess.run(None, {name: x})
        t.append((time.perf_counter() - a) * 1e3)
    return float(np.median(t))


def time_ours(q, model, threads, iterations):
    out = subprocess.run([q, "bench", model, "--threads", str(threads), "--batch", "1", "--iterations", str(iterations), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["median_ms"]


class Reader(oq.CalibrationDataReader):
    def __init__(self, name, tensors):
        self.items = iter([{name: t} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="float ONNX model")
    ap.add_argument("--json", required=True, help="our quantized model JSON (calibration file list)")
    ap.add_argument("--qmodel", required=True, help="our int8 model")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--data", required=True, help="evaluation folder (the calibration images are left out)")
    ap.add_argument("--labels", help="synset list for flat ImageNet-named folders")
    ap.add_argument("--quantize", default=".build/release/quantize")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval", type=int, default=0, help="evaluate only the first N images (0 = all)")
    ap.add_argument("--ort-int8", help="reuse / write the ORT int8 model here (default: a temporary file)")
    ap.add_argument("--ort-ops", default="MatMul,Gemm,Conv",
                    help="op types ORT quantizes ('all' = ORT's default; on ViT-Tiny that gave 0 %% top-1 with MinMax calibration)")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-our-accuracy", action="store_true", help="evaluate only the ORT models (ours: quantize eval … --simulation)")
    args = ap.parse_args()

    cfg = PRESETS[args.preset]
    tf = timm.data.create_transform(**cfg, is_training=False)
    prep = lambda p: tf(Image.open(p).convert("RGB")).numpy()[None].astype(np.float32)
    qj = json.load(open(args.json))
    calib = [os.path.realpath(p) for p in qj["calibrationFiles"]]
    print(f"ORT {ort.__version__}; calibration: {len(calib)} images from {args.json}; threads {args.threads}")

    fp = ort_session(args.model, args.threads)
    in_name = fp.get_inputs()[0].name
    int8_path = args.ort_int8 or os.path.join(tempfile.mkdtemp(), "ort_int8.onnx")
    if not os.path.exists(int8_path):
        pre = int8_path + ".pre.onnx"
        try:
            oq.quant_pre_process(args.model, pre)
        except Exception as e:  # shape inference is optional
            print(f"note: quant_pre_process failed ({e}); quantizing the model as is")
            pre = args.model
        t0 = time.time()
        oq.quantize_static(pre, int8_path, Reader(in_name, [prep(p) for p in calib]), quant_format=oq.QuantFormat.QDQ,
                           per_channel=True, activation_type=oq.QuantType.QUInt8, weight_type=oq.QuantType.QInt8,
                           calibrate_method=oq.CalibrationMethod.MinMax,
                           op_types_to_quantize=None if args.ort_ops == "all" else args.ort_ops.split(","))
        print(f"ORT quantize_static (QDQ, per-channel, U8S8, MinMax, ops {args.ort_ops}) took {time.time() - t0:.1f} s → {int8_path}")
    i8 = ort_session(int8_path, args.threads)

    x = np.random.default_rng(0).standard_normal((1,) + cfg["input_size"]).astype(np.float32)
    best = {"ours int8": 1e9, "ours float": 1e9, "ORT float": 1e9, "ORT int8": 1e9}
    for r in range(args.rounds):
        best["ours int8"] = min(best["ours int8"], time_ours(args.quantize, args.qmodel, args.threads, args.iterations))
        best["ours float"] = min(best["ours float"], time_ours(args.quantize, args.model, args.threads, args.iterations))
        best["ORT float"] = min(best["ORT float"], time_ort(fp, x, args.iterations))
        best["ORT int8"] = min(best["ORT int8"], time_ort(i8, x, args.iterations))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in best.items()))
    print(f"\nlatency, batch 1, {args.threads} threads (best median of {args.rounds} interleaved rounds × {args.iterations} runs):")
    for k, v in best.items():
        print(f"  {k:11s} {v:8.2f} ms")
    o = best["ours int8"]
    print(f"  ours int8 speed-up: {best['ORT int8'] / o:.2f}× ORT int8, {best['ORT float'] / o:.2f}× ORT float, "
          f"{best['ours float'] / o:.2f}× our float engine")
    sizes = {k: os.path.getsize(p) for k, p in [("float ONNX", args.model), ("ORT int8 ONNX", int8_path), ("our .qmodel", args.qmodel)]}
    print("  sizes: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()) +
          f" (.qmodel = {100 * sizes['our .qmodel'] / sizes['float ONNX']:.1f} % of the float ONNX)")

    if args.skip_accuracy:
        return
    labels = load_labels(args.labels) if args.labels else None
    files = [p for p in list_images(args.data) if os.path.realpath(p) not in set(calib)]
    if args.eval:
        files = files[: args.eval]
    c_fp = c_i8 = n = agree = 0
    for p in files:
        lab = label_of(p, labels, args.data)
        t = prep(p)
        a = int(np.argmax(fp.run(None, {in_name: t})[0]))
        b = int(np.argmax(i8.run(None, {in_name: t})[0]))
        agree += a == b
        if lab is None:
            continue
        n += 1
        c_fp += a == lab
        c_i8 += b == lab
    print(f"\naccuracy on {n} evaluation images (calibration images left out):")
    print(f"  ORT float        top-1 {100 * c_fp / max(n, 1):6.2f} %")
    print(f"  ORT int8         top-1 {100 * c_i8 / max(n, 1):6.2f} %  (agreement with ORT float {100 * agree / max(len(files), 1):.2f} %)")
    if args.skip_our_accuracy:
        return
    cmd = [args.quantize, "eval", args.qmodel, "--data", args.data, "--simulation", args.json, "--json"]
    if args.labels:
        cmd += ["--labels", args.labels]
    if args.eval:
        cmd += ["--limit", str(args.eval)]
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"  ours simulation  top-1 {ours['simulationTop1']:6.2f} %")
    print(f"  ours int8        top-1 {ours['top1']:6.2f} %  (agreement with the simulation {ours['simulationAgreement']:.2f} %, "
          f"{ours['images']} images)")


if __name__ == "__main__":
    main()
