import Testing
@testable import Quant

@Suite struct UniformQuantizerTests {
    @Test func asymmetricCodesTiesToEven() throws {
        let q = try UniformQuantizer(bits: 4, scales: [0.5], zeroPoints: [8])
        let x: [Float] = [0.25, 0.75, -0.25, 1.25, 100, -100]
        // x/s = 0.5, 1.5, −0.5, 2.5 → 0, 2, −0, 2 (half to even), then + 8, clamped to 0…15.
        #expect(try q.quantize(x, shape: [6]) == [8, 10, 8, 10, 15, 0])
        #expect(try q.fakeQuantize(x, shape: [6]) == [0, 1, 0, 1, 3.5, -4])
        #expect(try q.dequantize([8, 10, 15, 0], shape: [4]) == [0, 1, 3.5, -4])
    }

    @Test func awayFromZeroDiffersOnHalves() throws {
        let q = try UniformQuantizer(bits: 4, scales: [0.5], zeroPoints: [8], rounding: .toNearestOrAwayFromZero)
        #expect(try q.quantize([0.25, 0.75, -0.25, 1.25], shape: [4]) == [9, 10, 7, 11])
        #expect(try q.fakeQuantize([0.25, -0.25], shape: [2]) == [0.5, -0.5])
    }

    @Test func symmetricRange() throws {
        let q = try UniformQuantizer(bits: 4, symmetric: true, scales: [1])
        #expect(try q.quantize([7.6, -9, 2.5, -2.5], shape: [4]) == [7, -8, 2, -2])
        #expect(throws: QuantError.self) { try UniformQuantizer(bits: 4, symmetric: true, scales: [1], zeroPoints: [3]) }
    }

    @Test func perChannelAndPerGroup() throws {
        let q = try UniformQuantizer(bits: 3, granularity: .perChannel(axis: 0), scales: [1, 2], zeroPoints: [0, 1])
        let x: [Float] = [1.4, 2.5, 9, 2, 3, -5]
        #expect(try q.quantize(x, shape: [2, 3]) == [1, 2, 7, 2, 3, 0])
        #expect(try q.fakeQuantize(x, shape: [2, 3]) == [1, 2, 7, 2, 4, -2])
        let g = try UniformQuantizer(bits: 3, granularity: .perGroup(axis: 1, groupSize: 2), scales: [1, 10])
        #expect(try g.quantize([1, 2, 10, 20], shape: [1, 4]) == [1, 2, 1, 2])
        // Heads on axis 1 of [B, H, T, d].
        let h = try UniformQuantizer(bits: 8, granularity: .perChannel(axis: 1), scales: [1, 0.5], zeroPoints: [0, 0])
        #expect(try h.quantize([1, 1, 1, 1, 1, 1, 1, 1], shape: [2, 2, 1, 2]) == [1, 1, 2, 2, 1, 1, 2, 2])
    }

    @Test func badParametersAreErrors() throws {
        #expect(throws: QuantError.self) { try UniformQuantizer(bits: 9, scales: [1]) }
        #expect(throws: QuantError.self) { try UniformQuantizer(bits: 1, scales: [1]) }
        #expect(throws: QuantError.self) { try UniformQuantizer(bits: 4, scales: [0]) }
        let q = try UniformQuantizer(bits: 4, granularity: .perChannel(axis: 0), scales: [1, 1], zeroPoints: [0, 0])
        #expect(throws: QuantError.self) { try q.quantize([1, 2, 3], shape: [3, 1]) }
        #expect(throws: QuantError.self) { try q.quantize([1, 2, 3], shape: [2, 2]) }
    }

