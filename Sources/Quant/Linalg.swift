import FloatEngine
import CQuantKernels
import Synchronization

/// Thin wrappers over FloatKernels (row-major). All products of the searches go through these.
enum LA {
    /// Multiply-accumulates issued through FloatKernels (for cost reports; layers may be searched concurrently).
    static let macCounter = Atomic<Int>(0)
    static var macs: Int { macCounter.load(ordering: .relaxed) }
    static func count(_ n: Int) { macCounter.wrappingAdd(n, ordering: .relaxed) }
    /// Benchmark aid: count products without computing them (results are left unchanged).
    nonisolated(unsafe) static var dryRun = false

    static func transpose(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: a.count)
        a.withUnsafeBufferPointer { ap in
            t.withUnsafeMutableBufferPointer { tp in
                let bs = 32
                var r0 = 0
                while r0 < rows {
                    var c0 = 0
                    while c0 < cols {
                        for r in r0..<min(r0 + bs, rows) {
                            for c in c0..<min(c0 + bs, cols) { tp[c * rows + r] = ap[r * cols + c] }
                        }
                        c0 += bs
                    }
                    r0 += bs
                }
            }
        }
        return t
    }

    /// C[m×n] = A[m×k] · B (B packed).
    static func gemm(_ a: UnsafePointer<Float>, m: Int, _ b: PackedMatrix, _ c: UnsafeMutablePointer<Float>) {
        count(m * b.k * b.n)
        if dryRun { return }
        FloatKernels.gemm(m: m, a: a, lda: b.k, b: b, bias: nil, c: c, ldc: b.n)
    }

    /// As `gemm` without touching the counter (for calls made on worker threads; the caller counts).
    static func gemmUncounted(_ a: UnsafePointer<Float>, m: Int, _ b: PackedMatrix, _ c: UnsafeMutablePointer<Float>) {
        if dryRun { return }
        FloatKernels.gemm(m: m, a: a, lda: b.k, b: b, bias: nil, c: c, ldc: b.n)
    }

    static func gemm(_ a: [Float], m: Int, _ b: PackedMatrix) -> [Float] {
        var c = [Float](repeating: 0, count: m * b.n)
        a.withUnsafeBufferPointer { ap in
            c.withUnsafeMutableBufferPointer { cp in gemm(ap.baseAddress!, m: m, b, cp.baseAddress!) }
        }
        return c
    }

    /// C[m×n] = A[m×k] · B[k×n] (or · Bᵀ with B[n×k] when `bT`).
    static func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, m: Int, n: Int, k: Int, bT: Bool,
                       _ c: UnsafeMutablePointer<Float>) {
        count(m * n * k)
        if dryRun { return }
        FloatKernels.matmul(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: bT ? k : n, bTransposed: bT, c: c, ldc: n)
    }

    static func matmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, bT: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    matmul(ap.baseAddress!, bp.baseAddress!, m: m, n: n, k: k, bT: bT, cp.baseAddress!)
                }
            }
        }
        return c
    }

    /// AᵀA-style Gram: Aᵀ[k×n]·B[n×m]-shaped product Aᵀ·B for A[n×k], B[n×m].
    static func atb(_ a: [Float], _ b: [Float], n: Int, k: Int, m: Int) -> [Float] {
        let at = transpose(a, rows: n, cols: k)
        return matmul(at, b, m: k, n: m, k: n, bT: false)
    }

    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double { qk_dot(a, b, n) }
}

extension Array where Element == Float {
    /// Element-wise a − b.
    func minus(_ b: [Float]) -> [Float] {
        var r = self
        for i in 0..<r.count { r[i] -= b[i] }
        return r
    }
}

import Dispatch

/// Runs `body(lo, hi)` over [0, n) split in two halves on two threads when n is large (the machine
/// target has 2 cores); otherwise once on the caller's thread.
func parallelRanges(_ n: Int, minimum: Int = 1 << 15, _ body: (Int, Int) -> Void) {
    if n < minimum { body(0, n); return }
    let half = n / 2
    withoutActuallyEscaping(body) { esc in
        // The two halves touch disjoint output ranges; the box only carries the closure across threads.
        let box = UncheckedBox(esc)
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            if i == 0 { box.value(0, half) } else { box.value(half, n) }
        }
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// Σ a·b over n values, split over two threads.
func parallelDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
    var parts = [0.0, 0.0]
    parts.withUnsafeMutableBufferPointer { pp in
        let p = pp.baseAddress!
        parallelRanges(n) { lo, hi in p[lo == 0 ? 0 : 1] = qk_dot(a + lo, b + lo, hi - lo) }
    }
    return parts[0] + parts[1]
}

/// Σ (a + b)² over n values, split over two threads.
func parallelSumSqOfSum(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
    var parts = [0.0, 0.0]
    parts.withUnsafeMutableBufferPointer { pp in
        let p = pp.baseAddress!
        parallelRanges(n) { lo, hi in p[lo == 0 ? 0 : 1] = qk_sum_sq_of_sum(a + lo, b + lo, hi - lo) }
    }
    return parts[0] + parts[1]
}
