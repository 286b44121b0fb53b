// The float compute API the executor calls. Hot loops are C microkernels in CFloatKernels
// (AVX-512 / AVX2 FMA with runtime dispatch, portable C fallback); Swift packs, tiles and threads.
// The plain-Swift definitions these must match live in `FloatReference` (KernelsReference.swift).
//
// Layout conventions: row-major, explicit leading dimensions; conv tensors are NCHW, one image at a time.

import CFloatKernels
import Dispatch
import Foundation
import Synchronization

/// An activation fused into the output stage of a GEMM or convolution.
public enum FloatActivation: Sendable, Equatable {
    case none
    case relu
    /// clamp(x, lower, upper); ReLU6 is `.clamp(0, 6)`.
    case clamp(Float, Float)

    @inline(__always) func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return max(x, 0)
        case .clamp(let lo, let hi): return min(max(x, lo), hi)
        }
    }

    /// (kind, lo, hi) for the C epilogue.
    var cEpilogue: (Int32, Float, Float) {
        switch self {
        case .none: return (Int32(CFK_ACT_NONE), 0, 0)
        case .relu: return (Int32(CFK_ACT_CLAMP), 0, .infinity)
        case .clamp(let lo, let hi): return (Int32(CFK_ACT_CLAMP), lo, hi)
        }
    }
}

/// The instruction set a kernel runs with. Chosen once from the CPU; tests can force a lower one.
public enum FloatISA: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// Plain C (and libm for exp/erf/tanh).
    case portable = 0
    /// AVX2 + FMA.
    case avx2 = 1
    /// AVX-512 F/BW/VL/DQ + FMA.
    case avx512 = 2

    /// Whether this CPU can run kernels for `self`.
    public var isSupported: Bool { cfk_isa_supported(rawValue) != 0 }
    /// The best ISA this CPU supports.
    public static let best: FloatISA = FloatISA(rawValue: cfk_best_isa()) ?? .portable
    /// Every ISA this CPU supports, best last.
    public static var supported: [FloatISA] { allCases.filter(\.isSupported) }

    public var description: String {
        switch self {
        case .portable: return "portable"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }
}

/// A constant right-hand matrix B (K × N), packed once into the layout the GEMM microkernel wants:
/// ⌈N/16⌉ panels of 16 columns, each K rows of 16 floats (zero-padded), 64-byte aligned.
public final class PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    /// Packed panels (see `cfk_pack_b`).
    let packed: UnsafeMutablePointer<Float>
    let packedCount: Int

    /// - Parameters:
    ///   - b: the matrix, row-major K × N (`transposed == false`) or N × K (`transposed == true`,
    ///     e.g. ONNX `Gemm` with `transB = 1`, or conv weights [O, C·kh·kw]).
    public init(_ b: UnsafePointer<Float>, k: Int, n: Int, transposed: Bool = false) {
        self.k = max(k, 0)
        self.n = max(n, 0)
        packedCount = max(Int(cfk_packed_b_size(self.k, self.n)), 16)
        packed = alignedFloats(packedCount)
        packed.initialize(repeating: 0, count: packedCount)
        if self.k > 0 && self.n > 0 {
            cfk_pack_b(b, transposed ? self.k : self.n, transposed ? 1 : 0, self.k, self.n, packed)
        }
    }

    deinit { packed.deallocate() }

    /// The matrix back in reference layout (row-major K × N); for tests and debugging.
    var storage: [Float] {
        var s = [Float](repeating: 0, count: k * n)
        for kk in 0..<k {
            for nn in 0..<n { s[kk * n + nn] = packed[((nn / 16) * k + kk) * 16 + nn % 16] }
        }
        return s
    }
}

/// Geometry of a 2-D convolution (NCHW, weights [O, C/groups, kh, kw]).
public struct Conv2DParams: Sendable, Equatable {
    public var inChannels: Int, outChannels: Int
    public var inHeight: Int, inWidth: Int
    public var kernelH: Int, kernelW: Int
    public var strideH: Int = 1, strideW: Int = 1
    public var padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0
    public var dilationH: Int = 1, dilationW: Int = 1
    public var groups: Int = 1

