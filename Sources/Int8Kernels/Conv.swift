import CInt8Kernels

/// Geometry of a 2-D convolution. Tensors are NHWC (channels innermost): the GEMM then reads contiguous
/// channel runs, 1×1 stride-1 convs need no im2col at all, and depthwise kernels vectorise over channels.
public struct ConvGeometry: Sendable, Equatable {
    public var inH: Int, inW: Int, inC: Int, outC: Int
    public var kernelH: Int, kernelW: Int
    public var strideH: Int = 1, strideW: Int = 1
    public var padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0
    public var dilationH: Int = 1, dilationW: Int = 1
    public var groups: Int = 1

    public init(inH: Int, inW: Int, inC: Int, outC: Int, kernelH: Int, kernelW: Int, stride: Int = 1, pad: Int = 0,
                dilation: Int = 1, groups: Int = 1) {
        self.inH = inH; self.inW = inW; self.inC = inC; self.outC = outC
        self.kernelH = kernelH; self.kernelW = kernelW
        strideH = stride; strideW = stride
        padTop = pad; padLeft = pad; padBottom = pad; padRight = pad
        dilationH = dilation; dilationW = dilation
        self.groups = groups
    }

    public var outH: Int { (inH + padTop + padBottom - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    public var outW: Int { (inW + padLeft + padRight - dilationW * (kernelW - 1) - 1) / strideW + 1 }
    /// Multiply-accumulates of one image.
    public var macs: Int { outH * outW * outC * kernelH * kernelW * (inC / max(groups, 1)) }

    func validate() throws(Int8KernelError) {
        guard inH > 0, inW > 0, inC > 0, outC > 0, kernelH > 0, kernelW > 0, strideH > 0, strideW > 0,
              dilationH > 0, dilationW > 0, groups > 0, padTop >= 0, padLeft >= 0, padBottom >= 0, padRight >= 0
        else { throw .invalidArgument("conv geometry has a non-positive dimension: \(self)") }
        guard inC % groups == 0, outC % groups == 0 else { throw .invalidArgument("groups \(groups) must divide inC \(inC) and outC \(outC)") }
        guard outH > 0, outW > 0, inH + padTop + padBottom >= dilationH * (kernelH - 1) + 1,
              inW + padLeft + padRight >= dilationW * (kernelW - 1) + 1
        else { throw .invalidArgument("conv kernel \(kernelH)x\(kernelW) larger than the padded input \(inH)x\(inW)") }
    }
}

/// Dense (optionally grouped) int8 convolution as im2col + the packed GEMM, NHWC in and out.
/// Weights are `[outC][kernelH][kernelW][inC/groups]` int8 with the zero point folded (symmetric), or with per-output-channel
/// `channelOffsets` c[o] (real weight = stored + c[o]; 8-bit rows whose W − z leaves int8, stored as W − 128): the conv then
/// adds the exact weight zero-point term c[o]·Σ x̃ over each output pixel's receptive field (padding = zero point adds 0).
public struct Conv2DInt8: Sendable {
    public let geometry: ConvGeometry
    /// One packed matrix per group (K = kernelH·kernelW·inC/groups, N = outC/groups).
    public let packed: [PackedInt8Weights]

    public init(geometry g: ConvGeometry, weights: [Int8], channelOffsets: [Int32]? = nil) throws(Int8KernelError) {
        try g.validate()
        let cg = g.inC / g.groups, og = g.outC / g.groups
        let k = g.kernelH * g.kernelW * cg
        guard weights.count == g.outC * k else { throw .sizeMismatch(what: "conv weights [O][kh][kw][C/g]", expected: g.outC * k, got: weights.count) }
        if let c = channelOffsets, c.count != g.outC { throw .sizeMismatch(what: "conv channel offsets", expected: g.outC, got: c.count) }
        var p: [PackedInt8Weights] = []
        for gi in 0..<g.groups {
            p.append(try PackedInt8Weights(weights: Array(weights[(gi * og * k)..<((gi + 1) * og * k)]), k: k, n: og, layout: .outputMajor,
                                           columnOffsets: channelOffsets.map { Array($0[(gi * og)..<((gi + 1) * og)]) }))
        }
        geometry = g
        packed = p
    }

    /// Runs one image: `input` is inH×inW×inC, `output` outH×outW×outC (element type of the stage).
    /// Padding uses the input zero point, so it contributes exactly 0 after the zero-point fold.
    /// A one-call `PreparedConv2D` (allocates its parameters and workspace; the runtime prepares once).
    public func run(input: UnsafePointer<UInt8>, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage,
                    dst: UnsafeMutableRawPointer, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let p = try PreparedConv2D(self, activation: activation, bias: bias, output: output)
        let bytes = p.workspaceBytes(threads: threads)
        let ws = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        defer { ws.deallocate() }
        try p.run(input: input, dst: dst, workspace: ws, workspaceBytes: bytes, isa: isa, threads: threads)
    }

    /// The conv's output stage restricted to group `gi`'s columns.
    func groupStage(_ s: OutputStage, gi: Int, og: Int) throws(Int8KernelError) -> OutputStage {
        let n = geometry.outC
        func slice<T>(_ a: [T], _ what: String) throws(Int8KernelError) -> [T] {
            if a.count == 1 { return a }
            guard a.count == n else { throw .sizeMismatch(what: what, expected: n, got: a.count) }
            return Array(a[(gi * og)..<((gi + 1) * og)])
        }
        switch s {
        case .int32: return .int32
        case let .dequantize(scales, fb):
            return .dequantize(scales: try slice(scales, "dequantize scales"), floatBias: try fb.map { v throws(Int8KernelError) in try slice(v, "float bias") })
        case let .requantize(m, r, z, lo, hi, u):
            return .requantize(multipliers: try slice(m, "requantization multipliers"), rounding: r, zeroPoint: z, qmin: lo, qmax: hi, unsigned: u)
        }
    }
}

/// A dense conv bound to its activation type, bias and output stage: the per-group output parameters are built once,
/// and `run` allocates nothing (im2col blocks and row sums go to the caller's workspace, `workspaceBytes(threads:)`).
public final class PreparedConv2D: @unchecked Sendable {
    public let conv: Conv2DInt8
    public let activation: ActivationType
    /// Bytes per output element.
    public let elementSize: Int
    /// Output parameters of each group.
    let params: [OutputParams]
    let padValue: UInt8
    /// 1×1 stride-1 unpadded ungrouped: the GEMM reads the input directly.
    let direct: Bool
    /// Some group has a weight zero-point term (row sums needed).
    let rowTerm: Bool

    public init(_ conv: Conv2DInt8, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage) throws(Int8KernelError) {
        let g = conv.geometry
        let og = g.outC / g.groups
        if let bias, bias.count != g.outC { throw .sizeMismatch(what: "conv bias", expected: g.outC, got: bias.count) }
        var ps: [OutputParams] = []
        for gi in 0..<g.groups {
            ps.append(try OutputParams(stage: try conv.groupStage(output, gi: gi, og: og), n: og,
                                       bias: bias.map { Array($0[(gi * og)..<((gi + 1) * og)]) }, aZero: activation.kernelZero,
                                       colsum: conv.packed[gi].columnSums, rowCoef: conv.packed[gi].columnOffsets))
        }
        params = ps
        padValue = switch activation {
        case let .uint8(z): UInt8(clamping: z)
        case let .int8(z): UInt8(bitPattern: Int8(clamping: z))
        }
        direct = g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.groups == 1 &&
            g.padTop == 0 && g.padLeft == 0 && g.padBottom == 0 && g.padRight == 0
        rowTerm = conv.packed.contains { $0.columnOffsets != nil }
        self.conv = conv
        self.activation = activation
        elementSize = output.elementSize
    }

    var k: Int { let g = conv.geometry; return g.kernelH * g.kernelW * (g.inC / g.groups) }

    /// Output pixels per im2col block: the block (block × K bytes) stays in L2 while every panel streams past it; with
    /// several threads about 4 blocks per thread, handed out dynamically.
    func block(threads: Int) -> Int {
        let g = conv.geometry
        let rows = g.outH * g.outW
        return max(8, min(threads > 1 ? (rows + 4 * threads - 1) / (4 * threads) + 7 : rows, (192 * 1024 / max(k, 1))) / 8 * 8)
    }

    /// Bytes of one slot's scratch: an im2col block and its row sums.
    func slotBytes(block: Int) -> Int { align64(block * k) + (rowTerm ? align64(block * 4) : 0) }

    /// Scratch bytes `run` needs with `threads` threads.
    public func workspaceBytes(threads: Int) -> Int {
        let g = conv.geometry
        if direct {
            return rowTerm ? Int8GEMM.rowSumSlotBytes(panels: conv.packed[0].geometry.panels.count, m: g.outH * g.outW, threads: threads) * max(1, threads) + 64 : 0
        }
        return max(1, threads) * slotBytes(block: block(threads: threads)) + 64
    }

    /// Runs one image: `input` is inH×inW×inC, `dst` outH×outW×outC of the stage's type. Padding uses the input zero point,
    /// so it contributes exactly 0 after the zero-point fold.
    public func run(input: UnsafePointer<UInt8>, dst: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer?, workspaceBytes: Int,
                    isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        try checkWorkspace(workspace, workspaceBytes, need: self.workspaceBytes(threads: threads), what: "conv")
        let g = conv.geometry
        let cg = g.inC / g.groups, og = g.outC / g.groups
        let k = self.k
        let rows = g.outH * g.outW
        let es = elementSize
        let activation = self.activation
        if direct {
            let w = conv.packed[0]
            if w.columnOffsets != nil {
                // each work item sums its own rows (in parallel, while they are in cache)
                Int8GEMM.runRaw(a: input, lda: g.inC, m: rows, signed: activation.isSigned, weights: w, params: params[0],
                                dst: dst, ldd: g.outC, elementSize: es, isa: isa, threads: threads,
                                itemRowSums: (alignedBase(workspace!), activation))
            } else {
                Int8GEMM.runRaw(a: input, lda: g.inC, m: rows, signed: activation.isSigned, weights: w, params: params[0],
                                dst: dst, ldd: g.outC, elementSize: es, isa: isa, threads: threads)
            }
            return
        }
        // implicit GEMM: im2col a block of output pixels at a time (stays in L2), then all panels over it.
        let block = self.block(threads: threads)
        let nBlocks = (rows + block - 1) / block
        let slotBytes = self.slotBytes(block: block), colBytes = align64(block * k)
        let base = alignedBase(workspace!)
        for gi in 0..<g.groups {
            let w = conv.packed[gi]
            w.data.withUnsafeBufferPointer { wb in
                withUnsafePointer(to: &params[gi].raw) { op in
                    // one item per block (one item for all blocks on one thread), each on its slot's scratch
                    let job = Im2colConvJob(input: input, g: g, c0: gi * cg, k: k, padValue: padValue, activation: activation, block: block,
                                            nBlocks: nBlocks, perItem: threads <= 1 ? nBlocks : 1, rows: rows, base: base, slotBytes: slotBytes,
                                            colBytes: colBytes, rowTerm: w.columnOffsets != nil,
                                            gemm: GemmJob(a: input, lda: k, signed: activation.isSigned ? 1 : 0, panels: w.geometry.panels,
                                                          base: wb.baseAddress!, k: k, seven: w.sevenBit ? 1 : 0, params: op, rowSums: nil,
                                                          dst: dst + gi * og * es, ldd: g.outC, elementSize: es, isa: isa.rawValue,
                                                          work: WorkSplit(panels: w.geometry.panels.count, m: 0, threads: 1)))
                    parallelJob(threads <= 1 ? 1 : nBlocks, threads: threads, job)
                }
            }
        }
    }
}

/// Blocks of output pixels of one conv group: im2col into the slot's scratch, the row sums when the weights have a
/// zero-point term, then every panel over the block (the GEMM job's panels, params and output, on the block's rows).
struct Im2colConvJob: ParallelJob, @unchecked Sendable {
    let input: UnsafePointer<UInt8>
    let g: ConvGeometry
    let c0: Int, k: Int
    let padValue: UInt8
    let activation: ActivationType
    let block: Int, nBlocks: Int, perItem: Int, rows: Int
    let base: UnsafeMutableRawPointer, slotBytes: Int, colBytes: Int
    let rowTerm: Bool
    let gemm: GemmJob

    func run(_ item: Int, slot: Int) {
        let scratch = (base + slot * slotBytes).assumingMemoryBound(to: UInt8.self)
        let rs = (base + slot * slotBytes + colBytes).assumingMemoryBound(to: Int32.self)
        for b in (item * perItem)..<min(nBlocks, (item + 1) * perItem) {
            let r0 = b * block, r1 = min(rows, r0 + block)
            i8k_im2col_nhwc(input, g.inH, g.inW, g.inC, c0, g.inC / g.groups, g.kernelH, g.kernelW, g.strideH, g.strideW,
                            g.padTop, g.padLeft, g.dilationH, g.dilationW, g.outW, r0, r1, padValue, scratch, k)
            // receptive-field sums over the patch rows: padding holds the zero point and adds 0
            if rowTerm { Int8GEMM.computeRowSums(a: scratch, lda: k, m: r1 - r0, k: k, activation: activation, dst: rs, isa: KernelISA(rawValue: gemm.isa)!) }
            let sub = GemmJob(a: scratch, lda: k, signed: gemm.signed, panels: gemm.panels, base: gemm.base, k: k, seven: gemm.seven,
                              params: gemm.params, rowSums: rowTerm ? UnsafePointer(rs) : nil, dst: gemm.dst + r0 * gemm.ldd * gemm.elementSize,
                              ldd: gemm.ldd, elementSize: gemm.elementSize, isa: gemm.isa,
                              work: WorkSplit(panels: gemm.panels.count, m: r1 - r0, threads: 1))
            for i in 0..<sub.work.count { sub.run(i, slot: 0) }
        }
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: Im2colConvJob.self).pointee.run(i, slot: slot) } }
}

