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

/// An int8 GEMM bound to its activation type, bias and output stage: the output parameters are built once, and `run`
/// allocates nothing (the row sums of the weight zero-point term go to the caller's workspace, `workspaceBytes(m:threads:)`).
public final class PreparedGEMM: @unchecked Sendable {
    public let weights: PackedInt8Weights
    public let activation: ActivationType
    /// Bytes per output element.
    public let elementSize: Int
    let params: OutputParams

    public init(weights: PackedInt8Weights, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage) throws(Int8KernelError) {
        params = try OutputParams(stage: output, n: weights.n, bias: bias, aZero: activation.kernelZero, colsum: weights.columnSums,
                                  rowCoef: weights.columnOffsets)
        self.weights = weights
        self.activation = activation
        elementSize = output.elementSize
    }

    /// Scratch bytes `run` needs for `m` rows on `threads` threads (when the weights have a zero-point term: the row sums
    /// of one work item per thread, each item summing its own rows).
    public func workspaceBytes(m: Int, threads: Int) -> Int {
        weights.columnOffsets == nil ? 0 : Int8GEMM.rowSumSlotBytes(panels: weights.geometry.panels.count, m: m, threads: threads) * max(1, threads) + 64
    }

    /// `out[m][n] = stage(Σ_k (A[m][k] − z_A)·B[k][n] + bias[n])`; a: M×K (row stride `lda` bytes), dst: M×N (row stride
    /// `ldd` elements of the stage's type). Threads split the output-column panels (or the rows when there are too few).
    public func run(a: UnsafePointer<UInt8>, lda: Int, m: Int, dst: UnsafeMutableRawPointer, ldd: Int,
                    workspace: UnsafeMutableRawPointer?, workspaceBytes: Int, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard lda >= weights.k, ldd >= weights.n else { throw .invalidArgument("lda \(lda) < K \(weights.k) or ldd \(ldd) < N \(weights.n)") }
        if m == 0 { return }
        guard weights.columnOffsets != nil else {
            Int8GEMM.runRaw(a: a, lda: lda, m: m, signed: activation.isSigned, weights: weights, params: params,
                            dst: dst, ldd: ldd, elementSize: elementSize, isa: isa, threads: threads)
            return
        }
        let need = self.workspaceBytes(m: m, threads: threads)
        guard let workspace, workspaceBytes >= need else { throw .sizeMismatch(what: "GEMM workspace bytes", expected: need, got: workspaceBytes) }
        Int8GEMM.runRaw(a: a, lda: lda, m: m, signed: activation.isSigned, weights: weights, params: params,
                        dst: dst, ldd: ldd, elementSize: elementSize, isa: isa, threads: threads,
                        itemRowSums: (alignedBase(workspace), activation))
    }
}

/// The int16 × int16 GEMM bound to its bias and output stage (parameters built once; `run` allocates nothing).
public final class PreparedInt16GEMM: @unchecked Sendable {
    public let weights: PackedInt16Weights
    /// Bytes per output element.
    public let elementSize: Int
    let params: OutputParams

    public init(weights: PackedInt16Weights, bias: [Int32]? = nil, output: OutputStage) throws(Int8KernelError) {
        params = try OutputParams(stage: output, n: weights.n, bias: bias, aZero: 0, colsum: nil)
        self.weights = weights
        elementSize = output.elementSize
    }

    public func run(a: UnsafePointer<Int16>, lda: Int, m: Int, dst: UnsafeMutableRawPointer, ldd: Int,
                    isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard lda >= weights.k, ldd >= weights.n else { throw .invalidArgument("lda \(lda) < K \(weights.k) or ldd \(ldd) < N \(weights.n)") }
        if m == 0 { return }
        let es = elementSize
        weights.data.withUnsafeBufferPointer { wb in
            withUnsafePointer(to: &params.raw) { op in
                let job = GemmS16Job(a: a, lda: lda, panels: weights.geometry.panels, base: wb.baseAddress!, k: weights.k, params: op,
                                     dst: dst, ldd: ldd, elementSize: es, isa: isa.rawValue,
                                     work: WorkSplit(panels: weights.geometry.panels.count, m: m, threads: threads))
                parallelJob(job.work.count, threads: threads, job)
            }
        }
    }
}

