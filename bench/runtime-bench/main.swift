// runtime-bench [--blocks N] [--threads N] [--iterations N] [--int8-patch] [--write PATH]
// Builds a ViT-Tiny-shaped integer network with random weights (224², patch 16, C 192, 3 heads, MLP 768,
// W4A4 AdaLog layout: folded int8 activations, int4 weights), and times Session.run at batch 1 with a
// per-op breakdown. Random weights: this measures speed only, not accuracy.
import Int8Runtime
#if canImport(Glibc)
import Glibc
#endif

var blocks = 12, threads = 2, iterations = 20, int8Patch = false
var writePath: String?
var a = Array(CommandLine.arguments.dropFirst())
while !a.isEmpty {
    let f = a.removeFirst()
    switch f {
    case "--blocks": blocks = Int(a.removeFirst()) ?? 12
    case "--threads": threads = Int(a.removeFirst()) ?? 2
    case "--iterations": iterations = Int(a.removeFirst()) ?? 20
    case "--int8-patch": int8Patch = true
    case "--write": writePath = a.removeFirst()
    default: print("unknown flag \(f)"); exit(2)
    }
}

var seed: UInt64 = 42
@MainActor func rnd() -> Double { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Double(seed >> 11) / Double(1 << 53) }
@MainActor func ints(_ n: Int, _ bits: Int) -> [Int8] { let h = 1 << (bits - 1); return (0..<n).map { _ in Int8(Int(rnd() * Double(2 * h)) - h) } }
@MainActor func floats(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in Float(rnd() * 2 - 1) * s } }

let c = 192, heads = 3, d = 64, hidden = 768, img = 224, patch = 16, side = 14, t0 = 196, t = 197, classes = 1000
let wBits = 4, aBits = 4
var tensors: [TensorInfo] = [], ops: [Op] = [], consts: [Constant] = []
func act(_ n: String, _ s: [Int], _ scale: Float) -> TensorInfo { TensorInfo(name: n, dtype: .int8, shape: s, quantizer: .uniform(UniformParams(scale: scale, zeroPoint: 8, bits: aBits))) }
func fl(_ n: String, _ s: [Int]) -> TensorInfo { TensorInfo(name: n, dtype: .float32, shape: s) }
@MainActor func weight(_ n: String, _ shape: [Int], bits: Int) throws -> WeightRef {
    let rows = shape[0], per = shape.dropFirst().reduce(1, *)
    let w = ints(rows * per, bits)
    consts.append(bits <= 4 ? try Constant.int4(n + ".w", shape: shape, w) : Constant.int8(n + ".w", shape: shape, w))
    consts.append(Constant.float(n + ".s", shape: [rows], [Float](repeating: 1 / (Float(1 << (bits - 1)) * Float(per).squareRoot()), count: rows)))
    return WeightRef(weights: n + ".w", scales: n + ".s", bits: bits)
}
@MainActor func vec(_ n: String, _ count: Int, _ s: Float, base: Float = 0) -> String { consts.append(Constant.float(n, shape: [count], floats(count, s).map { $0 + base })); return n }

tensors.append(fl("image", [img, img, 3]))
var peIn = "image"
if int8Patch {
    tensors.append(TensorInfo(name: "image_q", dtype: .uint8, shape: [img, img, 3], quantizer: .uniform(UniformParams(scale: 0.02, zeroPoint: 128, bits: 8))))
    ops.append(.quantize(UnaryOp(name: "quant_image", input: "image", output: "image_q")))
    peIn = "image_q"
}
tensors += [fl("patches", [side, side, c]), fl("tokens0", [t0, c]), fl("x0", [t, c])]
ops.append(.conv2d(ConvOp(name: "patch_embed", input: peIn, output: "patches", weight: try weight("pe", [c, patch, patch, 3], bits: 8),
                          bias: vec("pe.b", c, 0.1), kernel: [patch, patch], stride: [patch, patch], pads: [0, 0, 0, 0])))
