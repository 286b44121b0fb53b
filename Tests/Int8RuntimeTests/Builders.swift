// Tiny hand-built integer networks (ViT block, CNN) plus a plain-Swift fake-quant simulation of the same
// quantized networks (the oracle, adalog.md §4.10): quantizers are min-max calibrated on the first sample.
// The qmodel fuzzer builds its seeds from this same file (fuzz/Sources/fuzz-qmodel/Builders.swift is a link to
// it), so it uses only the runtime's public API.
import Foundation
import Int8Runtime
import QModel

struct Rng {
    var s: UInt64
    mutating func next() -> Double { s = s &* 6364136223846793005 &+ 1442695040888963407; return Double(s >> 11) / Double(1 << 53) }
    mutating func normal() -> Float { Float((-2 * log(max(1e-12, next()))).squareRoot() * cos(2 * .pi * next())) }
    mutating func ints(_ n: Int, bits: Int) -> [Int8] { let h = 1 << (bits - 1); return (0..<n).map { _ in Int8(Int(next() * Double(2 * h)) - h) } }
}

/// Min-max asymmetric calibration of one tensor (adalog.md §1.2 grid), widened by 1.37 %: with uniform P the
/// attention output lies on the lattice s_p·s_v·ℤ, and an exact min-max scale would put many values on exact
/// .5 ties of x/s, where the runtime's pinned half-away-from-zero requantization and the oracle's half-to-even
/// rint legitimately differ. Searched scales (FPCS) are not lattice-aligned, so this keeps the test about bugs.
func calibrate(_ x: [Float], bits: Int) -> UniformParams {
    let lo = min(0, x.min() ?? 0), hi = max(0, x.max() ?? 0)
    let top = Float((1 << bits) - 1)
    let s = max(1e-6, (hi - lo) / top * 1.0137)
    let z = Int32(min(top, max(0, (-lo / s).rounded(.toNearestOrEven))))
    return UniformParams(scale: s, zeroPoint: z, bits: bits)
}
func fq(_ x: Float, _ p: UniformParams) -> Float {
    let q = min(Float((1 << p.bits) - 1), max(0, (x / p.scale).rounded(.toNearestOrEven) + Float(p.zeroPoint)))
    return (q - Float(p.zeroPoint)) * p.scale
}
/// AdaLog fake quant, hardware dequantization form s·2^(−A_k)·M_k/D, codes by the τ_k thresholds (§1.3).
func adalogFQ(_ u: Float, _ a: AdaLogParams) -> Float {
    let n = 1 << a.bits, d = Double((1 << (a.bits + 1)) - 2)
    var code = 0
    for k in 0..<n where u < Float(Double(a.scale) * exp2(-(Double(k) + 0.5) * Double(a.q) / Double(a.r))) { code = k + 1 }
    if code >= n { return 0 }
    let ak = code * a.q / a.r, rho = code * a.q % a.r
    let m = (d * exp2(-Double(rho) / Double(a.r))).rounded(.toNearestOrEven)
    return Float(Double(a.scale) * exp2(-Double(ak)) * m / d)
}
func gelu(_ x: Float) -> Float { Float(0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))) }
func layerNorm(_ x: [Float], rows: Int, c: Int, g: [Float], b: [Float], eps: Float) -> [Float] {
    var y = x
    for r in 0..<rows {
        let row = x[(r * c)..<((r + 1) * c)].map(Double.init)
        let mean = row.reduce(0, +) / Double(c)
        let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
        let inv = 1 / (v + Double(eps)).squareRoot()
        for i in 0..<c { y[r * c + i] = Float((row[i] - mean) * inv) * g[i] + b[i] }
    }
    return y
}
/// y[r][o] = Σ_k x[r][k]·w[o][k] + b[o] in double.
func matmul(_ x: [Float], rows: Int, k: Int, _ w: [Float], n: Int, bias: [Float]?) -> [Float] {
    var y = [Float](repeating: 0, count: rows * n)
    for r in 0..<rows { for o in 0..<n {
        var s = Double(bias?[o] ?? 0)
        for j in 0..<k { s += Double(x[r * k + j]) * Double(w[o * k + j]) }
        y[r * n + o] = Float(s)
    } }
    return y
}
/// NHWC conv, weights [O][kh][kw][C/g], groups 1 or C.
func conv(_ x: [Float], h: Int, w: Int, c: Int, _ wt: [Float], o: Int, k: Int, stride: Int, pad: Int, groups: Int, bias: [Float]) -> ([Float], Int, Int) {
    let oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1
    let cg = c / groups
    var y = [Float](repeating: 0, count: oh * ow * o)
    for oy in 0..<oh { for ox in 0..<ow { for oo in 0..<o {
        var s = Double(bias[oo])
        let g = oo / (o / groups)
        for ky in 0..<k { for kx in 0..<k {
            let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
            for cc in 0..<cg { s += Double(x[(iy * w + ix) * c + g * cg + cc]) * Double(wt[((oo * k + ky) * k + kx) * cg + cc]) }
        } }
        y[(oy * ow + ox) * o + oo] = Float(s)
    } } }
    return (y, oh, ow)
}

