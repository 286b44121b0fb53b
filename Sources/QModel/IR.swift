// The in-memory IR of an integer network (what a `.qmodel` file holds). See docs/FORMAT.md.

/// Element type of a tensor or constant section.
public enum DType: String, Codable, Sendable, CaseIterable {
    /// IEEE float32, little endian.
    case float32
    /// int32, little endian (e.g. int32 biases).
    case int32
    /// int8. For activations: the folded form `q − z` of a uniform quantizer (adalog.md §4.1), real = q'·s.
    case int8
    /// uint8. For activations: the stored code `q` with zero point `z`, real = (q − z)·s.
    case uint8
    /// Signed 4-bit values packed two per byte, low nibble first (weights only; sections only).
    case int4
    /// Unsigned 4-bit codes packed two per byte, low nibble first (raw weight codes with a zero-point section).
    case uint4
    /// AdaLog codes, one byte each: 0..<2^b non-zero levels, 2^b the zero state (adalog.md §1.3).
    case code

    /// Bytes taken by `count` elements.
    public func byteCount(_ count: Int) -> Int {
        switch self {
        case .float32, .int32: count * 4
        case .int8, .uint8, .code: count
        case .int4, .uint4: (count + 1) / 2
        }
    }
}

/// A per-tensor asymmetric uniform quantizer (adalog.md §1.2): q = clamp(round(x/s) + z, 0, 2^b − 1).
public struct UniformParams: Codable, Sendable, Equatable {
    public var scale: Float
    public var zeroPoint: Int32
    public var bits: Int
    public init(scale: Float, zeroPoint: Int32, bits: Int) { self.scale = scale; self.zeroPoint = zeroPoint; self.bits = bits }
}

/// Per-head (or per-channel) uniform quantizers: one scale and zero point per group.
public struct UniformGroupParams: Codable, Sendable, Equatable {
    public var scale: [Float]
    public var zeroPoint: [Int32]
    public var bits: Int
    public init(scale: [Float], zeroPoint: [Int32], bits: Int) { self.scale = scale; self.zeroPoint = zeroPoint; self.bits = bits }
}

/// An AdaLog quantizer (adalog.md §1.3/§1.5): base 2^(q/r), `bits` non-zero code bits plus a zero state,
/// scale s, and the shift c added before coding (0 after softmax, 0.16997 after GELU; folded into the next bias).
public struct AdaLogParams: Codable, Sendable, Equatable {
    public var q: Int
    public var r: Int
    public var bits: Int
    public var scale: Float
    public var shift: Float
    public init(q: Int, r: Int = 37, bits: Int, scale: Float, shift: Float = 0) {
        self.q = q; self.r = r; self.bits = bits; self.scale = scale; self.shift = shift
    }
}

/// The quantizer of an activation tensor.
public enum TensorQuantizer: Codable, Sendable, Equatable {
    case uniform(UniformParams)
    case adaLog(AdaLogParams)
}

/// Rows `0..<count` of each sample of a [T, C] tensor quantized with `quantizer` instead of the tensor's own.
public struct TokenPrefix: Codable, Sendable, Equatable {
    public var count: Int
    public var quantizer: UniformParams
    public init(count: Int, quantizer: UniformParams) { self.count = count; self.quantizer = quantizer }
}

