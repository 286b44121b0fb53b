#!/usr/bin/env python3
"""Regenerates Tests/ONNXGraphTests/Fixtures: tiny timm backbones with random weights exported to ONNX,
plus onnxruntime reference outputs for a fixed input.

For each model and exporter it writes NAME.onnx, and for the fixed input (seed 0, N(0,1), batch 2)
NAME.input.f32 and NAME.expected.f32 (raw little-endian float32), and adds an entry to manifest.json.
Exporters: TorchScript at opset 13 and 17 (dynamo when onnxscript is installed).
usage: python3 tools/make_onnx_fixtures.py [--out DIR] [--only NAME,...]
"""
import argparse, json, os, warnings
import numpy as np
import torch, timm
import onnx, onnxruntime as ort
from timm.models import efficientnet as eff, mobilenetv3 as mv3, resnet, regnet

warnings.filterwarnings("ignore")
torch.manual_seed(0)
timm.layers.set_fused_attn(False)  # explicit MatMul/Softmax attention, as in the real exports (and valid at opset 13)
BATCH = 2

def vit():
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                             depth=2, num_heads=2, mlp_ratio=2, num_classes=10), 32
def deit():
    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32, patch_size=8,
                             embed_dim=32, depth=2, num_heads=2, mlp_ratio=2, num_classes=10), 32
def swin():
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32, patch_size=4, window_size=4,
                             embed_dim=12, depths=(2, 2), num_heads=(1, 2), num_classes=10), 32
def convnext():
    return timm.create_model("convnext_atto", pretrained=False, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), num_classes=10), 32
def resnet_tiny():
    return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], channels=(8, 16, 24, 32), stem_width=8, num_classes=10), 32
def resnet_bottleneck():
    return resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], channels=(4, 8, 12, 16), stem_width=8, base_width=16, num_classes=10), 32
def shrink_head(m, feats=64):
    """Replaces the 1280/1024-wide head conv (and its BN) and the classifier by 64-wide ones to keep files small."""
    from timm.layers import BatchNormAct2d
    if hasattr(m, "bn2"):  # EfficientNet / MobileNetV2: conv_head → bn2(+act) → pool → classifier
        m.conv_head = torch.nn.Conv2d(m.conv_head.in_channels, feats, 1, bias=False)
        act = m.bn2.act
        m.bn2 = BatchNormAct2d(feats); m.bn2.act = act
    else:  # MobileNetV3: pool → conv_head(+bias) → act → flatten → classifier
        m.conv_head = torch.nn.Conv2d(m.conv_head.in_channels, feats, 1, bias=True)
    m.classifier = torch.nn.Linear(feats, 10)
    return m
def mobilenetv2():
    return shrink_head(eff._gen_mobilenet_v2("mobilenetv2_100", 0.1, pretrained=False, num_classes=10)), 32
def mobilenetv3():
    return shrink_head(mv3._gen_mobilenet_v3("mobilenetv3_small_100", 0.25, pretrained=False, num_classes=10)), 32
def efficientnet():
    return shrink_head(eff._gen_efficientnet("efficientnet_b0", channel_multiplier=0.15, depth_multiplier=0.34, pretrained=False, num_classes=10)), 32
def efficientnet_lite():
    return shrink_head(eff._gen_efficientnet_lite("efficientnet_lite0", channel_multiplier=0.15, depth_multiplier=0.34, pretrained=False, num_classes=10)), 32
def regnet_tiny():
    cfg = regnet.RegNetCfg(depth=5, w0=8, wa=12.0, wm=2.0, group_size=8, bottle_ratio=1.0, se_ratio=0.25)
    return regnet.RegNet(cfg, num_classes=10), 32

