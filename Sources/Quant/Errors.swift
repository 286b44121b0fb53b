// Quant: quantizers (uniform, log2, log√2, AdaLog), range initialisation, FPCS searches, layer
// searches on plain arrays, quantization plans. Method: /work/shared/design/adalog.md §1.

/// Errors of the Quant room, with messages a user can act on.
public enum QuantError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A bit-width outside what the quantizer supports.
    case unsupportedBits(Int, context: String, allowed: ClosedRange<Int>)
    /// A tensor's element count does not match its shape, or shapes of two operands disagree.
    case shapeMismatch(String)
    /// Quantizer parameters are inconsistent with the tensor (count, axis, group size, bad scale).
    case invalidParameters(String)
    /// A bit setting such as "W4A4" could not be parsed.
    case badBitSetting(String, reason: String)
    /// A plan option (quantizer choice, override pattern) could not be parsed.
    case badPlanOption(String, reason: String)
    /// A calibration tensor is empty or holds no finite values.
    case emptyData(String)

    public var description: String {
        switch self {
        case let .unsupportedBits(b, context, allowed):
            return "\(context): \(b) bits is not supported (allowed \(allowed.lowerBound)…\(allowed.upperBound))"
        case let .shapeMismatch(m): return "shape mismatch: \(m)"
        case let .invalidParameters(m): return "invalid quantizer parameters: \(m)"
        case let .badBitSetting(s, reason):
            return "bad bit setting '\(s)': \(reason) (expected e.g. W4A4, W6A6, W8A8, or W4A8)"
        case let .badPlanOption(s, reason): return "bad plan option '\(s)': \(reason)"
        case let .emptyData(m): return "no usable calibration data: \(m)"
        }
    }
}

/// Named rounding modes. The reference (torch.round) is `.toNearestOrEven`; Swift's default
/// `rounded()` is `.toNearestOrAwayFromZero`, which differs on exact halves.
public enum RoundingMode: String, Codable, Sendable, CaseIterable {
    case toNearestOrEven
    case toNearestOrAwayFromZero

    @inlinable public var rule: FloatingPointRoundingRule {
        switch self {
        case .toNearestOrEven: return .toNearestOrEven
        case .toNearestOrAwayFromZero: return .toNearestOrAwayFromZero
        }
    }
}

/// Element count of a shape, or nil when a dimension is negative or the product overflows.
@usableFromInline func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        if d < 0 { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = p
    }
    return n
}