/// An activation tensor: per-sample shape (the runtime adds the batch dimension in front), element type and,
/// for integer types, the quantizer that gives its real value.
public struct TensorInfo: Codable, Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var quantizer: TensorQuantizer?
    /// The leading tokens of a token-major [T, C] tensor (the class token) on their own uniform quantizer, in the
    /// same storage type; nil: `quantizer` covers every row. Format version 3.
    public var prefix: TokenPrefix?
    public init(name: String, dtype: DType, shape: [Int], quantizer: TensorQuantizer? = nil, prefix: TokenPrefix? = nil) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.quantizer = quantizer; self.prefix = prefix
    }
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A named constant (weights, scales, biases, LayerNorm γ/β, embeddings): raw little-endian bytes of `dtype`.
public struct Constant: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]
    public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }
    public var elementCount: Int { shape.reduce(1, *) }

    /// A float32 constant.
    public static func float(_ name: String, shape: [Int], _ values: [Float]) -> Constant {
        var b = [UInt8](); b.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { b.append(contentsOf: $0) } }
        return Constant(name: name, dtype: .float32, shape: shape, bytes: b)
    }
    /// An int8 constant.
    public static func int8(_ name: String, shape: [Int], _ values: [Int8]) -> Constant {
        Constant(name: name, dtype: .int8, shape: shape, bytes: values.map { UInt8(bitPattern: $0) })
    }
    /// A packed int4 constant; throws when a value is outside [−8, 7].
    public static func int4(_ name: String, shape: [Int], _ values: [Int8]) throws(QModelError) -> Constant {
        var out = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        for (i, v) in values.enumerated() {
            guard v >= -8, v <= 7 else { throw .invalidGraph("constant '\(name)': value \(v) at \(i) does not fit int4") }
            let nib = UInt8(bitPattern: v) & 0x0F
            out[i / 2] |= i % 2 == 0 ? nib : nib << 4
        }
        return Constant(name: name, dtype: .int4, shape: shape, bytes: out)
    }

    /// Packed unsigned 4-bit codes; throws when a value is above 15.
    public static func uint4(_ name: String, shape: [Int], _ values: [UInt8]) throws(QModelError) -> Constant {
        var out = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        for (i, v) in values.enumerated() {
            guard v <= 15 else { throw .invalidGraph("constant '\(name)': value \(v) at \(i) does not fit uint4") }
            out[i / 2] |= i % 2 == 0 ? v : v << 4
        }
        return Constant(name: name, dtype: .uint4, shape: shape, bytes: out)
    }
    /// An int32 constant.
    public static func int32(_ name: String, shape: [Int], _ values: [Int32]) -> Constant {
        var b = [UInt8](); b.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        return Constant(name: name, dtype: .int32, shape: shape, bytes: b)
    }
    /// int32 values (nil unless dtype is int32).
    public func int32Values() -> [Int32]? {
        guard dtype == .int32, bytes.count == elementCount * 4 else { return nil }
        var out = [Int32](repeating: 0, count: elementCount)
        for i in 0..<elementCount {
            var u: UInt32 = 0
            for j in 0..<4 { u |= UInt32(bytes[4 * i + j]) << UInt32(8 * j) }
            out[i] = Int32(bitPattern: u)
        }
        return out
    }
    /// Unsigned values of a uint8 or uint4 constant; nil for other types.
    public func unsignedValues() -> [UInt8]? {
        switch dtype {
        case .uint8: return bytes
        case .uint4:
            guard bytes.count * 2 >= elementCount else { return nil }
            return (0..<elementCount).map { i in i % 2 == 0 ? bytes[i / 2] & 0x0F : bytes[i / 2] >> 4 }
        default: return nil
        }
    }

    /// float32 values (nil unless dtype is float32).
    public func floats() -> [Float]? {
        guard dtype == .float32, bytes.count == elementCount * 4 else { return nil }
        var out = [Float](repeating: 0, count: elementCount)
        for i in 0..<elementCount {
            let u = UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24
            out[i] = Float(bitPattern: u)
        }
        return out
    }

    /// Signed 8-bit values of an int8 or int4 constant (int4 sign-extended); nil for other types.
    public func int8Values() -> [Int8]? {
        switch dtype {
        case .int8: return bytes.map { Int8(bitPattern: $0) }
        case .int4:
            guard bytes.count * 2 >= elementCount else { return nil }
            return (0..<elementCount).map { i in
                let b = bytes[i / 2]
                let nib = i % 2 == 0 ? b & 0x0F : b >> 4
                return Int8(bitPattern: nib << 4) >> 4
            }
        default: return nil
        }
    }
}

