#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The constant added to GELU outputs before log quantization: −min GELU(x) (adalog.md §1.5).
public let geluShift: Float = 0.16997124

/// Lower clamp of u/s before the logarithm in every log quantizer (the reference's 1e−15).
let logClampMin: Float = 1e-15

/// Codes of a fixed-base log quantizer: k = round(−log2(clamp((x + shift)/s, 1e−15, 1)) · stepsPerOctave);
/// k ≥ 2^b → the zero state 2^b. Shared by log2 (1 step per octave) and log√2 (2 steps).
func logCodes(_ x: [Float], shift: Float, scale: Float, stepsPerOctave: Float, bits: Int,
              rounding: RoundingMode) -> [Int32] {
    let zeroCode = Int32(1 << bits)
    return x.map { v in
        let u = min(max((v + shift) / scale, logClampMin), 1)
        let k = (-log2f(u) * stepsPerOctave).rounded(rounding.rule)
        return k >= Float(1 << bits) ? zeroCode : Int32(max(k, 0))
    }
}

/// A power-of-two log quantizer: k = round(−log2(clamp(u/s, 1e−15, 1))); k ≥ 2^b → the extra zero
/// state; x̂ = s·2^(−k). Codes are 0…2^b−1 plus `zeroCode` = 2^b (so 2^b + 1 states, adalog.md §1.11.3).
public struct Log2Quantizer: Codable, Equatable, Sendable {
    public var bits: Int
    public var scale: Float
    /// Added before quantizing and subtracted after (0 for softmax, `geluShift` for post-GELU).
    public var shift: Float
    public var rounding: RoundingMode

    public init(bits: Int, scale: Float = 1, shift: Float = 0, rounding: RoundingMode = .toNearestOrEven) throws(QuantError) {
        guard UniformQuantizer.supportedBits.contains(bits) else {
            throw .unsupportedBits(bits, context: "log2 quantizer", allowed: UniformQuantizer.supportedBits)
        }
        guard scale > 0, scale.isFinite else { throw .invalidParameters("log2 scale must be finite and > 0") }
        self.bits = bits; self.scale = scale; self.shift = shift; self.rounding = rounding
    }

    public var zeroCode: Int32 { Int32(1 << bits) }

    public func quantize(_ x: [Float]) -> [Int32] {
        logCodes(x, shift: shift, scale: scale, stepsPerOctave: 1, bits: bits, rounding: rounding)
    }

    public func dequantize(_ codes: [Int32]) -> [Float] {
        codes.map { k in k >= zeroCode ? 0 : exp2f(-Float(k)) * scale }
    }

    /// x̂ = dequantize(quantize(x)) − shift.
    public func fakeQuantize(_ x: [Float]) -> [Float] { dequantize(quantize(x)).map { $0 - shift } }
}

/// RepQ-ViT's log√2 quantizer (adalog.md §3.1): k = round(−2·log2(clamp(u/s, 1e−15, 1))); k ≥ 2^b → zero
/// state; x̂ = s·2^(−⌈k/2⌉)·(1 + (√2−1)·[k odd]).
public struct LogSqrt2Quantizer: Codable, Equatable, Sendable {
    public var bits: Int
    public var scale: Float
    public var shift: Float
    public var rounding: RoundingMode

    public init(bits: Int, scale: Float = 1, shift: Float = 0, rounding: RoundingMode = .toNearestOrEven) throws(QuantError) {
        guard UniformQuantizer.supportedBits.contains(bits) else {
            throw .unsupportedBits(bits, context: "log√2 quantizer", allowed: UniformQuantizer.supportedBits)
        }
        guard scale > 0, scale.isFinite else { throw .invalidParameters("log√2 scale must be finite and > 0") }
        self.bits = bits; self.scale = scale; self.shift = shift; self.rounding = rounding
    }

    public var zeroCode: Int32 { Int32(1 << bits) }

    public func quantize(_ x: [Float]) -> [Int32] {
        logCodes(x, shift: shift, scale: scale, stepsPerOctave: 2, bits: bits, rounding: rounding)
    }

    public func dequantize(_ codes: [Int32]) -> [Float] {
        let oddFactor = Float(2.0.squareRoot() - 1) + 1
        return codes.map { k in
            if k >= zeroCode { return 0 }
            let e = exp2f(-Float((k + 1) / 2))          // 2^(−⌈k/2⌉)
            return e * (k % 2 == 1 ? oddFactor : 1) * scale
        }
    }

    public func fakeQuantize(_ x: [Float]) -> [Float] { dequantize(quantize(x)).map { $0 - shift } }
}

/// How AdaLog codes become values.
public enum AdaLogDequantization: String, Codable, Sendable {
    /// s·2^(−A_k)·M_ρ/D with the mantissa rounded to 1/D (what the reference evaluates and searches with).
    case hardwareTable
    /// s·2^(−k·q/r) (the reference's training-mode form; an option only).
    case exact
}

/// The AdaLog quantizer (adalog.md §1.3): base 2^(q/r), r = 37, q ∈ 10…137.
/// k = round(−log2(clamp(u/s, 1e−15, 1))·r/q); k ≥ 2^b → the extra zero state (`zeroCode` = 2^b);
/// dequantization by the hardware table A_k = ⌊kq/r⌋, M_ρ = round(D·2^(−ρ/r)), ρ = kq mod r, D = 2^(b+1)−2.
/// With `shift` > 0 it is the Shift-AdaLog of post-GELU activations: u = x + shift, x̂ = û − shift
/// (or û once the shift was folded into the next bias, `biasReparameterized`).
public struct AdaLogQuantizer: Codable, Equatable, Sendable {
    public static let r = 37
    public static let qRange = 10...137

