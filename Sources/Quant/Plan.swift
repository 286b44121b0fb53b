#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Bit-widths of weights and activations, parsed from "W4A4", "W6A6", "W8A8", "W4A8", ….
public struct BitSetting: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var weightBits: Int
    public var activationBits: Int

    public init(weightBits: Int, activationBits: Int) throws(QuantError) {
        let r = UniformQuantizer.supportedBits
        guard r.contains(weightBits) else { throw .unsupportedBits(weightBits, context: "weight bits", allowed: r) }
        guard r.contains(activationBits) else { throw .unsupportedBits(activationBits, context: "activation bits", allowed: r) }
        self.weightBits = weightBits; self.activationBits = activationBits
    }

    /// `W<bits>A<bits>`.
    public init(_ bits: Int) throws(QuantError) { try self.init(weightBits: bits, activationBits: bits) }

    /// Parses "W<b>A<b>" (case-insensitive, b ∈ 2…8), or a bare number `b` meaning `W<b>A<b>`.
    public init(parsing text: String) throws(QuantError) {
        let s = String(text.filter { !$0.isWhitespace }).uppercased()
        let w: Int, a: Int
        if let n = Int(s) {
            (w, a) = (n, n)
        } else {
            guard s.first == "W", let aIndex = s.firstIndex(of: "A"),
                  let wn = Int(s[s.index(after: s.startIndex)..<aIndex]), let an = Int(s[s.index(after: aIndex)...])
            else {
                throw .badBitSetting(text, reason: "expected W<bits>A<bits> such as W4A4, or a bare number such as 8")
            }
            (w, a) = (wn, an)
        }
        let r = UniformQuantizer.supportedBits
        guard r.contains(w) else { throw .badBitSetting(text, reason: "weight bits \(w) outside \(r.lowerBound)…\(r.upperBound)") }
        guard r.contains(a) else { throw .badBitSetting(text, reason: "activation bits \(a) outside \(r.lowerBound)…\(r.upperBound)") }
        weightBits = w; activationBits = a
    }

    public var description: String { "W\(weightBits)A\(activationBits)" }

    /// Orders by weight bits, then activation bits.
    public static func < (a: BitSetting, b: BitSetting) -> Bool {
        (a.weightBits, a.activationBits) < (b.weightBits, b.activationBits)
    }

    /// Written as the string `W<weights>A<activations>` so a reader never has to guess which number is which.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try BitSetting(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Quantizer for post-softmax activations (the P of P·V).
public enum SoftmaxQuantizerKind: String, Codable, Sendable, CaseIterable {
    case adalog, log2, logsqrt2, uniform
}

/// Quantizer for post-GELU activations (the fc2 input).
public enum GeluQuantizerKind: String, Codable, Sendable, CaseIterable {
    case adalog, uniform
}

/// What a tensor is, for choosing its quantizer.
public enum TensorKind: String, Codable, Sendable {
    case linearWeight, convWeight
    /// Input of a linear layer fed by a LayerNorm (qkv, fc1, Swin reduction).
    case postLayerNormInput
    /// Input of fc2 (after GELU).
    case postGeluInput
    /// Any other linear/conv input (proj, head, CNN activations).
    case linearInput
    /// Q, K (matmul1) and V (matmul2 B).
    case attentionOperand
    /// Softmax output (matmul2 A).
    case attentionProbabilities
    /// The image entering the first conv / patch embed.
    case imageInput
}

/// The quantizer family and granularity a plan assigns to a tensor.
public enum QuantizerSpec: Codable, Equatable, Sendable {
    /// Uniform asymmetric, with the given granularity, range rule and bits.
    case uniform(bits: Int, granularity: Granularity, reluBounded: Bool)
    /// Per-channel search folded into the preceding LayerNorm, per-tensor at inference.
    case uniformReparameterized(bits: Int)
    case adaLog(bits: Int, shift: Float)
    case log2(bits: Int, shift: Float)
    case logSqrt2(bits: Int, shift: Float)
    /// Left in float.
    case float

    /// Uniform at inference (per-tensor, per-channel or reparameterized).
    var isUniform: Bool {
        switch self {
        case .uniform, .uniformReparameterized: true
        default: false
        }
    }
}

/// Model family: decides the quantizer map.
public enum ModelFamily: String, Codable, Sendable { case transformer, cnn }

/// User options of a plan: bits, per-layer overrides, quantizer choices.
public struct PlanOptions: Codable, Equatable, Sendable {
    public var bits: BitSetting
    public var softmax: SoftmaxQuantizerKind = .adalog
    public var gelu: GeluQuantizerKind = .adalog
    /// Layers whose name matches one of these patterns stay float (`*` matches any run of characters).
    public var keepFloat: [String] = []
    /// Per-layer bit overrides: (pattern, bits), the first match wins.
    public var layerBits: [LayerBitsOverride] = []

    public init(bits: BitSetting) { self.bits = bits }

    /// Parses a `--layer-bits` item "PATTERN=W6A6".
    public mutating func addLayerBits(_ text: String) throws(QuantError) {
        guard let eq = text.lastIndex(of: "="), eq != text.startIndex else {
            throw .badPlanOption(text, reason: "expected PATTERN=W<bits>A<bits>, e.g. 'blocks.0.*=W8A8'")
        }
        let pattern = String(text[..<eq]), b = try BitSetting(parsing: String(text[text.index(after: eq)...]))
        layerBits.append(LayerBitsOverride(pattern: pattern, bits: b))
    }

    public static func parseSoftmax(_ s: String) throws(QuantError) -> SoftmaxQuantizerKind {
        guard let k = SoftmaxQuantizerKind(rawValue: s.lowercased()) else {
            throw .badPlanOption(s, reason: "softmax quantizer must be one of adalog, log2, logsqrt2, uniform")
        }
        return k
    }