/// Weights of a linear or conv layer, `[O][rest]`, one float scale per output row. Either folded signed
/// integers W' = W − z_w (int8/int4 section, `zeroPoints` nil; real = W'·s[o]), or raw unsigned codes W
/// (uint8/uint4 section) with an int32 `[O]` zero-point section (real = (W − z[o])·s[o]); the runtime folds the
/// latter at load (adalog.md §4.1), which needs W − z within int8 (true for ≤ 7-bit weights).
public struct WeightRef: Codable, Sendable, Equatable {
    public var weights: String
    public var scales: String
    public var zeroPoints: String?
    public var bits: Int
    public init(weights: String, scales: String, zeroPoints: String? = nil, bits: Int) {
        self.weights = weights; self.scales = scales; self.zeroPoints = zeroPoints; self.bits = bits
    }
}

extension QModel {
    /// The folded int8 weights W − z of `w` (nil when a section is missing, of the wrong type, or a folded value
    /// leaves int8).
    public func foldedWeights(_ w: WeightRef) -> [Int8]? {
        guard let c = constant(w.weights) else { return nil }
        guard let zn = w.zeroPoints else { return c.int8Values() }
        guard let raw = c.unsignedValues(), let z = constant(zn)?.int32Values(), !z.isEmpty, raw.count % z.count == 0 else { return nil }
        let per = raw.count / z.count
        var out = [Int8](repeating: 0, count: raw.count)
        for i in 0..<raw.count {
            let v = Int(raw[i]) - Int(z[i / per])
            guard v >= -128, v <= 127 else { return nil }
            out[i] = Int8(v)
        }
        return out
    }
}

extension QModel {
    /// Int8 weights plus, when W − z leaves int8 (8-bit asymmetric rows), a per-row offset: the real folded weight is
    /// `ints[o][k] + rowOffset[o]` with `ints = W − 128` and `rowOffset = 128 − z`. The runtime adds
    /// `rowOffset[o]·Σ_k x̃[k]` to the accumulator (nil offset: the weights fold exactly into int8).
    public func weightsWithRowOffset(_ w: WeightRef) -> (ints: [Int8], rowOffset: [Int32]?)? {
        if let f = foldedWeights(w) { return (f, nil) }
        guard let zn = w.zeroPoints, let c = constant(w.weights), c.dtype == .uint8, let raw = c.unsignedValues(),
              let z = constant(zn)?.int32Values(), !z.isEmpty, raw.count % z.count == 0, z.allSatisfy({ (0...255).contains($0) }) else { return nil }
        return (raw.map { Int8(Int($0) - 128) }, z.map { 128 - $0 })
    }
}

/// Output clamp fused into a producer (ReLU / ReLU6 of CNNs).
public enum Clamp: String, Codable, Sendable { case none, relu, relu6 }

public struct ConvOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    public var weight: WeightRef
    /// float32 [O] (optional).
    public var bias: String?
    public var kernel: [Int]   // [kh, kw]
    public var stride: [Int]   // [sh, sw]
    public var pads: [Int]     // [top, left, bottom, right]
    public var groups: Int
    public var clamp: Clamp
    public init(name: String, input: String, output: String, weight: WeightRef, bias: String?, kernel: [Int], stride: [Int],
                pads: [Int], groups: Int = 1, clamp: Clamp = .none) {
        self.name = name; self.input = input; self.output = output; self.weight = weight; self.bias = bias
        self.kernel = kernel; self.stride = stride; self.pads = pads; self.groups = groups; self.clamp = clamp
    }
}

public struct LinearOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    public var weight: WeightRef
    /// float32 [O] (optional). For `adaLogLinear` this is the folded bias b' = b − c·Ŵ·1 (adalog.md §1.5).
    public var bias: String?
    public var clamp: Clamp
    public init(name: String, input: String, output: String, weight: WeightRef, bias: String?, clamp: Clamp = .none) {
        self.name = name; self.input = input; self.output = output; self.weight = weight; self.bias = bias; self.clamp = clamp
    }
}

public struct LayerNormOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    /// float32 [C] (already scale-reparameterized, adalog.md §1.6).
    public var gamma: String, beta: String
    public var epsilon: Float
    public init(name: String, input: String, output: String, gamma: String, beta: String, epsilon: Float) {
        self.name = name; self.input = input; self.output = output; self.gamma = gamma; self.beta = beta; self.epsilon = epsilon
    }
}

