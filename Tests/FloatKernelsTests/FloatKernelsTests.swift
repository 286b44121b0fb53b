import Testing
@testable import FloatEngine
import CFloatKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Deterministic pseudo-random floats in [-1, 1).
struct Rand {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % (1 << 24)) / Float(1 << 23) - 1
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// Every ISA this CPU runs (the portable path always).
let isas = FloatISA.supported

/// max over elements of |got - want| / (1e-5-scaled bound): the error relative to Σ|a·b| (+|bias|).
func gemmBoundRatio(m: Int, n: Int, k: Int, a: [Float], lda: Int, b: [Float], ldb: Int, bT: Bool,
                    bias: [Float]?, got: [Float], ldc: Int, want: [Float]) -> Double {
    var worst = 0.0
    for i in 0..<m {
        for j in 0..<n {
            var mag = Double(abs(bias?[j] ?? 0))
            for kk in 0..<k { mag += Double(abs(a[i * lda + kk] * (bT ? b[j * ldb + kk] : b[kk * ldb + j]))) }
            let err = Double(abs(got[i * ldc + j] - want[i * ldc + j]))
            worst = max(worst, err / (1e-5 * mag + 1e-30))
        }
    }
    return worst
}

@Suite struct GemmTests {
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 17, 3), (3, 63, 17), (17, 5, 49), (8, 64, 48),
                                             (9, 3, 97), (1, 192, 100), (13, 300, 50), (5, 600, 20), (197, 24, 33)]

    @Test(arguments: isas)
    func packedGemmMatchesReference(isa: FloatISA) {
        var r = Rand(1)
        for (si, (m, k, n)) in Self.shapes.enumerated() {
            for (ai, act) in [FloatActivation.none, .relu, .clamp(-0.5, 0.25)].enumerated() {
                let transposed = (si + ai) % 2 == 1
                let lda = k + 3, ldc = n + 2
                let a = r.array(m * lda), bRM = r.array(k * n), bias = ai == 0 ? nil : r.array(n)
                // B as given to PackedMatrix: row-major k×n or n×k.
                var bIn = bRM
                if transposed { for kk in 0..<k { for j in 0..<n { bIn[j * k + kk] = bRM[kk * n + j] } } }
                let packed = bIn.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: n, transposed: transposed) }
                #expect(packed.storage == bRM)
                var want = [Float](repeating: 7, count: m * ldc), got = want
                FloatReference.gemm(m: m, n: n, k: k, a: a, lda: lda, b: bRM, ldb: n, bias: bias, activation: act,
                                    c: &want, ldc: ldc)
                FloatKernels.$isaOverride.withValue(isa) {
                    if let bias {
                        FloatKernels.gemm(m: m, a: a, lda: lda, b: packed, bias: bias, activation: act, c: &got, ldc: ldc)
                    } else {
                        FloatKernels.gemm(m: m, a: a, lda: lda, b: packed, bias: nil, activation: act, c: &got, ldc: ldc)
                    }
                }
                let ratio = gemmBoundRatio(m: m, n: n, k: k, a: a, lda: lda, b: bRM, ldb: n, bT: false, bias: bias,
                                           got: got, ldc: ldc, want: want)
                #expect(ratio <= 1, "isa \(isa) m \(m) k \(k) n \(n) act \(act): error / (1e-5 Σ|ab|) = \(ratio)")
                // padding columns of C untouched
                for i in 0..<m { for j in n..<ldc { #expect(got[i * ldc + j] == 7) } }
            }
        }
    }

    @Test(arguments: isas)
    func gemmAccumulates(isa: FloatISA) {
        var r = Rand(2)
        let m = 11, k = 300, n = 37
        let a = r.array(m * k), b = r.array(k * n), c0 = r.array(m * n)
        let packed = b.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: n) }
        var want = [Float](repeating: 0, count: m * n)
        FloatReference.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, bias: nil, c: &want, ldc: n)
        for i in 0..<want.count { want[i] = max(want[i] + c0[i], 0) }
        var got = c0
        FloatKernels.$isaOverride.withValue(isa) {
            FloatKernels.gemm(m: m, a: a, lda: k, b: packed, bias: nil, activation: .relu, c: &got, ldc: n, accumulate: true)
        }
        for i in 0..<want.count { #expect(abs(got[i] - want[i]) <= 1e-4, "isa \(isa) at \(i)") }
    }

    @Test(arguments: isas)
    func matmulBothLayoutsMatchReference(isa: FloatISA) {
        var r = Rand(3)
        for (m, k, n) in [(1, 64, 1), (3, 7, 17), (17, 64, 63), (63, 17, 64), (40, 260, 20)] {
            for bT in [false, true] {
                for accumulate in [false, true] {
                    let lda = k + 1, ldb = (bT ? k : n) + 5, ldc = n + 1
                    let a = r.array(m * lda), b = r.array((bT ? n : k) * ldb)
                    let c0 = r.array(m * ldc)
                    var want = c0, got = c0
                    FloatReference.matmul(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, bTransposed: bT,
                                          c: &want, ldc: ldc, accumulate: accumulate)
                    FloatKernels.$isaOverride.withValue(isa) {
                        FloatKernels.matmul(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, bTransposed: bT,
                                            c: &got, ldc: ldc, accumulate: accumulate)
                    }
                    var worst: Float = 0
                    for i in 0..<m { for j in 0..<n { worst = max(worst, abs(got[i * ldc + j] - want[i * ldc + j])) } }
                    #expect(worst <= 1e-5 * Float(k) + 1e-6, "isa \(isa) \(m)x\(k)x\(n) bT \(bT) acc \(accumulate): \(worst)")
                }
            }
        }
    }

    @Test(arguments: isas)
    func batchedMatmulMatchesPerHead(isa: FloatISA) {
        var r = Rand(4)
        // 3 heads of Q[13×8]·Kᵀ laid out like [tokens, heads·dim] (strides inside one row).
        let heads = 3, t = 13, d = 8, width = heads * d
        let q = r.array(t * width), kmat = r.array(t * width)
        var want = [Float](repeating: 0, count: heads * t * t), got = want
        for h in 0..<heads {
            q.withUnsafeBufferPointer { qp in
                kmat.withUnsafeBufferPointer { kp in
                    want.withUnsafeMutableBufferPointer { wp in
                        FloatReference.matmul(m: t, n: t, k: d, a: qp.baseAddress! + h * d, lda: width,
                                              b: kp.baseAddress! + h * d, ldb: width, bTransposed: true,
                                              c: wp.baseAddress! + h * t * t, ldc: t)
                    }
                }
            }
        }
        FloatKernels.$isaOverride.withValue(isa) {
            FloatKernels.batchedMatmul(batch: heads, m: t, n: t, k: d, a: q, lda: width, strideA: d,
                                       b: kmat, ldb: width, strideB: d, bTransposed: true,
                                       c: &got, ldc: t, strideC: t * t)
        }
        for i in 0..<want.count { #expect(abs(got[i] - want[i]) <= 1e-5, "isa \(isa) at \(i)") }
    }

    @Test func forcingAnISASelectsIt() {
        for isa in isas {
            FloatKernels.$isaOverride.withValue(isa) { #expect(FloatKernels.activeISA == isa) }
        }
        #expect(FloatKernels.activeISA == FloatISA.best)
        #expect(FloatISA.portable.isSupported)
    }
}

@Suite struct ConvTests {
    static let cases: [Conv2DParams] = [
        Conv2DParams(inChannels: 3, outChannels: 5, inHeight: 9, inWidth: 11, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
        Conv2DParams(inChannels: 4, outChannels: 8, inHeight: 10, inWidth: 7, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padTop: 0, padLeft: 1, padBottom: 1, padRight: 0),
        Conv2DParams(inChannels: 3, outChannels: 9, inHeight: 17, inWidth: 15, kernelH: 7, kernelW: 7, strideH: 2, strideW: 2, padTop: 3, padLeft: 3, padBottom: 3, padRight: 3),
        Conv2DParams(inChannels: 16, outChannels: 24, inHeight: 17, inWidth: 19, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
        Conv2DParams(inChannels: 6, outChannels: 4, inHeight: 12, inWidth: 12, kernelH: 3, kernelW: 3, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, dilationH: 2, dilationW: 2),
        Conv2DParams(inChannels: 40, outChannels: 17, inHeight: 7, inWidth: 7, kernelH: 1, kernelW: 1),
        Conv2DParams(inChannels: 20, outChannels: 33, inHeight: 14, inWidth: 14, kernelH: 1, kernelW: 1),
        Conv2DParams(inChannels: 8, outChannels: 12, inHeight: 9, inWidth: 9, kernelH: 1, kernelW: 1, strideH: 2, strideW: 2),
        Conv2DParams(inChannels: 8, outChannels: 12, inHeight: 9, inWidth: 8, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 2),
        Conv2DParams(inChannels: 8, outChannels: 8, inHeight: 6, inWidth: 9, kernelH: 3, kernelW: 1, strideH: 1, strideW: 2, padTop: 1, padBottom: 0, groups: 4),
        Conv2DParams(inChannels: 5, outChannels: 7, inHeight: 8, inWidth: 11, kernelH: 3, kernelW: 5, padTop: 2, padLeft: 0, padBottom: 0, padRight: 3),
        Conv2DParams(inChannels: 6, outChannels: 9, inHeight: 10, inWidth: 9, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 2, padBottom: 1, padRight: 0, dilationH: 1, dilationW: 2, groups: 3),
        // small output planes (run as pixels × channels GEMM)
        Conv2DParams(inChannels: 16, outChannels: 24, inHeight: 9, inWidth: 10, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 0, padBottom: 0, padRight: 1),
        Conv2DParams(inChannels: 33, outChannels: 48, inHeight: 1, inWidth: 1, kernelH: 1, kernelW: 1),
        // depthwise
        Conv2DParams(inChannels: 5, outChannels: 5, inHeight: 9, inWidth: 13, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 5),
        Conv2DParams(inChannels: 6, outChannels: 6, inHeight: 11, inWidth: 10, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padTop: 0, padLeft: 1, padBottom: 1, padRight: 0, groups: 6),
        Conv2DParams(inChannels: 4, outChannels: 4, inHeight: 13, inWidth: 17, kernelH: 5, kernelW: 5, strideH: 2, strideW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, groups: 4),
        Conv2DParams(inChannels: 3, outChannels: 3, inHeight: 8, inWidth: 8, kernelH: 5, kernelW: 5, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, groups: 3),
        Conv2DParams(inChannels: 3, outChannels: 6, inHeight: 7, inWidth: 9, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, dilationH: 2, dilationW: 1, groups: 3),
        Conv2DParams(inChannels: 32, outChannels: 32, inHeight: 20, inWidth: 20, kernelH: 3, kernelW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 32),
    ]

    @Test(arguments: isas)
    func convMatchesReference(isa: FloatISA) {
        var r = Rand(5)
        for (ci, p) in Self.cases.enumerated() {
            let act: FloatActivation = ci % 3 == 0 ? .none : ci % 3 == 1 ? .relu : .clamp(-0.3, 0.6)
            let input = r.array(p.inChannels * p.inHeight * p.inWidth)
            let wcount = p.outChannels * (p.inChannels / p.groups) * p.kernelH * p.kernelW
            let w = r.array(wcount), bias = ci % 2 == 0 ? r.array(p.outChannels) : nil
            let ocount = p.outChannels * p.outHeight * p.outWidth
            var want = [Float](repeating: 0, count: ocount), got = want
            FloatReference.conv2d(input: input, weights: w, params: p, bias: bias, activation: act, output: &want)
            let packed = w.withUnsafeBufferPointer { PackedConvWeights($0.baseAddress!, params: p) }
            FloatKernels.$isaOverride.withValue(isa) {
                if let bias {
                    FloatKernels.conv2d(input: input, weights: packed, bias: bias, activation: act, output: &got)
                } else {
                    FloatKernels.conv2d(input: input, weights: packed, bias: nil, activation: act, output: &got)
                }
            }
            let kdim = (p.inChannels / p.groups) * p.kernelH * p.kernelW
            var worst: Float = 0
            for i in 0..<ocount { worst = max(worst, abs(got[i] - want[i])) }
            #expect(worst <= 1e-5 * Float(kdim).squareRoot() + 1e-6, "isa \(isa) case \(ci) \(p): max abs err \(worst)")
        }
    }
}

@Suite struct MathTests {
    /// Inputs over the ranges that matter, plus edges.
    static func inputs() -> [Float] {
        var xs: [Float] = [0, -0.0, 1e-30, -1e-30, 1e-7, 0.5, 0.55, 0.75, 1, 2, 3.9, 9, 10, 14, 20, 88, 88.7, 89, -87, -100, -104, -110]
        xs += xs.map { -$0 }
        var r = Rand(6)
        for scale: Float in [0.01, 1, 4, 12, 30] { xs += (0..<4000).map { _ in r.next() * scale } }
        return xs
    }

    /// Max relative error |got − libm| / |libm| over inputs whose libm value is ≥ 1e-30 in magnitude
    /// (absolute below that).
    static func maxRelError(_ f: FloatKernels.Unary, isa: FloatISA) -> (Double, Float) {
        var xs = inputs()
        let want = xs.map { FloatReference.unary(f, $0) }
        FloatKernels.$isaOverride.withValue(isa) { FloatKernels.apply(f, &xs, count: xs.count) }
        var worst = 0.0, at: Float = 0
        let inputs = inputs()
        for i in 0..<xs.count {
            let w = Double(want[i]), g = Double(xs[i])
            let e = abs(w) >= 1e-30 ? abs(g - w) / abs(w) : abs(g - w)
            if !(e <= worst) { worst = e; at = inputs[i] }
        }
        return (worst, at)
    }

    @Test(arguments: isas)
    func unaryMatchesLibm(isa: FloatISA) {
        // Stated bounds (measured maxima are printed by `float-bench --math`): ≤ 1e-6 relative.
        for f in [FloatKernels.Unary.exp, .erf, .tanh, .sigmoid, .gelu] {
            let (err, at) = Self.maxRelError(f, isa: isa)
            #expect(err <= 1e-6, "isa \(isa) \(f): max rel error \(err) at x = \(at)")
        }
    }

    @Test(arguments: isas)
    func softmaxAndLayerNormMatchReference(isa: FloatISA) {
        var r = Rand(7)
        for (rows, cols) in [(1, 1), (3, 17), (5, 197), (2, 1000)] {
            let x = r.array(rows * cols).map { $0 * 8 }
            var want = x, got = x
            FloatReference.softmaxRows(&want, rows: rows, cols: cols)
            FloatKernels.$isaOverride.withValue(isa) { FloatKernels.softmaxRows(&got, rows: rows, cols: cols) }
            for i in 0..<x.count { #expect(abs(got[i] - want[i]) <= 1e-6 + 1e-5 * abs(want[i]), "softmax \(isa) \(rows)x\(cols) at \(i)") }

            let gamma = r.array(cols), beta = r.array(cols)
            var lnWant = [Float](repeating: 0, count: x.count), lnGot = lnWant
            FloatReference.layerNormRows(x, rows: rows, cols: cols, gamma: gamma, beta: beta, epsilon: 1e-6, output: &lnWant)
            FloatKernels.$isaOverride.withValue(isa) {
                FloatKernels.layerNormRows(x, rows: rows, cols: cols, gamma: gamma, beta: beta, epsilon: 1e-6, output: &lnGot)
            }
            for i in 0..<x.count { #expect(abs(lnGot[i] - lnWant[i]) <= 1e-4, "layernorm \(isa) \(rows)x\(cols) at \(i)") }
        }
    }

    @Test(arguments: isas)
    func binaryBroadcasts(isa: FloatISA) {
        var r = Rand(8)
        let count = 3 * 5 * 7
        let a = r.array(count)
        for (bCount, bRepeat) in [(count, 1), (7, 1), (3, 35), (5, 7)] {
            let b = r.array(bCount).map { $0 + 2 }
            for op in [FloatKernels.Binary.add, .sub, .mul, .div] {
                var got = [Float](repeating: 0, count: count)
                FloatKernels.$isaOverride.withValue(isa) {
                    FloatKernels.binary(op, a: a, b: b, bCount: bCount, bRepeat: bRepeat, out: &got, count: count)
                }
                for i in 0..<count {
                    let bv = b[bRepeat > 1 ? (i / bRepeat) % bCount : i % bCount]
                    let want: Float = op == .add ? a[i] + bv : op == .sub ? a[i] - bv : op == .mul ? a[i] * bv : a[i] / bv
                    #expect(abs(got[i] - want) <= 1e-6 * max(1, abs(want)), "\(isa) \(op) b \(bCount)/\(bRepeat) at \(i)")
                }
            }
        }
    }
}

@Suite struct ThreadingTests {
    /// Every index runs exactly once, nested calls run inline, for both threading modes.
    @Test(arguments: [FloatKernels.Threading.spinningPool, .dispatch])
    func parallelRunsEveryIndexOnce(mode: FloatKernels.Threading) {
        let saved = FloatKernels.threading
        FloatKernels.threading = mode
        defer { FloatKernels.threading = saved }
        let outer = 37, inner = 5
        var hits = [Int](repeating: 0, count: outer * inner)
        hits.withUnsafeMutableBufferPointer { h in
            let base = h.baseAddress!
            for _ in 0..<20 {
                FloatKernels.parallel(outer, threads: 2) { i in
                    FloatKernels.parallel(inner) { j in base[i * inner + j] += 1 }
                }
            }
        }
        #expect(hits.allSatisfy { $0 == 20 }, "\(mode): \(hits.filter { $0 != 20 }.count) slots wrong")
    }
}
