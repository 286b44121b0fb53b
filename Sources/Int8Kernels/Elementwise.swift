import CInt8Kernels

/// Element-wise and normalisation pieces between GEMMs, vectorised in C; every ISA path is bit-identical to
/// the portable one (pinned float operation order, no FMA).
public enum Elementwise {
    /// Quantize: q = clamp(rint(x / scale) + zero, qmin, qmax) with rint = round half to even; NaN → qmin.
    /// For the folded low-bit form (adalog.md §4.1) pass zero = 0 and qmin/qmax = [−z, 2^b − 1 − z].
    public static func quantize(_ x: UnsafePointer<Float>, count: Int, scale: Float, zeroPoint: Int32, qmin: Int32, qmax: Int32,
                                unsigned: Bool, dst: UnsafeMutableRawPointer, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard scale > 0, scale.isFinite else { throw .invalidArgument("quantize scale \(scale) must be finite and > 0") }
        let lo: Int32 = unsigned ? 0 : -128, hi: Int32 = unsigned ? 255 : 127
        guard qmin <= qmax, qmin >= lo, qmax <= hi else { throw .invalidArgument("quantize bounds [\(qmin), \(qmax)] outside the output type") }
        let job = ElementwiseJob(kind: .quantize, a: UnsafeRawPointer(x), b: nil, dst: dst, count: count, scale: scale, zero: zeroPoint,
                                 qmin: qmin, qmax: qmax, unsigned: unsigned ? 1 : 0, isa: isa.rawValue)
        job.perform(threads: threads)
    }

    /// `clamp(round_half_even(x / scale), qmin, qmax)` into int16 (NaN → qmin): stored values with the zero point
    /// removed, for the attention operands (`AttentionKernel`).
    public static func quantizeInt16(_ x: UnsafePointer<Float>, count: Int, scale: Float, qmin: Int32, qmax: Int32,
                                     dst: UnsafeMutablePointer<Int16>, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        guard scale > 0, scale.isFinite else { throw .invalidArgument("quantize scale \(scale) must be finite and > 0") }
        guard qmin <= qmax, qmin >= -32768, qmax <= 32767 else { throw .invalidArgument("quantize bounds [\(qmin), \(qmax)] outside int16") }
        i8k_quantize_s16(isa.rawValue, x, count, scale, qmin, qmax, dst)
    }

    /// `quantizeInt16` over `rows` rows of `scales.count` groups of `groupSize` values, group g with its own
    /// scale and bounds (per-head Q, K, V of a fused qkv row); rows split over `threads`.
    public static func quantizeInt16Groups(_ x: UnsafePointer<Float>, rows: Int, groupSize: Int, scales: [Float], qmin: [Int32], qmax: [Int32],
                                           dst: UnsafeMutablePointer<Int16>, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let g = scales.count
        guard g > 0, qmin.count == g, qmax.count == g, groupSize > 0, rows >= 0 else { throw .invalidArgument("quantize groups: \(g) scales, \(qmin.count)/\(qmax.count) bounds, group size \(groupSize)") }
        for i in 0..<g {
            guard scales[i] > 0, scales[i].isFinite else { throw .invalidArgument("quantize scale \(scales[i]) must be finite and > 0") }
            guard qmin[i] <= qmax[i], qmin[i] >= -32768, qmax[i] <= 32767 else { throw .invalidArgument("quantize bounds [\(qmin[i]), \(qmax[i])] outside int16") }
        }
        let parts = splitCount(rows, parts: threads)
        let per = g * groupSize
        scales.withUnsafeBufferPointer { sb in qmin.withUnsafeBufferPointer { lb in qmax.withUnsafeBufferPointer { hb in
            parallelJob(parts, threads: threads, QuantizeGroupsJob(x: x, rows: rows, parts: parts, per: per, groups: g, groupSize: groupSize,
                                                                   scales: sb.baseAddress!, lo: lb.baseAddress!, hi: hb.baseAddress!, dst: dst,
                                                                   isa: isa.rawValue))
        } } }
    }

    /// Dequantize: x = Float(q − zero) · scale.
    public static func dequantize(_ q: UnsafeRawPointer, count: Int, unsigned: Bool, scale: Float, zeroPoint: Int32,
                                  dst: UnsafeMutablePointer<Float>, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let job = ElementwiseJob(kind: .dequantize, a: q, b: nil, dst: UnsafeMutableRawPointer(dst), count: count, scale: scale, zero: zeroPoint,
                                 qmin: 0, qmax: 0, unsigned: unsigned ? 1 : 0, isa: isa.rawValue)
        job.perform(threads: threads)
    }

