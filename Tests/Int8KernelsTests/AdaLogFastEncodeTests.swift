import CInt8Kernels
import Foundation
import Testing
@testable import Int8Kernels

/// The arithmetic AdaLog encode (code = ceil of a log2 estimate away from integers, proven margin) and the passes
/// fused around it (GELU + shift + codes; softmax + codes + table values): every ISA equals the portable path, which
/// counts thresholds (`encode1`).
@Suite("AdaLog fast encode and its fused passes")
struct AdaLogFastEncodeTests {
    /// Real AdaLog quantizers: bits 4 (power-of-two search), 6 and 8 (geometric: the fast path), several q and scales.
    static let quantizers: [(q: Int, bits: Int, scale: Double)] = {
        var r: [(Int, Int, Double)] = []
        for q in [10, 13, 20, 37, 55, 100, 137] { for bits in [4, 6, 8] { for s in [1.0, 15.304947, 0.7, 3e-3] { r.append((q, bits, s)) } } }
        return r
    }()

    /// Values around every threshold (the float itself and two neighbours each way), random magnitudes over the whole
    /// float range (normal and subnormal), zeros, negatives, NaN, ±∞, the extremes.
    static func probes(_ tau: [Float], _ g: inout SplitMix, random: Int) -> [Float] {
        var u: [Float] = []
        for x in tau where x.isFinite {
            u += [x, x.nextDown, x.nextUp, x.nextDown.nextDown, x.nextUp.nextUp]
            u += [x * 1.0000001, x * 0.9999999, x * 1.00001, x * 0.99999]
        }
        for _ in 0..<random {
            let bits = UInt32.random(in: 0...0x7F7F_FFFF, using: &g)   // every finite positive float, uniformly by bit pattern
            u.append(Float(bitPattern: bits))
        }
        u += (0..<random / 4).map { _ in Float(exp2(-Double.random(in: -4...140, using: &g))) }
        u += [0, -0.0, -1, -1e-30, -Float.leastNonzeroMagnitude, .nan, -.nan, .infinity, -.infinity, .greatestFiniteMagnitude,
              Float.leastNonzeroMagnitude, Float.leastNormalMagnitude, Float.leastNormalMagnitude.nextDown, 1e-40, 1, 2, 1e30]
        return u
    }

    @Test("the log2 polynomial's error over every float in [0, 1) is within the bound the margin assumes")
    func polynomialBound() {
        let err = i8k_adalog_log2_poly_error()
        #expect(err > 0 && err <= i8k_adalog_log2_poly_bound(), "scan \(err), bound \(i8k_adalog_log2_poly_bound())")
    }