/// Multi-head self-attention core on a float fused qkv tensor [T][3·H·d] (q, k, v blocks): per-head Q/K/V
/// quantizers, int8 Q·Kᵀ, float softmax, AdaLog-coded P × int8 V (adalog.md §4.2–4.4).
public struct AttentionOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    public var heads: Int
    public var headDim: Int
    public var query: UniformGroupParams, key: UniformGroupParams, value: UniformGroupParams
    /// The post-softmax quantizer: AdaLog (scale 1, shift 0; log2 is q = r, log√2 is q = 37, r = 74) or
    /// uniform with zero point 0 (the uniform baseline).
    public var probabilities: TensorQuantizer
    public init(name: String, input: String, output: String, heads: Int, headDim: Int, query: UniformGroupParams,
                key: UniformGroupParams, value: UniformGroupParams, probabilities: TensorQuantizer) {
        self.name = name; self.input = input; self.output = output; self.heads = heads; self.headDim = headDim
        self.query = query; self.key = key; self.value = value; self.probabilities = probabilities
    }
}

/// Max pooling over NHWC windows (ResNet stem). Works on float or directly on uint8/int8 codes (max commutes
/// with a monotone quantizer, so input and output share the quantizer); padding never wins.
public struct MaxPoolOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    public var kernel: [Int], stride: [Int], pads: [Int]
    public init(name: String, input: String, output: String, kernel: [Int], stride: [Int], pads: [Int]) {
        self.name = name; self.input = input; self.output = output; self.kernel = kernel; self.stride = stride; self.pads = pads
    }
}

public struct UnaryOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    public init(name: String, input: String, output: String) { self.name = name; self.input = input; self.output = output }
}

public struct BinaryOp: Codable, Sendable, Equatable {
    public var name: String
    public var a: String, b: String, output: String
    public init(name: String, a: String, b: String, output: String) { self.name = name; self.a = a; self.b = b; self.output = output }
}

public struct TokenSelectOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    public var index: Int
    public init(name: String, input: String, output: String, index: Int) { self.name = name; self.input = input; self.output = output; self.index = index }
}

/// ViT token assembly: prepend the class token and add the position embedding.
public struct ClassPositionOp: Codable, Sendable, Equatable {
    public var name: String
    public var input: String, output: String
    /// float32 [C] and [T+1, C].
    public var classToken: String, position: String
    public init(name: String, input: String, output: String, classToken: String, position: String) {
        self.name = name; self.input = input; self.output = output; self.classToken = classToken; self.position = position
    }
}

/// One operation of the integer network. Input/output element types say which kernel runs (see docs/FORMAT.md §Ops).
public enum Op: Codable, Sendable, Equatable {
    /// Dense, grouped or depthwise conv, NHWC. Float input → float conv with dequantized weights;
    /// quantized input → int8 conv (im2col GEMM or depthwise kernel). Output float or quantized.
    case conv2d(ConvOp)
    /// Linear over the last axis: quantized input → int8 GEMM, output dequantized (float) or requantized.
    case linear(LinearOp)
    /// fc2 on AdaLog codes (int16 table × int8 weights), float output with the folded bias.
    case adaLogLinear(LinearOp)
    /// Float LayerNorm fused with quantize into the output tensor's uniform quantizer.
    case layerNormQuantize(LayerNormOp)
    case attention(AttentionOp)
    /// Float → GELU → + shift → AdaLog codes (output tensor's AdaLog quantizer).
    case geluAdaLog(UnaryOp)
    /// Float GELU (uniform baselines quantize its output with a `quantize` op).
    case gelu(UnaryOp)
    /// Float → quantized (output tensor's uniform quantizer).
    case quantize(UnaryOp)
    /// Quantized → float.
    case dequantize(UnaryOp)
    /// Float residual add.
    case add(BinaryOp)
    /// Float NHWC [H, W, C] → [C].
    case globalAveragePool(UnaryOp)
    /// Float [T, C] → [C] (row `index`, the class token).
    case tokenSelect(TokenSelectOp)
    case classPosition(ClassPositionOp)
    /// Same elements, new shape (copy).
    case reshape(UnaryOp)
    case maxPool(MaxPoolOp)