/// Integer GEMM `A[M×K] · B[K×N] → int32` with a fused output stage.
public enum Int8GEMM {
    /// Computes `out[m][n] = stage(Σ_k (A[m][k] − z_A)·B[k][n] + bias[n])` (a one-call `PreparedGEMM`).
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
        let g = try PreparedGEMM(weights: weights, activation: activation, bias: bias, output: output)
        if weights.columnOffsets != nil, let rowSums {
            computeRowSums(a: a, lda: lda, m: m, k: weights.k, activation: activation, dst: rowSums, isa: isa)
            runRaw(a: a, lda: lda, m: m, signed: activation.isSigned, weights: weights, params: g.params,
                   dst: dst, ldd: ldd, elementSize: output.elementSize, isa: isa, threads: threads, rowSums: UnsafePointer(rowSums))
            return
        }
        let bytes = g.workspaceBytes(m: m, threads: threads)
        let ws = bytes == 0 ? nil : UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { ws?.deallocate() }
        try g.run(a: a, lda: lda, m: m, dst: dst, ldd: ldd, workspace: ws, workspaceBytes: bytes, isa: isa, threads: threads)
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

    /// The weight zero-point term needs Σ_k x̃ of each row of A when `params` carries its coefficient (`raw.row_coef`):
    /// either given (`rowSums`, row 0 = A's first row) or computed by each work item for its own rows into its slot of
    /// `itemRowSums` (64-byte aligned, `rowSumSlotBytes` per slot; the activation gives the zero point).
    static func runRaw(a: UnsafePointer<UInt8>, lda: Int, m: Int, signed: Bool, weights: PackedInt8Weights,
                       params: OutputParams, dst: UnsafeMutableRawPointer, ldd: Int, elementSize: Int,
                       isa: KernelISA, threads: Int, rowSums: UnsafePointer<Int32>? = nil,
                       itemRowSums: (UnsafeMutableRawPointer, ActivationType)? = nil) {
        precondition(params.raw.row_coef == nil || rowSums != nil || itemRowSums != nil, "weight zero-point term needs row sums")
        let panels = weights.geometry.panels.count
        let own = params.raw.row_coef == nil ? nil : itemRowSums
        let (sumSigned, sumZero): (Int32, Int32) = switch own?.1 {
        case let .uint8(z)?: (0, z)
        case let .int8(z)?: (1, z)
        case nil: (0, 0)
        }
        let work = WorkSplit(panels: panels, m: m, threads: threads)
        let slotInts = rowSumSlotBytes(panels: panels, m: m, threads: threads) / 4
        if let own {
            // no slot holds row sums of this GEMM yet (GemmJob.run)
            let slots = own.0.assumingMemoryBound(to: Int32.self)
            for s in 0..<max(1, min(threads, work.count)) { slots[s * slotInts] = 0 }
        }
        weights.data.withUnsafeBufferPointer { wb in
            withUnsafePointer(to: &params.raw) { op in
                let job = GemmJob(a: a, lda: lda, signed: signed ? 1 : 0, panels: weights.geometry.panels, base: wb.baseAddress!,
                                  k: weights.k, seven: weights.sevenBit ? 1 : 0, params: op, rowSums: rowSums, dst: dst, ldd: ldd,
                                  elementSize: elementSize, isa: isa.rawValue, work: work,
                                  rowSumSlots: own.map { $0.0.assumingMemoryBound(to: Int32.self) },
                                  slotInts: slotInts, sumSigned: sumSigned, sumZero: sumZero)
                parallelJob(job.work.count, threads: threads, job)
            }
        }
    }

    /// Bytes of one slot's row sums (the rows of the largest work item) after a 64-byte header (which rows they are), a
    /// multiple of 64.
    static func rowSumSlotBytes(panels: Int, m: Int, threads: Int) -> Int { 64 + align64(WorkSplit(panels: panels, m: m, threads: threads).maxRows * 4) }

    /// int16 × int16 → int32 GEMM (AdaLog table values against widened int8 weights), same output stages (a one-call
    /// `PreparedInt16GEMM`).
    public static func runInt16(a: UnsafePointer<Int16>, lda: Int, m: Int, weights: PackedInt16Weights,
                                bias: [Int32]? = nil, output: OutputStage, dst: UnsafeMutableRawPointer, ldd: Int,
                                isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try PreparedInt16GEMM(weights: weights, bias: bias, output: output).run(a: a, lda: lda, m: m, dst: dst, ldd: ldd, isa: isa, threads: threads)
    }

    /// Rows per M block: the A block (mc × K bytes) stays in L2 while every panel of B streams past it.
    static let mc = 256
}

/// The GEMM's work items (panel range, row range) in execution order, computed per item (nothing allocated): M blocks
/// of `Int8GEMM.mc` rows outermost, then panels. With several threads the grid is cut into about 8 items per thread,
/// which the pool hands out dynamically: a thread whose core is shared with another process simply takes fewer items.
struct WorkSplit {
    let panels: Int, m: Int, threads: Int
    /// Row chunks (of 8-row tiles) and panel chunks of the multi-thread grid.
    let rChunks: Int, pChunks: Int
    let count: Int

