import CInt8Kernels

/// How an attention head codes its softmax probabilities before P·V.
public enum AttentionProbabilities: Sendable {
    /// AdaLog codes at scale 1 (adalog.md §4.4); P·V accumulates table values, one unit = s_v / (D·2^F).
    case adaLog(AdaLogTable)
    /// Uniform codes round(p / scale) in [0, 2^bits − 1] (the uniform baselines); one unit = scale · s_v.
    case uniform(scale: Float, bits: Int)
}

/// Multi-head attention on the integer engine (adalog.md §4.2–§4.4), prepared once per layer:
/// S = Q'·K'ᵀ exact in int32 (to float with the per-head scale s_q·s_k/√d), softmax in float, P coded
/// (AdaLog or uniform), then O = Σ_j L[code]·V' exact in int32 through a per-head output stage.
/// Q', K', V' are int16 stored values with the zero point removed (|v| ≤ 255), so 8-bit quantizers with any
/// zero point are exact. The fused C kernel (attention.c) runs one head's rows per work item; nothing is
/// allocated per call (the caller passes `workspaceBytes(threads:)` of scratch).
public final class AttentionKernel: @unchecked Sendable {
    public let tokens: Int
    public let heads: Int
    public let headDim: Int
    public let logitScales: [Float]
    public let probabilities: AttentionProbabilities
    /// Bytes per output element (all heads share one output type).
    public let elementSize: Int
    let params: [OutputParams]
    /// Query rows `0..<prefixRows` (the class token) write through `prefixParams` (their own output grid).
    public let prefixRows: Int
    let prefixParams: [OutputParams]
    let tau: [Float]
    let table: [Int16]
    let tableHigh: [Int16]
    let plan: i8k_adalog_plan
    /// Bytes of one head's packed K and V, and of one thread's row scratch (both multiples of 64).
    let kvBytes: Int
    let rowBytes: Int

    /// `prefixOutputs` (one per head, when `prefixRows` > 0) are the output stages of query rows `0..<prefixRows`.
    public init(tokens t: Int, heads: Int, headDim d: Int, logitScales: [Float], probabilities: AttentionProbabilities,
                outputs: [OutputStage], prefixRows: Int = 0, prefixOutputs: [OutputStage] = []) throws(Int8KernelError) {
        guard t > 0, heads > 0, d > 0 else { throw .invalidArgument("attention: tokens \(t), heads \(heads) and head size \(d) must be positive") }
        guard logitScales.count == heads else { throw .sizeMismatch(what: "logit scales", expected: heads, got: logitScales.count) }
        guard outputs.count == heads else { throw .sizeMismatch(what: "per-head output stages", expected: heads, got: outputs.count) }
        let es = outputs[0].elementSize
        guard outputs.allSatisfy({ $0.elementSize == es }) else { throw .invalidArgument("per-head output stages must share one output type") }
        guard prefixRows >= 0, prefixRows < t else { throw .invalidArgument("attention: prefix rows \(prefixRows) must be in 0..<\(t)") }
        if prefixRows > 0 {
            guard prefixOutputs.count == heads else { throw .sizeMismatch(what: "per-head prefix output stages", expected: heads, got: prefixOutputs.count) }
            guard prefixOutputs.allSatisfy({ $0.elementSize == es }) else { throw .invalidArgument("prefix output stages must have the output type of the others") }
        }
        switch probabilities {
        case let .adaLog(table):
            tau = table.thresholds(scale: 1)
            self.table = table.table
            tableHigh = table.tableHigh ?? []
        case let .uniform(scale, bits):
            guard (1...8).contains(bits), scale > 0, scale.isFinite else { throw .invalidArgument("uniform probabilities: bits \(bits) must be in 1...8 and scale \(scale) positive") }
            tau = []; table = []; tableHigh = []
        }
        var pl = i8k_adalog_plan()
        if !tau.isEmpty { i8k_adalog_prepare(tau, Int32(tau.count), &pl) }
        plan = pl
        var ps: [OutputParams] = []
        for o in outputs { ps.append(try OutputParams(stage: o, n: d, bias: nil, aZero: 0, colsum: nil)) }
        params = ps
        var pps: [OutputParams] = []
        if prefixRows > 0 { for o in prefixOutputs { pps.append(try OutputParams(stage: o, n: d, bias: nil, aZero: 0, colsum: nil)) } }
        prefixParams = pps
        self.prefixRows = prefixRows
        tokens = t; self.heads = heads; headDim = d; self.logitScales = logitScales; self.probabilities = probabilities
        elementSize = es
        kvBytes = i8k_attention_kv_bytes(t, d)
        rowBytes = align64(i8k_attention_row_workspace(t, d))
    }