    public var name: String {
        switch self {
        case let .conv2d(o): o.name
        case let .linear(o), let .adaLogLinear(o): o.name
        case let .layerNormQuantize(o): o.name
        case let .attention(o): o.name
        case let .geluAdaLog(o), let .gelu(o), let .quantize(o), let .dequantize(o), let .globalAveragePool(o), let .reshape(o): o.name
        case let .add(o): o.name
        case let .tokenSelect(o): o.name
        case let .classPosition(o): o.name
        case let .maxPool(o): o.name
        }
    }
    public var kind: String {
        switch self {
        case .conv2d: "conv2d"
        case .linear: "linear"
        case .adaLogLinear: "adaLogLinear"
        case .layerNormQuantize: "layerNormQuantize"
        case .attention: "attention"
        case .geluAdaLog: "geluAdaLog"
        case .gelu: "gelu"
        case .quantize: "quantize"
        case .dequantize: "dequantize"
        case .add: "add"
        case .globalAveragePool: "globalAveragePool"
        case .tokenSelect: "tokenSelect"
        case .classPosition: "classPosition"
        case .reshape: "reshape"
        case .maxPool: "maxPool"
        }
    }
    public var inputs: [String] {
        switch self {
        case let .conv2d(o): [o.input]
        case let .linear(o), let .adaLogLinear(o): [o.input]
        case let .layerNormQuantize(o): [o.input]
        case let .attention(o): [o.input]
        case let .geluAdaLog(o), let .gelu(o), let .quantize(o), let .dequantize(o), let .globalAveragePool(o), let .reshape(o): [o.input]
        case let .add(o): [o.a, o.b]
        case let .tokenSelect(o): [o.input]
        case let .classPosition(o): [o.input]
        case let .maxPool(o): [o.input]
        }
    }
    public var output: String {
        switch self {
        case let .conv2d(o): o.output
        case let .linear(o), let .adaLogLinear(o): o.output
        case let .layerNormQuantize(o): o.output
        case let .attention(o): o.output
        case let .geluAdaLog(o), let .gelu(o), let .quantize(o), let .dequantize(o), let .globalAveragePool(o), let .reshape(o): o.output
        case let .add(o): o.output
        case let .tokenSelect(o): o.output
        case let .classPosition(o): o.output
        case let .maxPool(o): o.output
        }
    }
}

/// Preprocessing a deployed model needs (mirrors Imaging.PreprocessSpec without depending on it).
public struct Preprocessing: Codable, Sendable, Equatable {
    public var size: Int
    public var cropPct: Double
    public var interpolation: String
    public var mean: [Float]
    public var std: [Float]
    /// Input layout of the image tensor; the runtime uses NHWC.
    public var layout: String
    public init(size: Int, cropPct: Double, interpolation: String, mean: [Float], std: [Float], layout: String = "NHWC") {
        self.size = size; self.cropPct = cropPct; self.interpolation = interpolation; self.mean = mean; self.std = std; self.layout = layout
    }
}

/// A whole integer network: metadata, tensors, ops in execution order, constants.
public struct QModel: Sendable, Equatable {
    public var name: String
    public var preprocessing: Preprocessing?
    public var classNames: [String]
    public var tensors: [TensorInfo]
    public var ops: [Op]
    public var inputs: [String]
    public var outputs: [String]
    public var constants: [Constant]
    public init(name: String, preprocessing: Preprocessing? = nil, classNames: [String] = [], tensors: [TensorInfo], ops: [Op],
                inputs: [String], outputs: [String], constants: [Constant]) {
        self.name = name; self.preprocessing = preprocessing; self.classNames = classNames; self.tensors = tensors
        self.ops = ops; self.inputs = inputs; self.outputs = outputs; self.constants = constants
    }

    public func tensor(_ name: String) -> TensorInfo? { tensors.first { $0.name == name } }
    public func constant(_ name: String) -> Constant? { constants.first { $0.name == name } }
}
