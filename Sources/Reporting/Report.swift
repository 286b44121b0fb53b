import Foundation
import Quant

/// Top-1 and top-5 accuracy in percent (0...100).
public struct Accuracy: Codable, Sendable, Equatable {
    public var top1: Double
    public var top5: Double
    public init(top1: Double, top5: Double) {
        self.top1 = top1
        self.top5 = top5
    }
}

/// One evaluated method × bit setting: what a row of `report.md` / `report.csv` and an entry of `results` in
/// `report.json` holds.
///
/// Accuracies and agreement are percentages (0...100). A value is `nil` when that step failed or was not run; the
/// writers print it as empty (CSV), `–` (Markdown), `null` (JSON) and leave a gap in the plot.
public struct ResultRow: Sendable, Equatable {
    public var bits: BitSetting
    /// Quantization method name as given on the command line (e.g. `adalog`, `uniform-minmax`).
    public var method: String
    public var top1: Double?
    public var top5: Double?
    /// Percentage of evaluation images whose quantized top-1 class equals the float model's top-1 class.
    public var agreement: Double?
    /// Size of the quantized model (packed weights plus parameters) in bytes.
    public var sizeBytes: Int?
    /// Wall time of calibration and search for this setting, in seconds.
    public var calibrationSeconds: Double?

    public init(bits: BitSetting, method: String, top1: Double?, top5: Double?, agreement: Double?,
                sizeBytes: Int?, calibrationSeconds: Double?) {
        self.bits = bits
        self.method = method
        self.top1 = top1
        self.top5 = top5
        self.agreement = agreement
        self.sizeBytes = sizeBytes
        self.calibrationSeconds = calibrationSeconds
    }
}

/// Output signal-to-quantization-noise ratio of one layer under one setting: `10·log10(Σx² / Σ(x−x̂)²)` in dB,
/// comparing the float layer output `x` with the quantized one `x̂` on the calibration images.
///
/// `sqnrDB` is `nil` when it could not be measured; `+infinity` (no error at all) is written as `null` in JSON and
/// `inf` in the tables.
public struct LayerRow: Sendable, Equatable {
    /// Node name as in the ONNX graph, usable in `--keep-float` patterns.
    public var name: String
    public var bits: BitSetting
    public var method: String
    public var sqnrDB: Double?
    /// ONNX op type (e.g. `MatMul`, `Conv`), if known.
    public var op: String?

    public init(name: String, bits: BitSetting, method: String, sqnrDB: Double?, op: String? = nil) {
        self.name = name
        self.bits = bits
        self.method = method
        self.sqnrDB = sqnrDB
        self.op = op
    }
}

/// What a reader needs to trust and reproduce the numbers: where they came from and how images were prepared.
public struct ReportMetadata: Sendable, Equatable {
    /// Version of the tool that produced the report.
    public var toolVersion: String
    /// When the report was produced (written as ISO 8601 UTC).
    public var date: Date
    /// Path of the model file as given by the user.
    public var modelPath: String?
    /// The preprocessing spec used for calibration and evaluation (e.g. `size`, `crop_pct`, `interpolation`,
    /// `mean`, `std`), written as a JSON object and listed in the Markdown header.
    public var preprocessing: [String: ReportValue]
    public var calibrationImages: Int
    /// Seed of the sampler that picked the calibration images.
    public var calibrationSeed: UInt64
    public var calibrationFolder: String?
    public var evaluationImages: Int
    public var evaluationFolder: String?
    /// Plain-text remarks on how the numbers were obtained (e.g. calibration images left out of the evaluation),
    /// printed under the Markdown header and written as `notes` in the JSON.
    public var notes: [String]

    public init(toolVersion: String, date: Date = Date(), modelPath: String? = nil,
                preprocessing: [String: ReportValue] = [:], calibrationImages: Int, calibrationSeed: UInt64,
                calibrationFolder: String? = nil, evaluationImages: Int, evaluationFolder: String? = nil,
                notes: [String] = []) {
        self.notes = notes
        self.toolVersion = toolVersion
        self.date = date
        self.modelPath = modelPath
        self.preprocessing = preprocessing
        self.calibrationImages = calibrationImages
        self.calibrationSeed = calibrationSeed
        self.calibrationFolder = calibrationFolder
        self.evaluationImages = evaluationImages
        self.evaluationFolder = evaluationFolder
    }
}

/// A small JSON value for free-form metadata such as the preprocessing spec.
public enum ReportValue: Sendable, Equatable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral
{
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([ReportValue])
    case null

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: ReportValue...) { self = .array(elements) }

    /// Plain text for the Markdown header: `0.5`, `bicubic`, `[0.485, 0.456, 0.406]`.
    public var description: String {
        switch self {
        case let .string(s): return s
        case let .int(i): return String(i)
        case let .double(d): return d.isFinite ? formatShortest(d) : "\(d)"
        case let .bool(b): return b ? "true" : "false"
        case let .array(a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .null: return "null"
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .array(try c.decode([ReportValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .string(s): try c.encode(s)
        case let .int(i): try c.encode(i)
        case let .double(d): if d.isFinite { try c.encode(d) } else { try c.encodeNil() }
        case let .bool(b): try c.encode(b)
        case let .array(a): try c.encode(a)
        case .null: try c.encodeNil()
        }
    }
}

/// Everything one `quantize report` run produced: the float baseline, one row per method × bit setting, per-layer
/// SQNR, and the metadata. The pipeline fills this in; ``ReportWriter`` turns it into files.
public struct QuantReport: Sendable, Equatable {
    /// Model name shown in titles (e.g. `vit_tiny_patch16_224`).
    public var model: String
    /// Accuracy of the unquantized model on the same evaluation images.
    public var float: Accuracy
    public var results: [ResultRow]
    public var layers: [LayerRow]
    public var metadata: ReportMetadata

    public init(model: String, float: Accuracy, results: [ResultRow], layers: [LayerRow], metadata: ReportMetadata) {
        self.model = model
        self.float = float
        self.results = results
        self.layers = layers
        self.metadata = metadata
    }

    /// Methods in first-appearance order.
    public var methods: [String] {
        var seen = Set<String>(), out: [String] = []
        for r in results where seen.insert(r.method).inserted { out.append(r.method) }
        return out
    }

    /// Layer rows sorted worst first: lowest SQNR first, unmeasured (`nil`) last, ties by name, bits, method.
    public var layersWorstFirst: [LayerRow] {
        layers.sorted { a, b in
            switch (a.sqnrDB, b.sqnrDB) {
            case let (x?, y?) where x != y: return x < y
            case (nil, _?): return false
            case (_?, nil): return true
            default: return (a.name, a.bits.weightBits, a.bits.activationBits, a.method)
                < (b.name, b.bits.weightBits, b.bits.activationBits, b.method)
            }
        }
    }
}

/// Shortest round-trip text of a finite Double, without a trailing `.0` (`82.6`, `3`, `0.125`).
func formatShortest(_ d: Double) -> String {
    if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
    return "\(d)"
}

/// Fixed-point text with `digits` decimals, using `.` whatever the locale.
func formatFixed(_ d: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", locale: Locale(identifier: "en_US_POSIX"), d)
}
