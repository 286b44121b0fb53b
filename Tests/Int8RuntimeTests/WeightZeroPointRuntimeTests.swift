import Testing
@testable import Int8Runtime
import Int8Kernels
import QModel

/// 8-bit asymmetric weight rows whose W − z leaves int8 (uint8 codes + zero points) feeding *quantized* outputs: the
/// runtime adds the weight zero-point term in int32 and requantizes directly. Checked bit for bit against an integer
/// reference of the runtime's documented semantics (bias round(b/(s_x·s_w)) half-even, TFLite multiplier, single
/// rounding, clamp with fused ReLU/ReLU6).
@Suite struct WeightZeroPointRuntimeTests {
    struct Layer {
        var raw: [UInt8]      // [O][K] codes
        var zero: [Int32]     // per row
        var scale: [Float]    // per row
        var bias: [Float]
    }

    static func layer(_ rng: inout Rng, o: Int, k: Int) -> Layer {
        let zs: [Int32] = [0, 255, 30, 128, 200, 5, 250, 1]
        var raw = (0..<(o * k)).map { _ in UInt8(Int(rng.next() * 256) & 255) }
        for r in 0..<o { raw[r * k] = r % 2 == 0 ? 255 : 0 }   // every row has a code far from a 0/255 zero point
        return Layer(raw: raw, zero: (0..<o).map { zs[$0 % zs.count] },
                     scale: (0..<o).map { _ in Float(0.0005 + 0.002 * rng.next()) }, bias: (0..<o).map { _ in Float(rng.next() - 0.5) })
    }

    /// acc (Int64, exact) → stored output code, the runtime's `stage(for:)` semantics.
    static func requant(_ acc: Int64, row o: Int, sx: Float, l: Layer, out: UniformParams, clamp: Clamp) throws -> Int32 {
        let accScale = Double(sx) * Double(l.scale[o])
        let ib = Int64(Int32(clamping: Int((Double(l.bias[o]) / accScale).rounded(.toNearestOrEven))))
        let m = try QuantizedMultiplier(accScale / Double(out.scale))
        let v = Int64(Int32(truncatingIfNeeded: acc + ib))
        let total = Int64(31 - m.shift)
        var r = (v * Int64(m.multiplier) + (Int64(1) << (total - 1))) >> total
        r = min(Int64(Int32.max), max(Int64(Int32.min), r))
        var lo: Int64 = 0, hi: Int64 = 255
        if clamp != .none { lo = max(lo, Int64(out.zeroPoint)) }
        if clamp == .relu6 { hi = min(hi, Int64((6.0 / Double(out.scale)).rounded(.toNearestOrEven)) + Int64(out.zeroPoint)) }
        return Int32(min(hi, max(lo, r + Int64(out.zeroPoint))))
    }

    func constants(_ name: String, _ l: Layer, shape: [Int]) -> [Constant] {
        [Constant(name: "\(name).w", dtype: .uint8, shape: shape, bytes: l.raw), .int32("\(name).z", shape: [shape[0]], l.zero),
         .float("\(name).s", shape: [shape[0]], l.scale), .float("\(name).b", shape: [shape[0]], l.bias)]
    }
    func ref(_ name: String) -> WeightRef { WeightRef(weights: "\(name).w", scales: "\(name).s", zeroPoints: "\(name).z", bits: 8) }

