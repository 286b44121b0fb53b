import CInt8Kernels
import Foundation
import Testing
@testable import Int8Kernels

@Suite("AdaLog tables, codes, attention and fc2")
struct AdaLogTests {
    @Test("8-bit codes: the byte 255 is both code 255 and the zero state, both worth 0")
    func eightBit() throws {
        let t = try AdaLogTable(q: 10, bits: 8)
        #expect(t.table.count == 257 && t.table[255] == 0 && t.table[256] == 0)
        let tau = t.thresholds(scale: 1)
        #expect(tau.count == 256 && tau[255] == -.infinity)
        let u: [Float] = [1, 0.5, 1e-30, 0, -1e-7, .nan]
        for isa in KernelISA.supported {
            var codes = [UInt8](repeating: 0, count: u.count)
            try Elementwise.adalogEncode(u, count: u.count, thresholds: tau, codes: &codes, isa: isa)
            #expect(codes[0] == 0 && codes[1] == 4, "\(isa)")   // −log2(0.5)·r/q = 3.7 → code 4
            #expect(codes[2...].allSatisfy { $0 == 255 }, "\(isa): \(codes)")
        }
        var one = [UInt8](repeating: 0, count: 1)
        #expect(throws: Int8KernelError.self) { try Elementwise.adalogEncode([1], count: 1, thresholds: [Float](repeating: 1, count: 256), codes: &one) }
    }

    @Test("tables match the worked examples of adalog.md §1.3")
    func tables() throws {
        let t3 = try AdaLogTable(q: 18, bits: 3)
        #expect(t3.denominator == 14)
        #expect(t3.shifts == [0, 0, 0, 1, 1, 2, 2, 3])
        #expect(t3.mantissas == [14, 10, 7, 10, 7, 10, 7, 11])
        let t4 = try AdaLogTable(q: 18, bits: 4)
        #expect(t4.mantissas == [30, 21, 15, 22, 16, 22, 16, 23, 16, 23, 16, 24, 17, 24, 17, 24])
        #expect(t4.shifts == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7])
        let t55 = try AdaLogTable(q: 55, bits: 4)
        #expect(t55.shifts == [0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22])
        #expect(t55.mantissas == t4.mantissas)
        let log2q = try AdaLogTable(q: 37, bits: 3)
        #expect(log2q.mantissas.allSatisfy { $0 == 14 })
        #expect(t4.table.count == 17 && t4.table[16] == 0)
        #expect(t4.table[0] == Int16(30 << t4.fractionBits))
        #expect(Int(t4.table.max()!) <= 32767)
        #expect(throws: Int8KernelError.self) { try AdaLogTable(q: 18, bits: 4, fractionBits: 12) }
        #expect(throws: Int8KernelError.self) { try AdaLogTable(q: 18, bits: 9) }
        // value = s 2^-A M / D
        #expect(abs(t4.value(code: 3, scale: 2) - 2 * 0.5 * 22.0 / 30.0) < 1e-12)
        #expect(t4.value(code: 16, scale: 1) == 0)
    }

    @Test("threshold codes equal round(-log_beta u) away from ties; all ISAs agree", arguments: testISAs)
    func encode(isa: KernelISA) throws {
        var g = SplitMix(21)
        for (q, bits, s) in [(18, 4, 1.0), (37, 3, 1.0), (55, 6, 0.7), (10, 7, 2.5), (137, 2, 1.0)] {
            let t = try AdaLogTable(q: q, bits: bits)
            let tau = t.thresholds(scale: s)
            var u = (0..<777).map { _ in Float(exp2(-Double.random(in: 0...40, using: &g))) * Float(s) * 1.3 }
            u += [0, -1, Float.nan, Float.infinity, 1e-30, Float(s) * 2] + tau
            var codes = [UInt8](repeating: 0, count: u.count), ref = codes
            try Elementwise.adalogEncode(u, count: u.count, thresholds: tau, codes: &codes, isa: isa)
            i8k_adalog_encode(KernelISA.portable.rawValue, u, u.count, tau, Int32(tau.count), &ref)
            #expect(firstDifference(codes, ref) == nil, "isa \(isa) q \(q) bits \(bits)")
            for (i, x) in u.enumerated() where x.isFinite && x > 0 && i < 777 {
                let kStar = (-log2(Double(x) / s) * 37 / Double(q))
                if abs(kStar - kStar.rounded(.down) - 0.5) < 1e-3 { continue }  // near a tie: float thresholds may differ
                let k = kStar < 0 ? 0 : Int(kStar.rounded(.toNearestOrEven))
                let expect = k >= t.zeroCode ? t.zeroCode : k
                #expect(Int(ref[i]) == expect, "u \(x) q \(q) bits \(bits)")
            }
            #expect(Int(ref[777 + 2]) == t.zeroCode)  // NaN -> zero code
            #expect(Int(ref[777 + 4]) == t.zeroCode || t.zeroCode >= 64)  // 1e-30 underflows at low bit widths
        }
    }

    /// Independent reference for one head: int logits, float softmax (portable), linear-count codes, table sum.
    func referenceHead(q: [Int8], k: [Int8], v: [Int8], t: Int, d: Int, scale: Float, table: AdaLogTable, stage: OutputStage) -> [UInt8] {
        var acc = [Int32](repeating: 0, count: t * d)
        let tau = table.thresholds(scale: 1)
        for i in 0..<t {
            var logits = [Float](repeating: 0, count: t)
            for j in 0..<t {
                var s: Int32 = 0
                for c in 0..<d { s += Int32(q[i * d + c]) * Int32(k[j * d + c]) }
                logits[j] = Float(s) * scale
            }
            var p = [Float](repeating: 0, count: t)
            i8k_softmax_row(KernelISA.portable.rawValue, logits, t, &p)
            for j in 0..<t {
                let code = p[j].isNaN ? tau.count : tau.filter { p[j] < $0 }.count
                let l = Int32(table.table[code])
                for c in 0..<d { acc[i * d + c] += l * Int32(v[j * d + c]) }
            }
        }
        return applyStage(acc, rows: t, n: d, bias: nil, stage: stage)
    }

