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
        #expect(try AdaLogTable(q: 18, bits: 4, fractionBits: 12).tableHigh != nil)  // beyond int16: split int32 table
        #expect(throws: Int8KernelError.self) { try AdaLogTable(q: 18, bits: 4, fractionBits: 31) }
        #expect(throws: Int8KernelError.self) { try AdaLogTable(q: 18, bits: 9) }
        // value = s 2^-A M / D
        #expect(abs(t4.value(code: 3, scale: 2) - 2 * 0.5 * 22.0 / 30.0) < 1e-12)
        #expect(t4.value(code: 16, scale: 1) == 0)
    }

    @Test("threshold codes equal round(-log_beta u) away from ties; all ISAs agree", arguments: testISAs)
    func encode(isa: KernelISA) throws {
        var g = SplitMix(21)
        for (q, bits, s) in [(18, 4, 1.0), (37, 3, 1.0), (55, 6, 0.7), (10, 7, 2.5), (137, 2, 1.0), (10, 8, 1.0), (137, 8, 3.0), (20, 6, 11.0)] {
            let t = try AdaLogTable(q: q, bits: bits)
            let tau = t.thresholds(scale: s)
            var u = (0..<777).map { _ in Float(exp2(-Double.random(in: 0...40, using: &g))) * Float(s) * 1.3 }
            u += [0, -1, Float.nan, Float.infinity, 1e-30, Float(s) * 2] + tau
            // every threshold and its float neighbours: where an estimate-then-check encoder would slip
            for x in tau where x.isFinite { u += [x.nextDown, x.nextUp, x.nextDown.nextDown, x.nextUp.nextUp] }
            u += [Float.leastNonzeroMagnitude, Float.leastNormalMagnitude, -0.0]
            var codes = [UInt8](repeating: 0, count: u.count), ref = codes
            try Elementwise.adalogEncode(u, count: u.count, thresholds: tau, codes: &codes, isa: isa)
            i8k_adalog_encode(KernelISA.portable.rawValue, u, u.count, tau, Int32(tau.count), &ref)
            #expect(firstDifference(codes, ref) == nil, "isa \(isa) q \(q) bits \(bits)")
            for (i, x) in u.enumerated() where x.isFinite && x > 0 && i < 777 {
                let kStar = (-log2(Double(x) / s) * 37 / Double(q))
                if abs(kStar - kStar.rounded(.down) - 0.5) < 1e-3 { continue }  // near a tie: float thresholds may differ
                let k = kStar < 0 ? 0 : Int(kStar.rounded(.toNearestOrEven))
                let expect = min(k >= t.zeroCode ? t.zeroCode : k, 255)  // 8 bits: byte 255 is also the zero state
                #expect(Int(ref[i]) == expect, "u \(x) q \(q) bits \(bits)")
            }
            #expect(Int(ref[777 + 2]) == min(t.zeroCode, 255))  // NaN -> zero code
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
        for (m, k, n, bits, wide) in [(3, 17, 5, 4, false), (17, 300, 63, 4, false), (20, 97, 50, 6, false), (9, 197, 40, 8, true)] {
            let table = try AdaLogTable(q: 25, bits: bits, fractionBits: bits == 8 ? 5 : nil)
            // wide: 8-bit weights minus a zero point far from 128 (int16 W − z up to ±255)
            let w: [Int16] = wide ? (0..<(n * k)).map { i in i % 11 == 0 ? (i % 2 == 0 ? 255 : -255) : Int16.random(in: -255...255, using: &g) }
                                  : randomS8(n * k, &g, -7...7).map { Int16($0) }
            let layer = wide ? try AdaLogLinear(weights: w, inFeatures: k, outFeatures: n, table: table)
                             : try AdaLogLinear(weights: w.map { Int8($0) }, inFeatures: k, outFeatures: n, table: table)
            let codes = randomU8(m * k, &g, 0...UInt8(min(table.zeroCode, 255)))
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

/// The prepared int16 attention kernel: 8-bit operands with any zero point (stored values up to ±255), uniform
/// probabilities, threads, codes and the workspace check.
@Suite struct AttentionKernelTests {
    /// Independent reference for one head of a fused `[T][3·H·d]` int16 tensor: exact int logits, portable float
    /// softmax, codes by counting thresholds (AdaLog) or rounding (uniform), exact Σ L·V.
    func reference(_ qkv: [Int16], t: Int, heads: Int, d: Int, h: Int, scale: Float, probs: AttentionProbabilities,
                   stage: OutputStage) -> (out: [UInt8], codes: [UInt8]) {
        let c = heads * d
        var acc = [Int32](repeating: 0, count: t * d), codes = [UInt8](repeating: 0, count: t * t)
        for i in 0..<t {
            var logits = [Float](repeating: 0, count: t)
            for j in 0..<t {
                var s: Int32 = 0
                for x in 0..<d { s += Int32(qkv[i * 3 * c + h * d + x]) * Int32(qkv[j * 3 * c + c + h * d + x]) }
                logits[j] = Float(s) * scale
            }
            var p = [Float](repeating: 0, count: t)
            i8k_softmax_row(KernelISA.portable.rawValue, logits, t, &p)
            for j in 0..<t {
                let code: Int, l: Int32
                switch probs {
                case let .adaLog(table):
                    let tau = table.thresholds(scale: 1)
                    code = min(255, tau.filter { p[j] < $0 }.count)
                    l = table.values[min(code, table.zeroCode)]
                case let .uniform(s, bits):
                    code = Int(min(Float((1 << bits) - 1), max(0, (p[j] / s).rounded(.toNearestOrEven))))
                    l = Int32(code)
                }
                codes[i * t + j] = UInt8(code)
                for x in 0..<d { acc[i * d + x] += l * Int32(qkv[j * 3 * c + 2 * c + h * d + x]) }
            }
        }
        return (applyStage(acc, rows: t, n: d, bias: nil, stage: stage), codes)
    }

    @Test("int16 operands at ±255, AdaLog (3/4/8 bits) and uniform probabilities, bit-exact on every ISA and thread count", arguments: testISAs)
    func wideOperands(isa: KernelISA) throws {
        var g = SplitMix(77)
        let cases: [(Int, Int, Int, AttentionProbabilities)] = [
            (1, 1, 8, .uniform(scale: 1.0 / 255, bits: 8)),
            (17, 2, 16, .adaLog(try AdaLogTable(q: 22, bits: 4))),
            (63, 3, 24, .adaLog(try AdaLogTable(q: 37, bits: 8))),
            (197, 3, 64, .adaLog(try AdaLogTable(q: 13, bits: 8, fractionBits: AdaLogTable.attentionFractionBits(q: 13, bits: 8)))),
            (40, 2, 16, .adaLog(try AdaLogTable(q: 60, bits: 4, fractionBits: AdaLogTable.attentionFractionBits(q: 60, bits: 4)))),
            (50, 1, 64, .adaLog(try AdaLogTable(q: 20, bits: 3))),
            (197, 3, 64, .uniform(scale: 1.0 / 15, bits: 4)),
            // head size 128 (two 64-channel blocks in the four-row AVX-512 path), odd token count
            (29, 2, 128, .adaLog(try AdaLogTable(q: 20, bits: 8, fractionBits: AdaLogTable.attentionFractionBits(q: 20, bits: 8)))),
        ]
        for (t, heads, d, probs) in cases {
            let c = heads * d
            // 8-bit codes minus a zero point far from 128: stored values reach ±255; a few rows at the extremes
            var qkv = (0..<(t * 3 * c)).map { _ in Int16.random(in: -40...40, using: &g) }
            for j in stride(from: 0, to: t, by: 5) { for x in 0..<(3 * c) { qkv[j * 3 * c + x] = x % 2 == 0 ? 255 : -255 } }
            let scales = (0..<heads).map { _ in Float.random(in: 0.0001...0.002, using: &g) }
            let stage = OutputStage.requantize(multipliers: [try QuantizedMultiplier(0.0007)], rounding: .singleRounding, zeroPoint: 3, qmin: -128, qmax: 127, unsigned: false)
            let kern = try AttentionKernel(tokens: t, heads: heads, headDim: d, logitScales: scales, probabilities: probs,
                                           outputs: Array(repeating: stage, count: heads))
            for threads in [1, 2] {
                let ws = kern.workspaceBytes(threads: threads)
                let work = UnsafeMutableRawPointer.allocate(byteCount: ws, alignment: 64)
                defer { work.deallocate() }
                var out = [Int8](repeating: 0, count: t * c), codes = [UInt8](repeating: 0, count: heads * t * t)
                try out.withUnsafeMutableBytes { ob in
                    try codes.withUnsafeMutableBufferPointer { cb in
                        try kern.run(qkv: qkv, dst: ob.baseAddress!, workspace: work, workspaceBytes: ws, isa: isa, threads: threads, codesOut: cb.baseAddress!)
                    }
                }
                for h in 0..<heads {
                    let ref = reference(qkv, t: t, heads: heads, d: d, h: h, scale: scales[h], probs: probs, stage: stage)
                    var got: [UInt8] = []
                    for i in 0..<t { for x in 0..<d { got.append(UInt8(bitPattern: out[i * c + h * d + x])) } }
                    #expect(got == ref.out, "isa \(isa) t \(t) d \(d) head \(h) threads \(threads)")
                    #expect(Array(codes[(h * t * t)..<((h + 1) * t * t)]) == ref.codes, "codes: isa \(isa) t \(t) head \(h)")
                }
                try out.withUnsafeMutableBytes { ob in
                    #expect(throws: Int8KernelError.self) {
                        try kern.run(qkv: qkv, dst: ob.baseAddress!, workspace: work, workspaceBytes: ws - 65, isa: isa, threads: threads)
                    }
                }
            }
        }
    }

    @Test("int32 tables: split into int16 halves, the attention F keeps the worst-case P·V inside int32")
    func wideTables() throws {
        for (q, bits) in [(13, 8), (37, 8), (60, 4), (137, 3), (20, 6)] {
            let f = AdaLogTable.attentionFractionBits(q: q, bits: bits)
            let t = try AdaLogTable(q: q, bits: bits, fractionBits: f)
            #expect(f > (try AdaLogTable(q: q, bits: bits)).fractionBits, "q \(q) bits \(bits): the int32 table must be finer")
            #expect(t.tableHigh != nil)
            for k in 0..<t.zeroCode {
                let exact = (Double(t.mantissas[k]) * exp2(Double(f - t.shifts[k]))).rounded(.toNearestOrEven)
                #expect(Double(t.values[k]) == exact)
                #expect(t.table[k] >= 0)
            }
            #expect(t.values[t.zeroCode] == 0)
            // every p rounds up by at most 2^(q/2r)(1 + 1/D): Σ L·255 stays below 2^31
            let worst = Double(t.denominator) * exp2(Double(f)) * 255 * exp2(Double(q) / 74) * (1 + 1 / Double(t.denominator))
            #expect(worst < 2147483648)
            #expect(throws: Int8KernelError.self) { try Elementwise.adalogDecode([0], count: 1, table: t, dst: UnsafeMutablePointer<Int16>.allocate(capacity: 1)) }
        }
    }

    @Test("Q/K/V into int16 per group: round half to even, clamp to each group's bounds, NaN → qmin; all ISAs agree", arguments: testISAs)
    func quantizeGroups(isa: KernelISA) throws {
        var g = SplitMix(5)
        let rows = 7, d = 19, scales: [Float] = [0.05, 0.5, 0.01], lo: [Int32] = [-200, -8, 0], hi: [Int32] = [55, 7, 255]
        var x = (0..<(rows * 3 * d)).map { _ in Float.random(in: -12...12, using: &g) }
        x[0] = .nan; x[1] = 0.025; x[2] = 0.075; x[3] = -0.025; x[d] = .infinity; x[2 * d] = -.infinity
        for threads in [1, 2] {
            var got = [Int16](repeating: 0, count: x.count)
            try Elementwise.quantizeInt16Groups(x, rows: rows, groupSize: d, scales: scales, qmin: lo, qmax: hi, dst: &got, isa: isa, threads: threads)
            for i in 0..<x.count {
                let gi = (i / d) % 3
                let r = (x[i] / scales[gi]).rounded(.toNearestOrEven)
                let want = x[i].isNaN ? lo[gi] : Int32(max(Float(lo[gi]), min(Float(hi[gi]), r)))
                #expect(Int32(got[i]) == want, "isa \(isa) i \(i) x \(x[i])")
            }
        }
        #expect(throws: Int8KernelError.self) {
            var out = [Int16](repeating: 0, count: 3 * d)
            try Elementwise.quantizeInt16Groups(x, rows: 1, groupSize: d, scales: scales, qmin: lo, qmax: [55, 7, 40000], dst: &out, isa: isa)
        }
    }

    @Test("K and V quantized straight into the packed form: the bytes of quantizeInt16Groups then i8k_attention_pack_kv, padding included, for any row split, every ISA", arguments: testISAs)
    func quantizeIntoPacked(isa: KernelISA) throws {
        var g = SplitMix(41)
        for (t, heads, d) in [(1, 1, 8), (2, 1, 16), (7, 2, 19), (17, 3, 24), (40, 2, 64), (33, 1, 300), (197, 3, 64)] {
            let c = heads * d
            var x = (0..<(t * 3 * c)).map { _ in Float.random(in: -30...30, using: &g) }
            x[0] = .nan; x[min(x.count - 1, c + 1)] = .infinity
            let scales = (0..<(3 * heads)).map { _ in Float.random(in: 0.05...0.3, using: &g) }
            let lo = (0..<(3 * heads)).map { _ in Int32.random(in: -255...(-1), using: &g) }
            let hi = lo.map { $0 + 255 }
            var q16 = [Int16](repeating: 0, count: t * 3 * c)
            try Elementwise.quantizeInt16Groups(x, rows: t, groupSize: d, scales: scales, qmin: lo, qmax: hi, dst: &q16, isa: .portable)
            let kvb = i8k_attention_kv_bytes(t, d)
            var want = [UInt8](repeating: 0xAB, count: heads * kvb)
            // the reference: every head's K and V columns of the int16 tensor packed
            want.withUnsafeMutableBytes { wb in
                q16.withUnsafeBufferPointer { qb in
                    for h in 0..<heads {
                        i8k_attention_pack_kv(qb.baseAddress! + c + h * d, 3 * c, qb.baseAddress! + 2 * c + h * d, 3 * c, t, d, wb.baseAddress! + h * kvb)
                    }
                }
            }
            for cuts in [[0, t], [0, t / 2, t], [0, min(t, 1), min(t, 4), t], [0, t / 3 | 1, t]] {
                var got = [UInt8](repeating: 0xCD, count: heads * kvb)
                var q = [Int16](repeating: 0, count: t * c)
                for i in 0..<(cuts.count - 1) where cuts[i] < cuts[i + 1] {
                    got.withUnsafeMutableBytes { gb in
                        i8k_attention_quantize_rows(isa.rawValue, x, 3 * c, t, heads, d, scales, lo, hi, cuts[i], cuts[i + 1], &q, c, gb.baseAddress!)
                    }
                }
                #expect(got == want, "isa \(isa) t \(t) heads \(heads) d \(d) cuts \(cuts)")
                var qWant: [Int16] = []
                for j in 0..<t { qWant += q16[(j * 3 * c)..<(j * 3 * c + c)] }
                #expect(q == qWant, "Q: isa \(isa) t \(t) d \(d)")
            }
        }
    }

    @Test("attention from the float q, k, v tensor equals quantizeInt16Groups + run(qkv:), every ISA, 1–3 threads, with class-token rows", arguments: testISAs)
    func fromFloat(isa: KernelISA) throws {
        var g = SplitMix(43)
        let table = try AdaLogTable(q: 13, bits: 8, fractionBits: AdaLogTable.attentionFractionBits(q: 13, bits: 8))
        for (t, heads, d, prefix) in [(1, 1, 8, 0), (9, 2, 16, 1), (29, 2, 128, 0), (63, 3, 24, 1), (197, 3, 64, 0), (197, 3, 64, 1)] {
            let c = heads * d
            let x = (0..<(t * 3 * c)).map { _ in Float.random(in: -4...4, using: &g) }
            let scales = (0..<(3 * heads)).map { _ in Float.random(in: 0.02...0.05, using: &g) }
            let lo = (0..<(3 * heads)).map { _ in Int32.random(in: -200...(-50), using: &g) }
            let hi = lo.map { $0 + 255 }
            let ls = (0..<heads).map { _ in Float.random(in: 0.0005...0.003, using: &g) }
            let stage = OutputStage.requantize(multipliers: [try QuantizedMultiplier(0.0007)], rounding: .singleRounding, zeroPoint: 3, qmin: -128, qmax: 127, unsigned: false)
            let pstage = OutputStage.requantize(multipliers: [try QuantizedMultiplier(0.0004)], rounding: .singleRounding, zeroPoint: -2, qmin: -128, qmax: 127, unsigned: false)
            let kern = try AttentionKernel(tokens: t, heads: heads, headDim: d, logitScales: ls, probabilities: .adaLog(table),
                                           outputs: Array(repeating: stage, count: heads), prefixRows: prefix,
                                           prefixOutputs: prefix > 0 ? Array(repeating: pstage, count: heads) : [])
            var q16 = [Int16](repeating: 0, count: t * 3 * c)
            try Elementwise.quantizeInt16Groups(x, rows: t, groupSize: d, scales: scales, qmin: lo, qmax: hi, dst: &q16, isa: .portable)
            let ws1 = kern.workspaceBytes(threads: 1)
            let w1 = UnsafeMutableRawPointer.allocate(byteCount: ws1, alignment: 64)
            defer { w1.deallocate() }
            var want = [Int8](repeating: 0, count: t * c)
            try want.withUnsafeMutableBytes { ob in try kern.run(qkv: q16, dst: ob.baseAddress!, workspace: w1, workspaceBytes: ws1, isa: .portable) }
            for threads in [1, 2, 3] {
                let ws = kern.workspaceBytes(threads: threads)
                let work = UnsafeMutableRawPointer.allocate(byteCount: ws, alignment: 64)
                defer { work.deallocate() }
                var out = [Int8](repeating: 0, count: t * c), q = [Int16](repeating: 0, count: t * c)
                try out.withUnsafeMutableBytes { ob in
                    try kern.run(x: x, quantize: (scales, lo, hi), q: &q, dst: ob.baseAddress!, workspace: work, workspaceBytes: ws, isa: isa, threads: threads)
                }
                #expect(out == want, "isa \(isa) t \(t) heads \(heads) d \(d) prefix \(prefix) threads \(threads)")
                try out.withUnsafeMutableBytes { ob in
                    #expect(throws: Int8KernelError.self) {
                        try kern.run(x: x, quantize: (scales, lo, hi), q: &q, dst: ob.baseAddress!, workspace: work, workspaceBytes: ws - 65, isa: isa, threads: threads)
                    }
                }
            }
        }
    }

    @Test("bad shapes and mismatched stages are refused")
    func refusals() throws {
        let table = try AdaLogTable(q: 20, bits: 4)
        #expect(throws: Int8KernelError.self) { try AttentionKernel(tokens: 0, heads: 1, headDim: 8, logitScales: [1], probabilities: .adaLog(table), outputs: [.int32]) }
        #expect(throws: Int8KernelError.self) { try AttentionKernel(tokens: 4, heads: 2, headDim: 8, logitScales: [1], probabilities: .adaLog(table), outputs: [.int32, .int32]) }
        #expect(throws: Int8KernelError.self) { try AttentionKernel(tokens: 4, heads: 1, headDim: 8, logitScales: [1], probabilities: .uniform(scale: 0, bits: 4), outputs: [.int32]) }
        let int8Out = OutputStage.requantize(multipliers: [try QuantizedMultiplier(0.5)], rounding: .singleRounding, zeroPoint: 0, qmin: -128, qmax: 127, unsigned: false)
        let mixed: [OutputStage] = [.int32, int8Out]
        #expect(throws: Int8KernelError.self) {
            try AttentionKernel(tokens: 4, heads: 2, headDim: 8, logitScales: [1, 1], probabilities: .adaLog(table), outputs: mixed)
        }
    }
}

@Suite struct AdaLogDecodeTests {
    @Test("codes → int16 table values: every byte, every table size, lengths around the vector width; all ISAs equal the portable path", arguments: testISAs)
    func decode(isa: KernelISA) throws {
        var g = SplitMix(91)
        for bits in [2, 3, 4, 6, 8] {
            let nt = 1 << bits
            let table = (0...nt).map { $0 == nt ? Int16(0) : Int16.random(in: -32768...32767, using: &g) }
            for n in [1, 15, 31, 32, 33, 64, 257, 1000] {
                let codes = (0..<n).map { i in i < 256 ? UInt8(i % 256) : UInt8.random(in: 0...255, using: &g) }
                var got = [Int16](repeating: 7, count: n + 1), ref = got
                i8k_codes_to_s16(isa.rawValue, codes, n, table, Int32(nt), &got)
                i8k_codes_to_s16(KernelISA.portable.rawValue, codes, n, table, Int32(nt), &ref)
                #expect(got == ref, "isa \(isa) bits \(bits) n \(n)")
                #expect(got[n] == 7, "wrote past the end")
                for i in 0..<n { #expect(ref[i] == (Int(codes[i]) <= nt ? table[Int(codes[i])] : 0)) }
            }
        }
    }
}