    /// Residual add y = a + b (float residual stream, adalog.md §4.5).
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int, dst: UnsafeMutablePointer<Float>,
                           isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        let job = ElementwiseJob(kind: .add, a: UnsafeRawPointer(a), b: b, dst: UnsafeMutableRawPointer(dst), count: count, scale: 0, zero: 0,
                                 qmin: 0, qmax: 0, unsigned: 0, isa: isa.rawValue)
        job.perform(threads: threads)
    }

    /// GELU (erf form; erf by the pinned A&S 7.1.28 rational, |error| < 3e-7).
    public static func gelu(_ x: UnsafePointer<Float>, count: Int, dst: UnsafeMutablePointer<Float>, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        i8k_gelu(isa.rawValue, x, count, dst)
    }

    /// LayerNorm of `rows` rows of C floats, then quantize (fused, adalog.md §4.6) into rows of `ldd` bytes.
    public static func layerNormQuantize(_ x: UnsafePointer<Float>, rows: Int, channels c: Int, gamma: [Float], beta: [Float],
                                         epsilon: Float, scale: Float, zeroPoint: Int32, qmin: Int32, qmax: Int32, unsigned: Bool,
                                         dst: UnsafeMutableRawPointer, ldd: Int, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard gamma.count == c else { throw .sizeMismatch(what: "LayerNorm gamma", expected: c, got: gamma.count) }
        guard beta.count == c else { throw .sizeMismatch(what: "LayerNorm beta", expected: c, got: beta.count) }
        guard ldd >= c else { throw .invalidArgument("LayerNorm output stride \(ldd) < channels \(c)") }
        guard scale > 0, scale.isFinite else { throw .invalidArgument("quantize scale \(scale) must be finite and > 0") }
        // Rows are independent: one block of rows per thread when there is enough work to pay for the hand-off.
        let parts = rows * c >= 16_384 ? threads : 1
        let blocks = splitCount(rows, parts: parts)
        gamma.withUnsafeBufferPointer { gb in beta.withUnsafeBufferPointer { bb in
            parallelJob(blocks, threads: parts, LayerNormJob(x: x, rows: rows, blocks: blocks, c: c, gamma: gb.baseAddress!, beta: bb.baseAddress!,
                                                             epsilon: epsilon, scale: scale, zeroPoint: zeroPoint, qmin: qmin, qmax: qmax,
                                                             unsigned: unsigned ? 1 : 0, dst: dst, ldd: ldd, isa: isa.rawValue))
        } }
    }

    /// Softmax of one row (pinned exp polynomial, 16-lane summation order).
    public static func softmax(_ x: UnsafePointer<Float>, count: Int, dst: UnsafeMutablePointer<Float>, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        i8k_softmax_row(isa.rawValue, x, count, dst)
    }

    /// AdaLog codes by threshold comparison (adalog.md §4.3): code = #{k : u < τ_k}; 2^b = zero code; NaN → zero code.
    public static func adalogEncode(_ u: UnsafePointer<Float>, count: Int, thresholds: [Float], codes: UnsafeMutablePointer<UInt8>,
                                    isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        // 256 thresholds (8-bit AdaLog) only with a last threshold of −∞: code 255 then doubles as the zero state.
        guard !thresholds.isEmpty, thresholds.count <= 255 || (thresholds.count == 256 && thresholds[255] == -.infinity) else {
            throw .invalidArgument("AdaLog thresholds: \(thresholds.count) entries, expected 1...255, or 256 ending in −∞ (codes are bytes)")
        }
        i8k_adalog_encode(isa.rawValue, u, count, thresholds, Int32(thresholds.count), codes)
    }

    /// GELU, then + `shift`, then AdaLog codes (the post-GELU Shift-AdaLog activation feeding fc2, adalog.md §1.5),
    /// in one pass (i8k_gelu_adalog_encode), in chunks split over `threads`. Same bytes as the three steps. With
    /// `table` (2^b + 1 entries, as `AdaLogTable.table`) and `values`, also the codes' table values, as
    /// `adalogDecode` gives them.
    public static func geluAdaLogEncode(_ x: UnsafePointer<Float>, count: Int, shift: Float, encoder: AdaLogEncoder, codes: UnsafeMutablePointer<UInt8>,
                                        table: [Int16]? = nil, values: UnsafeMutablePointer<Int16>? = nil,
                                        isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard (table == nil) == (values == nil), (table?.count ?? 2) >= 2 else { throw .invalidArgument("GELU table values need both a table (2 or more entries) and a destination") }
        let chunk = 4096
        let chunks = (count + chunk - 1) / chunk
        encoder.thresholds.withUnsafeBufferPointer { tb in
            withUnsafePointer(to: encoder.plan) { pp in
                var job = GeluAdaLogJob(x: x, count: count, chunk: chunk, shift: shift, tau: tb.baseAddress!, nt: Int32(tb.count), plan: pp,
                                        codes: codes, table: nil, tableTop: 0, values: values, isa: isa.rawValue)
                guard let table else { parallelJob(chunks, threads: threads, job); return }
                table.withUnsafeBufferPointer { lb in
                    job.table = lb.baseAddress; job.tableTop = Int32(lb.count - 1)
                    parallelJob(chunks, threads: threads, job)
                }
            }
        }
    }

    /// The same with the thresholds analysed on each call; `scratch` is no longer used.
    public static func geluAdaLogEncode(_ x: UnsafePointer<Float>, count: Int, shift: Float, thresholds: [Float], codes: UnsafeMutablePointer<UInt8>,
                                        scratch: UnsafeMutablePointer<Float>, isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try geluAdaLogEncode(x, count: count, shift: shift, encoder: try AdaLogEncoder(thresholds: thresholds), codes: codes, isa: isa, threads: threads)
    }

    /// AdaLog codes → int16 table values (`table.table[code]`, codes above the zero code read 0), for the
    /// int16 GEMMs that consume them.
    public static func adalogDecode(_ codes: UnsafePointer<UInt8>, count: Int, table: AdaLogTable, dst: UnsafeMutablePointer<Int16>,
                                    isa: KernelISA = .best, threads: Int = 1) throws(Int8KernelError) {
        try checkISA(isa)
        guard table.tableHigh == nil else { throw .invalidArgument("AdaLog decode to int16: the table (F = \(table.fractionBits)) does not fit int16") }
        let chunk = 32_768
        let chunks = (count + chunk - 1) / chunk
        table.table.withUnsafeBufferPointer { tb in
            parallelJob(chunks, threads: threads, AdaLogDecodeJob(codes: codes, count: count, chunk: chunk, table: tb.baseAddress!,
                                                                  zeroCode: Int32(table.zeroCode), dst: dst, isa: isa.rawValue))
        }
    }
}

