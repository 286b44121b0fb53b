import CInt8Kernels

/// Element-wise and normalisation pieces between GEMMs, vectorised in C; every ISA path is bit-identical to
/// the portable one (pinned float operation order, no FMA).
public enum Elementwise {
    /// Quantize: q = clamp(rint(x / scale) + zero, qmin, qmax) with rint = round half to even; NaN → qmin.
    /// For the folded low-bit form (adalog.md §4.1) pass zero = 0 and qmin/qmax = [−z, 2^b − 1 − z].
    public static func quantize(_ x: UnsafePointer<Float>, count: Int, scale: Float, zeroPoint: Int32, qmin: Int32, qmax: Int32,
                                unsigned: Bool, dst: UnsafeMutableRawPointer, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        guard scale > 0, scale.isFinite else { throw .invalidArgument("quantize scale \(scale) must be finite and > 0") }
        let lo: Int32 = unsigned ? 0 : -128, hi: Int32 = unsigned ? 255 : 127
        guard qmin <= qmax, qmin >= lo, qmax <= hi else { throw .invalidArgument("quantize bounds [\(qmin), \(qmax)] outside the output type") }
        i8k_quantize(isa.rawValue, x, count, scale, zeroPoint, qmin, qmax, unsigned ? 1 : 0, dst)
    }

    /// Dequantize: x = Float(q − zero) · scale.
    public static func dequantize(_ q: UnsafeRawPointer, count: Int, unsigned: Bool, scale: Float, zeroPoint: Int32,
                                  dst: UnsafeMutablePointer<Float>, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        i8k_dequantize(isa.rawValue, q, unsigned ? 1 : 0, count, scale, zeroPoint, dst)
    }

    /// Residual add y = a + b (float residual stream, adalog.md §4.5).
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int, dst: UnsafeMutablePointer<Float>,
                           isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        i8k_add(isa.rawValue, a, b, count, dst)
    }

    /// GELU (erf form; erf by the pinned A&S 7.1.28 rational, |error| < 3e-7).
    public static func gelu(_ x: UnsafePointer<Float>, count: Int, dst: UnsafeMutablePointer<Float>, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        i8k_gelu(isa.rawValue, x, count, dst)
    }

    /// LayerNorm of `rows` rows of C floats, then quantize (fused, adalog.md §4.6) into rows of `ldd` bytes.
    public static func layerNormQuantize(_ x: UnsafePointer<Float>, rows: Int, channels c: Int, gamma: [Float], beta: [Float],
                                         epsilon: Float, scale: Float, zeroPoint: Int32, qmin: Int32, qmax: Int32, unsigned: Bool,
                                         dst: UnsafeMutableRawPointer, ldd: Int, isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        guard gamma.count == c else { throw .sizeMismatch(what: "LayerNorm gamma", expected: c, got: gamma.count) }
        guard beta.count == c else { throw .sizeMismatch(what: "LayerNorm beta", expected: c, got: beta.count) }
        guard ldd >= c else { throw .invalidArgument("LayerNorm output stride \(ldd) < channels \(c)") }
        guard scale > 0, scale.isFinite else { throw .invalidArgument("quantize scale \(scale) must be finite and > 0") }
        i8k_layernorm_quant(isa.rawValue, x, rows, c, gamma, beta, epsilon, scale, zeroPoint, qmin, qmax, unsigned ? 1 : 0, dst, ldd)
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

    /// AdaLog codes → int16 table values (`table.table[code]`, codes above the zero code read 0), for the
    /// int16 GEMMs that consume them.
    public static func adalogDecode(_ codes: UnsafePointer<UInt8>, count: Int, table: AdaLogTable, dst: UnsafeMutablePointer<Int16>,
                                    isa: KernelISA = .best) throws(Int8KernelError) {
        try checkISA(isa)
        i8k_codes_to_s16(isa.rawValue, codes, count, table.table, Int32(table.zeroCode), dst)
    }
}
