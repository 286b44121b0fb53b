// Tensors in the suite's own terms: a shape, an element type, and values.

/// The element types the suite distinguishes. Floating types are held as `Float`; integer and
/// boolean types as `Int64` (bool is 0/1), which is what shape arithmetic needs.
public enum DType: String, Sendable, Equatable, CustomStringConvertible {
    case float32, float16, float64, bfloat16
    case int64, int32, int16, int8, uint8, uint16, uint32, uint64, bool

    /// Floating types are stored as `Float`.
    public var isFloat: Bool {
        switch self {
        case .float32, .float16, .float64, .bfloat16: return true
        default: return false
        }
    }

    /// The ONNX `TensorProto.DataType` code.
    public var onnxCode: Int {
        switch self {
        case .float32: return 1
        case .uint8: return 2
        case .int8: return 3
        case .uint16: return 4
        case .int16: return 5
        case .int32: return 6
        case .int64: return 7
        case .bool: return 9
        case .float16: return 10
        case .float64: return 11
        case .uint32: return 12
        case .uint64: return 13
        case .bfloat16: return 16
        }
    }

    /// Maps an ONNX `TensorProto.DataType` code; nil for types the suite does not handle (string, complex…).
    public init?(onnxCode: Int) {
        switch onnxCode {
        case 1: self = .float32
        case 2: self = .uint8
        case 3: self = .int8
        case 4: self = .uint16
        case 5: self = .int16
        case 6: self = .int32
        case 7: self = .int64
        case 9: self = .bool
        case 10: self = .float16
        case 11: self = .float64
        case 12: self = .uint32
        case 13: self = .uint64
        case 16: self = .bfloat16
        default: return nil
        }
    }

    public var description: String { rawValue }
}

/// The values of a tensor: floats for floating types, 64-bit integers otherwise.
public enum TensorData: Sendable, Equatable {
    case float([Float])
    case int([Int64])

    public var count: Int {
        switch self {
        case .float(let v): return v.count
        case .int(let v): return v.count
        }
    }
}

/// A dense, row-major tensor with concrete shape and values (initializers, folded constants,
/// and values passed to or returned from the executor).
public struct Tensor: Sendable, Equatable, CustomStringConvertible {
    public var shape: [Int]
    public var dtype: DType
    public var data: TensorData

    public init(shape: [Int], dtype: DType = .float32, floats: [Float]) {
        self.shape = shape
        self.dtype = dtype.isFloat ? dtype : .float32
        self.data = .float(floats)
    }

    public init(shape: [Int], dtype: DType = .int64, ints: [Int64]) {
        self.shape = shape
        self.dtype = dtype.isFloat ? .int64 : dtype
        self.data = .int(ints)
    }

    /// A rank-0 float.
    public init(scalar: Float) { self.init(shape: [], floats: [scalar]) }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Values as floats (integers converted).
    public var floats: [Float] {
        switch data {
        case .float(let v): return v
        case .int(let v): return v.map { Float($0) }
        }
    }

    /// Values as integers (floats truncated toward zero, as ONNX `Cast` does).
    public var ints: [Int64] {
        switch data {
        case .int(let v): return v
        case .float(let v): return v.map(saturatingInt64)
        }
    }

    public var description: String {
        "Tensor(\(dtype) \(shape))"
    }
}

/// Number of elements of a shape (1 for a scalar). Saturates at `Int.max` instead of trapping when a hostile shape
/// overflows (callers that allocate check the count against a limit first).
@inlinable public func elementCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape {
        let (m, o) = n.multipliedReportingOverflow(by: d)
        if o { return Int.max }
        n = m
    }
    return n
}

/// Row-major strides of a shape.
@inlinable public func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        s[i] = acc
        acc *= shape[i]
    }
    return s
}

/// Float → Int64 truncating toward zero, saturating at the Int64 range (NaN → 0); never traps.
@inlinable public func saturatingInt64(_ f: Float) -> Int64 {
    if f.isNaN { return 0 }
    if f >= 9.2e18 { return Int64.max }
    if f <= -9.2e18 { return Int64.min }
    return Int64(f.rounded(.towardZero))
}