/// Depthwise int8 convolution (channel multiplier 1), direct kernel over NHWC; 3×3 and 5×5 are specialised.
/// Weights are `[kernelH][kernelW][C]` with the zero point folded, held as int16 in [−255, 255]: any 8-bit weight
/// minus its zero point fits, so 8-bit asymmetric channels whose W − z leaves int8 need no weight zero-point term.
public struct DepthwiseConv2DInt8: Sendable {
    public let geometry: ConvGeometry
    public let weights: [Int16]
    /// The same weights in tap pairs for the AVX-512 kernel (`i8k_dw_pack`).
    let packedPairs: [Int16]
    /// The same weights as horizontal tap quads (`i8k_dwq_pack`) with their per-channel sums and wide-group flags, when
    /// the quad path pays (measured on EfficientNet-Lite0, whose W − z weights need the two-part form): no dilation and
    /// stride 1 along x (at stride 2 the build reads every input pixel for a quarter of the outputs), and not a 3-wide
    /// kernel on at most 32 channels (where the tap-pair kernel runs without tails and is as fast). nil: the tap-pair kernel.
    let quadWeights: (weights: [Int8], sums: [Int32], wide: [UInt8])?

    public init(geometry g: ConvGeometry, weights: [Int8]) throws(Int8KernelError) {
        try self.init(geometry: g, weights16: weights.map { Int16($0) })
    }

