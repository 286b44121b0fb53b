import CInt8Kernels
import Testing
@testable import Int8Kernels

/// The depthwise tap-quad path (`i8k_dwq_*`, int8 and two-part weight groups) and the high-half single-rounding output stage it and the
/// GEMM epilogue use, against the naive conv, bit for bit on every ISA.
@Suite("Depthwise conv through tap quads, bit-exact")
struct DepthwiseQuadTests {
    /// The shared stages plus single-rounding ones outside the high-half form's shift range [−21, −2]: shift −1 and
    /// below −21 on some channels only (mixed vectors), and a ReLU6-like clamp.
    static func quadStages(n: Int, _ rng: inout SplitMix) -> [(String, OutputStage)] {
        var list = stages(n: n, &rng)
        let mixed = (0..<n).map { i in try! QuantizedMultiplier([0.7, 1e-8, 0.003, 0.4][i % 4]) }
        let tiny = (0..<n).map { _ in try! QuantizedMultiplier(Double.random(in: 1e-9...1e-7, using: &rng)) }
        let mid = (0..<n).map { _ in try! QuantizedMultiplier(Double.random(in: 0.0005...0.3, using: &rng)) }
        list.append(("uint8 single, shifts -1 and < -21 mixed in", .requantize(multipliers: mixed, rounding: .singleRounding, zeroPoint: 7, qmin: 0, qmax: 255, unsigned: true)))
        list.append(("int8 single, tiny multipliers", .requantize(multipliers: tiny, rounding: .singleRounding, zeroPoint: -3, qmin: -128, qmax: 127, unsigned: false)))
        list.append(("uint8 single relu6-like", .requantize(multipliers: mid, rounding: .singleRounding, zeroPoint: 0, qmin: 0, qmax: 170, unsigned: true)))
        list.append(("int8 single, zero point -128", .requantize(multipliers: mid, rounding: .singleRounding, zeroPoint: -128, qmin: -128, qmax: 127, unsigned: false)))
        return list
    }

    @Test("3x3 / 5x5, strides 1-2, odd widths, uneven padding, channels not a multiple of 16", arguments: testISAs)
    func quads(isa: KernelISA) throws {
        var rng = SplitMix(4242)
        // (kernel, stride, inH, inW, C, pads top/left/bottom/right, dilationH)
        let cases: [(Int, Int, Int, Int, Int, (Int, Int, Int, Int), Int)] = [
            (3, 1, 9, 7, 33, (1, 1, 1, 1), 1),
            (3, 1, 11, 13, 40, (0, 1, 1, 0), 1),
            (3, 2, 6, 5, 35, (1, 0, 0, 1), 1),
            (5, 1, 10, 9, 3, (2, 2, 2, 2), 1),
            (5, 2, 13, 11, 144, (2, 1, 2, 3), 1),
            (5, 2, 9, 8, 16, (1, 2, 2, 1), 1),
            (5, 1, 7, 7, 200, (2, 2, 2, 2), 1),
            (3, 1, 8, 9, 37, (2, 1, 2, 1), 2),
            // several row chunks and group chunks (the scratch budget splits them)
            (5, 1, 40, 37, 72, (2, 2, 2, 2), 1),
            (3, 1, 61, 59, 48, (1, 1, 1, 1), 1),
        ]
        for (k, s, h, w, c, pad, dh) in cases {
            // stride s along y only: the quad path takes stride 1 along x (strides 2 and 4 go through ps in the C tests below)
            var g = ConvGeometry(inH: h, inW: w, inC: c, outC: c, kernelH: k, kernelW: k, stride: 1, groups: c)
            g.strideH = s
            (g.padTop, g.padLeft, g.padBottom, g.padRight) = pad
            g.dilationH = dh
            // int8 weights, except for some groups of 16 channels that also hold ±255 (the two-part "wide" form)
            var wts = (0..<(k * k * c)).map { _ in Int16.random(in: -128...127, using: &rng) }
            wts[0] = -128; wts[wts.count - 1] = 127
            for ch in stride(from: 16, to: c, by: 48) { wts[ch] = 255; wts[(k * k - 1) * c + ch] = -255 }
            if c < 16 { wts[1 % c] = 255 }
            let dw = try DepthwiseConv2DInt8(geometry: g, weights16: wts)
            #expect(dw.quadWeights != nil)
            var w32 = [Int32](repeating: 0, count: c * k * k)
            for o in 0..<c { for t in 0..<(k * k) { w32[o * k * k + t] = Int32(wts[t * c + o]) } }
            for (fill, signed, z) in [(nil, false, Int32(100)), (UInt8(255), false, Int32(0)), (nil, false, Int32(255)),
                                      (nil, true, Int32(-128)), (nil, true, Int32(17)), (UInt8(127), true, Int32(-128))] {
                let input = fill.map { [UInt8](repeating: $0, count: h * w * c) } ?? randomU8(h * w * c, &rng)
                let acc = naiveConvAcc32(g, input: input, signed: signed, zero: z, weights: w32)
                let act: ActivationType = signed ? .int8(zeroPoint: z) : .uint8(zeroPoint: z)
                let bias = (0..<c).map { _ in Int32.random(in: -30000...30000, using: &rng) }
                try expectMatchesNaive(dw, input: input, activation: act, bias: bias, acc: acc,
                                       stages: Self.quadStages(n: c, &rng), isa: isa,
                                       label: "dw \(k)x\(k) s\(s) \(h)x\(w)x\(c) pad \(pad) dh \(dh)")
            }
        }
    }

