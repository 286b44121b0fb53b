import Testing
import CQuantKernels
@testable import Imaging

/// The search's uniform fake-quant loops dispatch to AVX-512 forms where the CPU has them; those must give the
/// portable loops' results bit for bit (same division, rounding, clamps and partial-sum order), so a search
/// picks the same quantizers on every machine that runs the same float kernels.
@Suite struct QuantKernelParityTests {
    static func data(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var x = (0..<n).map { _ in Float(Int(rng.next() % 200_001) - 100_000) / 25_000 }
        // specials and halves that sit exactly on rounding ties for s = 0.25
        for (i, v) in [Float.nan, .infinity, -.infinity, 1e30, -1e30, 0.125, -0.375, 0].enumerated() where i * 37 < n {
            x[i * 37] = v
        }
        return x
    }

    @Test func uniformFakeQuantMatchesPortable() {
        for n in [0, 1, 15, 16, 17, 100, 1000, 4099] {
            let x = Self.data(n, seed: UInt64(n) + 1)
            for (s, z, qmax) in [(Float(0.25), Float(7), Float(15)), (0.013, 128, 255), (3.7, 0, 63)] {
                for mode: Int32 in [0, 1] {
                    var a = [Float](repeating: 0, count: n), b = a
                    qk_uniform_fq(x, n, s, z, 0, qmax, &a, mode)
                    qk_uniform_fq_portable(x, n, s, z, 0, qmax, &b, mode)
                    #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "n \(n) s \(s) mode \(mode)")
                }
                let e1 = qk_uniform_sse(x.map { $0.isFinite ? $0 : 0 }, n, s, z, 0, qmax)
                let e2 = qk_uniform_sse_portable(x.map { $0.isFinite ? $0 : 0 }, n, s, z, 0, qmax)
                #expect(e1.bitPattern == e2.bitPattern, "sse n \(n) s \(s): \(e1) vs \(e2)")
            }
        }
    }

    @Test func perColumnSquaredErrorsMatchPortable() {
        for (rows, cols) in [(1, 1), (3, 17), (300, 192), (257, 33)] {
            let x = Self.data(rows * cols, seed: UInt64(rows * cols)).map { $0.isFinite ? $0 : 0 }
            let s = (0..<cols).map { Float(0.01) + Float($0) * 0.003 }
            let z = (0..<cols).map { Float($0 % 16) }
            var a = [Double](repeating: 0, count: cols), b = a
            qk_uniform_sse_cols(x, rows, cols, s, z, 0, 15, &a)
            qk_uniform_sse_cols_portable(x, rows, cols, s, z, 0, 15, &b)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(rows)×\(cols)")
        }
    }

    @Test func sumsMatchPortable() {
        for n in [0, 1, 7, 16, 31, 512, 513, 5000] {
            let a = Self.data(n, seed: 3).map { $0.isFinite ? $0 : 1 }, b = Self.data(n, seed: 4).map { $0.isFinite ? $0 : -2 }
            #expect(qk_dot(a, b, n).bitPattern == qk_dot_portable(a, b, n).bitPattern, "dot n \(n)")
            #expect(qk_sum_sq_of_sum(a, b, n).bitPattern == qk_sum_sq_of_sum_portable(a, b, n).bitPattern, "sum² n \(n)")
            #expect(qk_sse(a, b, n).bitPattern == qk_sse_portable(a, b, n).bitPattern, "sse n \(n)")
        }
    }
}