    @Test("codes equal counting thresholds at, next to and between every threshold, and for special values", arguments: testISAs)
    func encode(isa: KernelISA) throws {
        var g = SplitMix(0xADA1)
        var fastTables = 0
        for (q, bits, s) in Self.quantizers {
            let tau = try AdaLogTable(q: q, bits: bits).thresholds(scale: s)
            let enc = try AdaLogEncoder(thresholds: tau)
            if bits >= 6 {
                #expect(enc.hasFastPath, "q \(q) bits \(bits) scale \(s): the margin proof should go through")
                fastTables += 1
            }
            let u = Self.probes(tau, &g, random: 3000)
            var got = [UInt8](repeating: 0, count: u.count), ref = got
            try Elementwise.adalogEncode(u, count: u.count, thresholds: tau, codes: &got, isa: isa)
            i8k_adalog_encode(KernelISA.portable.rawValue, u, u.count, tau, Int32(tau.count), &ref)
            #expect(firstDifference(got, ref) == nil, "isa \(isa) q \(q) bits \(bits) scale \(s)")
            // the definition, independently of the C portable path (once, not per ISA)
            if isa == .portable { for (x, c) in zip(u, ref).enumerated().filter({ $0.offset % 11 == 0 }).map(\.element) {
                let want = x.isNaN ? tau.count : tau.filter { x < $0 }.count
                if Int(c) != min(want, 255) { #expect(Int(c) == min(want, 255), "u \(x) q \(q) bits \(bits)"); break }
            } }
        }
        #expect(fastTables == 56)
    }

    @Test("thresholds that are not geometric (or not descending) fall back to an exact path", arguments: testISAs)
    func nonGeometric(isa: KernelISA) throws {
        var g = SplitMix(0xADA2)
        let base = try AdaLogTable(q: 20, bits: 6).thresholds(scale: 1)
        var bent = base
        bent[40] = bent[39] * 0.999                  // one threshold a step off the geometric grid
        var flat = base
        flat[50] = flat[49]                          // a repeated threshold
        // thresholds near the top of the float range: geometric, but the fast path's cap 2·tau_0 would overflow
        let huge = try AdaLogTable(q: 10, bits: 8).thresholds(scale: 3e38)
        for tau in [bent, flat, huge] {
            let enc = try AdaLogEncoder(thresholds: tau)
            #expect(!enc.hasFastPath)
            let u = Self.probes(tau, &g, random: 500)
            var got = [UInt8](repeating: 0, count: u.count), ref = got
            try Elementwise.adalogEncode(u, count: u.count, thresholds: tau, codes: &got, isa: isa)
            i8k_adalog_encode(KernelISA.portable.rawValue, u, u.count, tau, Int32(tau.count), &ref)
            #expect(firstDifference(got, ref) == nil, "isa \(isa)")
        }
    }

    @Test("GELU + shift + codes in one pass equals the three portable steps", arguments: testISAs)
    func geluEncode(isa: KernelISA) throws {
        var g = SplitMix(0xADA3)
        for (q, bits, s) in [(10, 8, 15.304947), (10, 6, 4.863), (37, 8, 2.0), (20, 4, 3.0), (137, 6, 1.0)] {
            let tau = try AdaLogTable(q: q, bits: bits).thresholds(scale: s)
            let enc = try AdaLogEncoder(thresholds: tau)
            for shift: Float in [0, 0.16997124] {
                for n in [1, 15, 16, 17, 63, 64, 65, 129, 200, 4096 + 77] {
                    var x = (0..<n).map { _ in Float.random(in: -6...6, using: &g) * (Bool.random(using: &g) ? 1 : 0.01) }
                    // inputs whose GELU lands on or next to a threshold (after the shift), and special values
                    for i in stride(from: 0, to: n, by: 7) where tau[i % tau.count].isFinite {
                        x[i] = tau[i % tau.count] - shift + [0, Float.ulpOfOne, -Float.ulpOfOne][i % 3]
                    }
                    let specials: [Float] = [0, -0.0, .nan, .infinity, -.infinity, 1e30, -1e30, 1e-40, -0.7517916]
                    for (j, v) in specials.enumerated() where j * 5 + 3 < n { x[j * 5 + 3] = v }
                    var got = [UInt8](repeating: 0, count: n), vals = [Int16](repeating: 7, count: n + 1)
                    let table = try AdaLogTable(q: q, bits: bits)
                    if n % 2 == 0 {
                        try Elementwise.geluAdaLogEncode(x, count: n, shift: shift, encoder: enc, codes: &got, isa: isa, threads: 2)
                    } else {
                        try vals.withUnsafeMutableBufferPointer { vb in
                            try Elementwise.geluAdaLogEncode(x, count: n, shift: shift, encoder: enc, codes: &got, table: table.table,
                                                             values: vb.baseAddress!, isa: isa, threads: 2)
                        }
                    }
                    var y = [Float](repeating: 0, count: n), ref = [UInt8](repeating: 0, count: n)
                    i8k_gelu(KernelISA.portable.rawValue, x, n, &y)
                    if shift != 0 { for i in 0..<n { y[i] += shift } }
                    i8k_adalog_encode(KernelISA.portable.rawValue, y, n, tau, Int32(tau.count), &ref)
                    #expect(firstDifference(got, ref) == nil, "isa \(isa) q \(q) bits \(bits) shift \(shift) n \(n)")
                    if n % 2 == 1 {
                        var refV = [Int16](repeating: 0, count: n)
                        i8k_codes_to_s16(KernelISA.portable.rawValue, ref, n, table.table, Int32(table.zeroCode), &refV)
                        #expect(firstDifference(Array(vals[0..<n]), refV) == nil && vals[n] == 7, "values: isa \(isa) q \(q) bits \(bits) n \(n)")
                    }
                }
            }
        }
    }

    @Test("softmax + codes + table values in one pass equals the separate portable steps", arguments: testISAs)
    func softmaxEncode(isa: KernelISA) throws {
        var g = SplitMix(0xADA4)
        let tables = [try AdaLogTable(q: 10, bits: 8, fractionBits: AdaLogTable.attentionFractionBits(q: 10, bits: 8)),
                      try AdaLogTable(q: 10, bits: 8), try AdaLogTable(q: 13, bits: 6),
                      try AdaLogTable(q: 20, bits: 6, fractionBits: AdaLogTable.attentionFractionBits(q: 20, bits: 6)),
                      try AdaLogTable(q: 22, bits: 4)]
        for table in tables {
            let tau = table.thresholds(scale: 1)
            let enc = try AdaLogEncoder(thresholds: tau)
            let high = table.tableHigh
            for n in [1, 2, 15, 16, 17, 31, 33, 64, 65, 100, 197, 256, 301] {
                for spread: Float in [0.5, 4, 40, 120] {
                    var x = (0..<n).map { _ in Float.random(in: -spread...spread, using: &g) }
                    if n > 20 && spread == 40 { x[3] = -.infinity; x[7] = -1e30 }
                    if n > 20 && spread == 120 { x[5] = .nan }
                    var p = [Float](repeating: 0, count: n), ref = [UInt8](repeating: 0, count: n)
                    i8k_softmax_row(KernelISA.portable.rawValue, x, n, &p)
                    i8k_adalog_encode(KernelISA.portable.rawValue, p, n, tau, Int32(tau.count), &ref)
                    var refL = [Int16](repeating: 0, count: n), refH = refL
                    i8k_codes_to_s16(KernelISA.portable.rawValue, ref, n, table.table, Int32(table.zeroCode), &refL)
                    if let h = high { i8k_codes_to_s16(KernelISA.portable.rawValue, ref, n, h, Int32(table.zeroCode), &refH) }
                    var codes = [UInt8](repeating: 0xEE, count: n + 1), L = [Int16](repeating: 7, count: n + 1), H = L
                    var work = [Float](repeating: 0, count: n)
                    withUnsafePointer(to: enc.plan) { pp in
                        table.table.withUnsafeBufferPointer { tb in
                            (high ?? []).withUnsafeBufferPointer { hb in
                                i8k_softmax_adalog_row(isa.rawValue, x, n, &work, tau, Int32(tau.count), pp, tb.baseAddress!,
                                                       high == nil ? nil : hb.baseAddress!, &codes, &L, &H)
                            }
                        }
                    }
                    #expect(firstDifference(Array(codes[0..<n]), ref) == nil, "codes: isa \(isa) bits \(table.bits) n \(n) spread \(spread)")
                    #expect(firstDifference(Array(L[0..<n]), refL) == nil, "L: isa \(isa) bits \(table.bits) n \(n)")
                    if high != nil { #expect(firstDifference(Array(H[0..<n]), refH) == nil, "Lh: isa \(isa) n \(n)") }
                    #expect(codes[n] == 0xEE && L[n] == 7 && (high == nil || H[n] == 7), "wrote past the row: isa \(isa) n \(n)")
                }
            }
        }
    }
}