    init(panels: Int, m: Int, threads: Int) {
        self.panels = panels; self.m = m; self.threads = threads
        if threads <= 1 {
            rChunks = 0; pChunks = 0
            count = (m + Int8GEMM.mc - 1) / Int8GEMM.mc
            return
        }
        let target = 8 * threads
        let rowTiles = (m + 7) / 8
        // many rows (the large feature maps): split rows only, so that each item runs every panel over its rows and the
        // weight zero-point row sums are computed once per row, not once per panel chunk
        let pc = rowTiles >= 8 * target ? 1 : min(panels, target)
        let rc = max(1, min(rowTiles, (target + pc - 1) / pc))
        pChunks = splitCount(panels, parts: pc)
        rChunks = splitCount(rowTiles, parts: rc)
        count = rChunks * pChunks
    }

    /// Rows of the largest item.
    var maxRows: Int {
        if threads <= 1 { return min(m, Int8GEMM.mc) }
        let rowTiles = (m + 7) / 8
        return min(m, (rowTiles + rChunks - 1) / rChunks * 8)
    }

    subscript(i: Int) -> (Range<Int>, Range<Int>) {
        if threads <= 1 {
            let r0 = i * Int8GEMM.mc
            return (0..<panels, r0..<min(m, r0 + Int8GEMM.mc))
        }
        let r = splitPart((m + 7) / 8, parts: rChunks, i / pChunks)
        return (splitPart(panels, parts: pChunks, i % pChunks), (r.lowerBound * 8)..<min(m, r.upperBound * 8))
    }
}

/// One int8 GEMM work item: the item's rows through its panels.
struct GemmJob: ParallelJob, @unchecked Sendable {
    let a: UnsafePointer<UInt8>, lda: Int, signed: Int32
    let panels: [(n0: Int, nr: Int, width: Int, offset: Int)]
    let base: UnsafePointer<Int8>, k: Int, seven: Int32
    let params: UnsafePointer<i8k_output>
    let rowSums: UnsafePointer<Int32>?
    let dst: UnsafeMutableRawPointer, ldd: Int, elementSize: Int
    let isa: Int32
    let work: WorkSplit
    /// When set: this item sums its own rows (Σ (x − sumZero), `sumSigned` input) into its slot's `slotInts` entries,
    /// unless the slot already holds them: its first entry is 1 + the first row of the sums it holds (0: none, as
    /// `runRaw` leaves it), so the items of one row block that a thread runs in a row sum them once.
    var rowSumSlots: UnsafeMutablePointer<Int32>? = nil
    var slotInts = 0, sumSigned: Int32 = 0, sumZero: Int32 = 0

    func run(_ item: Int, slot: Int) {
        let (pr, mr) = work[item]
        // the row sums of this item's rows (the C side indexes them from the first row it is handed)
        var local = params.pointee
        if let rowSumSlots {
            let header = rowSumSlots + slot * slotInts, rs = header + 16
            // items of one row block share the rows (and so their count)
            if header.pointee != Int32(truncatingIfNeeded: mr.lowerBound + 1) {
                i8k_row_sums(isa, a + mr.lowerBound * lda, lda, mr.count, k, sumSigned, sumZero, rs)
                header.pointee = Int32(truncatingIfNeeded: mr.lowerBound + 1)
            }
            local.row_sum = UnsafePointer(rs)
        } else if let rowSums {
            local.row_sum = rowSums + mr.lowerBound
        }
        withUnsafePointer(to: &local) { lop in
            for pi in pr {
                let p = panels[pi]
                i8k_gemm_u8_panel(isa, a + mr.lowerBound * lda, lda, mr.count, signed, base + p.offset, k, p.width, p.nr, seven, lop, p.n0,
                                  dst + (mr.lowerBound * ldd + p.n0) * elementSize, ldd)
            }
        }
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: GemmJob.self).pointee.run(i, slot: slot) } }
}

/// One int16 GEMM work item.
struct GemmS16Job: ParallelJob, @unchecked Sendable {
    let a: UnsafePointer<Int16>, lda: Int
    let panels: [(n0: Int, nr: Int, width: Int, offset: Int)]
    let base: UnsafePointer<Int16>, k: Int
    let params: UnsafePointer<i8k_output>
    let dst: UnsafeMutableRawPointer, ldd: Int, elementSize: Int
    let isa: Int32
    let work: WorkSplit

    func run(_ item: Int, slot: Int) {
        let (pr, mr) = work[item]
        for pi in pr {
            let p = panels[pi]
            i8k_gemm_s16_panel(isa, a + mr.lowerBound * lda, lda, mr.count, base + p.offset, k, p.width, p.nr, params, p.n0,
                               dst + (mr.lowerBound * ldd + p.n0) * elementSize, ldd)
        }
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: GemmS16Job.self).pointee.run(i, slot: slot) } }
}