    /// Weights `[kernelH][kernelW][C]` as int16 in [−255, 255] (e.g. uint8 codes minus per-channel zero points).
    public init(geometry g: ConvGeometry, weights16 weights: [Int16]) throws(Int8KernelError) {
        try g.validate()
        guard g.groups == g.inC, g.outC == g.inC else { throw .invalidArgument("depthwise conv needs groups == inC == outC (got groups \(g.groups), inC \(g.inC), outC \(g.outC))") }
        guard weights.count == g.kernelH * g.kernelW * g.inC else { throw .sizeMismatch(what: "depthwise weights [kh][kw][C]", expected: g.kernelH * g.kernelW * g.inC, got: weights.count) }
        guard weights.allSatisfy({ (-255...255).contains($0) }) else { throw .invalidArgument("depthwise weights must be in [-255, 255]") }
        geometry = g
        self.weights = weights
        let taps = g.kernelH * g.kernelW
        var p = [Int16](repeating: 0, count: i8k_dw_packed_size(taps, g.inC))
        i8k_dw_pack(weights, taps, g.inC, &p)
        packedPairs = p
        if g.dilationW == 1 && g.strideW == 1 && (g.kernelW >= 5 || g.inC > 32) {
            var q = [Int8](repeating: 0, count: i8k_dwq_weights_size(g.kernelH, g.kernelW, g.inC))
            var sums = [Int32](repeating: 0, count: (g.inC + 15) / 16 * 16)
            var wide = [UInt8](repeating: 0, count: (g.inC + 15) / 16)
            quadWeights = i8k_dwq_pack(weights, g.kernelH, g.kernelW, g.inC, &q, &sums, &wide) != 0 ? (q, sums, wide) : nil
        } else {
            quadWeights = nil
        }
    }