    public init(inChannels: Int, outChannels: Int, inHeight: Int, inWidth: Int, kernelH: Int, kernelW: Int,
                strideH: Int = 1, strideW: Int = 1, padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0,
                padRight: Int = 0, dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.inHeight = inHeight; self.inWidth = inWidth
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
        self.dilationH = dilationH; self.dilationW = dilationW
        self.groups = groups
    }

    public var outHeight: Int { (inHeight + padTop + padBottom - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    public var outWidth: Int { (inWidth + padLeft + padRight - dilationW * (kernelW - 1) - 1) / strideW + 1 }

    /// Depthwise (or channel-multiplier) convolution: one input channel per group.
    public var isDepthwise: Bool { groups == inChannels && groups > 1 && outChannels % groups == 0 }

    var cGeom: cfk_conv_geom {
        cfk_conv_geom(in_c: inChannels, in_h: inHeight, in_w: inWidth,
                      out_c: outChannels, out_h: outHeight, out_w: outWidth,
                      kh: kernelH, kw: kernelW, sh: strideH, sw: strideW, pt: padTop, pl: padLeft,
                      dh: dilationH, dw: dilationW, groups: groups)
    }
}

/// Convolution weights packed once for `FloatKernels.conv2d`.
/// Layout: the original [O, C/groups, kh, kw], i.e. per group a row-major [O/groups, K] matrix that the
/// microkernel reads as its A operand (the im2col input is packed on the fly as B).
public final class PackedConvWeights: @unchecked Sendable {
    public let params: Conv2DParams
    let storage: [Float]

    /// For a small output plane (where 16-column panels of pixels would waste work), the weights
    /// also packed as B (K × O) so the conv runs as pixels × O.
    let pixelsByChannels: PackedMatrix?
    /// For stride-1/2 k×k convs: weights re-laid tap-major [kh·kw][O][C/groups] for the implicit-GEMM
    /// AVX-512 path (no im2col; the shifted padded input is the B operand).
    let tapMajor: [Float]?

    public init(_ weights: UnsafePointer<Float>, params: Conv2DParams) {
        self.params = params
        let kdim = (params.inChannels / max(params.groups, 1)) * params.kernelH * params.kernelW
        let count = params.outChannels * kdim
        storage = Array(UnsafeBufferPointer(start: weights, count: max(count, 0)))
        let ohw = params.outHeight * params.outWidth
        let panelEfficiency = Double(ohw) / Double(max(roundUp(ohw, 16), 1))
        if params.groups == 1, ohw > 0, kdim > 0, params.outChannels >= 16, panelEfficiency < 0.9 {
            pixelsByChannels = PackedMatrix(weights, k: kdim, n: params.outChannels, transposed: true)
        } else {
            pixelsByChannels = nil
        }
        let taps = params.kernelH * params.kernelW
        if pixelsByChannels == nil, params.strideH <= 2, params.strideW <= 2, taps > 1, taps <= 64,
           !params.isDepthwise, FloatISA.best == .avx512, count > 0 {
            let cpg = params.inChannels / params.groups, o = params.outChannels
            var t = [Float](repeating: 0, count: count)
            for oc in 0..<o {
                for c in 0..<cpg {
                    for tap in 0..<taps { t[(tap * o + oc) * cpg + c] = weights[(oc * cpg + c) * taps + tap] }
                }
            }
            tapMajor = t
        } else {
            tapMajor = nil
        }
    }
}

public enum FloatKernels {
    // MARK: Settings

    /// How many threads kernels split work over (default: min(2, active cores)). Set once at start-up; reads 1
    /// while any `withSingleThreadedKernels` body runs.
    public static var threadCount: Int {
        get { singleThreadedUsers.load(ordering: .relaxed) > 0 ? 1 : configuredThreadCount }
        set { configuredThreadCount = newValue }
    }
    nonisolated(unsafe) static var configuredThreadCount: Int = min(2, max(1, ProcessInfo.processInfo.activeProcessorCount))
    static let singleThreadedUsers = Atomic<Int>(0)

    /// Runs `body` with every kernel single-threaded (for callers that run kernels on several threads of their own,
    /// e.g. layer searches side by side). Nests and overlaps safely: kernels are threaded again when the last
    /// such body returns. Results do not depend on the thread count.
    public static func withSingleThreadedKernels<R>(_ body: () throws -> R) rethrows -> R {
        singleThreadedUsers.wrappingAdd(1, ordering: .relaxed)
        defer { singleThreadedUsers.wrappingSubtract(1, ordering: .relaxed) }
        return try body()
    }

    /// Forces an ISA for the current task (tests, benchmarks): `FloatKernels.$isaOverride.withValue(.avx2) { … }`.
    /// An unsupported ISA falls back to the best supported one below it.
    @TaskLocal public static var isaOverride: FloatISA? = nil

    /// The ISA kernels called now will use.
    public static var activeISA: FloatISA {
        guard let forced = isaOverride else { return FloatISA.best }
        var isa = forced
        while !isa.isSupported, let lower = FloatISA(rawValue: isa.rawValue - 1) { isa = lower }
        return isa
    }

    // MARK: GEMM

    /// C[m × n] = A[m × k] · B + bias[n], then `activation`. A has row stride `lda`, C `ldc`.
    /// With `accumulate`, C += A · B (+ bias, activation applied to the sum).
    public static func gemm(m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix,
                            bias: UnsafePointer<Float>?, activation: FloatActivation = .none,
                            c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        let n = b.n, k = b.k
        guard m > 0, n > 0 else { return }
        let isa = activeISA.rawValue
        let (act, lo, hi) = activation.cEpilogue
        let bp = b.packed
        let acc: Int32 = accumulate ? 1 : 0
        let parts = splitGemm(m: m, n: n, k: k)
        parallel(parts.count, threads: threadCount) { t in
            let (r0, r1, c0, c1) = parts[t]
            cfk_sgemm_packed(isa, r1 - r0, c1 - c0, k, a + r0 * lda, lda, bp + (c0 / 16) * k * 16, k * 16,
                             c + r0 * ldc + c0, ldc, bias.map { $0 + c0 }, nil, act, lo, hi, acc)
        }
    }

    /// C[m × n] (+)= A[m × k] · B, where B is k × n (row stride `ldb`) or, with `bTransposed`,
    /// n × k (so C = A · Bᵀ, as in Q·Kᵀ). Both operands are activations (B is packed per call).
    public static func matmul(m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, lda: Int,
                              b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                              c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        guard m > 0, n > 0 else { return }
        let isa = activeISA.rawValue
        let packedCount = Int(cfk_packed_b_size(k, n))
        let packed = alignedFloats(max(packedCount, 16))
        defer { packed.deallocate() }
        if k > 0 { cfk_pack_b(b, ldb, bTransposed ? 1 : 0, k, n, packed) }
        let acc: Int32 = accumulate ? 1 : 0
        let parts = splitGemm(m: m, n: n, k: k)
        parallel(parts.count, threads: threadCount) { t in
            let (r0, r1, c0, c1) = parts[t]
            cfk_sgemm_packed(isa, r1 - r0, c1 - c0, k, a + r0 * lda, lda, packed + (c0 / 16) * k * 16, k * 16,
                             c + r0 * ldc + c0, ldc, nil, nil, Int32(CFK_ACT_NONE), 0, 0, acc)
        }
    }

    /// `batch` independent matmuls (e.g. all attention heads at once): for b in 0..<batch,
    /// C_b (+)= A_b · B_b (or A_b · B_bᵀ), with A_b = a + b·strideA, B_b = b + b·strideB, C_b = c + b·strideC.
    /// Threads split over the batch.
    public static func batchedMatmul(batch: Int, m: Int, n: Int, k: Int,
                                     a: UnsafePointer<Float>, lda: Int, strideA: Int,
                                     b: UnsafePointer<Float>, ldb: Int, strideB: Int, bTransposed: Bool,
                                     c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int,
                                     accumulate: Bool = false) {
        guard batch > 0, m > 0, n > 0 else { return }
        let threads = threadCount
        if batch == 1 {
            for i in 0..<batch {
                matmul(m: m, n: n, k: k, a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                       bTransposed: bTransposed, c: c + i * strideC, ldc: ldc, accumulate: accumulate)
            }
            return
        }
        let isa = activeISA.rawValue
        let packedCount = roundUp(max(Int(cfk_packed_b_size(k, n)), 16), 16)
        let acc: Int32 = accumulate ? 1 : 0
        // Pack every B (one task per batch), then run (batch, row block) tasks so 2 threads stay
        // balanced even for an odd number of heads.
        let packed = alignedFloats(packedCount * batch)
        defer { packed.deallocate() }
        if k > 0 {
            parallel(min(threads, batch)) { t in
                var i = t
                while i < batch {
                    cfk_pack_b(b + i * strideB, ldb, bTransposed ? 1 : 0, k, n, packed + i * packedCount)
                    i += min(threads, batch)
                }
            }
        }
        let rowBlocks = (batch % threads == 0 || m < 16) ? 1 : threads
        let tasks = batch * rowBlocks
        let chunks = min(threads, tasks)
        parallel(chunks) { t in
            var task = t
            while task < tasks {
                let i = task / rowBlocks, rb = task % rowBlocks
                let r0 = rb == 0 ? 0 : min(m, roundUp(m * rb / rowBlocks, 8))
                let r1 = rb == rowBlocks - 1 ? m : min(m, roundUp(m * (rb + 1) / rowBlocks, 8))
                if r1 > r0 {
                    cfk_sgemm_packed(isa, r1 - r0, n, k, a + i * strideA + r0 * lda, lda, packed + i * packedCount, k * 16,
                                     c + i * strideC + r0 * ldc, ldc, nil, nil, Int32(CFK_ACT_NONE), 0, 0, acc)
                }
                task += chunks
            }
        }
    }

    // MARK: Convolution

    /// One image: input [C, H, W] → output [O, outH, outW], plus bias[O], then `activation`.
    /// 1×1 stride-1 convs run as a GEMM on the input rows; other dense/grouped convs build the im2col
    /// operand block by block; depthwise convs use a direct vectorised kernel.
    public static func conv2d(input: UnsafePointer<Float>, weights: PackedConvWeights,
                              bias: UnsafePointer<Float>?, activation: FloatActivation = .none,
                              output: UnsafeMutablePointer<Float>) {
        let p = weights.params
        let oh = p.outHeight, ow = p.outWidth, ohw = oh * ow
        guard p.groups > 0, p.outChannels > 0, oh > 0, ow > 0 else { return }
        let isa = activeISA.rawValue
        let (act, lo, hi) = activation.cEpilogue
        var geom = p.cGeom
        weights.storage.withUnsafeBufferPointer { wbuf in
            guard let w = wbuf.baseAddress else { return }
            if p.isDepthwise {
                let chunks = (p.outChannels * ohw * p.kernelH * p.kernelW >= 1 << 16) ? min(threadCount, p.outChannels) : 1
                if isa == FloatISA.avx512.rawValue, p.kernelH * p.kernelW <= 64 {
                    // Zero-padded stride-phase planes, then 16 outputs per vector with no bounds checks.
                    let hq = (p.inHeight + p.padTop + p.padBottom + p.strideH - 1) / p.strideH
                    let wq = (p.inWidth + p.padLeft + p.padRight + p.strideW - 1) / p.strideW
                    let count = p.strideH * p.strideW * p.inChannels * hq * wq
                    let slack = (p.kernelW - 1) * p.dilationW + 16
                    let planes = BufferCache.shared.take(count + slack)
                    defer { BufferCache.shared.give(planes) }
                    (planes + count).initialize(repeating: 0, count: slack)
                    withUnsafePointer(to: &geom) { g in
                        let c = p.inChannels
                        parallel(min(chunks, c)) { t in
                            let n = min(chunks, c)
                            cfk_phase_input(input, g, p.padBottom, p.padRight, c * t / n, c * (t + 1) / n, planes)
                        }
                        parallel(chunks) { t in
                            let o0 = p.outChannels * t / chunks, o1 = p.outChannels * (t + 1) / chunks
                            _ = cfk_depthwise_phase(isa, planes, hq, wq, g, w, o0, o1, output, bias, act, lo, hi)
                        }
                    }
                    return
                }
                withUnsafePointer(to: &geom) { g in
                    parallel(chunks) { t in
                        let o0 = p.outChannels * t / chunks, o1 = p.outChannels * (t + 1) / chunks
                        cfk_conv_depthwise(isa, input, g, w, o0, o1, output, bias, act, lo, hi)
                    }
                }
                return
            }
            let og = p.outChannels / p.groups, cpg = p.inChannels / p.groups
            let kdim = cpg * p.kernelH * p.kernelW
            if let wt = weights.pixelsByChannels {
                // Small output plane: rows = pixels (im2row), columns = output channels, then transpose.
                let a = BufferCache.shared.take(ohw * kdim), tmp = BufferCache.shared.take(ohw * p.outChannels)
                defer { BufferCache.shared.give(a); BufferCache.shared.give(tmp) }
                withUnsafePointer(to: &geom) { g in
                    let chunks = ohw * kdim >= 1 << 15 ? min(threadCount, ohw) : 1
                    let taps = p.kernelH * p.kernelW
                    let hp = p.inHeight + p.padTop + p.padBottom, wp = p.inWidth + p.padLeft + p.padRight
                    if taps <= 64 {
                        // Gather from a zero-padded copy (no bounds checks per element).
                        let unpadded = p.padTop == 0 && p.padLeft == 0 && p.padBottom == 0 && p.padRight == 0
                        let padded = unpadded ? nil : BufferCache.shared.take(p.inChannels * hp * wp)
                        defer { if let padded { BufferCache.shared.give(padded) } }
                        if let padded {
                            parallel(chunks) { t in
                                let c0 = p.inChannels * t / chunks, c1 = p.inChannels * (t + 1) / chunks
                                cfk_pad_input(input, g, p.padBottom, p.padRight, c0, c1, padded)
                            }
                        }
                        let src = padded.map { UnsafePointer($0) } ?? input
                        parallel(chunks) { t in
                            let n0 = ohw * t / chunks, n1 = ohw * (t + 1) / chunks
                            cfk_im2row_padded(src, hp, wp, g, 0, n0, n1, a + n0 * kdim)
                        }
                    } else {
                        parallel(chunks) { t in
                            let n0 = ohw * t / chunks, n1 = ohw * (t + 1) / chunks
                            cfk_im2row(input, g, 0, n0, n1, a + n0 * kdim)
                        }
                    }
                }
                gemm(m: ohw, a: a, lda: kdim, b: wt, bias: bias, activation: activation, c: tmp, ldc: p.outChannels)
                let o = p.outChannels
                let chunks = ohw * o >= 1 << 15 ? min(threadCount, o) : 1
                parallel(chunks) { t in
                    let c0 = o * t / chunks, c1 = o * (t + 1) / chunks
                    cfk_transpose(tmp + c0, ohw, c1 - c0, o, output + c0 * ohw, ohw)
                }
                return
            }
            if isa == FloatISA.avx512.rawValue, let tapMajor = weights.tapMajor {
                conv2dImplicit(input: input, p: p, tapMajor: tapMajor, bias: bias, act: act, lo: lo, hi: hi,
                               output: output, geom: geom)
                return
            }
            // Work items: (group, o0, o1, n0, n1).
            var items: [(Int, Int, Int, Int, Int)] = []
            let threads = (og * ohw * kdim * p.groups >= 1 << 17) ? threadCount : 1
            if p.groups >= threads {
                for g in 0..<p.groups { items.append((g, 0, og, 0, ohw)) }
            } else if ohw >= 96 * threads {
                for t in 0..<threads {
                    let n0 = roundUp(ohw * t / threads, 48), n1 = t == threads - 1 ? ohw : roundUp(ohw * (t + 1) / threads, 48)
                    if n1 > n0 { for g in 0..<p.groups { items.append((g, 0, og, n0, n1)) } }
                }
            } else {
                for t in 0..<threads {
                    let o0 = roundUp(og * t / threads, 8), o1 = t == threads - 1 ? og : roundUp(og * (t + 1) / threads, 8)
                    if o1 > o0 { for g in 0..<p.groups { items.append((g, o0, min(o1, og), 0, ohw)) } }
                }
            }
            let chunks = min(threads, items.count)
            withUnsafePointer(to: &geom) { g in
                parallel(chunks) { t in
                    let scratch = ScratchPool.shared.take()
                    defer { ScratchPool.shared.give(scratch) }
                    var i = t
                    while i < items.count {
                        let (grp, o0, o1, n0, n1) = items[i]
                        let oBase = grp * og + o0
                        cfk_conv_gemm(isa, input, g, grp * cpg, w + oBase * kdim, o1 - o0, n0, n1,
                                      output + oBase * ohw, bias.map { $0 + oBase }, act, lo, hi, scratch)
                        i += chunks
                    }
                }
            }
        }
    }

    /// Stride-1/2 conv as an implicit GEMM on the zero-padded input split into stride phases (AVX-512).
    static func conv2dImplicit(input: UnsafePointer<Float>, p: Conv2DParams, tapMajor: [Float],
                               bias: UnsafePointer<Float>?, act: Int32, lo: Float, hi: Float,
                               output: UnsafeMutablePointer<Float>, geom: cfk_conv_geom) {
        var geom = geom
        // Phase planes (stride 1: just the padded input): [sh·sw][C][hq][wq].
        let hq = (p.inHeight + p.padTop + p.padBottom + p.strideH - 1) / p.strideH
        let wq = (p.inWidth + p.padLeft + p.padRight + p.strideW - 1) / p.strideW
        let oh = p.outHeight, ow = p.outWidth, grid = oh * wq
        let slack = (p.kernelW - 1) * p.dilationW + 16
        let planeCount = p.strideH * p.strideW * p.inChannels * hq * wq
        let padded = BufferCache.shared.take(planeCount + slack), t = BufferCache.shared.take(p.outChannels * grid)
        defer { BufferCache.shared.give(padded); BufferCache.shared.give(t) }
        (padded + planeCount).initialize(repeating: 0, count: slack)
        let threads = threadCount
        let og = p.outChannels / p.groups
        tapMajor.withUnsafeBufferPointer { wbuf in
            guard let wt = wbuf.baseAddress else { return }
            withUnsafePointer(to: &geom) { g in
                let c = p.inChannels
                let padChunks = planeCount >= 1 << 15 ? min(threads, c) : 1
                parallel(padChunks) { i in
                    cfk_phase_input(input, g, p.padBottom, p.padRight, c * i / padChunks, c * (i + 1) / padChunks, padded)
                }
                var items: [(Int, Int, Int, Int, Int)] = []
                let par = og * grid * p.groups >= 1 << 14 ? threads : 1
                if p.groups >= par {
                    for grp in 0..<p.groups { items.append((grp, 0, og, 0, grid)) }
                } else if grid >= 96 * par {
                    for i in 0..<par {
                        let n0 = i == 0 ? 0 : roundUp(grid * i / par, 48)
                        let n1 = i == par - 1 ? grid : roundUp(grid * (i + 1) / par, 48)
                        if n1 > n0 { for grp in 0..<p.groups { items.append((grp, 0, og, n0, min(n1, grid))) } }
                    }
                } else {
                    for i in 0..<par {
                        let o0 = i == 0 ? 0 : roundUp(og * i / par, 8)
                        let o1 = i == par - 1 ? og : roundUp(og * (i + 1) / par, 8)
                        if o1 > o0 { for grp in 0..<p.groups { items.append((grp, o0, min(o1, og), 0, grid)) } }
                    }
                }
                let chunks = min(par, items.count)
                parallel(chunks) { ci in
                    var i = ci
                    while i < items.count {
                        let (grp, o0, o1, n0, n1) = items[i]
                        _ = cfk_conv_implicit(FloatISA.avx512.rawValue, padded, hq, wq, g, wt, grp, o0, o1, n0, n1,
                                              t, grid, bias, act, lo, hi)
                        i += chunks
                    }
                }
                let o = p.outChannels
                let cChunks = o * grid >= 1 << 15 ? min(threads, o) : 1
                parallel(cChunks) { i in
                    cfk_compact_rows(t, wq, oh, ow, o * i / cChunks, o * (i + 1) / cChunks, output)
                }
            }
        }
    }

    // MARK: Row operations and element-wise math

    /// Softmax over each row of `rows × cols` (contiguous), in place.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        guard rows > 0, cols > 0 else { return }
        let isa = activeISA.rawValue
        let chunks = rows * cols >= 1 << 15 ? min(threadCount, rows) : 1
        parallel(chunks) { t in
            let r0 = rows * t / chunks, r1 = rows * (t + 1) / chunks
            cfk_softmax_rows(isa, x + r0 * cols, r1 - r0, cols)
        }
    }

    /// LayerNorm over each row of `rows × cols`: y = (x − mean) / sqrt(var + eps) · gamma + beta.
    public static func layerNormRows(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                     gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, epsilon: Float,
                                     output: UnsafeMutablePointer<Float>) {
        guard rows > 0, cols > 0 else { return }
        let isa = activeISA.rawValue
        let chunks = rows * cols >= 1 << 16 ? min(threadCount, rows) : 1
        parallel(chunks) { t in
            let r0 = rows * t / chunks, r1 = rows * (t + 1) / chunks
            cfk_layernorm_rows(isa, x + r0 * cols, r1 - r0, cols, gamma, beta, epsilon, output + r0 * cols)
        }
    }

    /// Element-wise unary functions over `count` contiguous values, in place.
    /// `gelu` is the exact erf form. Vectorised paths (AVX-512/AVX2) stay within 4e-7 relative of libm
    /// (double, rounded to float) over [-30, 30]: `float-bench --only math` prints the measured maxima.
    public enum Unary: Sendable { case exp, erf, tanh, sigmoid, gelu }

    public static func apply(_ f: Unary, _ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        let op: Int32
        switch f {
        case .exp: op = Int32(CFK_UNARY_EXP)
        case .erf: op = Int32(CFK_UNARY_ERF)
        case .tanh: op = Int32(CFK_UNARY_TANH)
        case .sigmoid: op = Int32(CFK_UNARY_SIGMOID)
        case .gelu: op = Int32(CFK_UNARY_GELU)
        }
        let isa = activeISA.rawValue
        let chunks = count >= 1 << 16 ? threadCount : 1
        parallel(chunks) { t in
            let i0 = roundUp(count * t / chunks, 16), i1 = t == chunks - 1 ? count : roundUp(count * (t + 1) / chunks, 16)
            if i1 > i0 { cfk_unary(isa, op, x + i0, i1 - i0) }
        }
    }

    /// Element-wise binary operations with a broadcast right operand.
    public enum Binary: Sendable { case add, sub, mul, div }

    /// out[i] = a[i] (op) b[j] over `count` values, where j = i % bCount (`bRepeat == 1`: b is a row
    /// repeated along the contiguous axis, or a full vector when bCount == count) or
    /// j = (i / bRepeat) % bCount (`bRepeat > 1`: one value per channel of an NCHW plane of bRepeat
    /// elements). `out` may alias `a`.
    public static func binary(_ f: Binary, a: UnsafePointer<Float>, b: UnsafePointer<Float>, bCount: Int,
                              bRepeat: Int = 1, out: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0, bCount > 0 else { return }
        let op: Int32
        switch f {
        case .add: op = Int32(CFK_BIN_ADD)
        case .sub: op = Int32(CFK_BIN_SUB)
        case .mul: op = Int32(CFK_BIN_MUL)
        case .div: op = Int32(CFK_BIN_DIV)
        }
        let isa = activeISA.rawValue
        // Chunks must start on a period of b so the C loop's indexing stays aligned.
        let period = bRepeat > 1 ? bRepeat * bCount : bCount
        let periods = (count + period - 1) / period
        let chunks = count >= 1 << 17 && periods >= 2 ? min(threadCount, periods) : 1
        parallel(chunks) { t in
            let i0 = min(count, periods * t / chunks * period)
            let i1 = t == chunks - 1 ? count : min(count, periods * (t + 1) / chunks * period)
            if i1 > i0 { cfk_binary(isa, op, a + i0, b, bCount, max(bRepeat, 1), out + i0, i1 - i0) }
        }
    }

    // MARK: Threading helpers

    /// Row/column split of an m × n GEMM over up to `threadCount` threads: the larger dimension is cut,
    /// columns at multiples of 48 (one AVX-512 tile), rows at multiples of 8.
    static func splitGemm(m: Int, n: Int, k: Int) -> [(Int, Int, Int, Int)] {
        if threadCount <= 1 || 2 * m * n * max(k, 1) < 1 << 18 { return [(0, m, 0, n)] }
        // Two parts per thread when there is enough work: a descheduled worker then costs at most
        // one part (the caller takes the parts nobody claimed).
        let threads = 2 * m * n * max(k, 1) >= 1 << 22 ? 2 * threadCount : threadCount
        var parts: [(Int, Int, Int, Int)] = []
        if n >= m && n >= 96 {
            var c0 = 0
            for t in 0..<threads {
                let c1 = t == threads - 1 ? n : min(n, roundUp(n * (t + 1) / threads, 48))
                if c1 > c0 { parts.append((0, m, c0, c1)) }
                c0 = c1
            }
        } else if m >= 16 {
            var r0 = 0
            for t in 0..<threads {
                let r1 = t == threads - 1 ? m : min(m, roundUp(m * (t + 1) / threads, 8))
                if r1 > r0 { parts.append((r0, r1, 0, n)) }
                r0 = r1
            }
        } else if n >= 32 {
            var c0 = 0
            for t in 0..<threads {
                let c1 = t == threads - 1 ? n : min(n, roundUp(n * (t + 1) / threads, 16))
                if c1 > c0 { parts.append((0, m, c0, c1)) }
                c0 = c1
            }
        } else {
            parts.append((0, m, 0, n))
        }
        return parts
    }

    /// How `parallel` runs chunks: the C spinning pool (default; no wake-up cost between back-to-back
    /// kernels) or `DispatchQueue.concurrentPerform`.
    public enum Threading: Sendable { case spinningPool, dispatch }
    nonisolated(unsafe) public static var threading: Threading = .spinningPool

    /// Runs body(0..<count) on up to `count` threads (inline when count == 1).
    static func parallel(_ count: Int, threads: Int? = nil, _ body: (Int) -> Void) {
        if count <= 1 { if count == 1 { body(0) }; return }
        let threads = min(threads ?? count, count)
        withoutActuallyEscaping(body) { escaping in
            switch threading {
            case .dispatch:
                let box = SendableBox(escaping)
                DispatchQueue.concurrentPerform(iterations: count) { i in box.value(i) }
            case .spinningPool:
                var fn = escaping
                withUnsafeMutablePointer(to: &fn) { ptr in
                    cfk_parallel_for(count, Int32(clamping: threads), { ctx, i in
                        ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i))
                    }, ptr)
                }
            }
        }
    }
}

