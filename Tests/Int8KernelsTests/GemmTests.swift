import CInt8Kernels
import Testing
@testable import Int8Kernels

/// Reference: naive C with Σ (a − z)·w and the scalar output stage.
func referenceGEMM(a: [UInt8], m: Int, k: Int, n: Int, activation: ActivationType, wKN: [Int8], bias: [Int32]?, stage: OutputStage) -> [UInt8] {
    var out = outputBytes(stage, count: m * n)
    let (signed, z): (Int32, Int32) = switch activation {
    case let .uint8(z): (0, z)
    case let .int8(z): (1, z)
    }
    withRawOutput(stage, n: n, bias: bias) { op in
        out.withUnsafeMutableBytes { ob in
            i8k_ref_gemm_u8(a, k, signed, wKN, n, m, n, k, z, op, ob.baseAddress!, n)
        }
    }
    return out
}

func runGEMM(a: [UInt8], m: Int, k: Int, n: Int, activation: ActivationType, packed: PackedInt8Weights, bias: [Int32]?,
             stage: OutputStage, isa: KernelISA, threads: Int = 1) throws -> [UInt8] {
    var out = outputBytes(stage, count: m * n)
    try a.withUnsafeBufferPointer { ab in
        try out.withUnsafeMutableBytes { ob in
            try Int8GEMM.run(a: ab.baseAddress!, lda: k, m: m, activation: activation, weights: packed, bias: bias, output: stage,
                             dst: ob.baseAddress!, ldd: n, isa: isa, threads: threads)
        }
    }
    return out
}