    /// Work items: per head, its prefix rows (when there are any) as one item, then its other query rows in `parts`
    /// blocks of whole four-row groups (the AVX-512 kernel's step); item i is item i % perHead of head i / perHead.
    /// K and V are packed once per head before, so several blocks per thread cost little and even out the threads.
    func parts(threads: Int) -> Int { threads <= 1 ? 1 : min(2 * threads, (tokens - prefixRows + 3) / 4) }
    func itemsPerHead(threads: Int) -> Int { parts(threads: threads) + (prefixRows > 0 ? 1 : 0) }

    /// Scratch bytes `run` needs with `threads` threads: every head's packed K and V, and one row scratch per thread.
    public func workspaceBytes(threads: Int) -> Int { heads * kvBytes + max(1, threads) * rowBytes + 64 }

    /// `qkv` is `[T][3·H·d]` int16 (q, k, v blocks; head h at column h·d of each block); `dst` is `[T][H·d]` of the
    /// output type. `codesOut`, when given, receives each head's T×T probability codes (head-major).
    public func run(qkv: UnsafePointer<Int16>, dst: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer, workspaceBytes: Int,
                    isa: KernelISA = .best, threads: Int = 1, codesOut: UnsafeMutablePointer<UInt8>? = nil) throws(Int8KernelError) {
        try checkISA(isa)
        try checkWorkspace(workspaceBytes, threads: threads)
        let base = alignedBase(workspace), c = heads * headDim
        parallelJob(heads, threads: threads, PackKVJob(qkv: qkv, t: tokens, d: headDim, c: c, kv: base, kvBytes: kvBytes))
        runRows(q: qkv, ldq: 3 * c, dst: dst, base: base, isa: isa, threads: threads, codesOut: codesOut)
    }

    /// The same from the float q, k, v tensor `x` (`[T][3·H·d]`): quantized per group of d values (group g = block·H + h:
    /// `quantize` holds 3·H scales and bounds, as `Elementwise.quantizeInt16Groups`), Q into `q` (`[T][H·d]` int16) and
    /// K and V straight into their packed form, in one pass split over the threads. Same results as quantizing with
    /// `quantizeInt16Groups` and calling `run(qkv:)`.
    public func run(x: UnsafePointer<Float>, quantize: (scales: [Float], lo: [Int32], hi: [Int32]), q: UnsafeMutablePointer<Int16>,
                    dst: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer, workspaceBytes: Int,
                    isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        try checkWorkspace(workspaceBytes, threads: threads)
        let g = 3 * heads
        guard quantize.scales.count == g, quantize.lo.count == g, quantize.hi.count == g else {
            throw .sizeMismatch(what: "attention operand quantizers", expected: g, got: quantize.scales.count)
        }
        for i in 0..<g {
            guard quantize.scales[i] > 0, quantize.scales[i].isFinite else { throw .invalidArgument("quantize scale \(quantize.scales[i]) must be finite and > 0") }
            guard quantize.lo[i] <= quantize.hi[i], quantize.lo[i] >= -32768, quantize.hi[i] <= 32767 else {
                throw .invalidArgument("quantize bounds [\(quantize.lo[i]), \(quantize.hi[i])] outside int16")
            }
        }
        let base = alignedBase(workspace), c = heads * headDim
        // row blocks of even length: the two keys of a V pair land in one block (any split gives the same bytes)
        let parts = threads <= 1 ? 1 : min(threads, (tokens + 1) / 2)
        quantize.scales.withUnsafeBufferPointer { sb in quantize.lo.withUnsafeBufferPointer { lb in quantize.hi.withUnsafeBufferPointer { hb in
            parallelJob(parts, threads: threads, QuantizeKVJob(x: x, t: tokens, heads: heads, d: headDim, parts: parts, scales: sb.baseAddress!,
                                                               lo: lb.baseAddress!, hi: hb.baseAddress!, q: q, kv: base, isa: isa.rawValue))
        } } }
        runRows(q: q, ldq: c, dst: dst, base: base, isa: isa, threads: threads, codesOut: nil)
    }

    func checkWorkspace(_ bytes: Int, threads: Int) throws(Int8KernelError) {
        guard bytes >= workspaceBytes(threads: threads) else {
            throw .sizeMismatch(what: "attention workspace bytes", expected: workspaceBytes(threads: threads), got: bytes)
        }
    }