    @Test("x dilation, x stride 2 and 3-wide on <= 32 channels keep the tap-pair kernel; groups outside int8 take the two-part form")
    func fallback() throws {
        let g = ConvGeometry(inH: 6, inW: 6, inC: 40, outC: 40, kernelH: 3, kernelW: 3, stride: 1, pad: 1, groups: 40)
        var w = [Int16](repeating: -128, count: 360)
        w[9 * 40 - 1] = 128
        #expect(try DepthwiseConv2DInt8(geometry: g, weights16: w).quadWeights?.wide == [0, 0, 1])
        #expect(try DepthwiseConv2DInt8(geometry: g, weights16: [Int16](repeating: 127, count: 360)).quadWeights?.wide == [0, 0, 0])
        var d = g; d.dilationW = 2
        #expect(try DepthwiseConv2DInt8(geometry: d, weights16: [Int16](repeating: 1, count: 360)).quadWeights == nil)
        var s2 = g; s2.strideW = 2
        #expect(try DepthwiseConv2DInt8(geometry: s2, weights16: [Int16](repeating: 1, count: 360)).quadWeights == nil)
        let narrow = ConvGeometry(inH: 6, inW: 6, inC: 32, outC: 32, kernelH: 3, kernelW: 3, stride: 1, pad: 1, groups: 32)
        #expect(try DepthwiseConv2DInt8(geometry: narrow, weights16: [Int16](repeating: 1, count: 288)).quadWeights == nil)
    }

    @Test("C kernels at x strides 1-3 (quad step ps 1 and 2), one chunk, against i8k_ref_dwconv_row", arguments: testISAs)
    func strideX(isa: KernelISA) throws {
        var rng = SplitMix(99)
        for (k, s, h, w, c, p) in [(3, 2, 9, 11, 37, 1), (5, 2, 10, 13, 20, 2), (5, 3, 11, 12, 17, 2), (3, 1, 7, 9, 5, 0), (3, 2, 8, 8, 16, 1)] {
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
            var wts = (0..<(k * k * c)).map { _ in Int16.random(in: -128...127, using: &rng) }
            wts[c - 1] = -255
            var q = [Int8](repeating: 0, count: i8k_dwq_weights_size(k, k, c))
            var sums = [Int32](repeating: 0, count: (c + 15) / 16 * 16)
            var wide = [UInt8](repeating: 0, count: (c + 15) / 16)
            #expect(i8k_dwq_pack(wts, k, k, c, &q, &sums, &wide) == 1)
            let ps = 4 % s == 0 ? s : 1
            let nq = ((ow - 1) * s + 4 * ((k + 3) / 4 - 1)) / ps + 1
            let groups = (c + 15) / 16, rows = (oh - 1) * s + k
            for (signed, z) in [(Int32(0), Int32(9)), (Int32(1), Int32(-100))] {
                let input = randomU8(h * w * c, &rng)
                let bias = (0..<c).map { _ in Int32.random(in: -3000...3000, using: &rng) }
                for (name, stage) in Self.quadStages(n: c, &rng) {
                    var ref = outputBytes(stage, count: oh * ow * c), got = ref
                    var quads = [UInt8](repeating: 0, count: rows * groups * nq * 64)
                    withRawOutput(stage, n: c, bias: bias) { op in
                        ref.withUnsafeMutableBytes { rb in
                            for oy in 0..<oh {
                                i8k_ref_dwconv_row(input, signed, z, h, w, c, wts, k, k, s, s, p, p, 1, 1, ow, oy, op,
                                                   rb.baseAddress! + oy * ow * c * stage.elementSize)
                            }
                        }
                        i8k_dwq_quads(isa.rawValue, input, signed, z, h, w, c, -p, rows, -p, ps, nq, 0, groups, &quads)
                        got.withUnsafeMutableBytes { gb in
                            i8k_dwconv_quads(isa.rawValue, quads, signed, z, c, q, sums, wide, k, k, s, s, 1, ps, nq, ow, 0, oh, 0, groups, op,
                                             gb.baseAddress!)
                        }
                    }
                    #expect(firstDifference(got, ref) == nil, "isa \(isa) dw \(k)x\(k) s\(s) \(h)x\(w)x\(c) signed \(signed) \(name)")
                }
            }
        }
    }

    @Test("1x1 conv (GEMM epilogue) with the single-rounding stages", arguments: testISAs)
    func gemmStages(isa: KernelISA) throws {
        var rng = SplitMix(77)
        for (k, n) in [(16, 96), (24, 35), (27, 32)] {
            let g = ConvGeometry(inH: 5, inW: 7, inC: k, outC: n, kernelH: 1, kernelW: 1)
            let w = randomS8(n * k, &rng)
            let conv = try Conv2DInt8(geometry: g, weights: w)
            let input = randomU8(g.inH * g.inW * k, &rng)
            let bias = (0..<n).map { _ in Int32.random(in: -3000...3000, using: &rng) }
            let acc = naiveConvAcc(g, input: input, signed: false, zero: 9, weights: w)
            for (name, stage) in Self.quadStages(n: n, &rng) {
                let ref = applyStage(acc, rows: g.outH * g.outW, n: n, bias: bias, stage: stage)
                var got = outputBytes(stage, count: g.outH * g.outW * n)
                try input.withUnsafeBufferPointer { ib in
                    try got.withUnsafeMutableBytes { ob in
                        try conv.run(input: ib.baseAddress!, activation: .uint8(zeroPoint: 9), bias: bias, output: stage, dst: ob.baseAddress!, isa: isa)
                    }
                }
                #expect(firstDifference(got, ref) == nil, "isa \(isa) 1x1 k\(k) n\(n) \(name)")
            }
        }
    }
}