@Suite("Integer GEMM, every supported ISA bit-exact against the naive reference")
struct GemmTests {
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (3, 17, 63), (17, 3, 1), (63, 63, 17), (197, 17, 3), (1, 1000, 3), (3, 63, 1000), (17, 197, 63),
        (9, 48, 4), (8, 49, 5), (197, 96, 197), (63, 1, 600), (9, 50, 2051), (260, 20, 1500),
    ]

    @Test("u8 and s8 activations, all output stages", arguments: testISAs)
    func randomShapes(isa: KernelISA) throws {
        var g = SplitMix(42)
        for (m, n, k) in Self.shapes {
            let wNK = randomS8(n * k, &g)
            var wKN = [Int8](repeating: 0, count: k * n)
            for o in 0..<n { for kk in 0..<k { wKN[kk * n + o] = wNK[o * k + kk] } }
            let packed = try PackedInt8Weights(weights: wNK, k: k, n: n, layout: .outputMajor)
            let bias = (0..<n).map { _ in Int32.random(in: -20000...20000, using: &g) }
            for activation in [ActivationType.uint8(zeroPoint: 117), .int8(zeroPoint: 0), .int8(zeroPoint: -3)] {
                let a = randomU8(m * k, &g)
                for (name, stage) in stages(n: n, &g) {
                    let ref = referenceGEMM(a: a, m: m, k: k, n: n, activation: activation, wKN: wKN, bias: bias, stage: stage)
                    let got = try runGEMM(a: a, m: m, k: k, n: n, activation: activation, packed: packed, bias: bias, stage: stage, isa: isa)
                    #expect(firstDifference(got, ref) == nil, "isa \(isa) shape \(m)x\(n)x\(k) \(activation) \(name)")
                }
            }
        }
    }

    @Test("extreme operands: 255/-128/127 at K = 1000 (AVX2 saturation trap) and 7-bit weights", arguments: testISAs)
    func extremes(isa: KernelISA) throws {
        let m = 5, k = 1000, n = 33
        let cases: [([UInt8], [Int8])] = [
            ([UInt8](repeating: 255, count: m * k), [Int8](repeating: -128, count: n * k)),
            ([UInt8](repeating: 255, count: m * k), [Int8](repeating: 127, count: n * k)),
            ([UInt8](repeating: 0, count: m * k), [Int8](repeating: -128, count: n * k)),
            ([UInt8](repeating: 255, count: m * k), [Int8](repeating: -64, count: n * k)),  // seven-bit path
            ((0..<(m * k)).map { $0 % 2 == 0 ? 255 : 0 }, (0..<(n * k)).map { $0 % 3 == 0 ? -128 : 127 }),
        ]
        for (a, w) in cases {
            var wKN = [Int8](repeating: 0, count: k * n)
            for o in 0..<n { for kk in 0..<k { wKN[kk * n + o] = w[o * k + kk] } }
            let packed = try PackedInt8Weights(weights: w, k: k, n: n, layout: .outputMajor)
            for act in [ActivationType.uint8(zeroPoint: 0), .uint8(zeroPoint: 255), .int8(zeroPoint: 0), .int8(zeroPoint: -128)] {
                let ref = referenceGEMM(a: a, m: m, k: k, n: n, activation: act, wKN: wKN, bias: nil, stage: .int32)
                let got = try runGEMM(a: a, m: m, k: k, n: n, activation: act, packed: packed, bias: nil, stage: .int32, isa: isa)
                #expect(firstDifference(got, ref) == nil, "isa \(isa) \(act) a0=\(a[0]) w0=\(w[0])")
            }
        }
        // explicit value: 255 * -128 * 1000 = -32_640_000 per output
        let packed = try PackedInt8Weights(weights: [Int8](repeating: -128, count: n * k), k: k, n: n, layout: .outputMajor)
        let got = try runGEMM(a: [UInt8](repeating: 255, count: m * k), m: m, k: k, n: n, activation: .uint8(zeroPoint: 0), packed: packed,
                              bias: nil, stage: .int32, isa: isa)
        let v = got.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        #expect(v.allSatisfy { $0 == -32_640_000 })
        #expect(!packed.sevenBit)
    }

    @Test("two threads give the same bytes as one", arguments: testISAs)
    func threads(isa: KernelISA) throws {
        var g = SplitMix(7)
        for (m, n, k) in [(197, 200, 64), (40, 17, 33), (197, 48, 8)] {
            let w = randomS8(n * k, &g)
            let packed = try PackedInt8Weights(weights: w, k: k, n: n, layout: .outputMajor)
            let a = randomU8(m * k, &g)
            let st = stages(n: n, &g)[1].1
            let one = try runGEMM(a: a, m: m, k: k, n: n, activation: .uint8(zeroPoint: 3), packed: packed, bias: nil, stage: st, isa: isa, threads: 1)
            let two = try runGEMM(a: a, m: m, k: k, n: n, activation: .uint8(zeroPoint: 3), packed: packed, bias: nil, stage: st, isa: isa, threads: 2)
            #expect(firstDifference(one, two) == nil)
        }
    }

    @Test("int16 x int16 GEMM (AdaLog table values) bit-exact", arguments: testISAs)
    func int16(isa: KernelISA) throws {
        var g = SplitMix(99)
        for (m, n, k) in [(1, 1, 1), (3, 17, 63), (17, 64, 197), (197, 64, 197), (5, 50, 1001), (260, 20, 1300), (197, 192, 768), (9, 40, 2049)] {
            let w = randomS8(n * k, &g)
            var wKN = [Int16](repeating: 0, count: k * n)
            for o in 0..<n { for kk in 0..<k { wKN[kk * n + o] = Int16(w[o * k + kk]) } }
            let packed = try PackedInt16Weights(weights: w, k: k, n: n, layout: .outputMajor)
            let a = (0..<(m * k)).map { _ in Int16.random(in: -32768...32767, using: &g) }
            for (name, stage) in stages(n: n, &g) {
                var ref = outputBytes(stage, count: m * n)
                withRawOutput(stage, n: n, bias: nil) { op in
                    ref.withUnsafeMutableBytes { i8k_ref_gemm_s16(a, k, wKN, n, m, n, k, op, $0.baseAddress!, n) }
                }
                var got = outputBytes(stage, count: m * n)
                try got.withUnsafeMutableBytes { ob in
                    try Int8GEMM.runInt16(a: a, lda: k, m: m, weights: packed, output: stage, dst: ob.baseAddress!, ldd: n, isa: isa)
                }
                #expect(firstDifference(got, ref) == nil, "isa \(isa) \(m)x\(n)x\(k) \(name)")
            }
        }
    }

    @Test("input-major and output-major packing agree; bad sizes throw")
    func packingLayouts() throws {
        var g = SplitMix(5)
        let k = 37, n = 70
        let wNK = randomS8(n * k, &g)
        var wKN = [Int8](repeating: 0, count: k * n)
        for o in 0..<n { for kk in 0..<k { wKN[kk * n + o] = wNK[o * k + kk] } }
        let a = try PackedInt8Weights(weights: wNK, k: k, n: n, layout: .outputMajor)
        let b = try PackedInt8Weights(weights: wKN, k: k, n: n, layout: .inputMajor)
        #expect(firstDifference(a.data, b.data) == nil)
        #expect(a.columnSums == b.columnSums)
        #expect(a.geometry.panels.map(\.width) == [48, 32])
        #expect(throws: Int8KernelError.self) { try PackedInt8Weights(weights: wNK, k: k + 1, n: n, layout: .outputMajor) }
        #expect(throws: Int8KernelError.self) {
            _ = try runGEMM(a: [1, 2, 3], m: 1, k: 3, n: 1, activation: .uint8(zeroPoint: 0),
                            packed: try PackedInt8Weights(weights: [1, 2, 3], k: 3, n: 1, layout: .outputMajor),
                            bias: [1, 2], stage: .int32, isa: .portable)
        }
    }
}