@inline(__always) func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

/// 64-byte aligned uninitialised float storage.
func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
    return raw.bindMemory(to: Float.self, capacity: max(count, 1))
}

/// Lets `parallel` hand a non-escaping closure to Dispatch; the closure only touches memory the
/// caller owns for the duration of the call.
private struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Reusable float buffers of any size (im2row / transposed outputs), so convs don't allocate per call.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()
    private let lock = NSLock()
    private var free: [(UnsafeMutablePointer<Float>, Int)] = []

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        lock.lock(); defer { lock.unlock() }
        if let i = free.firstIndex(where: { $0.1 >= count }) {
            return free.remove(at: i).0
        }
        let p = alignedFloats(count)
        capacities[p] = count
        return p
    }

    func give(_ p: UnsafeMutablePointer<Float>) {
        lock.lock(); defer { lock.unlock() }
        free.append((p, capacities[p] ?? 0))
        if free.count > 8 {
            // drop the smallest
            if let i = free.indices.min(by: { free[$0].1 < free[$1].1 }) {
                let (q, _) = free.remove(at: i)
                capacities[q] = nil
                q.deallocate()
            }
        }
    }

    private var capacities: [UnsafeMutablePointer<Float>: Int] = [:]
}

/// Reusable conv scratch buffers (im2col blocks), so convolutions don't allocate per call.
final class ScratchPool: @unchecked Sendable {
    static let shared = ScratchPool()
    private let lock = NSLock()
    private var free: [UnsafeMutablePointer<Float>] = []
    private let size = Int(cfk_conv_scratch_size())

    func take() -> UnsafeMutablePointer<Float> {
        lock.lock(); defer { lock.unlock() }
        return free.popLast() ?? alignedFloats(size)
    }

    func give(_ p: UnsafeMutablePointer<Float>) {
        lock.lock(); defer { lock.unlock() }
        free.append(p)
    }
}