/// A quantized weight: folded ints, per-row scales, and the dequantized floats the simulation uses.
struct QW {
    var ints: [Int8], scales: [Float], bits: Int, shape: [Int]
    var deq: [Float] { let per = ints.count / scales.count; return ints.indices.map { Float(ints[$0]) * scales[$0 / per] } }
    init(_ rng: inout Rng, shape: [Int], bits: Int) {
        let rows = shape[0], per = shape.dropFirst().reduce(1, *)
        self.shape = shape; self.bits = bits
        ints = rng.ints(rows * per, bits: bits)
        let range = Float(1 << (bits - 1))
        scales = (0..<rows).map { _ in Float(0.7 + 0.6 * rng.next()) / (range * Float(per).squareRoot()) * 1.7 }
    }
    /// Layers stored as raw unsigned codes plus an int32 zero point per row (z = 2^(b−1)), the rest folded.
    static let rawLayers: Set<String> = ["fc1", "head", "proj"]
    func constants(_ name: String) throws -> [Constant] {
        let sc = Constant.float("\(name).s", shape: [shape[0]], scales)
        if bits < 8, QW.rawLayers.contains(name) {
            let z = 1 << (bits - 1)
            let raw = ints.map { UInt8(Int($0) + z) }
            return [bits <= 4 ? try Constant.uint4("\(name).w", shape: shape, raw) : Constant(name: "\(name).w", dtype: .uint8, shape: shape, bytes: raw),
                    sc, Constant.int32("\(name).z", shape: [shape[0]], [Int32](repeating: Int32(z), count: shape[0]))]
        }
        return [bits <= 4 ? try Constant.int4("\(name).w", shape: shape, ints) : Constant.int8("\(name).w", shape: shape, ints), sc]
    }
    func ref(_ name: String) -> WeightRef {
        WeightRef(weights: "\(name).w", scales: "\(name).s", zeroPoints: bits < 8 && QW.rawLayers.contains(name) ? "\(name).z" : nil, bits: bits)
    }
}

func randomFloats(_ rng: inout Rng, _ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.normal() * scale } }