struct QuantizeGroupsJob: ParallelJob, @unchecked Sendable {
    let x: UnsafePointer<Float>, rows: Int, parts: Int, per: Int, groups: Int, groupSize: Int
    let scales: UnsafePointer<Float>, lo: UnsafePointer<Int32>, hi: UnsafePointer<Int32>
    let dst: UnsafeMutablePointer<Int16>, isa: Int32

    func run(_ p: Int, slot: Int) {
        let r = splitPart(rows, parts: parts, p)
        i8k_quantize_s16_groups(isa, x + r.lowerBound * per, r.count, groups, groupSize, scales, lo, hi, dst + r.lowerBound * per)
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: QuantizeGroupsJob.self).pointee.run(i, slot: slot) } }
}

struct LayerNormJob: ParallelJob, @unchecked Sendable {
    let x: UnsafePointer<Float>, rows: Int, blocks: Int, c: Int
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    let epsilon: Float, scale: Float, zeroPoint: Int32, qmin: Int32, qmax: Int32, unsigned: Int32
    let dst: UnsafeMutableRawPointer, ldd: Int, isa: Int32

    func run(_ i: Int, slot: Int) {
        let r = splitPart(rows, parts: blocks, i)
        i8k_layernorm_quant(isa, x + r.lowerBound * c, r.count, c, gamma, beta, epsilon, scale, zeroPoint, qmin, qmax, unsigned,
                            dst + r.lowerBound * ldd, ldd)
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: LayerNormJob.self).pointee.run(i, slot: slot) } }
}

struct GeluAdaLogJob: ParallelJob, @unchecked Sendable {
    let x: UnsafePointer<Float>, count: Int, chunk: Int, shift: Float
    let tau: UnsafePointer<Float>, nt: Int32, plan: UnsafePointer<i8k_adalog_plan>
    let codes: UnsafeMutablePointer<UInt8>
    /// With `values`: the table (`tableTop` + 1 entries) whose values of the codes go there too.
    var table: UnsafePointer<Int16>?, tableTop: Int32
    let values: UnsafeMutablePointer<Int16>?, isa: Int32

