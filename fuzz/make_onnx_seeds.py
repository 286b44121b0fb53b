#!/usr/bin/env python3
"""Small ONNX seed models for the fuzz-onnx target (python3 fuzz/make_onnx_seeds.py fuzz/seeds/onnx).

Each model is a few hundred bytes to a few KB and exercises one family of what the reader and the specialiser handle:
typed and raw initializers of every element type, attributes of every kind (including a subgraph), exporter shape
arithmetic (Shape/Gather/Concat/Reshape, ConstantOfShape, Range, Expand, Tile, Slice, Split, Pad, Resize), and the
layer patterns (linear, conv+BN, LayerNorm, GELU, attention)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def save(name, nodes, inputs, outputs, inits, opset=17, value_info=()):
    g = h.make_graph(nodes, name, inputs, outputs, initializer=inits, value_info=list(value_info))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="adaquant-fuzz-seeds")
    m.ir_version = 8
    onnx.save(m, os.path.join(out, name + ".onnx"))


vi = h.make_tensor_value_info
# 1. MLP: MatMul + Add + Relu + Gemm + Softmax (raw float initializers)
save("mlp", [
    h.make_node("MatMul", ["x", "w1"], ["a"]), h.make_node("Add", ["a", "b1"], ["b"]), h.make_node("Relu", ["b"], ["c"]),
    h.make_node("Gemm", ["c", "w2", "b2"], ["d"], transB=1), h.make_node("Softmax", ["d"], ["y"], axis=-1)],
    [vi("x", T.FLOAT, ["N", 8])], [vi("y", T.FLOAT, ["N", 4])],
    [nh.from_array(f32(8, 6), "w1"), nh.from_array(f32(6), "b1"), nh.from_array(f32(4, 6), "w2"), nh.from_array(f32(4), "b2")])
# 2. Conv + BatchNorm + pools (typed float_data initializers)
w = h.make_tensor("w", T.FLOAT, [4, 3, 3, 3], f32(4, 3, 3, 3).flatten().tolist())
bn = [h.make_tensor(n, T.FLOAT, [4], v.tolist()) for n, v in
      [("s", f32(4)), ("bb", f32(4)), ("m", f32(4)), ("v", np.abs(f32(4)) + 0.5)]]
save("conv_bn", [
    h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
    h.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-5),
    h.make_node("Clip", ["n", "lo", "hi"], ["r"]),
    h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
    h.make_node("AveragePool", ["p"], ["q"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    h.make_node("GlobalAveragePool", ["q"], ["g"]), h.make_node("Flatten", ["g"], ["y"])],
    [vi("x", T.FLOAT, ["N", 3, 8, 8])], [vi("y", T.FLOAT, ["N", 4])],
    [w] + bn + [nh.from_array(np.array(0, np.float32), "lo"), nh.from_array(np.array(6, np.float32), "hi")], opset=13)
# 3. Exporter shape arithmetic: Shape → Gather → Unsqueeze → Concat → Reshape; Transpose; Flatten
save("shape_math", [
    h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "i0"], ["n"], axis=0),
    h.make_node("Unsqueeze", ["n", "ax0"], ["nu"]), h.make_node("Concat", ["nu", "rest"], ["shp"], axis=0),
    h.make_node("Reshape", ["x", "shp"], ["r"]), h.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
    h.make_node("ReduceMean", ["t", "ax1"], ["y"], keepdims=0)],
    [vi("x", T.FLOAT, ["N", 4, 6])], [vi("y", T.FLOAT, None)],
    [nh.from_array(np.array(0, np.int64), "i0"), nh.from_array(np.array([0], np.int64), "ax0"),
     nh.from_array(np.array([3, 8], np.int64), "rest"), nh.from_array(np.array([-1], np.int64), "ax1")], opset=18)
# 4. Constant folding: ConstantOfShape, Range, Expand, Tile, Where, Slice, Split, Pad, CumSum, Cast, Equal, Trilu
save("folding", [
    h.make_node("Constant", [], ["shape"], value=h.make_tensor("v", T.INT64, [2], [2, 3])),
    h.make_node("ConstantOfShape", ["shape"], ["ones"], value=h.make_tensor("one", T.FLOAT, [1], [1.0])),
    h.make_node("Range", ["r0", "r1", "r2"], ["rng"]), h.make_node("Cast", ["rng"], ["rf"], to=T.FLOAT),
    h.make_node("Expand", ["rf", "shape"], ["ex"]), h.make_node("Tile", ["ones", "reps"], ["ti"]),
    h.make_node("Slice", ["ti", "st", "en", "axs", "stp"], ["sl"]),
    h.make_node("Split", ["sl", "spl"], ["s1", "s2"], axis=1),
    h.make_node("Pad", ["s1", "pads", "pv"], ["pd"], mode="constant"),
    h.make_node("Equal", ["ex", "ones"], ["eq"]), h.make_node("Where", ["eq", "ex", "ones"], ["wh"]),
    h.make_node("CumSum", ["wh", "cax"], ["cs"]), h.make_node("Trilu", ["cs"], ["tr"], upper=0),
    h.make_node("Add", ["x", "tr"], ["a"]), h.make_node("Mul", ["a", "s2"], ["y0"]),
    h.make_node("Concat", ["y0", "pd"], ["y"], axis=1)],
    [vi("x", T.FLOAT, [2, 3])], [vi("y", T.FLOAT, None)],
    [nh.from_array(np.array(0, np.int64), "r0"), nh.from_array(np.array(3, np.int64), "r1"), nh.from_array(np.array(1, np.int64), "r2"),
     nh.from_array(np.array([1, 2], np.int64), "reps"), nh.from_array(np.array([0, 1], np.int64), "st"),
     nh.from_array(np.array([2, 7], np.int64), "en"), nh.from_array(np.array([0, 1], np.int64), "axs"),
     nh.from_array(np.array([1, 2], np.int64), "stp"), nh.from_array(np.array([2, 1], np.int64), "spl"),
     nh.from_array(np.array([0, 0, 0, 0], np.int64), "pads"), nh.from_array(np.array(0.5, np.float32), "pv"),
     nh.from_array(np.array(1, np.int64), "cax")])
# 5. Transformer block: LayerNorm (fused and decomposed), attention, GELU (erf), residuals
d, heads = 8, 2
nodes = [
    h.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, epsilon=1e-6),
    h.make_node("MatMul", ["ln", "wq"], ["q"]), h.make_node("MatMul", ["ln", "wk"], ["k"]), h.make_node("MatMul", ["ln", "wv"], ["v"]),
    h.make_node("Reshape", ["q", "hs"], ["qh"]), h.make_node("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]),
    h.make_node("Reshape", ["k", "hs"], ["kh"]), h.make_node("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),
    h.make_node("Reshape", ["v", "hs"], ["vh"]), h.make_node("Transpose", ["vh"], ["vt"], perm=[0, 2, 1, 3]),
    h.make_node("MatMul", ["qt", "kt"], ["sc"]), h.make_node("Mul", ["sc", "scale"], ["scs"]),
    h.make_node("Softmax", ["scs"], ["p"], axis=-1), h.make_node("MatMul", ["p", "vt"], ["o"]),
    h.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]), h.make_node("Reshape", ["ot", "flat"], ["of"]),
    h.make_node("Add", ["x", "of"], ["r1"]),
    h.make_node("ReduceMean", ["r1"], ["mu"], axes=[-1]), h.make_node("Sub", ["r1", "mu"], ["dx"]),
    h.make_node("Pow", ["dx", "two"], ["sq"]), h.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
    h.make_node("Add", ["var", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]), h.make_node("Div", ["dx", "sd"], ["nrm"]),
    h.make_node("Mul", ["nrm", "g"], ["ng"]), h.make_node("Add", ["ng", "b"], ["ln2"]),
    h.make_node("MatMul", ["ln2", "w1"], ["h1"]), h.make_node("Div", ["h1", "sqrt2"], ["hd"]), h.make_node("Erf", ["hd"], ["he"]),
    h.make_node("Add", ["he", "one"], ["h1p"]), h.make_node("Mul", ["h1", "h1p"], ["hm"]), h.make_node("Mul", ["hm", "half"], ["gelu"]),
    h.make_node("MatMul", ["gelu", "w2"], ["h2"]), h.make_node("Add", ["r1", "h2"], ["y"])]
save("vit_block", nodes, [vi("x", T.FLOAT, ["N", 5, d])], [vi("y", T.FLOAT, ["N", 5, d])],
     [nh.from_array(f32(d), "g"), nh.from_array(f32(d), "b")] + [nh.from_array(f32(d, d), n) for n in ("wq", "wk", "wv")] +
     [nh.from_array(np.array([0, 0, heads, d // heads], np.int64), "hs"), nh.from_array(np.array(0.5, np.float32), "scale"),
      nh.from_array(np.array([0, 0, d], np.int64), "flat"), nh.from_array(np.array(2, np.float32), "two"),
      nh.from_array(np.array(1e-6, np.float32), "eps"), nh.from_array(f32(d, 16), "w1"), nh.from_array(np.array(1.4142135, np.float32), "sqrt2"),
      nh.from_array(np.array(1, np.float32), "one"), nh.from_array(np.array(0.5, np.float32), "half"), nh.from_array(f32(16, d), "w2")], opset=17)
# 6. Every initializer element type, raw and typed; attributes of every kind; an If with subgraphs (not run)
inits = []
for dt, npdt in [(T.FLOAT16, np.float16), (T.DOUBLE, np.float64), (T.INT8, np.int8), (T.UINT8, np.uint8), (T.INT16, np.int16),
                 (T.UINT16, np.uint16), (T.INT32, np.int32), (T.INT64, np.int64), (T.UINT32, np.uint32), (T.UINT64, np.uint64),
                 (T.BOOL, np.bool_)]:
    inits.append(nh.from_array((np.arange(6) % 2).astype(npdt).reshape(2, 3), "raw_%d" % dt))
    t = h.make_tensor("typed_%d" % dt, dt, [2, 3], (np.arange(6) % 2).astype(npdt).tolist() if dt != T.FLOAT16 else
                      np.arange(6, dtype=np.float16).view(np.uint16).tolist(), raw=False)
    inits.append(t)
inits.append(h.make_tensor("bf16", T.BFLOAT16, [2], [0x3F80, 0x4000]))
sub = h.make_graph([h.make_node("Identity", ["x"], ["z"])], "branch", [], [vi("z", T.FLOAT, [1, 3])])
save("dtypes_attrs", [
    h.make_node("Cast", ["raw_%d" % T.INT8], ["c8"], to=T.FLOAT),
    h.make_node("Add", ["x", "c8"], ["a"]),
    h.make_node("LeakyRelu", ["a"], ["l"], alpha=0.1), h.make_node("HardSigmoid", ["l"], ["hs"], alpha=0.2, beta=0.5),
    h.make_node("CustomThing", ["hs"], ["u"], domain="com.example", s="text", f=1.5, i=3, ints=[1, 2], floats=[0.5],
                strings=["a", "b"], t=h.make_tensor("at", T.FLOAT, [1], [1.0]), g=sub),
    h.make_node("Identity", ["hs"], ["y"])],
    [vi("x", T.FLOAT, [2, 3])], [vi("y", T.FLOAT, [2, 3])], inits, opset=17)
# 7. Resize/Upsample, ConvTranspose, depthwise conv, GatherElements, ArgMax, Squeeze, TopK-free head
save("resize_convt", [
    h.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
    h.make_node("Conv", ["r", "dw"], ["c"], group=2, pads=[1, 1, 1, 1]),
    h.make_node("ConvTranspose", ["c", "wt"], ["t"], strides=[2, 2]),
    h.make_node("ReduceMax", ["t"], ["m"], axes=[2, 3], keepdims=1), h.make_node("Squeeze", ["m", "sq"], ["y0"]),
    h.make_node("HardSwish", ["y0"], ["y"])],
    [vi("x", T.FLOAT, [1, 2, 4, 4])], [vi("y", T.FLOAT, None)],
    [nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales"), nh.from_array(f32(2, 1, 3, 3), "dw"),
     nh.from_array(f32(2, 3, 2, 2), "wt"), nh.from_array(np.array([2, 3], np.int64), "sq")], opset=13)