    public var bits: Int
    public var q: Int
    public var scale: Float
    public var shift: Float
    public var dequantization: AdaLogDequantization
    /// True once −shift·Ŵ·1 was folded into the consumer's bias: `fakeQuantize` then returns û.
    public var biasReparameterized: Bool
    public var rounding: RoundingMode

    public init(bits: Int, q: Int = 37, scale: Float = 1, shift: Float = 0,
                dequantization: AdaLogDequantization = .hardwareTable, biasReparameterized: Bool = false,
                rounding: RoundingMode = .toNearestOrEven) throws(QuantError) {
        guard UniformQuantizer.supportedBits.contains(bits) else {
            throw .unsupportedBits(bits, context: "AdaLog quantizer", allowed: UniformQuantizer.supportedBits)
        }
        guard q >= 1 else { throw .invalidParameters("AdaLog q must be ≥ 1 (searched over 10…137), got \(q)") }
        guard scale > 0, scale.isFinite else { throw .invalidParameters("AdaLog scale must be finite and > 0") }
        self.bits = bits; self.q = q; self.scale = scale; self.shift = shift
        self.dequantization = dequantization; self.biasReparameterized = biasReparameterized
        self.rounding = rounding
    }

    public var zeroCode: Int32 { Int32(1 << bits) }
    /// D = 2^(b+1) − 2, the mantissa denominator.
    public var mantissaDenominator: Int { (1 << (bits + 1)) - 2 }

    /// A_k = ⌊k·q/r⌋ for k = 0…2^b−1 (the shift table, `table1`).
    public var shiftTable: [Int] { (0..<(1 << bits)).map { ($0 * q) / Self.r } }

    /// M_ρk = round(D·2^(−ρ_k/r)), ρ_k = k·q mod r (the mantissa numerators, `table2`·D).
    public var mantissaTable: [Int] {
        let d = Double(mantissaDenominator)
        return (0..<(1 << bits)).map { k in
            let rho = (k * q) % Self.r
            return Int((d * pow(2.0, -Double(rho) / Double(Self.r))).rounded(.toNearestOrEven))
        }
    }

    /// Values of the 2^b codes at scale 1 (the last entry, index 2^b, is the zero state).
    public var unitLevels: [Float] {
        var lv = [Float](repeating: 0, count: (1 << bits) + 1)
        switch dequantization {
        case .hardwareTable:
            let a = shiftTable, m = mantissaTable, d = Double(mantissaDenominator)
            for k in 0..<(1 << bits) { lv[k] = exp2f(-Float(a[k])) * Float(Double(m[k]) / d) }
        case .exact:
            for k in 0..<(1 << bits) {
                lv[k] = Float(pow(2.0, -Double(k * q) / Double(Self.r)))
            }
        }
        return lv
    }

    /// Codes of x (u = x + shift): 0…2^b−1, or `zeroCode` for underflow.
    public func quantize(_ x: [Float]) -> [Int32] {
        // the rule as a constant in the two common cases, so the loop does not round through the generic entry
        switch rounding.rule {
        case .toNearestOrEven: return codes(x, .toNearestOrEven)
        case .toNearestOrAwayFromZero: return codes(x, .toNearestOrAwayFromZero)
        default: return codes(x, rounding.rule)
        }
    }

    @inline(__always) private func codes(_ x: [Float], _ rule: FloatingPointRoundingRule) -> [Int32] {
        let rf = Float(Self.r), qf = Float(q), n = Float(1 << bits)
        return x.map { v in
            let u = min(max((v + shift) / scale, logClampMin), 1)
            let k = ((-log2f(u) * rf) / qf).rounded(rule)
            return k >= n ? zeroCode : Int32(max(k, 0))
        }
    }

    /// û = s·level[k] (no shift removed).
    public func dequantizeUnshifted(_ codes: [Int32]) -> [Float] {
        let lv = unitLevels
        return codes.map { k in (k < 0 || k > zeroCode) ? 0 : lv[Int(k)] * scale }
    }

    /// x̂: û − shift, or û when the shift is folded into the next bias.
    public func fakeQuantize(_ x: [Float]) -> [Float] {
        let s = biasReparameterized ? 0 : shift
        return dequantizeUnshifted(quantize(x)).map { $0 - s }
    }

    /// The bias reparameterization of adalog.md §1.5: b' = b − shift·Ŵ·1, with Ŵ the already
    /// fake-quantized weight [outFeatures × inFeatures] (row-major). Summed in Double.
    public static func foldShift(_ shift: Float, intoBias bias: [Float]?, quantizedWeight: [Float],
                                 outFeatures: Int, inFeatures: Int) throws(QuantError) -> [Float] {
        guard outFeatures > 0, inFeatures > 0, quantizedWeight.count == outFeatures * inFeatures else {
            throw .shapeMismatch("weight has \(quantizedWeight.count) values, expected \(outFeatures)×\(inFeatures)")
        }
        if let b = bias, b.count != outFeatures {
            throw .shapeMismatch("bias has \(b.count) values, expected \(outFeatures)")
        }
        var out = [Float](repeating: 0, count: outFeatures)
        for o in 0..<outFeatures {
            var s = 0.0
            for k in 0..<inFeatures { s += Double(quantizedWeight[o * inFeatures + k]) }
            out[o] = Float(Double(bias?[o] ?? 0) - Double(shift) * s)
        }
        return out
    }
}