    func run(_ ci: Int, slot: Int) {
        let lo = ci * chunk
        i8k_gelu_adalog_encode(isa, x + lo, min(chunk, count - lo), shift, tau, nt, plan, codes + lo, table, tableTop, values.map { $0 + lo })
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: GeluAdaLogJob.self).pointee.run(i, slot: slot) } }
}

struct AdaLogDecodeJob: ParallelJob, @unchecked Sendable {
    let codes: UnsafePointer<UInt8>, count: Int, chunk: Int
    let table: UnsafePointer<Int16>, zeroCode: Int32
    let dst: UnsafeMutablePointer<Int16>, isa: Int32

    func run(_ ci: Int, slot: Int) {
        let lo = ci * chunk
        i8k_codes_to_s16(isa, codes + lo, min(chunk, count - lo), table, zeroCode, dst + lo)
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: AdaLogDecodeJob.self).pointee.run(i, slot: slot) } }
}

/// Quantize, dequantize or add over chunks of the elements (each element on its own: any split gives the same bytes).
struct ElementwiseJob: ParallelJob, @unchecked Sendable {
    enum Kind { case quantize, dequantize, add }
    let kind: Kind
    let a: UnsafeRawPointer, b: UnsafePointer<Float>?, dst: UnsafeMutableRawPointer
    let count: Int
    let scale: Float, zero: Int32, qmin: Int32, qmax: Int32, unsigned: Int32
    let isa: Int32
    /// Elements per item with several threads: a multiple of 64 large enough to pay for a hand-off.
    static let chunk = 32_768

    /// Items: one with one thread.
    func chunks(threads: Int) -> Int { threads <= 1 ? 1 : max(1, (count + Self.chunk - 1) / Self.chunk) }

    /// Runs elements [i·chunk, …) of at most one chunk, or all of them for the single item of a one-thread loop
    /// (`chunks(threads:)` == 1 means item 0 covers every element).
    func run(_ i: Int, slot: Int) {
        let single = count <= Self.chunk
        let lo = single ? 0 : i * Self.chunk
        let len = single ? count : min(Self.chunk, count - lo)
        apply(lo, len)
    }

    func apply(_ lo: Int, _ len: Int) {
        // int8 / uint8 elements are 1 byte, floats 4
        switch kind {
        case .quantize:
            i8k_quantize(isa, a.assumingMemoryBound(to: Float.self) + lo, len, scale, zero, qmin, qmax, unsigned, dst + lo)
        case .dequantize:
            i8k_dequantize(isa, a + lo, unsigned, len, scale, zero, dst.assumingMemoryBound(to: Float.self) + lo)
        case .add:
            i8k_add(isa, a.assumingMemoryBound(to: Float.self) + lo, b! + lo, len, dst.assumingMemoryBound(to: Float.self) + lo)
        }
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: ElementwiseJob.self).pointee.run(i, slot: slot) } }

    /// One thread: everything in one call; else the chunks on the pool.
    func perform(threads: Int) {
        if threads <= 1 { apply(0, count); return }
        parallelJob(chunks(threads: threads), threads: threads, self)
    }
}

/// AdaLog thresholds with their encode plan (i8k_adalog_prepare: the geometric analysis and the proven margin of
/// the arithmetic fast path), built once per quantizer.
public struct AdaLogEncoder: @unchecked Sendable {
    public let thresholds: [Float]
    let plan: i8k_adalog_plan

    /// `thresholds`: descending; 1...255 entries, or 256 ending in −∞ (codes are bytes).
    public init(thresholds: [Float]) throws(Int8KernelError) {
        guard !thresholds.isEmpty, thresholds.count <= 255 || (thresholds.count == 256 && thresholds[255] == -.infinity) else {
            throw .invalidArgument("AdaLog thresholds: \(thresholds.count) entries, expected 1...255, or 256 ending in −∞ (codes are bytes)")
        }
        self.thresholds = thresholds
        var p = i8k_adalog_plan()
        i8k_adalog_prepare(thresholds, Int32(thresholds.count), &p)
        plan = p
    }

    /// True when the AVX-512 path may use the arithmetic fast path for these thresholds.
    public var hasFastPath: Bool { plan.fast != 0 }
}