struct TinyViT {
    let hw = 16, patch = 4, c = 16, heads = 2, hidden = 32, classes = 10
    var t0: Int { (hw / patch) * (hw / patch) }
    var t: Int { t0 + 1 }
    var d: Int { c / heads }
    let wBits: Int, aBits: Int, sBits: Int
    var pe, qkv, proj, fc1, fc2, head: QW
    var peBias, qkvBias, projBias, fc1Bias, fc2Bias, headBias: [Float]
    var g1, b1, g2, b2, g3, b3, cls, pos: [Float]
    // quantizers (filled by calibrating the simulation on the first sample)
    var ln1Q = UniformParams(scale: 1, zeroPoint: 0, bits: 8), ln2Q = UniformParams(scale: 1, zeroPoint: 0, bits: 8)
    var ln3Q = UniformParams(scale: 1, zeroPoint: 0, bits: 8), attnQ = UniformParams(scale: 1, zeroPoint: 0, bits: 8)
    var qQ = UniformGroupParams(scale: [], zeroPoint: [], bits: 8), kQ = UniformGroupParams(scale: [], zeroPoint: [], bits: 8)
    var vQ = UniformGroupParams(scale: [], zeroPoint: [], bits: 8)
    var softQ: AdaLogParams, geluQ: AdaLogParams
    /// Uniform post-softmax quantizer instead of AdaLog (the uniform baseline), when set.
    var uniformP: UniformParams?
    let uniformSoftmax: Bool
    var lastAttention: [Float] = [], lastAttentionFloat: [Float] = []
    /// Uniform GELU-output quantizer of the uniform baseline (with `uniformSoftmax`).
    var geluUniform = UniformParams(scale: 1, zeroPoint: 0, bits: 8)
    let geluShift: Float = 0.16997124

    init(seed: UInt64, wBits: Int, aBits: Int, uniformSoftmax: Bool = false) {
        self.uniformSoftmax = uniformSoftmax
        var r = Rng(s: seed)
        self.wBits = wBits; self.aBits = aBits; sBits = min(aBits, 6)
        let c = 16, hidden = 32, classes = 10, t = 17
        pe = QW(&r, shape: [c, 4, 4, 3], bits: 8)
        qkv = QW(&r, shape: [3 * c, c], bits: wBits); proj = QW(&r, shape: [c, c], bits: wBits)
        fc1 = QW(&r, shape: [hidden, c], bits: wBits); fc2 = QW(&r, shape: [c, hidden], bits: wBits)
        head = QW(&r, shape: [classes, c], bits: wBits)
        peBias = randomFloats(&r, c, scale: 0.1); qkvBias = randomFloats(&r, 3 * c, scale: 0.1); projBias = randomFloats(&r, c, scale: 0.1)
        fc1Bias = randomFloats(&r, hidden, scale: 0.1); fc2Bias = randomFloats(&r, c, scale: 0.1); headBias = randomFloats(&r, classes, scale: 0.1)
        g1 = (0..<c).map { _ in Float(0.8 + 0.4 * r.next()) }; b1 = randomFloats(&r, c, scale: 0.1)
        g2 = (0..<c).map { _ in Float(0.8 + 0.4 * r.next()) }; b2 = randomFloats(&r, c, scale: 0.1)
        g3 = (0..<c).map { _ in Float(0.8 + 0.4 * r.next()) }; b3 = randomFloats(&r, c, scale: 0.1)
        cls = randomFloats(&r, c, scale: 0.5); pos = randomFloats(&r, t * c, scale: 0.2)
        softQ = AdaLogParams(q: 23, bits: min(aBits, 6), scale: 1)
        geluQ = AdaLogParams(q: 30, bits: min(aBits, 6), scale: 1, shift: 0.16997124)
    }

