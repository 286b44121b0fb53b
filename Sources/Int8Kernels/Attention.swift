import CInt8Kernels

/// Per-head attention on the integer engine (adalog.md §4.2–§4.4):
/// S = Q'·K'ᵀ in int8 (dequantized to float logits with the per-head scale s_q·s_k/√d), softmax in float,
/// P coded with the AdaLog quantizer (scale 1), then O = Σ_j L[code]·V' in int32 from the int16 table,
/// requantized or dequantized per head (one accumulator unit = s_v / (D·2^F)).
public enum AttentionInt8 {
    /// One head. Q, K, V are T×d int8 (zero points folded, row strides ldq/ldk/ldv); dst is T×d of the
    /// output stage's type with row stride ldd. `codesOut`, when given, receives the T×T AdaLog codes.
    public static func head(q: UnsafePointer<Int8>, ldq: Int, k: UnsafePointer<Int8>, ldk: Int, v: UnsafePointer<Int8>, ldv: Int,
                            tokens t: Int, headDim d: Int, logitScale: Float, table: AdaLogTable, output: OutputStage,
                            dst: UnsafeMutableRawPointer, ldd: Int, isa: KernelISA = .best,
                            codesOut: UnsafeMutablePointer<UInt8>? = nil) throws(Int8KernelError) {
        try checkISA(isa)
        guard t > 0, d > 0, ldq >= d, ldk >= d, ldv >= d, ldd >= d else { throw .invalidArgument("attention head: tokens \(t), headDim \(d) and strides must be positive and strides >= headDim") }
        // Kᵀ as packed weights: B[kk = channel][n = token j] = K[j][kk]
        var kMat = [Int8](repeating: 0, count: t * d)
        var vMat = [Int8](repeating: 0, count: t * d)
        kMat.withUnsafeMutableBufferPointer { kb in
            vMat.withUnsafeMutableBufferPointer { vb in
                for j in 0..<t {
                    (kb.baseAddress! + j * d).update(from: k + j * ldk, count: d)
                    (vb.baseAddress! + j * d).update(from: v + j * ldv, count: d)
                }
            }
        }
        let kp = try PackedInt8Weights(weights: kMat, k: d, n: t, layout: .outputMajor)
        let vp = try PackedInt16Weights(weights: vMat, k: t, n: d, layout: .inputMajor)
        var logits = [Float](repeating: 0, count: t * t)
        let params = try OutputParams(stage: .dequantize(scales: [logitScale], floatBias: nil), n: t, bias: nil,
                                      aZero: ActivationType.int8(zeroPoint: 0).kernelZero, colsum: kp.columnSums)
        logits.withUnsafeMutableBytes { lb in
            Int8GEMM.runRaw(a: UnsafeRawPointer(q).assumingMemoryBound(to: UInt8.self), lda: ldq, m: t, signed: true, weights: kp,
                            params: params, dst: lb.baseAddress!, ldd: t, elementSize: 4, isa: isa, threads: 1)
        }
        let tau = table.thresholds(scale: 1)
        var codes = [UInt8](repeating: 0, count: t * t)
        var p = [Float](repeating: 0, count: t)
        var a16 = [Int16](repeating: 0, count: t * t)
        for i in 0..<t {
            logits.withUnsafeBufferPointer { lb in
                i8k_softmax_row(isa.rawValue, lb.baseAddress! + i * t, t, &p)
            }
            codes.withUnsafeMutableBufferPointer { cb in
                i8k_adalog_encode(isa.rawValue, p, t, tau, Int32(table.zeroCode), cb.baseAddress! + i * t)
            }
        }
        codes.withUnsafeBufferPointer { cb in
            i8k_codes_to_s16(isa.rawValue, cb.baseAddress!, t * t, table.table, Int32(table.zeroCode), &a16)
            if let codesOut { codesOut.update(from: cb.baseAddress!, count: t * t) }
        }
        let a16c = a16
        try Int8GEMM.runInt16(a: a16c, lda: t, m: t, weights: vp, output: output, dst: dst, ldd: ldd, isa: isa)
    }