    /// Runs one image (a one-call `PreparedDepthwiseConv2D`: allocates its parameters and workspace).
    public func run(input: UnsafePointer<UInt8>, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage,
                    dst: UnsafeMutableRawPointer, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let p = try PreparedDepthwiseConv2D(self, activation: activation, bias: bias, output: output)
        let bytes = p.workspaceBytes(threads: threads)
        let ws = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        defer { ws.deallocate() }
        try p.run(input: input, dst: dst, workspace: ws, workspaceBytes: bytes, isa: isa, threads: threads)
    }
}

/// How the quad path cuts a depthwise conv into work items of (output rows × channel groups of 16), each building the
/// quads of the input rows it reads into a scratch buffer that stays in L2 (neighbouring row chunks rebuild the rows
/// they share), then running the conv.
struct DepthwiseQuadSplit {
    let groups: Int
    /// Spacing of the quad positions built (only the positions some output reads) and their count per row.
    let ps: Int, nq: Int
    /// Output rows and channel groups per item; item counts along each.
    let rPer: Int, gPer: Int, rChunks: Int, gChunks: Int
    /// Scratch bytes of the largest item.
    let itemBytes: Int

    static func inRows(_ g: ConvGeometry, _ rows: Int) -> Int { (rows - 1) * g.strideH + (g.kernelH - 1) * g.dilationH + 1 }

