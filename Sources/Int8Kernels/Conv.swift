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
    public func run(input: UnsafePointer<UInt8>, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage,
                    dst: UnsafeMutableRawPointer, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let g = geometry
        let cg = g.inC / g.groups, og = g.outC / g.groups
        let k = g.kernelH * g.kernelW * cg
        let rows = g.outH * g.outW
        let es = output.elementSize
        if let bias, bias.count != g.outC { throw .sizeMismatch(what: "conv bias", expected: g.outC, got: bias.count) }
        let padValue: UInt8 = switch activation {
        case let .uint8(z): UInt8(clamping: z)
        case let .int8(z): UInt8(bitPattern: Int8(clamping: z))
        }
        let direct = g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.groups == 1 &&
            g.padTop == 0 && g.padLeft == 0 && g.padBottom == 0 && g.padRight == 0
        for gi in 0..<g.groups {
            let stage = try groupStage(output, gi: gi, og: og)
            let rowTerm = packed[gi].columnOffsets != nil
            let params = try OutputParams(stage: stage, n: og, bias: bias.map { Array($0[(gi * og)..<((gi + 1) * og)]) },
                                          aZero: activation.kernelZero, colsum: packed[gi].columnSums, rowCoef: packed[gi].columnOffsets)
            let outBase = dst + gi * og * es
            if direct {
                if rowTerm {
                    let rs = UnsafeMutablePointer<Int32>.allocate(capacity: rows)
                    defer { rs.deallocate() }
                    Int8GEMM.computeRowSums(a: input, lda: g.inC, m: rows, k: g.inC, activation: activation, dst: rs, isa: isa)
                    Int8GEMM.runRaw(a: input, lda: g.inC, m: rows, signed: activation.isSigned, weights: packed[gi], params: params,
                                    dst: outBase, ldd: g.outC, elementSize: es, isa: isa, threads: threads, rowSums: UnsafePointer(rs))
                } else {
                    Int8GEMM.runRaw(a: input, lda: g.inC, m: rows, signed: activation.isSigned, weights: packed[gi], params: params,
                                    dst: outBase, ldd: g.outC, elementSize: es, isa: isa, threads: threads)
                }
                continue
            }
            // implicit GEMM: im2col a block of output pixels at a time (stays in L2), then all panels over it.
            let block = max(8, min(threads > 1 ? (rows + 4 * threads - 1) / (4 * threads) + 7 : rows, (192 * 1024 / max(k, 1))) / 8 * 8)
            let nBlocks = (rows + block - 1) / block
            nonisolated(unsafe) let input = input
            nonisolated(unsafe) let out = outBase
            let w = packed[gi]
            // one item per block, handed out dynamically (balanced even when a core is shared)
            let chunks = threads <= 1 ? [0..<nBlocks] : (0..<nBlocks).map { $0..<($0 + 1) }
            parallelFor(chunks.count, threads: threads) { t in
                let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: block * k)
                let rs = UnsafeMutablePointer<Int32>.allocate(capacity: rowTerm ? block : 1)
                defer { scratch.deallocate(); rs.deallocate() }
                for b in chunks[t] {
                    let r0 = b * block, r1 = min(rows, r0 + block)
                    i8k_im2col_nhwc(input, g.inH, g.inW, g.inC, gi * cg, cg, g.kernelH, g.kernelW, g.strideH, g.strideW,
                                    g.padTop, g.padLeft, g.dilationH, g.dilationW, g.outW, r0, r1, padValue, scratch, k)
                    // receptive-field sums over the patch rows: padding holds the zero point and adds 0
                    if rowTerm { Int8GEMM.computeRowSums(a: scratch, lda: k, m: r1 - r0, k: k, activation: activation, dst: rs, isa: isa) }
                    Int8GEMM.runRaw(a: scratch, lda: k, m: r1 - r0, signed: activation.isSigned, weights: w, params: params,
                                    dst: out + r0 * g.outC * es, ldd: g.outC, elementSize: es, isa: isa, threads: 1,
                                    rowSums: rowTerm ? UnsafePointer(rs) : nil)
                }
            }
        }
    }

    private func groupStage(_ s: OutputStage, gi: Int, og: Int) throws(Int8KernelError) -> OutputStage {
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

    public func run(input: UnsafePointer<UInt8>, activation: ActivationType, bias: [Int32]? = nil, output: OutputStage,
                    dst: UnsafeMutableRawPointer, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let g = geometry
        let params = try OutputParams(stage: output, n: g.outC, bias: bias, aZero: 0, colsum: nil)
        let (signed, z): (Int32, Int32) = switch activation {
        case let .uint8(z): (0, z)
        case let .int8(z): (1, z)
        }
        let es = output.elementSize
        let rowBytes = g.outW * g.outC * es
        nonisolated(unsafe) let input = input
        nonisolated(unsafe) let dst = dst
        if let quadWeights {
            runQuads(quadWeights, input: input, signed: signed, zero: z, params: params, dst: dst, isa: isa, threads: threads)
            return
        }
        let rows = threads <= 1 ? [0..<g.outH] : (0..<g.outH).map { $0..<($0 + 1) }
        weights.withUnsafeBufferPointer { wb in
            packedPairs.withUnsafeBufferPointer { pb in
                nonisolated(unsafe) let w = wb.baseAddress!
                nonisolated(unsafe) let pp = pb.baseAddress!
                withUnsafePointer(to: &params.raw) { op in
                    nonisolated(unsafe) let op = op
                    parallelFor(rows.count, threads: threads) { t in
                        for oy in rows[t] {
                            i8k_dwconv_row_packed(isa.rawValue, input, signed, z, g.inH, g.inW, g.inC, w, pp, g.kernelH, g.kernelW,
                                                  g.strideH, g.strideW, g.padTop, g.padLeft, g.dilationH, g.dilationW, g.outW, oy, op,
                                                  dst + oy * rowBytes)
                        }
                    }
                }
            }
        }
    }

    /// The quad path: work items of (output rows × channel groups of 16), each building the quads of the input rows it
    /// reads into a scratch buffer that stays in L2 (neighbouring row chunks rebuild the rows they share), then the conv.
    private func runQuads(_ q: (weights: [Int8], sums: [Int32], wide: [UInt8]), input: UnsafePointer<UInt8>, signed: Int32, zero z: Int32,
                          params: OutputParams, dst: UnsafeMutableRawPointer, isa: KernelISA, threads: Int) {
        let g = geometry
        let groups = (g.inC + 15) / 16
        let ps = 4 % g.strideW == 0 ? g.strideW : 1                       // build only the positions some output reads
        let nq = ((g.outW - 1) * g.strideW + 4 * ((g.kernelW + 3) / 4 - 1)) / ps + 1
        let inRows: @Sendable (Int) -> Int = { rows in (rows - 1) * g.strideH + (g.kernelH - 1) * g.dilationH + 1 }
        let bytes: @Sendable (Int, Int) -> Int = { rows, gs in inRows(rows) * gs * nq * 64 }
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
        let gChunks = (groups + gPer - 1) / gPer, rChunks = (g.outH + rPer - 1) / rPer
        let rows = rPer, gs = gPer
        nonisolated(unsafe) let input = input
        nonisolated(unsafe) let dst = dst
        q.weights.withUnsafeBufferPointer { wb in
            q.sums.withUnsafeBufferPointer { sb in
                q.wide.withUnsafeBufferPointer { fb in
                    nonisolated(unsafe) let w = wb.baseAddress!
                    nonisolated(unsafe) let s = sb.baseAddress!
                    nonisolated(unsafe) let f = fb.baseAddress!
                    withUnsafePointer(to: &params.raw) { op in
                        nonisolated(unsafe) let op = op
                        parallelFor(rChunks * gChunks, threads: threads) { t in
                            let oy0 = (t / gChunks) * rows, oy1 = min(g.outH, oy0 + rows)
                            let g0 = (t % gChunks) * gs, g1 = min(groups, g0 + gs)
                            let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes(oy1 - oy0, g1 - g0))
                            defer { scratch.deallocate() }
                            i8k_dwq_quads(isa.rawValue, input, signed, z, g.inH, g.inW, g.inC, oy0 * g.strideH - g.padTop,
                                          inRows(oy1 - oy0), -g.padLeft, ps, nq, g0, g1, scratch)
                            i8k_dwconv_quads(isa.rawValue, scratch, signed, z, g.inC, w, s, f, g.kernelH, g.kernelW, g.strideH,
                                             g.strideW, g.dilationH, ps, nq, g.outW, oy0, oy1, g0, g1, op, dst)
                        }
                    }
                }
            }
        }
    }
}