ops.append(.reshape(UnaryOp(name: "flatten", input: "patches", output: "tokens0")))
consts.append(Constant.float("pos", shape: [t, c], floats(t * c, 0.2)))
ops.append(.classPosition(ClassPositionOp(name: "embed", input: "tokens0", output: "x0", classToken: vec("cls", c, 0.5), position: "pos")))
var x = "x0"
let g = UniformGroupParams(scale: [Float](repeating: 0.25, count: heads), zeroPoint: [Int32](repeating: 8, count: heads), bits: aBits)
for b in 0..<blocks {
    let p = "b\(b)."
    tensors += [act(p + "ln1", [t, c], 0.5), fl(p + "qkv", [t, 3 * c]), act(p + "attn", [t, c], 0.1), fl(p + "proj", [t, c]), fl(p + "x1", [t, c]),
                act(p + "ln2", [t, c], 0.5), fl(p + "fc1", [t, hidden]),
                TensorInfo(name: p + "gelu", dtype: .code, shape: [t, hidden], quantizer: .adaLog(AdaLogParams(q: 30, bits: aBits, scale: 2, shift: 0.16997124))),
                fl(p + "fc2", [t, c]), fl(p + "x2", [t, c])]
    ops.append(.layerNormQuantize(LayerNormOp(name: p + "norm1", input: x, output: p + "ln1", gamma: vec(p + "n1.g", c, 0.1, base: 1), beta: vec(p + "n1.b", c, 0.1), epsilon: 1e-6)))
    ops.append(.linear(LinearOp(name: p + "qkv", input: p + "ln1", output: p + "qkv", weight: try weight(p + "qkv", [3 * c, c], bits: wBits), bias: vec(p + "qkv.b", 3 * c, 0.1))))
    ops.append(.attention(AttentionOp(name: p + "attn", input: p + "qkv", output: p + "attn", heads: heads, headDim: d, query: g, key: g, value: g,
                                      probabilities: .adaLog(AdaLogParams(q: 23, bits: aBits, scale: 1)))))
    ops.append(.linear(LinearOp(name: p + "proj", input: p + "attn", output: p + "proj", weight: try weight(p + "proj", [c, c], bits: wBits), bias: vec(p + "proj.b", c, 0.1))))
    ops.append(.add(BinaryOp(name: p + "res1", a: x, b: p + "proj", output: p + "x1")))
    ops.append(.layerNormQuantize(LayerNormOp(name: p + "norm2", input: p + "x1", output: p + "ln2", gamma: vec(p + "n2.g", c, 0.1, base: 1), beta: vec(p + "n2.b", c, 0.1), epsilon: 1e-6)))
    ops.append(.linear(LinearOp(name: p + "fc1", input: p + "ln2", output: p + "fc1", weight: try weight(p + "fc1", [hidden, c], bits: wBits), bias: vec(p + "fc1.b", hidden, 0.1))))
    ops.append(.geluAdaLog(UnaryOp(name: p + "gelu", input: p + "fc1", output: p + "gelu")))
    ops.append(.adaLogLinear(LinearOp(name: p + "fc2", input: p + "gelu", output: p + "fc2", weight: try weight(p + "fc2", [c, hidden], bits: wBits), bias: vec(p + "fc2.b", c, 0.1))))
    ops.append(.add(BinaryOp(name: p + "res2", a: p + "x1", b: p + "fc2", output: p + "x2")))
    x = p + "x2"
}
tensors += [fl("cls_out", [c]), act("ln_head", [c], 0.5), fl("logits", [classes])]
ops.append(.tokenSelect(TokenSelectOp(name: "select", input: x, output: "cls_out", index: 0)))
ops.append(.layerNormQuantize(LayerNormOp(name: "norm", input: "cls_out", output: "ln_head", gamma: vec("n.g", c, 0.1, base: 1), beta: vec("n.b", c, 0.1), epsilon: 1e-6)))
ops.append(.linear(LinearOp(name: "head", input: "ln_head", output: "logits", weight: try weight("head", [classes, c], bits: 8), bias: vec("head.b", classes, 0.1))))

let model = QModel(name: "vit-tiny-shaped-random", tensors: tensors, ops: ops, inputs: ["image"], outputs: ["logits"], constants: consts)
let bytes = try QModelFile.encode(model)
print("model: \(blocks) blocks, \(ops.count) ops, file \(bytes.count) bytes")
if let writePath { try QModelFile.write(model, to: writePath) }
var t0s = timespec(), t1s = timespec()
clock_gettime(CLOCK_MONOTONIC, &t0s)
let loaded = try QModelFile.decode(bytes)
let session = try Session(model: loaded, batch: 1, threads: threads)
clock_gettime(CLOCK_MONOTONIC, &t1s)
func ms(_ a: timespec, _ b: timespec) -> Double { Double(b.tv_sec - a.tv_sec) * 1e3 + Double(b.tv_nsec - a.tv_nsec) / 1e6 }
print("decode + prepare: \(ms(t0s, t1s)) ms, activation + scratch memory \(session.arenaBytes) bytes")
let input = floats(img * img * 3, 2)
var times: [Double] = []
for _ in 0..<iterations {
    clock_gettime(CLOCK_MONOTONIC, &t0s)
    _ = try session.run(input)
    clock_gettime(CLOCK_MONOTONIC, &t1s)
    times.append(ms(t0s, t1s))
}
times.sort()
print("threads \(threads), int8 patch \(int8Patch): best \(times[0]) ms, median \(times[times.count / 2]) ms over \(iterations)")
let prof = try session.profile(input, repeats: 5)
for (kind, v) in prof.sorted(by: { $0.value > $1.value }) { print("  \(kind): \(v) ms") }