    init(_ g: ConvGeometry, threads: Int) {
        groups = (g.inC + 15) / 16
        ps = 4 % g.strideW == 0 ? g.strideW : 1
        nq = ((g.outW - 1) * g.strideW + 4 * ((g.kernelW + 3) / 4 - 1)) / ps + 1
        let nq = self.nq
        func bytes(_ rows: Int, _ gs: Int) -> Int { Self.inRows(g, rows) * gs * nq * 64 }
        // split groups before rows (a group split rebuilds nothing); then enough items for the threads to balance
        let budget = 128 * 1024
        var gPer = groups, rPer = g.outH
        while bytes(rPer, gPer) > budget && gPer > 1 { gPer = (gPer + 1) / 2 }
        while bytes(rPer, gPer) > budget && rPer > 1 { rPer = (rPer + 1) / 2 }
        if threads > 1 {
            while ((g.outH + rPer - 1) / rPer) * ((groups + gPer - 1) / gPer) < 4 * threads {
                if gPer > 1 { gPer = (gPer + 1) / 2 } else if rPer > 1 { rPer = (rPer + 1) / 2 } else { break }
            }
        }
        self.rPer = rPer; self.gPer = gPer
        gChunks = (groups + gPer - 1) / gPer
        rChunks = (g.outH + rPer - 1) / rPer
        itemBytes = bytes(rPer, gPer)
    }
}

/// A depthwise conv bound to its activation type, bias and output stage: the output parameters are built once, and
/// `run` allocates nothing (the quad path's scratch comes from the caller's workspace, `workspaceBytes(threads:)`).
public final class PreparedDepthwiseConv2D: @unchecked Sendable {
    public let conv: DepthwiseConv2DInt8
    public let activation: ActivationType
    /// Bytes per output element.
    public let elementSize: Int
    let params: OutputParams
    let signed: Int32, zero: Int32

    public init(_ conv: DepthwiseConv2DInt8, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage) throws(Int8KernelError) {
        params = try OutputParams(stage: output, n: conv.geometry.outC, bias: bias, aZero: 0, colsum: nil)
        (signed, zero) = switch activation {
        case let .uint8(z): (0, z)
        case let .int8(z): (1, z)
        }
        self.conv = conv
        self.activation = activation
        elementSize = output.elementSize
    }

    /// Scratch bytes `run` needs with `threads` threads.
    public func workspaceBytes(threads: Int) -> Int {
        guard conv.quadWeights != nil else { return 0 }
        return max(1, threads) * align64(DepthwiseQuadSplit(conv.geometry, threads: threads).itemBytes) + 64
    }

    public func run(input: UnsafePointer<UInt8>, dst: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer?, workspaceBytes: Int,
                    isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        try checkWorkspace(workspace, workspaceBytes, need: self.workspaceBytes(threads: threads), what: "depthwise")
        let g = conv.geometry
        let signed = self.signed, z = self.zero
        let rowBytes = g.outW * g.outC * elementSize
        nonisolated(unsafe) let input = input
        nonisolated(unsafe) let dst = dst
        if let q = conv.quadWeights {
            runQuads(q, input: input, dst: dst, workspace: alignedBase(workspace!), isa: isa, threads: threads)
            return
        }
        conv.weights.withUnsafeBufferPointer { wb in
            conv.packedPairs.withUnsafeBufferPointer { pb in
                withUnsafePointer(to: &params.raw) { op in
                    let job = DepthwisePairJob(input: input, signed: signed, zero: z, g: g, w: wb.baseAddress!, packed: pb.baseAddress!, params: op,
                                               dst: dst, rowBytes: rowBytes, perItem: threads <= 1 ? g.outH : 1, isa: isa.rawValue)
                    parallelJob(threads <= 1 ? 1 : g.outH, threads: threads, job)
                }
            }
        }
    }