    @Test func rangeInitialisations() throws {
        let x: [Float] = [-1, 0, 0.5, 3]
        let mm = try UniformQuantizer.initialized(from: x, shape: [4], bits: 2)
        #expect(mm.scales == [4.0 / 3.0] && mm.zeroPoints == [1])   // −min/s = 0.75 → 1
        let pc = try UniformQuantizer.initialized(from: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100], shape: [11], bits: 8,
                                                  method: .percentile(0.9))
        // 0.9 quantile: rank 9 → 9; 0.1 quantile: rank 1 → 1; range [0, 9] after including 0.
        #expect(abs(pc.scales[0] - 9.0 / 255) < 1e-6)
        let data: [Float] = (0..<200).map { Float($0 % 10) + ($0 == 7 ? 60 : 0) }
        let full = try UniformQuantizer.initialized(from: data, shape: [200], bits: 4)
        let mse = try UniformQuantizer.initialized(from: data, shape: [200], bits: 4, method: .mse(steps: 20))
        func sse(_ q: UniformQuantizer) throws -> Float {
            zip(data, try q.fakeQuantize(data, shape: [200])).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        }
        #expect(mse.scales[0] < full.scales[0])
        #expect(try sse(mse) < sse(full))
    }
}

@Suite struct LogQuantizerTests {
    @Test func adaLogTablesMatchTheNote() throws {
        let a318 = try AdaLogQuantizer(bits: 3, q: 18)
        #expect(a318.mantissaDenominator == 14)
        #expect(a318.shiftTable == [0, 0, 0, 1, 1, 2, 2, 3])
        #expect(a318.mantissaTable == [14, 10, 7, 10, 7, 10, 7, 11])
        let a337 = try AdaLogQuantizer(bits: 3, q: 37)
        #expect(a337.shiftTable == Array(0...7))
        #expect(a337.mantissaTable == [Int](repeating: 14, count: 8))
        let a418 = try AdaLogQuantizer(bits: 4, q: 18)
        #expect(a418.mantissaDenominator == 30)
        #expect(a418.shiftTable == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7])
        let m: [Int] = [30, 21, 15, 22, 16, 22, 16, 23, 16, 23, 16, 24, 17, 24, 17, 24]
        #expect(a418.mantissaTable == m)
        let a455 = try AdaLogQuantizer(bits: 4, q: 55)
        #expect(a455.shiftTable == [0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22])
        #expect(a455.mantissaTable == m)
        #expect(try AdaLogQuantizer(bits: 6, q: 18).mantissaDenominator == 126)
        // Level of code 4 at q = 18, 4 bits: 2^−1 · 16/30.
        #expect(a418.unitLevels[4] == Float(0.5) * Float(16.0 / 30.0))
        #expect(a418.unitLevels[16] == 0)
    }

    @Test func adaLogCodesAndZeroState() throws {
        let a = try AdaLogQuantizer(bits: 3, q: 37)
        // −log2: 0, 1, 1.737, 6.644, (clamped 1e−15) 49.8, (clamped to 1) 0, 7.966.
        #expect(a.quantize([1, 0.5, 0.3, 0.01, 0, 2, 0.004]) == [0, 1, 2, 7, 8, 0, 8])
        #expect(a.zeroCode == 8)
        #expect(a.fakeQuantize([0.3, 0.0]) == [0.25, 0])
        let b = try AdaLogQuantizer(bits: 4, q: 18)
        // 0.3 → 1.73697·37/18 = 3.570 → 4; 0.006 → 15.17 → 15; 0.005 → 15.71 → 16 → zero; 0.001 → 20.5 → zero.
        #expect(b.quantize([0.3, 0.006, 0.005, 0.001]) == [4, 15, 16, 16])
        #expect(b.fakeQuantize([0.3, 0.006, 0.005]) == [Float(0.5) * Float(16.0 / 30.0), exp2f(-7) * Float(24.0 / 30.0), 0])
        let ex = try AdaLogQuantizer(bits: 4, q: 18, dequantization: .exact)
        #expect(abs(ex.fakeQuantize([0.3])[0] - 0.25963) < 1e-4)   // 2^(−72/37)
        // The scale divides first: u/s = 0.3.
        let s = try AdaLogQuantizer(bits: 4, q: 18, scale: 2)
        #expect(s.quantize([0.6]) == [4])
        #expect(throws: QuantError.self) { try AdaLogQuantizer(bits: 4, q: 18, scale: -1) }
    }

