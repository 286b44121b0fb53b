import CInt8Kernels
import Testing
@testable import Int8Kernels

/// Naive NHWC conv accumulators Σ (x − z)·w over in-bounds taps (padding = zero point contributes 0).
func naiveConvAcc(_ g: ConvGeometry, input: [UInt8], signed: Bool, zero: Int32, weights: [Int8]) -> [Int32] {
    naiveConvAcc32(g, input: input, signed: signed, zero: zero, weights: weights.map { Int32($0) })
}

/// Applies the scalar output stage to int32 accumulators (reference semantics).
func applyStage(_ acc: [Int32], rows: Int, n: Int, bias: [Int32]?, stage: OutputStage) -> [UInt8] {
    var out = outputBytes(stage, count: rows * n)
    withRawOutput(stage, n: n, bias: bias) { op in
        out.withUnsafeMutableBytes { i8k_output_apply(KernelISA.portable.rawValue, acc, n, rows, n, op, 0, $0.baseAddress!, n) }
    }
    return out
}

@Suite("Convolution (NHWC): im2col GEMM and depthwise, bit-exact")
struct ConvTests {
    static let geometries: [ConvGeometry] = {
        var list: [ConvGeometry] = [
            ConvGeometry(inH: 9, inW: 7, inC: 5, outC: 6, kernelH: 3, kernelW: 3, stride: 1, pad: 1),
            ConvGeometry(inH: 11, inW: 10, inC: 8, outC: 50, kernelH: 3, kernelW: 3, stride: 2, pad: 1, dilation: 2),
            ConvGeometry(inH: 6, inW: 6, inC: 17, outC: 33, kernelH: 1, kernelW: 1),
            ConvGeometry(inH: 8, inW: 9, inC: 12, outC: 8, kernelH: 5, kernelW: 5, stride: 2, pad: 2, groups: 4),
            ConvGeometry(inH: 7, inW: 7, inC: 3, outC: 4, kernelH: 7, kernelW: 7, stride: 2, pad: 3),
            // im2col run copies: kernel wider than the input, clipped on both sides at once
            ConvGeometry(inH: 4, inW: 2, inC: 2, outC: 5, kernelH: 3, kernelW: 5, stride: 3, pad: 2),
            // runs of 3 x 21 = 63 bytes (16/8/4/1-byte copy pieces), x dilation (per-tap path) with all channels
            ConvGeometry(inH: 5, inW: 6, inC: 21, outC: 17, kernelH: 3, kernelW: 3, stride: 1, pad: 1),
            ConvGeometry(inH: 6, inW: 7, inC: 5, outC: 3, kernelH: 2, kernelW: 3, stride: 1, pad: 2, dilation: 2),
        ]
        var asym = ConvGeometry(inH: 10, inW: 5, inC: 4, outC: 7, kernelH: 2, kernelW: 3, stride: 1)
        asym.strideW = 2; asym.padTop = 1; asym.padBottom = 0; asym.padLeft = 0; asym.padRight = 2
        list.append(asym)
        return list
    }()

    @Test("dense / grouped conv vs naive", arguments: testISAs)
    func dense(isa: KernelISA) throws {
        var rng = SplitMix(11)
        for g in Self.geometries {
            let w = randomS8(g.outC * g.kernelH * g.kernelW * (g.inC / g.groups), &rng)
            let conv = try Conv2DInt8(geometry: g, weights: w)
            let input = randomU8(g.inH * g.inW * g.inC, &rng)
            let bias = (0..<g.outC).map { _ in Int32.random(in: -3000...3000, using: &rng) }
            for (signed, z) in [(false, Int32(131)), (true, Int32(-7))] {
                let acc = naiveConvAcc(g, input: input, signed: signed, zero: z, weights: w)
                try expectConv(conv, g, input: input, bias: bias, acc: acc, activation: signed ? .int8(zeroPoint: z) : .uint8(zeroPoint: z),
                               isa: isa, &rng, "signed \(signed)")
            }
        }
    }

    @Test("depthwise 3x3 / 5x5 / general, strides 1-2, dilation", arguments: testISAs)
    func depthwise(isa: KernelISA) throws {
        var rng = SplitMix(12)
        let shapes: [(Int, Int, Int, Int)] = [(3, 3, 1, 1), (3, 3, 2, 1), (5, 5, 1, 2), (5, 5, 2, 2), (2, 3, 1, 0), (3, 3, 1, 2)]
        for (i, (kh, kw, s, p)) in shapes.enumerated() {
            let c = [17, 40, 3, 64, 33, 16][i]
            var g = ConvGeometry(inH: 9, inW: 8, inC: c, outC: c, kernelH: kh, kernelW: kw, stride: s, pad: p, groups: c)
            if i == 5 { g.dilationH = 2; g.dilationW = 2 }
            let w = randomS8(kh * kw * c, &rng, -127...127)
            let dw = try DepthwiseConv2DInt8(geometry: g, weights: w)
            let input = randomU8(g.inH * g.inW * c, &rng)
            // naive via the dense reference with weights [o][kh][kw][1]
            var wDense = [Int8](repeating: 0, count: c * kh * kw)
            for o in 0..<c { for t in 0..<(kh * kw) { wDense[o * kh * kw + t] = w[t * c + o] } }
            let acc = naiveConvAcc(g, input: input, signed: false, zero: 100, weights: wDense)
            for (name, stage) in stages(n: c, &rng) {
                let ref = applyStage(acc, rows: g.outH * g.outW, n: c, bias: nil, stage: stage)
                var got = outputBytes(stage, count: g.outH * g.outW * c)
                try input.withUnsafeBufferPointer { ib in
                    try got.withUnsafeMutableBytes { ob in
                        try dw.run(input: ib.baseAddress!, activation: .uint8(zeroPoint: 100), output: stage, dst: ob.baseAddress!, isa: isa, threads: 2)
                    }
                }
                #expect(firstDifference(got, ref) == nil, "isa \(isa) dw \(kh)x\(kw) s\(s) p\(p) \(name)")
            }
        }
    }

    @Test("invalid geometry and weight sizes throw")
    func invalid() {
        #expect(throws: Int8KernelError.self) { try Conv2DInt8(geometry: ConvGeometry(inH: 2, inW: 2, inC: 3, outC: 4, kernelH: 5, kernelW: 5), weights: []) }
        #expect(throws: Int8KernelError.self) { try Conv2DInt8(geometry: ConvGeometry(inH: 4, inW: 4, inC: 3, outC: 4, kernelH: 1, kernelW: 1, groups: 2), weights: []) }
        #expect(throws: Int8KernelError.self) { try Conv2DInt8(geometry: ConvGeometry(inH: 4, inW: 4, inC: 2, outC: 2, kernelH: 1, kernelW: 1), weights: [1]) }
        #expect(throws: Int8KernelError.self) { try DepthwiseConv2DInt8(geometry: ConvGeometry(inH: 4, inW: 4, inC: 2, outC: 4, kernelH: 3, kernelW: 3, groups: 2), weights: []) }
    }
}

/// Runs `conv` with every output stage on 1 and 2 threads and expects `acc` (the naive int32 result) through the stage.
func expectConv(_ conv: Conv2DInt8, _ g: ConvGeometry, input: [UInt8], bias: [Int32], acc: [Int32], activation: ActivationType,
                isa: KernelISA, _ rng: inout SplitMix, _ what: String) throws {
    try expectMatchesNaive(conv, input: input, activation: activation, bias: bias, acc: acc, stages: stages(n: g.outC, &rng),
                           isa: isa, label: "\(g) \(what)")
}