    @Test("attention head: Q·Kᵀ → softmax → AdaLog codes → table·V, bit-exact on every ISA", arguments: testISAs)
    func attention(isa: KernelISA) throws {
        var g = SplitMix(31)
        for (t, d, bits) in [(1, 8, 4), (17, 16, 4), (50, 64, 3), (37, 24, 6)] {
            let table = try AdaLogTable(q: 18 + bits, bits: bits)
            let q = randomS8(t * d, &g, -15...15), k = randomS8(t * d, &g, -15...15), v = randomS8(t * d, &g, -8...7)
            let scale: Float = 0.05
            let stagesToTry: [OutputStage] = [
                .int32,
                .dequantize(scales: [Float(1.0 / (Double(table.denominator) * exp2(Double(table.fractionBits))))], floatBias: nil),
                .requantize(multipliers: [try QuantizedMultiplier(0.001)], rounding: .doubleRounding, zeroPoint: 0, qmin: -128, qmax: 127, unsigned: false),
            ]
            for stage in stagesToTry {
                let ref = referenceHead(q: q, k: k, v: v, t: t, d: d, scale: scale, table: table, stage: stage)
                var got = outputBytes(stage, count: t * d)
                try got.withUnsafeMutableBytes { ob in
                    try AttentionInt8.head(q: q, ldq: d, k: k, ldk: d, v: v, ldv: d, tokens: t, headDim: d, logitScale: scale,
                                           table: table, output: stage, dst: ob.baseAddress!, ldd: d, isa: isa)
                }
                #expect(firstDifference(got, ref) == nil, "isa \(isa) t \(t) d \(d) bits \(bits)")
            }
        }
    }

    @Test("multi-head over a fused qkv tensor equals per-head calls")
    func multiHead() throws {
        var g = SplitMix(32)
        let t = 13, h = 3, d = 8, c = h * d
        let qkv = randomS8(t * 3 * c, &g, -20...20)
        let table = try AdaLogTable(q: 20, bits: 4)
        let scales: [Float] = [0.02, 0.03, 0.05]
        var all = [Int32](repeating: 0, count: t * c)
        try all.withUnsafeMutableBytes { ob in
            try AttentionInt8.multiHead(qkv: qkv, tokens: t, heads: h, headDim: d, logitScales: scales, table: table,
                                        outputs: Array(repeating: .int32, count: h), dst: ob.baseAddress!, threads: 2)
        }
        for hi in 0..<h {
            var one = [Int32](repeating: 0, count: t * d)
            try qkv.withUnsafeBufferPointer { qb in
                try one.withUnsafeMutableBytes { ob in
                    try AttentionInt8.head(q: qb.baseAddress! + hi * d, ldq: 3 * c, k: qb.baseAddress! + c + hi * d, ldk: 3 * c,
                                           v: qb.baseAddress! + 2 * c + hi * d, ldv: 3 * c, tokens: t, headDim: d, logitScale: scales[hi],
                                           table: table, output: .int32, dst: ob.baseAddress!, ldd: d)
                }
            }
            for i in 0..<t { #expect(Array(all[(i * c + hi * d)..<(i * c + hi * d + d)]) == Array(one[(i * d)..<(i * d + d)])) }
        }
        #expect(throws: Int8KernelError.self) {
            try AttentionInt8.multiHead(qkv: qkv, tokens: t, heads: h, headDim: d, logitScales: [1], table: table,
                                        outputs: [.int32], dst: UnsafeMutableRawPointer(mutating: qkv))
        }
    }

    @Test("fc2 with AdaLog-coded input: Σ L[code]·W bit-exact", arguments: testISAs)
    func fc2(isa: KernelISA) throws {
        var g = SplitMix(41)
        for (m, k, n, bits) in [(3, 17, 5, 4), (17, 300, 63, 4), (20, 97, 50, 6)] {
            let table = try AdaLogTable(q: 25, bits: bits)
            let w = randomS8(n * k, &g, -7...7)
            let layer = try AdaLogLinear(weights: w, inFeatures: k, outFeatures: n, table: table)
            let codes = randomU8(m * k, &g, 0...UInt8(table.zeroCode))
            let bias = (0..<n).map { _ in Int32.random(in: -100000...100000, using: &g) }
            var acc = [Int32](repeating: 0, count: m * n)
            for i in 0..<m { for o in 0..<n {
                var s: Int32 = 0
                for kk in 0..<k { s += Int32(table.table[Int(codes[i * k + kk])]) * Int32(w[o * k + kk]) }
                acc[i * n + o] = s
            } }
            for (name, stage) in stages(n: n, &g) {
                let ref = applyStage(acc, rows: m, n: n, bias: bias, stage: stage)
                var got = outputBytes(stage, count: m * n)
                try got.withUnsafeMutableBytes { ob in
                    try layer.run(codes: codes, ldc: k, m: m, bias: bias, output: stage, dst: ob.baseAddress!, ldd: n, isa: isa, threads: 2)
                }
                #expect(firstDifference(got, ref) == nil, "isa \(isa) fc2 \(m)x\(k)x\(n) \(name)")
            }
        }
    }
}