    /// Fake-quant forward of one image [8,8,3]; with `calibrate` the quantizers are (re)set from this sample.
    /// Returns (x1 = after the attention residual, logits).
    mutating func simulate(_ img: [Float], calibrate cal: Bool) -> (x1: [Float], logits: [Float]) {
        let (pe0, _, _) = conv(img, h: hw, w: hw, c: 3, pe.deq, o: c, k: patch, stride: patch, pad: 0, groups: 1, bias: peBias)
        var x0 = [Float](repeating: 0, count: t * c)
        for i in 0..<c { x0[i] = cls[i] + pos[i] }
        for i in 0..<(t0 * c) { x0[c + i] = pe0[i] + pos[c + i] }
        let ln1 = layerNorm(x0, rows: t, c: c, g: g1, b: b1, eps: 1e-6)
        if cal { ln1Q = calibrate(ln1, bits: aBits) }
        let a1 = ln1.map { fq($0, ln1Q) }
        let qkvF = matmul(a1, rows: t, k: c, qkv.deq, n: 3 * c, bias: qkvBias)
        func part(_ blk: Int, _ h: Int) -> [Float] { (0..<t).flatMap { r in (0..<d).map { qkvF[r * 3 * c + blk * c + h * d + $0] } } }
        if cal {
            var gs: [UniformGroupParams] = []
            for blk in 0..<3 {
                let ps = (0..<heads).map { calibrate(part(blk, $0), bits: aBits) }
                // folded int8 storage: keep the range inside int8 at 8 bits
                gs.append(UniformGroupParams(scale: ps.map(\.scale), zeroPoint: ps.map { aBits == 8 ? 128 : $0.zeroPoint }, bits: aBits))
            }
            qQ = gs[0]; kQ = gs[1]; vQ = gs[2]
        }
        var o = [Float](repeating: 0, count: t * c)
        for h in 0..<heads {
            func fqh(_ v: [Float], _ g: UniformGroupParams) -> [Float] { v.map { fq($0, UniformParams(scale: g.scale[h], zeroPoint: g.zeroPoint[h], bits: g.bits)) } }
            let q = fqh(part(0, h), qQ), k = fqh(part(1, h), kQ), v = fqh(part(2, h), vQ)
            for i in 0..<t {
                var s = (0..<t).map { j in Float((0..<d).reduce(0.0) { $0 + Double(q[i * d + $1]) * Double(k[j * d + $1]) } / Double(d).squareRoot()) }
                let m = s.max()!
                let e = s.map { exp(Double($0 - m)) }, sum = e.reduce(0, +)
                if uniformSoftmax {
                    if cal && uniformP == nil { uniformP = UniformParams(scale: 1 / Float((1 << aBits) - 1), zeroPoint: 0, bits: aBits) }
                    s = e.map { fq(Float($0 / sum), uniformP!) }
                } else {
                    s = e.map { adalogFQ(Float($0 / sum), softQ) }
                }
                for dd in 0..<d { o[i * c + h * d + dd] = Float((0..<t).reduce(0.0) { $0 + Double(s[$1]) * Double(v[$1 * d + dd]) }) }
            }
        }
        if cal { attnQ = calibrate(o, bits: aBits) }
        let oq = o.map { fq($0, attnQ) }
        lastAttention = oq
        lastAttentionFloat = o
        let pr = matmul(oq, rows: t, k: c, proj.deq, n: c, bias: projBias)
        let x1 = zip(x0, pr).map { $0 + $1 }
        let ln2 = layerNorm(x1, rows: t, c: c, g: g2, b: b2, eps: 1e-6)
        if cal { ln2Q = calibrate(ln2, bits: aBits) }
        let h1 = matmul(ln2.map { fq($0, ln2Q) }, rows: t, k: c, fc1.deq, n: hidden, bias: fc1Bias)
        let y: [Float]
        if uniformSoftmax {
            let g = h1.map { gelu($0) }
            if cal { geluUniform = calibrate(g, bits: aBits) }
            y = matmul(g.map { fq($0, geluUniform) }, rows: t, k: hidden, fc2.deq, n: c, bias: fc2Bias)
        } else {
            let u = h1.map { gelu($0) + geluShift }
            if cal { geluQ.scale = u.max()! }
            let uq = u.map { adalogFQ($0, geluQ) }
            y = matmul(uq, rows: t, k: hidden, fc2.deq, n: c, bias: foldedFc2Bias)
        }
        let x2 = zip(x1, y).map { $0 + $1 }
        let ln3 = layerNorm(Array(x2[0..<c]), rows: 1, c: c, g: g3, b: b3, eps: 1e-6)
        if cal { ln3Q = calibrate(ln3, bits: aBits) }
        let logits = matmul(ln3.map { fq($0, ln3Q) }, rows: 1, k: c, head.deq, n: classes, bias: headBias)
        return (x1, logits)
    }