    /// The query rows of every head on the packed K and V at `base` (Q row i at q + i·ldq, head h at column h·d).
    func runRows(q: UnsafePointer<Int16>, ldq: Int, dst: UnsafeMutableRawPointer, base: UnsafeMutableRawPointer, isa: KernelISA, threads: Int,
                 codesOut: UnsafeMutablePointer<UInt8>?) {
        let t = tokens, d = headDim, c = heads * d, es = elementSize
        let parts = self.parts(threads: threads)
        tau.withUnsafeBufferPointer { tb in
            table.withUnsafeBufferPointer { lb in tableHigh.withUnsafeBufferPointer { hb in
                var probs = i8k_probs()
                switch probabilities {
                case let .adaLog(tbl):
                    probs.tau = tb.baseAddress; probs.nt = Int32(tbl.zeroCode); probs.table = lb.baseAddress
                    probs.table_high = tbl.tableHigh == nil ? nil : hb.baseAddress
                    probs.plan = plan
                case let .uniform(scale, bits):
                    probs.p_scale = scale; probs.p_qmax = Int32((1 << bits) - 1)
                }
                withUnsafePointer(to: &probs) { pp in
                    parallelJob(heads * itemsPerHead(threads: threads), threads: threads,
                                AttentionJob(kernel: self, q: q, ldq: ldq, t: t, d: d, c: c, es: es, parts: parts, probs: pp,
                                             dst: dst, base: base, codesOut: codesOut, isa: isa.rawValue))
                }
            } }
        }
    }
}

/// K and V of one head (from the int16 q, k, v tensor) into its packed area.
struct PackKVJob: ParallelJob, @unchecked Sendable {
    let qkv: UnsafePointer<Int16>, t: Int, d: Int, c: Int
    let kv: UnsafeMutableRawPointer, kvBytes: Int

    func run(_ h: Int, slot: Int) {
        i8k_attention_pack_kv(qkv + c + h * d, 3 * c, qkv + 2 * c + h * d, 3 * c, t, d, kv + h * kvBytes)
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: PackKVJob.self).pointee.run(i, slot: slot) } }
}

/// One block of rows of the float q, k, v tensor: Q into int16 rows, K and V into every head's packed area.
struct QuantizeKVJob: ParallelJob, @unchecked Sendable {
    let x: UnsafePointer<Float>, t: Int, heads: Int, d: Int, parts: Int
    let scales: UnsafePointer<Float>, lo: UnsafePointer<Int32>, hi: UnsafePointer<Int32>
    let q: UnsafeMutablePointer<Int16>, kv: UnsafeMutableRawPointer, isa: Int32

    func run(_ p: Int, slot: Int) {
        let pairs = splitPart((t + 1) / 2, parts: parts, p)
        let c = heads * d
        i8k_attention_quantize_rows(isa, x, 3 * c, t, heads, d, scales, lo, hi, 2 * pairs.lowerBound, min(t, 2 * pairs.upperBound), q, c, kv)
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: QuantizeKVJob.self).pointee.run(i, slot: slot) } }
}

/// One-call conveniences over `AttentionKernel` (tests, benchmarks): int8 operands are widened to int16.
public enum AttentionInt8 {
    /// One head. Q, K, V are T×d int8 (zero points folded, row strides ldq/ldk/ldv); dst is T×d of the
    /// output stage's type with row stride ldd. `codesOut`, when given, receives the T×T AdaLog codes.
    public static func head(q: UnsafePointer<Int8>, ldq: Int, k: UnsafePointer<Int8>, ldk: Int, v: UnsafePointer<Int8>, ldv: Int,
                            tokens t: Int, headDim d: Int, logitScale: Float, table: AdaLogTable, output: OutputStage,
                            dst: UnsafeMutableRawPointer, ldd: Int, isa: KernelISA = .best,
                            codesOut: UnsafeMutablePointer<UInt8>? = nil) throws(Int8KernelError) {
        guard t > 0, d > 0, ldq >= d, ldk >= d, ldv >= d, ldd >= d else { throw .invalidArgument("attention head: tokens \(t), headDim \(d) and strides must be positive and strides >= headDim") }
        var qkv = [Int16](repeating: 0, count: t * 3 * d)
        for j in 0..<t { for i in 0..<d {
            qkv[j * 3 * d + i] = Int16(q[j * ldq + i]); qkv[j * 3 * d + d + i] = Int16(k[j * ldk + i]); qkv[j * 3 * d + 2 * d + i] = Int16(v[j * ldv + i])
        } }
        let kern = try AttentionKernel(tokens: t, heads: 1, headDim: d, logitScales: [logitScale], probabilities: .adaLog(table), outputs: [output])
        let es = output.elementSize
        let out = t * d * es
        let wsBytes = kern.workspaceBytes(threads: 1)
        let ws = UnsafeMutableRawPointer.allocate(byteCount: wsBytes, alignment: 64)
        defer { ws.deallocate() }
        let op = UnsafeMutableRawPointer.allocate(byteCount: max(1, out), alignment: 64)
        defer { op.deallocate() }
        try kern.run(qkv: qkv, dst: op, workspace: ws, workspaceBytes: wsBytes, isa: isa, codesOut: codesOut)
        for i in 0..<t { (dst + i * ldd * es).copyMemory(from: op + i * d * es, byteCount: d * es) }
    }

