// The result of quantizing a model, as written to JSON until the runtime `.qmodel` format exists:
// the plan, every chosen quantizer (by tensor), the folds (LayerNorm scale reparameterization, GELU
// shift into fc2's bias), the source model and the preprocessing/calibration that produced it.
import Foundation
import Imaging
import FileOutput

/// Which calibration method produced the parameters.
public enum QuantMethod: String, Codable, Sendable, CaseIterable {
    /// The full AdaLog method (adalog.md §1): FPCS searches, LayerNorm reparameterization, AdaLog softmax/GELU.
    case adalog
    /// Plain baseline: per-row min-max weights, per-tensor min-max activations everywhere (incl. softmax and GELU outputs).
    case uniformMinMax = "uniform-minmax"

    public static func parse(_ s: String) throws(QuantError) -> QuantMethod {
        guard let m = QuantMethod(rawValue: s.lowercased()) else {
            throw .badPlanOption(s, reason: "method must be one of adalog, uniform-minmax")
        }
        return m
    }
}

/// A quantized weight tensor: the quantizer works on the weight viewed as [outputs × rest] (per row / per
/// output channel); `transposed` says the stored tensor is [in, out] (ONNX MatMul) and must be transposed first.
public struct WeightQuantization: Codable, Equatable, Sendable {
    public var layer: String
    public var tensor: String
    public var transposed: Bool
    public var quantizer: UniformQuantizer
    /// Integer codes [outputs × rest] (row-major, in the quantizer's view: after any LayerNorm fold) when the
    /// weights were not rounded to nearest (GPTQ rounding); nil: the codes are the quantizer applied to the
    /// (folded) source weight. Base64 in JSON.
    public var codes: Data? = nil
}

/// A quantized activation: `tensor` as read by the node `consumer` (other readers see float values).
public struct ActivationQuantization: Codable, Equatable, Sendable {
    public var tensor: String
    public var consumer: String
    public var kind: TensorKind
    public var quantizer: QuantizerParameters
    /// The leading tokens of each image (the class token) quantized on their own; nil: `quantizer` covers all rows.
    public var prefix: TokenPrefixQuantization? = nil
}

/// Not in the reference (`--class-token-bits`): the first `count` of every `tokens` rows of a token-major
/// activation [images, tokens, channels] get their own per-tensor quantizer. A ViT's class token carries
/// outlier channels the patch tokens do not; giving it a wider grid (8 bits over its own range) costs one row
/// per image and lets the shared low-bit grid fit the patch tokens alone.
public struct TokenPrefixQuantization: Codable, Equatable, Sendable {
    public var tokens: Int
    public var count: Int
    public var quantizer: UniformQuantizer

    public init(tokens: Int, count: Int, quantizer: UniformQuantizer) {
        self.tokens = tokens; self.count = count; self.quantizer = quantizer
    }

    /// Row r (of images × tokens rows) is a prefix row.
    @inline(__always) public func isPrefix(row r: Int) -> Bool { r % tokens < count }
}

/// The scale reparameterization of adalog.md §1.6 applied to the source constants:
/// γ ← γ/r, β ← β/r − b, W[:, c] ← r_c W[:, c], bias ← bias + W'·b.
public struct LayerNormFold: Codable, Equatable, Sendable {
    public var linear: String
    public var gamma: String, beta: String, weight: String, bias: String
    /// The weight is stored [in, out] (ONNX MatMul), not [out, in].
    public var weightStoredInOut: Bool
    public var r: [Float]
    public var b: [Float]
}

/// The GELU shift folded into the next bias with the quantized weight: bias ← bias − shift·Ŵ·1.
public struct BiasFold: Codable, Equatable, Sendable {
    public var linear: String
    public var bias: String
    public var weight: String
    /// The weight is stored [in, out] (ONNX MatMul), not [out, in].
    public var weightStoredInOut: Bool
    public var shift: Float
}

/// Empirical bias correction (not in the reference; `--bias-correction`): bias ← bias + delta with
/// delta_o = E[x]·w_o − E[x̂]·ŵ_o over the calibration inputs of the layer (per conv tap, padding included),
/// so the layer's mean output matches float.
public struct BiasCorrection: Codable, Equatable, Sendable {
    public var layer: String
    public var bias: String
    public var delta: [Float]
}

