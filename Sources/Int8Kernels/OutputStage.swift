import CInt8Kernels

/// Rounding of the fixed-point requantization, pinned and named (see ecosystem.md §4.3).
public enum RequantRounding: Int32, Sendable, CaseIterable {
    /// TFLite default / gemmlowp: `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x·2^left, M), right)`;
    /// SRDHM rounds half up, the power-of-two division rounds half away from zero.
    case doubleRounding = 0
    /// `TFLITE_SINGLE_ROUNDING`: `(x·M + 2^(30−shift)) >> (31−shift)`, round half up, saturated to int32.
    case singleRounding = 1
}

/// A real multiplier encoded as Q0.31 `multiplier` ∈ [2^30, 2^31) and a power-of-two `shift` (positive = left),
/// computed offline in double like TFLite's `QuantizeMultiplier`.
public struct QuantizedMultiplier: Sendable, Equatable {
    public var multiplier: Int32
    public var shift: Int32

    public init(multiplier: Int32, shift: Int32) {
        self.multiplier = multiplier
        self.shift = shift
    }

    /// TFLite `QuantizeMultiplier`: frexp, round(q·2^31), renormalise when that rounds to 2^31; multipliers
    /// below 2^-31 become 0; shifts are limited to [-31, 30].
    public init(_ real: Double) throws(Int8KernelError) {
        guard real.isFinite, real >= 0 else { throw .invalidArgument("requantization multiplier \(real) must be finite and >= 0") }
        if real == 0 { self.init(multiplier: 0, shift: 0); return }
        var e = 0
        var q = frexpD(real, &e)
        var qFixed = (q * 2147483648.0).rounded(.toNearestOrAwayFromZero)
        if qFixed == 2147483648.0 { qFixed /= 2; e += 1 }
        if e < -31 { qFixed = 0; e = 0 }
        if e > 30 { throw .invalidArgument("requantization multiplier \(real) is too large (>= 2^30)") }
        q = qFixed
        self.init(multiplier: Int32(q), shift: Int32(e))
    }

    /// The real value represented.
    public var value: Double { Double(multiplier) / 2147483648.0 * pow2(Int(shift)) }
}

@inline(__always) func pow2(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }
func frexpD(_ x: Double, _ e: inout Int) -> Double {
    // x = f · 2^e with f in [0.5, 1)
    e = Int(x.exponent) + 1
    return x / pow2(e)
}

/// What a GEMM / conv does with each int32 accumulator (after adding the bias and the zero-point fold).
public enum OutputStage: Sendable {
    /// Raw int32.
    case int32
    /// Requantize to int8 (`unsigned == false`) or uint8 with per-output-channel multipliers (one entry =
    /// per-tensor), output zero point and clamp bounds (ReLU / ReLU6 are clamp bounds).
    case requantize(multipliers: [QuantizedMultiplier], rounding: RequantRounding, zeroPoint: Int32,
                    qmin: Int32, qmax: Int32, unsigned: Bool)
    /// Dequantize: `Float(acc) · scale[o] (+ floatBias[o])` (one scale entry = per-tensor).
    case dequantize(scales: [Float], floatBias: [Float]?)

    /// Bytes per output element.
    public var elementSize: Int {
        switch self {
        case .int32, .dequantize: 4
        case .requantize: 1
        }
    }
}

/// Owns the per-channel arrays an output stage needs for the lifetime of one call (C reads raw pointers).
final class OutputParams: @unchecked Sendable {
    var raw = i8k_output()
    private var allocations: [UnsafeMutableRawPointer] = []

    private func copy<T>(_ values: [T], count: Int) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        if values.count == count, count > 0 {
            values.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: count) }
        } else if count > 0 {
            p.initialize(repeating: values[0], count: count)
        }
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// `rowCoef`: per-column coefficient c[n] of the weight zero-point term c[n]·rowsum[m] (the row sums are bound per
    /// call into `raw.row_sum`); nil when the weights fold exactly.
    init(stage: OutputStage, n: Int, bias: [Int32]?, aZero: Int32, colsum: [Int32]?, rowCoef: [Int32]? = nil) throws(Int8KernelError) {
        if let bias, bias.count != n { throw .sizeMismatch(what: "bias", expected: n, got: bias.count) }
        if let rowCoef, rowCoef.count != n { throw .sizeMismatch(what: "weight zero-point offsets", expected: n, got: rowCoef.count) }
        raw.a_zero = aZero
        if let rowCoef { raw.row_coef = UnsafePointer(copy(rowCoef, count: n)) }
        if let bias { raw.bias = UnsafePointer(copy(bias, count: n)) }
        if aZero != 0, let colsum { raw.colsum = UnsafePointer(copy(colsum, count: n)) }
        switch stage {
        case .int32:
            raw.kind = Int32(I8K_OUT_INT32)
        case let .dequantize(scales, fbias):
            guard scales.count == 1 || scales.count == n else { throw .sizeMismatch(what: "dequantize scales", expected: n, got: scales.count) }
            if let fbias, fbias.count != n { throw .sizeMismatch(what: "float bias", expected: n, got: fbias.count) }
            raw.kind = Int32(I8K_OUT_FLOAT)
            raw.scale = UnsafePointer(copy(scales, count: n))
            if let fbias { raw.fbias = UnsafePointer(copy(fbias, count: n)) }
        case let .requantize(mults, rounding, zp, qmin, qmax, unsigned):
            guard mults.count == 1 || mults.count == n else { throw .sizeMismatch(what: "requantization multipliers", expected: n, got: mults.count) }
            let lo: Int32 = unsigned ? 0 : -128, hi: Int32 = unsigned ? 255 : 127
            guard qmin <= qmax, qmin >= lo, qmax <= hi else { throw .invalidArgument("clamp [\(qmin), \(qmax)] outside the \(unsigned ? "uint8" : "int8") range") }
            guard zp >= lo, zp <= hi else { throw .invalidArgument("output zero point \(zp) outside the output type") }
            for m in mults where m.multiplier < 0 || m.shift < -31 || m.shift > 30 {
                throw .invalidArgument("requantization multiplier \(m) must have multiplier >= 0 and shift in [-31, 30]")
            }
            raw.kind = Int32(unsigned ? I8K_OUT_UINT8 : I8K_OUT_INT8)
            raw.rounding = rounding.rawValue
            raw.out_zero = zp
            raw.qmin = qmin
            raw.qmax = qmax
            raw.mult = UnsafePointer(copy(mults.map(\.multiplier), count: n))
            raw.shift = UnsafePointer(copy(mults.map(\.shift), count: n))
        }
    }

    deinit { for p in allocations { p.deallocate() } }
}
