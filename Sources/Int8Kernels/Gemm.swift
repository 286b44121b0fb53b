import CInt8Kernels

/// How the activation matrix A is stored.
public enum ActivationType: Sendable, Equatable {
    /// uint8 with zero point `z` (8-bit asymmetric; `−z·Σ_k W` is folded into the bias).
    case uint8(zeroPoint: Int32)
    /// int8 with zero point `z` (0 for the folded low-bit form of adalog.md §4.1).
    case int8(zeroPoint: Int32)

    var isSigned: Bool { if case .int8 = self { true } else { false } }
    /// The zero the kernel has to fold: kernels see int8 input as `a ^ 0x80` = a + 128.
    var kernelZero: Int32 {
        switch self {
        case let .uint8(z): z
        case let .int8(z): z &+ 128
        }
    }
}

/// Integer GEMM `A[M×K] · B[K×N] → int32` with a fused output stage.
public enum Int8GEMM {
    /// Computes `out[m][n] = stage(Σ_k (A[m][k] − z_A)·B[k][n] + bias[n])`.
    /// - a: M×K activations (row stride `lda` bytes); dst: M×N outputs (row stride `ldd` elements of the stage's type).
    /// - Threads split the output-column panels (or the rows when there are too few panels).
    /// - Weights with `columnOffsets` get the exact weight zero-point term `c[n]·Σ_k (A[m][k] − z_A)` (row sums computed
    ///   once per row of A into `rowSums`, M entries, or a temporary when nil).
    public static func run(a: UnsafePointer<UInt8>, lda: Int, m: Int, activation: ActivationType,
                           weights: PackedInt8Weights, bias: [Int32]? = nil, output: OutputStage,
                           dst: UnsafeMutableRawPointer, ldd: Int, isa: KernelISA = .best, threads: Int = 1,
                           rowSums: UnsafeMutablePointer<Int32>? = nil) throws(Int8KernelError) {
        try checkISA(isa)
        guard lda >= weights.k, ldd >= weights.n else { throw .invalidArgument("lda \(lda) < K \(weights.k) or ldd \(ldd) < N \(weights.n)") }
        if m == 0 { return }
        let params = try OutputParams(stage: output, n: weights.n, bias: bias, aZero: activation.kernelZero, colsum: weights.columnSums,
                                      rowCoef: weights.columnOffsets)
        if weights.columnOffsets != nil {
            let rs = rowSums ?? UnsafeMutablePointer<Int32>.allocate(capacity: m)
            defer { if rowSums == nil { rs.deallocate() } }
            computeRowSums(a: a, lda: lda, m: m, k: weights.k, activation: activation, dst: rs, isa: isa)
            runRaw(a: a, lda: lda, m: m, signed: activation.isSigned, weights: weights, params: params,
                   dst: dst, ldd: ldd, elementSize: output.elementSize, isa: isa, threads: threads, rowSums: UnsafePointer(rs))
            return
        }
        runRaw(a: a, lda: lda, m: m, signed: activation.isSigned, weights: weights, params: params,
               dst: dst, ldd: ldd, elementSize: output.elementSize, isa: isa, threads: threads)
    }

    /// `dst[i] = Σ_k (A[i][k] − z)` for the weight zero-point term (the activation's true zero point).
    public static func computeRowSums(a: UnsafePointer<UInt8>, lda: Int, m: Int, k: Int, activation: ActivationType,
                                      dst: UnsafeMutablePointer<Int32>, isa: KernelISA = .best) {
        let (signed, z): (Int32, Int32) = switch activation {
        case let .uint8(z): (0, z)
        case let .int8(z): (1, z)
        }
        i8k_row_sums(isa.rawValue, a, lda, m, k, signed, z, dst)
    }

