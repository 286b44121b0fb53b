import CInt8Kernels
import Foundation
import Testing
@testable import Int8Kernels

@Suite("Element-wise kernels: every ISA bit-identical to portable, pinned semantics")
struct ElementwiseTests {
    static func data(_ n: Int, _ g: inout SplitMix) -> [Float] {
        var x = (0..<n).map { _ in Float.random(in: -8...8, using: &g) }
        x += [0, -0.0, 0.5, 1.5, 2.5, -2.5, -0.5, 1e30, -1e30, .nan, .infinity, -.infinity, 127.5, -128.5, 1e-40]
        return x
    }

    @Test("quantize / dequantize / add / gelu", arguments: testISAs)
    func simple(isa: KernelISA) throws {
        var g = SplitMix(51)
        for n in [1, 15, 16, 17, 100, 1001] {
            let x = Self.data(n, &g), y = Self.data(n, &g)
            let cnt = x.count
            for (unsigned, z, lo, hi) in [(false, Int32(0), Int32(-128), Int32(127)), (true, 128, 0, 255), (false, 3, -5, 10)] {
                var a = [UInt8](repeating: 0, count: cnt), b = a
                try Elementwise.quantize(x, count: cnt, scale: 0.5, zeroPoint: z, qmin: lo, qmax: hi, unsigned: unsigned, dst: &a, isa: isa)
                try Elementwise.quantize(x, count: cnt, scale: 0.5, zeroPoint: z, qmin: lo, qmax: hi, unsigned: unsigned, dst: &b, isa: .portable)
                #expect(firstDifference(a, b) == nil, "quantize isa \(isa) n \(n)")
                var fa = [Float](repeating: 0, count: cnt), fb = fa
                try Elementwise.dequantize(a, count: cnt, unsigned: unsigned, scale: 0.37, zeroPoint: z, dst: &fa, isa: isa)
                try Elementwise.dequantize(a, count: cnt, unsigned: unsigned, scale: 0.37, zeroPoint: z, dst: &fb, isa: .portable)
                #expect(firstDifference(fa.map(\.bitPattern), fb.map(\.bitPattern)) == nil)
            }
            var s1 = [Float](repeating: 0, count: cnt), s2 = s1
            try Elementwise.add(x, y, count: cnt, dst: &s1, isa: isa)
            try Elementwise.add(x, y, count: cnt, dst: &s2, isa: .portable)
            #expect(firstDifference(s1.map(\.bitPattern), s2.map(\.bitPattern)) == nil)
            try Elementwise.gelu(x, count: cnt, dst: &s1, isa: isa)
            try Elementwise.gelu(x, count: cnt, dst: &s2, isa: .portable)
            #expect(firstDifference(s1.map(\.bitPattern), s2.map(\.bitPattern)) == nil, "gelu isa \(isa)")
        }
    }