    public static func parseGelu(_ s: String) throws(QuantError) -> GeluQuantizerKind {
        guard let k = GeluQuantizerKind(rawValue: s.lowercased()) else {
            throw .badPlanOption(s, reason: "GELU quantizer must be one of adalog, uniform")
        }
        return k
    }
}

public struct LayerBitsOverride: Codable, Equatable, Sendable {
    public var pattern: String
    public var bits: BitSetting
}

/// Glob match with `*` (any run) and `?` (one character).
public func globMatch(_ pattern: String, _ name: String) -> Bool {
    let p = Array(pattern), s = Array(name)
    var pi = 0, si = 0, star = -1, mark = 0
    while si < s.count {
        if pi < p.count, p[pi] == "?" || p[pi] == s[si] { pi += 1; si += 1 }
        else if pi < p.count, p[pi] == "*" { star = pi; mark = si; pi += 1 }
        else if star >= 0 { pi = star + 1; mark += 1; si = mark }
        else { return false }
    }
    while pi < p.count, p[pi] == "*" { pi += 1 }
    return pi == p.count
}

/// The quantization plan: which quantizer each tensor gets (adalog.md §1.1 for transformers; per-channel
/// weights, per-tensor activations and ReLU-bounded ranges for CNNs).
public struct QuantizationPlan: Codable, Equatable, Sendable {
    public var family: ModelFamily
    public var options: PlanOptions

    public init(family: ModelFamily, options: PlanOptions) { self.family = family; self.options = options }

    /// Bits for a layer after overrides.
    public func bits(forLayer name: String) -> BitSetting {
        options.layerBits.first { globMatch($0.pattern, name) }?.bits ?? options.bits
    }

    public func isKeptFloat(_ name: String) -> Bool { options.keepFloat.contains { globMatch($0, name) } }

    /// The quantizer of `kind` in layer `name`. `reluBounded`: the activation comes from a ReLU/ReLU6
    /// (CNN), so its range starts at 0.
    public func spec(for kind: TensorKind, layer name: String, reluBounded: Bool = false) -> QuantizerSpec {
        if isKeptFloat(name) { return .float }
        let b = bits(forLayer: name)
        switch (family, kind) {
        case (_, .linearWeight), (_, .convWeight):
            return .uniform(bits: b.weightBits, granularity: .perChannel(axis: 0), reluBounded: false)
        case (_, .imageInput):
            // The patch-embed / stem input is not quantized at ≥ 8 bits (adalog.md §1.11.5).
            return b.activationBits >= 8 || family == .transformer ? .float
                : .uniform(bits: b.activationBits, granularity: .perTensor, reluBounded: false)
        case (.transformer, .postLayerNormInput):
            return b.weightBits == b.activationBits ? .uniformReparameterized(bits: b.activationBits)
                : .uniform(bits: b.activationBits, granularity: .perTensor, reluBounded: false)
        case (.transformer, .postGeluInput):
            switch options.gelu {
            case .adalog: return .adaLog(bits: b.activationBits, shift: geluShift)
            case .uniform: return .uniform(bits: b.activationBits, granularity: .perTensor, reluBounded: false)
            }
        case (.transformer, .attentionOperand):
            return .uniform(bits: b.activationBits, granularity: .perChannel(axis: 1), reluBounded: false)
        case (.transformer, .attentionProbabilities):
            switch options.softmax {
            case .adalog: return .adaLog(bits: b.activationBits, shift: 0)
            case .log2: return .log2(bits: b.activationBits, shift: 0)
            case .logsqrt2: return .logSqrt2(bits: b.activationBits, shift: 0)
            case .uniform: return .uniform(bits: b.activationBits, granularity: .perTensor, reluBounded: false)
            }
        case (.transformer, .linearInput):
            return .uniform(bits: b.activationBits, granularity: .perTensor, reluBounded: false)
        case (.cnn, _):
            return .uniform(bits: b.activationBits, granularity: .perTensor, reluBounded: reluBounded)
        }
    }
}

/// The chosen parameters of one quantized tensor (JSON until the runtime file format exists).
public enum QuantizerParameters: Codable, Equatable, Sendable {
    case uniform(UniformQuantizer)
    case adaLog(AdaLogQuantizer)
    case log2(Log2Quantizer)
    case logSqrt2(LogSqrt2Quantizer)
}

/// Everything a search chose for a model: quantizers by tensor name, folded LayerNorm/linear tensors,
/// folded biases, per-layer SQNR.
public struct QuantizationParameters: Codable, Equatable, Sendable {
    public var plan: QuantizationPlan
    public var quantizers: [String: QuantizerParameters] = [:]
    /// Replacement float tensors (e.g. "blocks.0.norm1.weight" → γ') produced by folds.
    public var replacedTensors: [String: [Float]] = [:]
    /// Output SQNR (dB) per layer against float.
    public var layerSQNR: [String: Double] = [:]

    public init(plan: QuantizationPlan) { self.plan = plan }
}

/// Signal-to-quantization-noise ratio in dB: 10·log10(Σ ref² / Σ (ref − test)²); +∞ when equal.
public func sqnr(reference: [Float], test: [Float]) throws(QuantError) -> Double {
    guard reference.count == test.count, !reference.isEmpty else {
        throw .shapeMismatch("SQNR of \(reference.count) vs \(test.count) values")
    }
    var sig = 0.0, noise = 0.0
    for i in 0..<reference.count {
        let r = Double(reference[i]), d = r - Double(test[i])
        sig += r * r; noise += d * d
    }
    if noise == 0 { return .infinity }
    return 10 * log10(sig / noise)
}