    /// `rowSums`: Σ_k x̃ of each row of A (row 0 = A's first row), required when `params` carries a weight
    /// zero-point coefficient (`raw.row_coef`).
    static func runRaw(a: UnsafePointer<UInt8>, lda: Int, m: Int, signed: Bool, weights: PackedInt8Weights,
                       params: OutputParams, dst: UnsafeMutableRawPointer, ldd: Int, elementSize: Int,
                       isa: KernelISA, threads: Int, rowSums: UnsafePointer<Int32>? = nil) {
        precondition(params.raw.row_coef == nil || rowSums != nil, "weight zero-point term needs row sums")
        let panels = weights.geometry.panels
        let k = weights.k
        let seven: Int32 = weights.sevenBit ? 1 : 0
        nonisolated(unsafe) let a = a
        nonisolated(unsafe) let dst = dst
        weights.data.withUnsafeBufferPointer { wb in
            nonisolated(unsafe) let base = wb.baseAddress!
            withUnsafePointer(to: &params.raw) { op in
                nonisolated(unsafe) let op = op
                let work = workSplit(panels: panels.count, m: m, threads: threads)
                nonisolated(unsafe) let rowSums = rowSums
                parallelFor(work.count, threads: threads) { t in
                    let (pr, mr) = work[t]
                    // the row sums of this item's rows (the C side indexes them from the first row it is handed)
                    var local = op.pointee
                    if let rowSums { local.row_sum = rowSums + mr.lowerBound }
                    withUnsafePointer(to: &local) { lop in
                        for pi in pr {
                            let p = panels[pi]
                            i8k_gemm_u8_panel(isa.rawValue, a + mr.lowerBound * lda, lda, mr.count, signed ? 1 : 0,
                                              base + p.offset, k, p.width, p.nr, seven, lop, p.n0,
                                              dst + (mr.lowerBound * ldd + p.n0) * elementSize, ldd)
                        }
                    }
                }
            }
        }
    }

    /// int16 × int16 → int32 GEMM (AdaLog table values against widened int8 weights), same output stages.
    public static func runInt16(a: UnsafePointer<Int16>, lda: Int, m: Int, weights: PackedInt16Weights,
                                bias: [Int32]? = nil, output: OutputStage, dst: UnsafeMutableRawPointer, ldd: Int,
                                isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard lda >= weights.k, ldd >= weights.n else { throw .invalidArgument("lda \(lda) < K \(weights.k) or ldd \(ldd) < N \(weights.n)") }
        if m == 0 { return }
        let params = try OutputParams(stage: output, n: weights.n, bias: bias, aZero: 0, colsum: nil)
        let panels = weights.geometry.panels
        let k = weights.k
        let es = output.elementSize
        nonisolated(unsafe) let a = a
        nonisolated(unsafe) let dst = dst
        weights.data.withUnsafeBufferPointer { wb in
            nonisolated(unsafe) let base = wb.baseAddress!
            withUnsafePointer(to: &params.raw) { op in
                nonisolated(unsafe) let op = op
                let work = workSplit(panels: panels.count, m: m, threads: threads)
                parallelFor(work.count, threads: threads) { t in
                    let (pr, mr) = work[t]
                    for pi in pr {
                        let p = panels[pi]
                        i8k_gemm_s16_panel(isa.rawValue, a + mr.lowerBound * lda, lda, mr.count, base + p.offset, k,
                                           p.width, p.nr, op, p.n0, dst + (mr.lowerBound * ldd + p.n0) * es, ldd)
                    }
                }
            }
        }
    }

    /// Rows per M block: the A block (mc × K bytes) stays in L2 while every panel of B streams past it.
    static let mc = 256

    /// Work items (panel range, row range) in execution order: M blocks of `mc` rows outermost, then panels.
    /// With several threads the grid is cut into about 8 items per thread, which concurrentPerform hands out
    /// dynamically: a thread whose core is shared with another process simply takes fewer items.
    static func workSplit(panels: Int, m: Int, threads: Int) -> [(Range<Int>, Range<Int>)] {
        if threads <= 1 {
            return stride(from: 0, to: m, by: mc).map { (0..<panels, $0..<min(m, $0 + mc)) }
        }
        let target = 8 * threads
        let pChunks = min(panels, target)
        let rowTiles = (m + 7) / 8
        let rChunks = max(1, min(rowTiles, (target + pChunks - 1) / pChunks))
        var items: [(Range<Int>, Range<Int>)] = []
        for r in splitRange(rowTiles, parts: rChunks) {
            let rows = (r.lowerBound * 8)..<min(m, r.upperBound * 8)
            for p in splitRange(panels, parts: pChunks) { items.append((p, rows)) }
        }
        return items
    }
}
