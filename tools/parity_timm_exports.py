#!/usr/bin/env python3
"""Exports full-size timm backbones (random weights) with the TorchScript exporter at opsets 13 and 17 and the dynamo
exporter at opset 21 to /tmp/timm-exports, then runs tools/parity_real_models.py on them (Swift executor vs onnxruntime).
Not part of the test suite (files are large). usage: python3 tools/parity_timm_exports.py [--quantize PATH]
"""
import argparse, os, subprocess, sys, warnings
import torch, timm

warnings.filterwarnings("ignore")
timm.layers.set_fused_attn(False)
SPECS = {"pvt_v2_b0": 64, "res2net50_14w_8s": 64, "resnest14d": 64, "mobileone_s0": 64, "regnety_002": 64,
         "convnext_atto": 64, "deit_tiny_patch16_224": 224, "swin_tiny_patch4_window7_224": 224,
         "efficientnet_b0": 64, "mobilenetv3_large_100": 64}
ap = argparse.ArgumentParser()
ap.add_argument("--quantize", default=".build/release/quantize")
ap.add_argument("--out", default="/tmp/timm-exports")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
paths = []
for name, img in SPECS.items():
    for opset, dyn in [(13, False), (17, False), (21, True)]:
        path = os.path.join(a.out, f"{name}_o{opset}{'_dynamo' if dyn else ''}.onnx")
        if not os.path.exists(path):
            torch.manual_seed(0)
            m = timm.create_model(name, pretrained=False, num_classes=100).eval()
            x = torch.randn(2, 3, img, img)
            try:
                if dyn:
                    torch.onnx.export(m, (x,), path, dynamo=True, opset_version=opset, input_names=["input"],
                                      output_names=["logits"], external_data=False,
                                      dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}})
                else:
                    torch.onnx.export(m, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                                      dynamic_axes={"input": {0: "batch"}}, dynamo=False)
            except Exception as e:
                print(f"export failed: {name} opset {opset} dynamo={dyn}: {str(e).splitlines()[0][:200]}")
                continue
        paths.append(path)
here = os.path.dirname(os.path.abspath(__file__))
sys.exit(subprocess.call([sys.executable, os.path.join(here, "parity_real_models.py"), "--quantize", a.quantize, "--batch", "2"] + paths))