    /// The quad path (`DepthwiseQuadSplit`), each item on its slot's part of the workspace.
    private func runQuads(_ q: (weights: [Int8], sums: [Int32], wide: [UInt8]), input: UnsafePointer<UInt8>, dst: UnsafeMutableRawPointer,
                          workspace: UnsafeMutableRawPointer, isa: KernelISA, threads: Int) {
        let g = conv.geometry
        let sp = DepthwiseQuadSplit(g, threads: threads)
        let slotBytes = align64(sp.itemBytes)
        q.weights.withUnsafeBufferPointer { wb in
            q.sums.withUnsafeBufferPointer { sb in
                q.wide.withUnsafeBufferPointer { fb in
                    withUnsafePointer(to: &params.raw) { op in
                        let job = DepthwiseQuadJob(input: input, signed: signed, zero: zero, g: g, sp: sp, w: wb.baseAddress!, sums: sb.baseAddress!,
                                                   wide: fb.baseAddress!, params: op, dst: dst, workspace: workspace, slotBytes: slotBytes,
                                                   isa: isa.rawValue)
                        parallelJob(sp.rChunks * sp.gChunks, threads: threads, job)
                    }
                }
            }
        }
    }
}

/// Output rows of the tap-pair depthwise kernel.
struct DepthwisePairJob: ParallelJob, @unchecked Sendable {
    let input: UnsafePointer<UInt8>, signed: Int32, zero: Int32
    let g: ConvGeometry
    let w: UnsafePointer<Int16>, packed: UnsafePointer<Int16>
    let params: UnsafePointer<i8k_output>
    let dst: UnsafeMutableRawPointer, rowBytes: Int, perItem: Int
    let isa: Int32

    func run(_ item: Int, slot: Int) {
        for oy in (item * perItem)..<min(g.outH, (item + 1) * perItem) {
            i8k_dwconv_row_packed(isa, input, signed, zero, g.inH, g.inW, g.inC, w, packed, g.kernelH, g.kernelW, g.strideH, g.strideW,
                                  g.padTop, g.padLeft, g.dilationH, g.dilationW, g.outW, oy, params, dst + oy * rowBytes)
        }
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: DepthwisePairJob.self).pointee.run(i, slot: slot) } }
}

/// One (row chunk × group chunk) item of the quad path: quads into the slot's scratch, then the conv.
struct DepthwiseQuadJob: ParallelJob, @unchecked Sendable {
    let input: UnsafePointer<UInt8>, signed: Int32, zero: Int32
    let g: ConvGeometry
    let sp: DepthwiseQuadSplit
    let w: UnsafePointer<Int8>, sums: UnsafePointer<Int32>, wide: UnsafePointer<UInt8>
    let params: UnsafePointer<i8k_output>
    let dst: UnsafeMutableRawPointer
    let workspace: UnsafeMutableRawPointer, slotBytes: Int
    let isa: Int32

    func run(_ t: Int, slot: Int) {
        let oy0 = (t / sp.gChunks) * sp.rPer, oy1 = min(g.outH, oy0 + sp.rPer)
        let g0 = (t % sp.gChunks) * sp.gPer, g1 = min(sp.groups, g0 + sp.gPer)
        let scratch = (workspace + slot * slotBytes).assumingMemoryBound(to: UInt8.self)
        i8k_dwq_quads(isa, input, signed, zero, g.inH, g.inW, g.inC, oy0 * g.strideH - g.padTop, DepthwiseQuadSplit.inRows(g, oy1 - oy0),
                      -g.padLeft, sp.ps, sp.nq, g0, g1, scratch)
        i8k_dwconv_quads(isa, scratch, signed, zero, g.inC, w, sums, wide, g.kernelH, g.kernelW, g.strideH, g.strideW, g.dilationH,
                         sp.ps, sp.nq, g.outW, oy0, oy1, g0, g1, params, dst)
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: DepthwiseQuadJob.self).pointee.run(i, slot: slot) } }
}

/// Throws unless `workspace` holds `need` bytes (any workspace, or none, when nothing is needed).
func checkWorkspace(_ workspace: UnsafeMutableRawPointer?, _ bytes: Int, need: Int, what: String) throws(Int8KernelError) {
    guard need == 0 || (workspace != nil && bytes >= need) else {
        throw .sizeMismatch(what: "\(what) workspace bytes", expected: need, got: workspace == nil ? 0 : bytes)
    }
}