    @Test("quantize rounds half to even, saturates, NaN -> qmin")
    func quantizeSemantics() throws {
        let x: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000, .nan, 0.49999997]
        var q = [UInt8](repeating: 0, count: x.count)
        try Elementwise.quantize(x, count: x.count, scale: 1, zeroPoint: 0, qmin: -128, qmax: 127, unsigned: false, dst: &q, isa: .portable)
        #expect(q.map { Int8(bitPattern: $0) } == [0, 2, 2, 0, -2, 127, -128, -128, 0])
        #expect(throws: Int8KernelError.self) {
            try Elementwise.quantize(x, count: 1, scale: 0, zeroPoint: 0, qmin: 0, qmax: 1, unsigned: true, dst: &q)
        }
    }

    @Test("GELU, exp and softmax are accurate")
    func accuracy() {
        var g = SplitMix(52)
        let x = (0..<2000).map { _ in Float.random(in: -10...10, using: &g) }
        var y = [Float](repeating: 0, count: x.count)
        i8k_gelu(KernelISA.portable.rawValue, x, x.count, &y)
        for (a, b) in zip(x, y) {
            let ref = 0.5 * Double(a) * (1 + erf(Double(a) / 2.0.squareRoot()))
            #expect(abs(Double(b) - ref) <= 2e-6 * max(1, abs(ref)), "gelu(\(a))")
        }
        for a in x { let e = Double(i8k_expf(a)); #expect(abs(e - exp(Double(a))) <= 3e-7 * exp(Double(a))) }
        var p = [Float](repeating: 0, count: 197)
        i8k_softmax_row(KernelISA.portable.rawValue, Array(x.prefix(197)), 197, &p)
        #expect(abs(p.reduce(0, +) - 1) < 1e-5)
    }

    @Test("softmax and LayerNorm+quantize bit-identical across ISAs", arguments: testISAs)
    func rows(isa: KernelISA) throws {
        var g = SplitMix(53)
        for c in [1, 7, 16, 31, 192, 197, 768] {
            let rows = 3
            let x = (0..<(rows * c)).map { _ in Float.random(in: -4...4, using: &g) + 1.5 }
            var p1 = [Float](repeating: 0, count: c), p2 = p1
            try Elementwise.softmax(x, count: c, dst: &p1, isa: isa)
            try Elementwise.softmax(x, count: c, dst: &p2, isa: .portable)
            #expect(firstDifference(p1.map(\.bitPattern), p2.map(\.bitPattern)) == nil, "softmax isa \(isa) n \(c)")
            let gamma = (0..<c).map { _ in Float.random(in: 0.5...2, using: &g) }, beta = (0..<c).map { _ in Float.random(in: -1...1, using: &g) }
            var q1 = [UInt8](repeating: 0, count: rows * (c + 3)), q2 = q1
            try Elementwise.layerNormQuantize(x, rows: rows, channels: c, gamma: gamma, beta: beta, epsilon: 1e-6, scale: 0.05, zeroPoint: 0,
                                              qmin: -8, qmax: 7, unsigned: false, dst: &q1, ldd: c + 3, isa: isa)
            try Elementwise.layerNormQuantize(x, rows: rows, channels: c, gamma: gamma, beta: beta, epsilon: 1e-6, scale: 0.05, zeroPoint: 0,
                                              qmin: -8, qmax: 7, unsigned: false, dst: &q2, ldd: c + 3, isa: .portable)
            #expect(firstDifference(q1, q2) == nil, "layernorm isa \(isa) C \(c)")
            // close to a double-precision LayerNorm
            if c >= 16 {
                let r = Array(x[0..<c]).map(Double.init)
                let mean = r.reduce(0, +) / Double(c)
                let varr = r.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
                for i in 0..<c {
                    let y = (r[i] - mean) / (varr + 1e-6).squareRoot() * Double(gamma[i]) + Double(beta[i])
                    let qd = min(7, max(-8, (y / 0.05).rounded(.toNearestOrEven)))
                    #expect(abs(Double(Int8(bitPattern: q2[i])) - qd) <= 1)
                }
            }
        }
        #expect(throws: Int8KernelError.self) {
            try Elementwise.layerNormQuantize([1, 2], rows: 1, channels: 2, gamma: [1], beta: [0, 0], epsilon: 1e-5, scale: 1,
                                              zeroPoint: 0, qmin: -1, qmax: 1, unsigned: false, dst: UnsafeMutableRawPointer.allocate(byteCount: 2, alignment: 1), ldd: 2)
        }
    }

    @Test("int4 pack/unpack round trip; out-of-range throws")
    func int4() throws {
        let v: [Int8] = [-8, 7, 0, -1, 3, -5, 6]
        let p = try LowBit.packInt4(v)
        #expect(p.count == 4)
        #expect(try LowBit.unpackInt4(p, count: v.count) == v)
        #expect(throws: Int8KernelError.self) { try LowBit.packInt4([8]) }
        #expect(throws: Int8KernelError.self) { try LowBit.unpackInt4([1], count: 3) }
        #expect(LowBit.signedRange(bits: 4) == -8...7)
    }
}