    /// All heads of a fused qkv tensor `[T][3·H·d]` (q, k, v blocks, head h at column h·d of each block) into
    /// `[T][H·d]`; per-head logit scales and per-head output stages; heads run in parallel.
    public static func multiHead(qkv: UnsafePointer<Int8>, tokens t: Int, heads: Int, headDim d: Int, logitScales: [Float],
                                 table: AdaLogTable, outputs: [OutputStage], dst: UnsafeMutableRawPointer,
                                 isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        guard logitScales.count == heads else { throw .sizeMismatch(what: "logit scales", expected: heads, got: logitScales.count) }
        guard outputs.count == heads else { throw .sizeMismatch(what: "per-head output stages", expected: heads, got: outputs.count) }
        let c = heads * d
        let es = outputs[0].elementSize
        guard outputs.allSatisfy({ $0.elementSize == es }) else { throw .invalidArgument("per-head output stages must share one output type") }
        nonisolated(unsafe) let qkv = qkv
        nonisolated(unsafe) let dst = dst
        final class ErrBox: @unchecked Sendable { var error: Int8KernelError? }
        let box = ErrBox()
        let parts = threads <= 1 ? [0..<heads] : (0..<heads).map { $0..<($0 + 1) }
        parallelFor(parts.count, threads: threads) { pi in
            for h in parts[pi] {
                do {
                    try head(q: qkv + h * d, ldq: 3 * c, k: qkv + c + h * d, ldk: 3 * c, v: qkv + 2 * c + h * d, ldv: 3 * c,
                             tokens: t, headDim: d, logitScale: logitScales[h], table: table, output: outputs[h],
                             dst: dst + h * d * es, ldd: c, isa: isa)
                } catch let e as Int8KernelError { box.error = e } catch { box.error = .invalidArgument("\(error)") }
            }
        }
        if let e = box.error { throw e }
    }
}

/// fc2 with AdaLog-coded input (adalog.md §4.8): acc = Σ_k L[code[n][k]]·W'[o][k] (int16 × int8 → int32),
/// bias at the accumulator scale s_w·s/(D·2^F) (with the GELU shift already folded into it, §1.5).
public struct AdaLogLinear: Sendable {
    public let weights: PackedInt16Weights
    public let table: AdaLogTable

    /// `weights` is `[outC][K]` int8 (zero point folded).
    public init(weights: [Int8], inFeatures k: Int, outFeatures n: Int, table: AdaLogTable) throws(Int8KernelError) {
        // worst-case int32 overflow check (§4.8 choice of F)
        let maxW = weights.map { abs(Int($0)) }.max() ?? 0
        let maxL = table.table.map { abs(Int($0)) }.max() ?? 0
        guard k * maxW * maxL < Int(Int32.max) else {
            throw .invalidArgument("AdaLog fc: K·max|W|·max L = \(k * maxW * maxL) may overflow int32; use a smaller fractionBits (F = \(table.fractionBits))")
        }
        self.weights = try PackedInt16Weights(weights: weights, k: k, n: n, layout: .outputMajor)
        self.table = table
    }

    /// `codes` is M×K AdaLog codes (row stride ldc); dst M×N of the stage's type.
    public func run(codes: UnsafePointer<UInt8>, ldc: Int, m: Int, bias: [Int32]? = nil, output: OutputStage,
                    dst: UnsafeMutableRawPointer, ldd: Int, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let k = weights.k
        guard ldc >= k else { throw .invalidArgument("codes row stride \(ldc) < K \(k)") }
        var a16 = [Int16](repeating: 0, count: m * k)
        a16.withUnsafeMutableBufferPointer { ab in
            for i in 0..<m {
                i8k_codes_to_s16(isa.rawValue, codes + i * ldc, k, table.table, Int32(table.zeroCode), ab.baseAddress! + i * k)
            }
        }
        try Int8GEMM.runInt16(a: a16, lda: k, m: m, weights: weights, bias: bias, output: output, dst: dst, ldd: ldd,
                              isa: isa, threads: threads)
    }
}