    @Test func shiftAdaLog() throws {
        let c = geluShift
        let a = try AdaLogQuantizer(bits: 3, q: 37, scale: 1, shift: c)
        let x: [Float] = [0.5 - c, -c, 1]
        #expect(a.quantize(x) == [1, 8, 0])
        #expect(a.fakeQuantize(x) == [0.5 - c, -c, 1 - c])
        var folded = a; folded.biasReparameterized = true
        #expect(folded.fakeQuantize(x) == [0.5, 0, 1])
    }

    @Test func log2AndLogSqrt2() throws {
        let l2 = try Log2Quantizer(bits: 3, scale: 2)
        #expect(l2.quantize([1, 0.02, 0.007]) == [1, 7, 8])
        #expect(l2.fakeQuantize([1, 0.02, 0.007]) == [1, 0.015625, 0])
        let ls = try LogSqrt2Quantizer(bits: 3)
        // −2·log2: 2, 1.0, 6.64, 7.29, 8.64.
        #expect(ls.quantize([0.5, 0.70710677, 0.1, 0.08, 0.05]) == [2, 1, 7, 7, 8])
        let v = ls.fakeQuantize([0.5, 0.70710677, 0.1, 0.05])
        #expect(v[0] == 0.5 && abs(v[1] - 0.70710677) < 1e-7 && abs(v[2] - 0.0883883) < 1e-6 && v[3] == 0)
    }

    @Test func biasFoldIsExactInFloat() throws {
        var rng = SplitMix(seed: 3)
        let o = 6, k = 40
        let w = (0..<(o * k)).map { _ in rng.normal() * 0.2 }
        let wq = try UniformQuantizer.initialized(from: w, shape: [o, k], bits: 4, granularity: .perChannel(axis: 0))
        let wh = try wq.fakeQuantize(w, shape: [o, k])
        let bias = (0..<o).map { _ in rng.normal() }
        let a = try AdaLogQuantizer(bits: 4, q: 30, scale: 3, shift: geluShift)
        let x = (0..<k).map { _ in rng.normal() }
        let uHat = a.dequantizeUnshifted(a.quantize(x))
        let folded = try AdaLogQuantizer.foldShift(geluShift, intoBias: bias, quantizedWeight: wh, outFeatures: o, inFeatures: k)
        for r in 0..<o {
            var y1 = Double(bias[r]), y2 = Double(folded[r])
            for c in 0..<k {
                y1 += Double(wh[r * k + c]) * Double(uHat[c] - geluShift)
                y2 += Double(wh[r * k + c]) * Double(uHat[c])
            }
            #expect(abs(y1 - y2) <= 1e-6 * max(1, abs(y1)))
        }
        #expect(throws: QuantError.self) {
            try AdaLogQuantizer.foldShift(geluShift, intoBias: [1], quantizedWeight: wh, outFeatures: o, inFeatures: k)
        }
    }

    @Test(arguments: [4, 6]) func searchPathAgreesWithQuantizer(bits: Int) throws {
        var rng = SplitMix(seed: 11)
        let x = (0..<4000).map { i in i % 97 == 0 ? -0.2 : max(rng.normal(), -0.16) }
        let a = try AdaLogQuantizer(bits: bits, q: 29, scale: 2.5, shift: geluShift)
        let logU = x.map { log2f(max($0 + geluShift, 0)) }
        let fast = LayerSearch.fastAdaLog(a, logU: logU, x: x)
        let ref = a.fakeQuantize(x)
        let mismatches = zip(fast, ref).filter { $0 != $1 }.count
        #expect(mismatches <= 4)
        #expect(fast[0] == -geluShift)   // u < 0 → the zero state
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Deterministic test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return sqrtf(-2 * logf(u1)) * cosf(2 * Float.pi * u2)
    }
}