    /// b' = b − c·Ŵ·1 (adalog.md §1.5).
    var foldedFc2Bias: [Float] {
        let w = fc2.deq
        return (0..<c).map { o in Float(Double(fc2Bias[o]) - Double(geluShift) * (0..<hidden).reduce(0.0) { $0 + Double(w[o * hidden + $1]) }) }
    }

    func model() throws -> QModel {
        let at: DType = aBits == 8 ? .uint8 : .int8
        func q(_ name: String, _ shape: [Int], _ p: UniformParams) -> TensorInfo { TensorInfo(name: name, dtype: at, shape: shape, quantizer: .uniform(p)) }
        func fl(_ name: String, _ shape: [Int]) -> TensorInfo { TensorInfo(name: name, dtype: .float32, shape: shape) }
        let side = hw / patch
        let tensors = [
            fl("image", [hw, hw, 3]), fl("patches", [side, side, c]), fl("tokens0", [t0, c]), fl("x0", [t, c]),
            q("ln1", [t, c], ln1Q), fl("qkv", [t, 3 * c]), q("attn", [t, c], attnQ), fl("proj", [t, c]), fl("x1", [t, c]),
            q("ln2", [t, c], ln2Q), fl("fc1", [t, hidden]),
            uniformSoftmax ? q("gelu", [t, hidden], geluUniform) : TensorInfo(name: "gelu", dtype: .code, shape: [t, hidden], quantizer: .adaLog(geluQ)),
            fl("fc2", [t, c]), fl("x2", [t, c]), fl("gelu_float", [t, hidden]), fl("cls", [c]), q("ln3", [c], ln3Q), fl("logits", [classes]),
        ]
        let ops: [Op] = [
            .conv2d(ConvOp(name: "patch_embed", input: "image", output: "patches", weight: pe.ref("pe"), bias: "pe.b", kernel: [patch, patch],
                           stride: [patch, patch], pads: [0, 0, 0, 0])),
            .reshape(UnaryOp(name: "flatten", input: "patches", output: "tokens0")),
            .classPosition(ClassPositionOp(name: "embed", input: "tokens0", output: "x0", classToken: "cls_token", position: "pos_embed")),
            .layerNormQuantize(LayerNormOp(name: "norm1", input: "x0", output: "ln1", gamma: "norm1.g", beta: "norm1.b", epsilon: 1e-6)),
            .linear(LinearOp(name: "qkv", input: "ln1", output: "qkv", weight: qkv.ref("qkv"), bias: "qkv.b")),
            .attention(AttentionOp(name: "attn", input: "qkv", output: "attn", heads: heads, headDim: d, query: qQ, key: kQ, value: vQ, probabilities: uniformP.map { .uniform($0) } ?? .adaLog(softQ))),
            .linear(LinearOp(name: "proj", input: "attn", output: "proj", weight: proj.ref("proj"), bias: "proj.b")),
            .add(BinaryOp(name: "res1", a: "x0", b: "proj", output: "x1")),
            .layerNormQuantize(LayerNormOp(name: "norm2", input: "x1", output: "ln2", gamma: "norm2.g", beta: "norm2.b", epsilon: 1e-6)),
            .linear(LinearOp(name: "fc1", input: "ln2", output: "fc1", weight: fc1.ref("fc1"), bias: "fc1.b")),
        ] + (uniformSoftmax ? [
            .gelu(UnaryOp(name: "gelu_f", input: "fc1", output: "gelu_float")),
            .quantize(UnaryOp(name: "gelu_q", input: "gelu_float", output: "gelu")),
            .linear(LinearOp(name: "fc2", input: "gelu", output: "fc2", weight: fc2.ref("fc2"), bias: "fc2.b")),
        ] : [
            .geluAdaLog(UnaryOp(name: "gelu", input: "fc1", output: "gelu")),
            .adaLogLinear(LinearOp(name: "fc2", input: "gelu", output: "fc2", weight: fc2.ref("fc2"), bias: "fc2.b")),
        ]) + [
            .add(BinaryOp(name: "res2", a: "x1", b: "fc2", output: "x2")),
            .tokenSelect(TokenSelectOp(name: "cls_select", input: "x2", output: "cls", index: 0)),
            .layerNormQuantize(LayerNormOp(name: "norm", input: "cls", output: "ln3", gamma: "norm.g", beta: "norm.b", epsilon: 1e-6)),
            .linear(LinearOp(name: "head", input: "ln3", output: "logits", weight: head.ref("head"), bias: "head.b")),
        ]
        var consts: [Constant] = []
        consts += try pe.constants("pe") + qkv.constants("qkv") + proj.constants("proj") + fc1.constants("fc1") + fc2.constants("fc2") + head.constants("head")
        consts += [Constant.float("pe.b", shape: [c], peBias), Constant.float("qkv.b", shape: [3 * c], qkvBias), Constant.float("proj.b", shape: [c], projBias),
                   Constant.float("fc1.b", shape: [hidden], fc1Bias), Constant.float("fc2.b", shape: [c], uniformSoftmax ? fc2Bias : foldedFc2Bias), Constant.float("head.b", shape: [classes], headBias),
                   Constant.float("norm1.g", shape: [c], g1), Constant.float("norm1.b", shape: [c], b1), Constant.float("norm2.g", shape: [c], g2),
                   Constant.float("norm2.b", shape: [c], b2), Constant.float("norm.g", shape: [c], g3), Constant.float("norm.b", shape: [c], b3),
                   Constant.float("cls_token", shape: [c], cls), Constant.float("pos_embed", shape: [t, c], pos)]
        return QModel(name: "tiny-vit-w\(wBits)a\(aBits)",
                      preprocessing: Preprocessing(size: hw, cropPct: 0.875, interpolation: "bicubic", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]),
                      classNames: (0..<classes).map { "class \($0)" }, tensors: tensors, ops: ops, inputs: ["image"], outputs: ["x1", "logits"], constants: consts)
    }
}