/// The AVX-512 fused epilogue (output stage applied to the accumulator registers, K <= 1024) on requantization
/// corners: full-range int32 biases (wrapping sums, INT32_MIN/MAX reached), multipliers 0, 2^30, INT32_MAX and
/// random, shifts −31 … 30, every output kind, row tails (M = 19 = 2·8 + 3) and partial vectors (N = 37).
@Suite("GEMM output stage in the microkernel epilogue: requantization corners")
struct GemmEpilogueCornerTests {
    @Test("corner accumulators through every output stage", arguments: testISAs)
    func corners(isa: KernelISA) throws {
        var g = SplitMix(11)
        let m = 19, n = 37
        for k in [1, 3, 8] {
            let wNK = randomS8(n * k, &g)
            var wKN = [Int8](repeating: 0, count: k * n)
            for o in 0..<n { for kk in 0..<k { wKN[kk * n + o] = wNK[o * k + kk] } }
            let packed = try PackedInt8Weights(weights: wNK, k: k, n: n, layout: .outputMajor)
            var bias = (0..<n).map { _ in Int32.random(in: Int32.min...Int32.max, using: &g) }
            bias[0] = Int32.max; bias[1] = Int32.min; bias[2] = 0; bias[3] = Int32.max - 200; bias[4] = Int32.min + 200
            var mults = (0..<n).map { _ in QuantizedMultiplier(multiplier: Int32.random(in: 0...Int32.max, using: &g),
                                                               shift: Int32.random(in: -31...30, using: &g)) }
            mults[0] = QuantizedMultiplier(multiplier: Int32.max, shift: 30)
            mults[1] = QuantizedMultiplier(multiplier: 1 << 30, shift: -31)
            mults[2] = QuantizedMultiplier(multiplier: 0, shift: 0)
            mults[3] = QuantizedMultiplier(multiplier: 1 << 30, shift: -1)   // ties
            mults[4] = QuantizedMultiplier(multiplier: Int32.max, shift: 0)
            let noLeft = mults.map { QuantizedMultiplier(multiplier: $0.multiplier, shift: min($0.shift, 0)) }
            let scales = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
            let stageList: [(String, OutputStage)] = [
                ("int32", .int32),
                ("int8 double", .requantize(multipliers: mults, rounding: .doubleRounding, zeroPoint: -128, qmin: -128, qmax: 127, unsigned: false)),
                ("int8 double, right shifts only", .requantize(multipliers: noLeft, rounding: .doubleRounding, zeroPoint: 7, qmin: -100, qmax: 100, unsigned: false)),
                ("uint8 single", .requantize(multipliers: mults, rounding: .singleRounding, zeroPoint: 255, qmin: 0, qmax: 255, unsigned: true)),
                ("uint8 double", .requantize(multipliers: mults, rounding: .doubleRounding, zeroPoint: 0, qmin: 0, qmax: 255, unsigned: true)),
                ("float", .dequantize(scales: scales, floatBias: scales.map { -$0 })),
            ]
            for activation in [ActivationType.uint8(zeroPoint: 255), .int8(zeroPoint: -128), .uint8(zeroPoint: 0)] {
                var a = randomU8(m * k, &g)
                a[0] = 255; a[1] = 0; a[2] = 128
                for (name, stage) in stageList {
                    let ref = referenceGEMM(a: a, m: m, k: k, n: n, activation: activation, wKN: wKN, bias: bias, stage: stage)
                    let got = try runGEMM(a: a, m: m, k: k, n: n, activation: activation, packed: packed, bias: bias, stage: stage, isa: isa)
                    #expect(firstDifference(got, ref) == nil, "isa \(isa) k \(k) \(activation) \(name)")
                }
            }
        }
    }
}