class OpZoo(torch.nn.Module):
    """Ops the timm families above do not all reach: ConvTranspose, dilated/grouped conv, pools with ceil_mode and
    padding, Resize (nearest/bilinear), reflect Pad, flips (negative Slice steps), GroupNorm/InstanceNorm,
    tanh-GELU, LeakyReLU, HardSigmoid, Tanh, reductions, a channel-axis Softmax."""
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.up = torch.nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.gn = torch.nn.GroupNorm(2, 4)
        self.inorm = torch.nn.InstanceNorm2d(4, affine=True)
        self.fc = torch.nn.Linear(4 * 2, 10)
    def forward(self, x):
        x = torch.nn.functional.leaky_relu(self.c1(x), 0.1)                      # 16x16 → 8x8 (dilated)
        x = torch.nn.functional.hardsigmoid(self.c2(x)) * x
        x = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")              # 10x10
        x = torch.nn.functional.max_pool2d(x, 3, stride=2, ceil_mode=True)        # 5x5
        x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
        x = torch.flip(x, dims=[3])
        x = self.up(x)                                                            # 10x10
        x = self.gn(x) + self.inorm(x)
        x = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = torch.nn.functional.interpolate(x, size=(7, 7), mode="nearest")
        x = torch.nn.functional.gelu(x, approximate="tanh") + torch.tanh(x)
        x = torch.softmax(x, dim=1) * x
        a = x.amax(dim=(2, 3)); b = x.mean(dim=(2, 3))
        return self.fc(torch.cat([a, b], dim=1))

def opzoo():
    return OpZoo(), 16

MODELS = dict(opzoo=opzoo, vit=vit, deit=deit, swin=swin, convnext=convnext, resnet=resnet_tiny, resnet_bottleneck=resnet_bottleneck,
              mobilenetv2=mobilenetv2, mobilenetv3=mobilenetv3, efficientnet=efficientnet,
              efficientnet_lite=efficientnet_lite, regnet=regnet_tiny)
EXPORTS = [("ts13", 13), ("ts17", 17)]
# The dynamo exporter needs onnxscript (pip install onnxscript); these get an extra opset-18 dynamo export.
DYNAMO_MODELS = ("vit", "swin", "resnet_bottleneck", "opzoo")
try:
    import onnxscript  # noqa: F401
    HAVE_DYNAMO = True
except ImportError:
    HAVE_DYNAMO = False

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "ONNXGraphTests", "Fixtures"))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    manifest_path = os.path.join(a.out, "manifest.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
    for name, make in MODELS.items():
        if only and name not in only: continue
        torch.manual_seed(0)
        model, size = make()
        model.eval()
        # randomise BN statistics so folding/normalisation is actually exercised
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 1.5)
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((BATCH, 3, size, size)).astype(np.float32))
        # CNNs export the same graph at 13 and 17; transformers differ (LayerNorm op from 17), so get both.
        exports = EXPORTS if name in ("vit", "deit", "swin", "convnext", "opzoo") else EXPORTS[:1]
        if HAVE_DYNAMO and name in DYNAMO_MODELS:
            exports = exports + [("dyn18", 18)]
        for tag, opset in exports:
            fname = f"{name}_{tag}"
            path = os.path.join(a.out, fname + ".onnx")
            if tag.startswith("dyn"):
                batch = torch.export.Dim("batch", min=1, max=64)
                torch.onnx.export(model, (x,), path, dynamo=True, opset_version=opset, input_names=["input"],
                                  output_names=["logits"], dynamic_shapes={"x": {0: batch}}, external_data=False)
            else:
                torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
            m = onnx.load(path); onnx.checker.check_model(m)
            so = ort.SessionOptions(); so.intra_op_num_threads = 2
            y = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
            x.numpy().tofile(os.path.join(a.out, fname + ".input.f32"))
            y.astype(np.float32).tofile(os.path.join(a.out, fname + ".expected.f32"))
            ops = sorted({n.op_type for n in m.graph.node})
            manifest[fname] = dict(model=fname + ".onnx", input_shape=list(x.shape), output_shape=list(y.shape), opset=opset,
                                   exporter="dynamo" if tag.startswith("dyn") else "torchscript", params=sum(p.numel() for p in model.parameters()), ops=ops)
            print(f"{fname}: {os.path.getsize(path) / 1024:.0f} KB, params {manifest[fname]['params']}, ops {len(ops)}")
    json.dump(manifest, open(manifest_path, "w"), indent=1, sort_keys=True)

if __name__ == "__main__":
    main()