struct TinyCNN {
    let hw = 8, c1 = 8, classes = 10
    var w1, dw, pw, head: QW
    var b1, bdw, bpw, bh: [Float]
    var inQ = UniformParams(scale: 1, zeroPoint: 0, bits: 8), y1Q = UniformParams(scale: 1, zeroPoint: 0, bits: 8)
    var y2Q = UniformParams(scale: 1, zeroPoint: 0, bits: 8), poolQ = UniformParams(scale: 1, zeroPoint: 0, bits: 8)

    init(seed: UInt64) {
        var r = Rng(s: seed)
        w1 = QW(&r, shape: [8, 3, 3, 3], bits: 8); dw = QW(&r, shape: [8, 3, 3, 1], bits: 8)
        pw = QW(&r, shape: [8, 1, 1, 8], bits: 8); head = QW(&r, shape: [10, 8], bits: 8)
        b1 = randomFloats(&r, 8, scale: 0.1); bdw = randomFloats(&r, 8, scale: 0.1); bpw = randomFloats(&r, 8, scale: 0.1); bh = randomFloats(&r, 10, scale: 0.1)
    }

    mutating func simulate(_ img: [Float], calibrate cal: Bool) -> (pooled: [Float], logits: [Float]) {
        if cal { inQ = calibrate(img, bits: 8) }
        let x = img.map { fq($0, inQ) }
        let (y1f, h1, w1s) = conv(x, h: hw, w: hw, c: 3, w1.deq, o: c1, k: 3, stride: 2, pad: 1, groups: 1, bias: b1)
        let y1r = y1f.map { min(6, max(0, $0)) }
        if cal { y1Q = calibrate(y1r, bits: 8) }
        let y1 = y1r.map { fq($0, y1Q) }
        // 3×3 stride-1 pad-1 max pool on the quantized codes (clipped windows)
        var mp = y1
        for oy in 0..<h1 { for ox in 0..<w1s { for ch in 0..<c1 {
            var m = -Float.infinity
            for iy in max(0, oy - 1)..<min(h1, oy + 2) { for ix in max(0, ox - 1)..<min(w1s, ox + 2) { m = max(m, y1[(iy * w1s + ix) * c1 + ch]) } }
            mp[(oy * w1s + ox) * c1 + ch] = m
        } } }
        let (y2f, _, _) = conv(mp, h: h1, w: w1s, c: c1, dw.deq, o: c1, k: 3, stride: 1, pad: 1, groups: c1, bias: bdw)
        let y2r = y2f.map { max(0, $0) }
        if cal { y2Q = calibrate(y2r, bits: 8) }
        let y2 = y2r.map { fq($0, y2Q) }
        let (y3, _, _) = conv(y2, h: h1, w: w1s, c: c1, pw.deq, o: c1, k: 1, stride: 1, pad: 0, groups: 1, bias: bpw)
        let y4 = zip(y3, y1).map { $0 + $1 }
        let hw2 = h1 * w1s
        let pooled = (0..<c1).map { ch in Float((0..<hw2).reduce(0.0) { $0 + Double(y4[$1 * c1 + ch]) } / Double(hw2)) }
        if cal { poolQ = calibrate(pooled, bits: 8) }
        let logits = matmul(pooled.map { fq($0, poolQ) }, rows: 1, k: c1, head.deq, n: classes, bias: bh)
        return (pooled, logits)
    }

