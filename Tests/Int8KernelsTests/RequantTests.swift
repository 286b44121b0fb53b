import CInt8Kernels
import Testing
@testable import Int8Kernels

@Suite("Requantization: pinned rounding and corners")
struct RequantTests {
    @Test("SRDHM / RDPOT match gemmlowp on ties and saturation")
    func primitives() {
        #expect(i8k_srdhm(Int32.min, Int32.min) == Int32.max)
        #expect(i8k_srdhm(3, 1 << 30) == 2)      // 1.5 -> 2
        #expect(i8k_srdhm(-3, 1 << 30) == -1)    // -1.5 -> -1 (nudge 1 - 2^30, truncating division)
        #expect(i8k_rdpot(5, 1) == 3)            // 2.5 -> 3 (half away from zero)
        #expect(i8k_rdpot(-5, 1) == -3)
        #expect(i8k_rdpot(-6, 2) == -2)          // -1.5 -> -2
        #expect(i8k_rdpot(6, 2) == 2)
        #expect(i8k_rdpot(7, 0) == 7)
        #expect(i8k_rdpot(Int32.max, 31) == 1)
        #expect(i8k_rdpot(Int32.min, 31) == -1)
    }

    @Test("double and single rounding differ exactly where documented")
    func doubleVsSingle() {
        // 5 * 0.5 * 2^-1 = 1.25: double rounding 1.5 -> 2, single rounding -> 1
        #expect(i8k_requant(5, 1 << 30, -1, RequantRounding.doubleRounding.rawValue) == 2)
        #expect(i8k_requant(5, 1 << 30, -1, RequantRounding.singleRounding.rawValue) == 1)
        // left shift path
        #expect(i8k_requant(3, 1 << 30, 2, RequantRounding.doubleRounding.rawValue) == 6)
        #expect(i8k_requant(3, 1 << 30, 2, RequantRounding.singleRounding.rawValue) == 6)
        // single rounding saturates to int32
        #expect(i8k_requant(Int32.max, Int32.max, 30, RequantRounding.singleRounding.rawValue) == Int32.max)
        #expect(i8k_requant(Int32.min, Int32.max, 30, RequantRounding.singleRounding.rawValue) == Int32.min)
    }

    @Test("QuantizeMultiplier (TFLite): normalisation, rounding to 2^31, tiny values")
    func quantizeMultiplier() throws {
        let half = try QuantizedMultiplier(0.5)
        #expect(half == QuantizedMultiplier(multiplier: 1 << 30, shift: 0))
        let one = try QuantizedMultiplier(1.0)
        #expect(one == QuantizedMultiplier(multiplier: 1 << 30, shift: 1))
        let almostOne = try QuantizedMultiplier(1.0 - 1e-12)   // rounds to 2^31 -> halved, shift + 1
        #expect(almostOne == QuantizedMultiplier(multiplier: 1 << 30, shift: 1))
        let tiny = try QuantizedMultiplier(1e-12)
        #expect(tiny == QuantizedMultiplier(multiplier: 0, shift: 0))
        let m = try QuantizedMultiplier(0.0123)
        #expect(abs(m.value - 0.0123) < 1e-11)
        #expect(m.multiplier >= 1 << 30)
        #expect(throws: Int8KernelError.self) { try QuantizedMultiplier(-1) }
        #expect(throws: Int8KernelError.self) { try QuantizedMultiplier(Double.nan) }
        #expect(throws: Int8KernelError.self) { try QuantizedMultiplier(1e12) }
    }

    @Test("vector output stages equal the scalar definition on corner accumulators", arguments: testISAs)
    func outputCorners(isa: KernelISA) {
        var g = SplitMix(3)
        let n = 37, rows = 9
        var src = [Int32](repeating: 0, count: rows * n)
        let corners: [Int32] = [Int32.min, Int32.max, 0, 1, -1, 1 << 30, -(1 << 30), (1 << 30) + 1, 3, -3, 5, -5, 65535, -65536]
        for i in 0..<src.count { src[i] = i < corners.count * 3 ? corners[i % corners.count] : Int32.random(in: Int32.min...Int32.max, using: &g) }
        var mult = (0..<n).map { _ in Int32.random(in: (1 << 30)...Int32.max, using: &g) }
        mult[0] = Int32.max; mult[1] = 1 << 30; mult[2] = 0
        var shift = (0..<n).map { _ in Int32.random(in: -31...30, using: &g) }
        shift[3] = -31; shift[4] = 30; shift[5] = 0
        let bias = (0..<n).map { _ in Int32.random(in: Int32.min...Int32.max, using: &g) }
        let colsum = (0..<n).map { _ in Int32.random(in: -300_000...300_000, using: &g) }
        let scale = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
        for kind in [I8K_OUT_INT32, I8K_OUT_INT8, I8K_OUT_UINT8, I8K_OUT_FLOAT] {
            for rounding in [Int32(0), 1] {
                for zp in [Int32(0), -128, 127, 255] where !(kind == I8K_OUT_INT8 && zp == 255) {
                    var o = i8k_output()
                    o.kind = Int32(kind); o.rounding = rounding; o.a_zero = 77; o.out_zero = zp
                    o.qmin = kind == I8K_OUT_UINT8 ? 0 : -128; o.qmax = kind == I8K_OUT_UINT8 ? 255 : 127
                    let es = kind == I8K_OUT_INT8 || kind == I8K_OUT_UINT8 ? 1 : 4
                    var ref = [UInt8](repeating: 0, count: rows * n * es), got = ref
                    colsum.withUnsafeBufferPointer { cs in bias.withUnsafeBufferPointer { bs in mult.withUnsafeBufferPointer { ms in
                        shift.withUnsafeBufferPointer { ss in scale.withUnsafeBufferPointer { sc in
                            o.colsum = cs.baseAddress; o.bias = bs.baseAddress; o.mult = ms.baseAddress; o.shift = ss.baseAddress
                            o.scale = sc.baseAddress; o.fbias = sc.baseAddress
                            ref.withUnsafeMutableBytes { i8k_output_apply(KernelISA.portable.rawValue, src, n, rows, n, &o, 0, $0.baseAddress!, n) }
                            got.withUnsafeMutableBytes { i8k_output_apply(isa.rawValue, src, n, rows, n, &o, 0, $0.baseAddress!, n) }
                        } }
                    } } }
                    #expect(firstDifference(got, ref) == nil, "isa \(isa) kind \(kind) rounding \(rounding) zp \(zp)")
                }
            }
        }
    }
}