/// Time and candidate count of one layer's search.
public struct LayerSearchRecord: Codable, Equatable, Sendable {
    public var layer: String
    public var kind: String
    public var evaluations: Int
    public var seconds: Double
    /// Per search phase (e.g. "W self", "A out r1"): seconds.
    public var phases: [String] = []
    public var phaseSeconds: [Double] = []
}

/// One block of `--block-reconstruction`: the block loss (calibration images, hard rounding) before and after.
public struct BlockReconstructionRecord: Codable, Equatable, Sendable {
    public var block: String
    public var lossBefore: Double
    public var lossAfter: Double
    /// False when the tuned block was no better and was left as it was.
    public var kept: Bool
    public var seconds: Double
    /// Weights trained, and how many of their starting codes (GPTQ's) were not one of the two grid points next to the
    /// float weight (those start from the nearer of the two).
    public var weights: Int
    public var codesNotNextToWeight: Int
}

/// Everything needed to rebuild the quantized (fake-quant) model from the source ONNX file.
public struct QuantizedModel: Codable, Equatable, Sendable {
    public var formatVersion = 1
    public var sourceModel: String
    /// SHA-256 of the source file (hex).
    public var sourceSHA256: String
    public var preprocessing: PreprocessSpec
    public var calibrationFiles: [String]
    public var calibrationSeed: UInt64
    public var method: QuantMethod
    public var plan: QuantizationPlan
    public var settings: FPCSSettings
    /// Conv+BatchNorm pairs were folded before quantization (CNNs).
    public var foldedBatchNorms: Bool
    public var layerNormFolds: [LayerNormFold] = []
    public var biasFolds: [BiasFold] = []
    /// Bias corrections (nil or empty: none), applied after the folds.
    public var biasCorrections: [BiasCorrection]? = nil
    public var weights: [WeightQuantization] = []
    public var activations: [ActivationQuantization] = []
    public var layers: [LayerSearchRecord] = []
    public var calibrationSeconds: Double = 0
    public var searchSeconds: Double = 0
    /// Per block of `--block-reconstruction` (nil: not run).
    public var reconstruction: [BlockReconstructionRecord]? = nil

    public init(sourceModel: String, sourceSHA256: String, preprocessing: PreprocessSpec, calibrationFiles: [String],
                calibrationSeed: UInt64, method: QuantMethod, plan: QuantizationPlan, settings: FPCSSettings,
                foldedBatchNorms: Bool) {
        self.sourceModel = sourceModel; self.sourceSHA256 = sourceSHA256; self.preprocessing = preprocessing
        self.calibrationFiles = calibrationFiles; self.calibrationSeed = calibrationSeed; self.method = method
        self.plan = plan; self.settings = settings; self.foldedBatchNorms = foldedBatchNorms
    }

    /// Pretty JSON.
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }

    /// Writes the JSON atomically through ``AtomicFile`` (temporary file beside it, fsync, rename; an interrupted
    /// run leaves no temporary file when the tool called `AtomicFile.removeTemporariesOnInterrupt()`).
    public func write(to path: String) throws {
        try AtomicFile.write(try jsonData(), to: URL(fileURLWithPath: path))
    }

    public static func load(from path: String) throws -> QuantizedModel {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try dec.decode(QuantizedModel.self, from: d)
    }
}

extension QuantizedModel {
    /// Drops every search result (quantizers, folds, corrections, layer records), keeping the metadata.
    mutating func clearResults() {
        layerNormFolds = []; biasFolds = []; biasCorrections = nil; weights = []; activations = []; layers = []
    }

    /// Appends `part`'s search results (a model that started from `clearResults()`).
    mutating func append(_ part: QuantizedModel) {
        layerNormFolds += part.layerNormFolds
        biasFolds += part.biasFolds
        if let b = part.biasCorrections, !b.isEmpty { biasCorrections = (biasCorrections ?? []) + b }
        weights += part.weights
        activations += part.activations
        layers += part.layers
    }
}