    /// All heads of a fused int8 qkv tensor `[T][3·H·d]` (q, k, v blocks, head h at column h·d of each block) into
    /// `[T][H·d]`; per-head logit scales and per-head output stages.
    public static func multiHead(qkv: UnsafePointer<Int8>, tokens t: Int, heads: Int, headDim d: Int, logitScales: [Float],
                                 table: AdaLogTable, outputs: [OutputStage], dst: UnsafeMutableRawPointer,
                                 isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        let kern = try AttentionKernel(tokens: t, heads: heads, headDim: d, logitScales: logitScales, probabilities: .adaLog(table), outputs: outputs)
        let wide = (0..<(t * 3 * heads * d)).map { Int16(qkv[$0]) }
        let wsBytes = kern.workspaceBytes(threads: threads)
        let ws = UnsafeMutableRawPointer.allocate(byteCount: wsBytes, alignment: 64)
        defer { ws.deallocate() }
        try kern.run(qkv: wide, dst: dst, workspace: ws, workspaceBytes: wsBytes, isa: isa, threads: threads)
    }
}

/// fc2 with AdaLog-coded input (adalog.md §4.8): acc = Σ_k L[code[n][k]]·W'[o][k] (int16 × int8 → int32),
/// bias at the accumulator scale s_w·s/(D·2^F) (with the GELU shift already folded into it, §1.5).
public struct AdaLogLinear: Sendable {
    public let weights: PackedInt16Weights
    public let table: AdaLogTable

    /// `weights` is `[outC][K]` int8 (zero point folded).
    public init(weights: [Int8], inFeatures k: Int, outFeatures n: Int, table: AdaLogTable) throws(Int8KernelError) {
        try self.init(weights: weights.map { Int16($0) }, inFeatures: k, outFeatures: n, table: table)
    }

    /// `weights` is `[outC][K]` int16: W − z of 8-bit weights with any zero point (|W − z| ≤ 255) is exact.
    public init(weights: [Int16], inFeatures k: Int, outFeatures n: Int, table: AdaLogTable) throws(Int8KernelError) {
        guard table.tableHigh == nil else { throw .invalidArgument("AdaLog fc: the table (F = \(table.fractionBits)) does not fit int16") }
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

/// One head's block of query rows, on the head's packed K and V, with the running thread's row scratch.
struct AttentionJob: ParallelJob, @unchecked Sendable {
    let kernel: AttentionKernel
    let q: UnsafePointer<Int16>, ldq: Int, t: Int, d: Int, c: Int, es: Int, parts: Int
    let probs: UnsafePointer<i8k_probs>
    let dst: UnsafeMutableRawPointer, base: UnsafeMutableRawPointer
    let codesOut: UnsafeMutablePointer<UInt8>?
    let isa: Int32

    func run(_ wi: Int, slot: Int) {
        let pre = kernel.prefixRows, perHead = parts + (pre > 0 ? 1 : 0)
        let h = wi / perHead, j = wi % perHead
        let isPrefix = pre > 0 && j == 0
        let groups = splitPart((t - pre + 3) / 4, parts: parts, j - (pre > 0 ? 1 : 0))
        let rows = isPrefix ? 0..<pre : (4 * groups.lowerBound + pre)..<min(t, 4 * groups.upperBound + pre)
        let out = isPrefix ? kernel.prefixParams[h] : kernel.params[h]
        let work = base + kernel.heads * kernel.kvBytes + slot * kernel.rowBytes
        withUnsafePointer(to: &out.raw) { op in
            i8k_attention_rows_packed(isa, q + h * d, ldq, base + h * kernel.kvBytes, t, d, kernel.logitScales[h], probs,
                                      rows.lowerBound, rows.upperBound, op, dst + h * d * es, c, work, codesOut.map { $0 + h * t * t })
        }
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: AttentionJob.self).pointee.run(i, slot: slot) } }
}