    func model() throws -> QModel {
        func q(_ n: String, _ s: [Int], _ p: UniformParams) -> TensorInfo { TensorInfo(name: n, dtype: .uint8, shape: s, quantizer: .uniform(p)) }
        func fl(_ n: String, _ s: [Int]) -> TensorInfo { TensorInfo(name: n, dtype: .float32, shape: s) }
        let tensors = [fl("image", [hw, hw, 3]), q("xq", [hw, hw, 3], inQ), q("y1", [4, 4, c1], y1Q), q("mp", [4, 4, c1], y1Q), q("y2", [4, 4, c1], y2Q),
                       fl("y3", [4, 4, c1]), fl("y1f", [4, 4, c1]), fl("y4", [4, 4, c1]), fl("pooled", [c1]), q("pq", [c1], poolQ), fl("logits", [classes])]
        let ops: [Op] = [
            .quantize(UnaryOp(name: "quant_in", input: "image", output: "xq")),
            .conv2d(ConvOp(name: "conv1", input: "xq", output: "y1", weight: w1.ref("w1"), bias: "b1", kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1], clamp: .relu6)),
            .maxPool(MaxPoolOp(name: "pool", input: "y1", output: "mp", kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1])),
            .conv2d(ConvOp(name: "dw", input: "mp", output: "y2", weight: dw.ref("dw"), bias: "bdw", kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1], groups: c1, clamp: .relu)),
            .conv2d(ConvOp(name: "pw", input: "y2", output: "y3", weight: pw.ref("pw"), bias: "bpw", kernel: [1, 1], stride: [1, 1], pads: [0, 0, 0, 0])),
            .dequantize(UnaryOp(name: "deq_skip", input: "y1", output: "y1f")),
            .add(BinaryOp(name: "res", a: "y3", b: "y1f", output: "y4")),
            .globalAveragePool(UnaryOp(name: "gap", input: "y4", output: "pooled")),
            .quantize(UnaryOp(name: "quant_head", input: "pooled", output: "pq")),
            .linear(LinearOp(name: "head", input: "pq", output: "logits", weight: head.ref("head"), bias: "bh")),
        ]
        var consts = try w1.constants("w1") + dw.constants("dw") + pw.constants("pw") + head.constants("head")
        consts += [Constant.float("b1", shape: [c1], b1), Constant.float("bdw", shape: [c1], bdw), Constant.float("bpw", shape: [c1], bpw), Constant.float("bh", shape: [classes], bh)]
        return QModel(name: "tiny-cnn", classNames: (0..<classes).map { "c\($0)" }, tensors: tensors, ops: ops, inputs: ["image"],
                      outputs: ["pooled", "logits"], constants: consts)
    }
}