    @Test func convDepthwiseAndLinearRequantizeExactly() throws {
        var rng = Rng(s: 77)
        let (h, w, c, o) = (6, 5, 4, 6)
        let inQ = UniformParams(scale: 0.0625, zeroPoint: 7, bits: 8)
        let y1Q = UniformParams(scale: 0.05, zeroPoint: 3, bits: 8), y2Q = UniformParams(scale: 0.03, zeroPoint: 121, bits: 8)
        let y3Q = UniformParams(scale: 0.02, zeroPoint: 90, bits: 8)
        let l1 = Self.layer(&rng, o: o, k: 9 * c), l2 = Self.layer(&rng, o: o, k: 9), l3 = Self.layer(&rng, o: 7, k: o)
        // input codes, given as exact reals (code − z)·s
        let codes = (0..<(h * w * c)).map { _ in Int32(Int(rng.next() * 256) & 255) }
        let image = codes.map { Float($0 - inQ.zeroPoint) * inQ.scale }
        func q(_ n: String, _ s: [Int], _ p: UniformParams) -> TensorInfo { TensorInfo(name: n, dtype: .uint8, shape: s, quantizer: .uniform(p)) }
        func fl(_ n: String, _ s: [Int]) -> TensorInfo { TensorInfo(name: n, dtype: .float32, shape: s) }
        let model = QModel(name: "wzp", classNames: [], tensors: [fl("image", [h, w, c]), q("x", [h, w, c], inQ), q("y1", [h, w, o], y1Q), q("y2", [h, w, o], y2Q),
                                                                 q("y3", [h, w, 7], y3Q), fl("out", [h, w, 7])],
                           ops: [.quantize(UnaryOp(name: "qin", input: "image", output: "x")),
                                 .conv2d(ConvOp(name: "c1", input: "x", output: "y1", weight: ref("c1"), bias: "c1.b", kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1], clamp: .relu6)),
                                 .conv2d(ConvOp(name: "dw", input: "y1", output: "y2", weight: ref("dw"), bias: "dw.b", kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1], groups: o, clamp: .relu)),
                                 .linear(LinearOp(name: "fc", input: "y2", output: "y3", weight: ref("fc"), bias: "fc.b")),
                                 .dequantize(UnaryOp(name: "deq", input: "y3", output: "out"))],
                           inputs: ["image"], outputs: ["out"],
                           constants: constants("c1", l1, shape: [o, 3, 3, c]) + constants("dw", l2, shape: [o, 3, 3, 1]) + constants("fc", l3, shape: [7, o]))
        try model.validate()   // quantized outputs of such layers are legal now
        // ... from format version 2 on: the file says so, so a version-1 runtime refuses it by version.
        #expect(model.requiredFormatVersion == 2)
        #expect(try QModelFile.encode(model)[8] == 2)
        var folded = model
        folded.ops = model.ops.filter { if case .conv2d = $0 { false } else if case .linear = $0 { false } else { true } }
        #expect(folded.requiredFormatVersion == 1)

        // integer reference
        var y1 = [Int32](repeating: 0, count: h * w * o), y2 = y1, y3 = [Int32](repeating: 0, count: h * w * 7)
        for yy in 0..<h { for xx in 0..<w { for oc in 0..<o {
            var acc: Int64 = 0
            for ky in 0..<3 { for kx in 0..<3 { let iy = yy + ky - 1, ix = xx + kx - 1
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                for ch in 0..<c { acc += Int64(codes[(iy * w + ix) * c + ch] - inQ.zeroPoint) * Int64(Int32(l1.raw[oc * 9 * c + (ky * 3 + kx) * c + ch]) - l1.zero[oc]) }
            } }
            y1[(yy * w + xx) * o + oc] = try Self.requant(acc, row: oc, sx: inQ.scale, l: l1, out: y1Q, clamp: .relu6)
        } } }
        for yy in 0..<h { for xx in 0..<w { for ch in 0..<o {
            var acc: Int64 = 0
            for ky in 0..<3 { for kx in 0..<3 { let iy = yy + ky - 1, ix = xx + kx - 1
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                acc += Int64(y1[(iy * w + ix) * o + ch] - y1Q.zeroPoint) * Int64(Int32(l2.raw[ch * 9 + ky * 3 + kx]) - l2.zero[ch])
            } }
            y2[(yy * w + xx) * o + ch] = try Self.requant(acc, row: ch, sx: y1Q.scale, l: l2, out: y2Q, clamp: .relu)
        } } }
        for p in 0..<(h * w) { for n in 0..<7 {
            var acc: Int64 = 0
            for kk in 0..<o { acc += Int64(y2[p * o + kk] - y2Q.zeroPoint) * Int64(Int32(l3.raw[n * o + kk]) - l3.zero[n]) }
            y3[p * 7 + n] = try Self.requant(acc, row: n, sx: y2Q.scale, l: l3, out: y3Q, clamp: .none)
        } }
        let expected = y3.map { Float($0 - y3Q.zeroPoint) * y3Q.scale }
        for isa in KernelISA.supported {
            for threads in [1, 2] {
                let s = try Session(model: model, batch: 1, threads: threads, isa: isa)
                let got = try s.run(image)[0]
                #expect(got == expected, "isa \(isa) threads \(threads)")
            }
        }
        // the rows really leave int8 (the path under test)
        #expect(model.weightsWithRowOffset(ref("c1"))?.rowOffset != nil && model.weightsWithRowOffset(ref("fc"))?.rowOffset != nil)
    }
}
