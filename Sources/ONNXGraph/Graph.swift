// The graph in the suite's own terms: named tensors, nodes with decoded attributes, and inputs whose
// dimensions may be symbolic (a batch dimension).

/// One dimension of a declared input/output: fixed, or a named symbol such as `batch`.
public enum Dim: Sendable, Equatable, CustomStringConvertible {
    case fixed(Int)
    case symbol(String)

    public var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .symbol(let s): return s.isEmpty ? "?" : s
        }
    }
}

/// A declared graph input or output.
public struct ValueInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    /// nil when the model does not declare a shape.
    public var dims: [Dim]?

    public init(name: String, dtype: DType, dims: [Dim]?) {
        self.name = name; self.dtype = dtype; self.dims = dims
    }

    public var shapeDescription: String {
        guard let d = dims else { return "(unknown)" }
        return "[" + d.map(\.description).joined(separator: ", ") + "]"
    }
}

/// A decoded node attribute.
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(Tensor)
    /// Graph-valued attributes (If/Loop bodies) are recorded but not executed.
    case graph
}

/// One operation of the graph.
public struct Node: Sendable, Equatable {
    public var name: String
    public var opType: String
    public var domain: String
    /// Input tensor names; an empty string marks an omitted optional input.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: Attribute]

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: Attribute] = [:]) {
        self.name = name; self.opType = opType; self.domain = domain
        self.inputs = inputs; self.outputs = outputs; self.attributes = attributes
    }

    public func int(_ key: String) -> Int? { if case .int(let v)? = attributes[key] { return v }; return nil }
    public func int(_ key: String, default d: Int) -> Int { int(key) ?? d }
    public func float(_ key: String, default d: Float) -> Float {
        if case .float(let v)? = attributes[key] { return v }
        if case .int(let v)? = attributes[key] { return Float(v) }
        return d
    }
    public func ints(_ key: String) -> [Int]? {
        if case .ints(let v)? = attributes[key] { return v }
        if case .int(let v)? = attributes[key] { return [v] }
        return nil
    }
    public func floats(_ key: String) -> [Float]? { if case .floats(let v)? = attributes[key] { return v }; return nil }
    public func string(_ key: String) -> String? { if case .string(let v)? = attributes[key] { return v }; return nil }
    public func tensor(_ key: String) -> Tensor? { if case .tensor(let v)? = attributes[key] { return v }; return nil }

    /// Input name `i`, or nil if absent/omitted.
    public func input(_ i: Int) -> String? { i < inputs.count && !inputs[i].isEmpty ? inputs[i] : nil }

    /// A name for messages: the node name, or op and first output when unnamed.
    public var displayName: String { name.isEmpty ? "\(opType)→\(outputs.first ?? "?")" : name }
}

/// A model graph as read from ONNX, before shapes are bound.
public struct Graph: Sendable {
    public var name: String
    public var nodes: [Node]
    /// Weights and other constants, by name.
    public var initializers: [String: Tensor]
    /// Graph inputs that are not initializers (what the user feeds).
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Opset of the default (ai.onnx) domain.
    public var opset: Int
    /// All imported opsets by domain ("" is ai.onnx).
    public var opsets: [String: Int]
    public var producer: String
    public var irVersion: Int

    public init(name: String, nodes: [Node], initializers: [String: Tensor], inputs: [ValueInfo],
                outputs: [ValueInfo], opset: Int, opsets: [String: Int] = [:], producer: String = "", irVersion: Int = 0) {
        self.name = name; self.nodes = nodes; self.initializers = initializers
        self.inputs = inputs; self.outputs = outputs; self.opset = opset
        self.opsets = opsets.isEmpty ? ["": opset] : opsets
        self.producer = producer; self.irVersion = irVersion
    }

    /// Number of float parameters held in initializers (weights and biases).
    public var parameterCount: Int {
        initializers.values.reduce(0) { $0 + ($1.dtype.isFloat ? $1.count : 0) }
    }

    /// Count of each op type, Constant included.
    public var opHistogram: [String: Int] {
        var h: [String: Int] = [:]
        for n in nodes { h[n.opType, default: 0] += 1 }
        return h
    }

    /// Nodes whose op (in its domain) the suite cannot run.
    public var unsupportedNodes: [Node] {
        nodes.filter { !OpSupport.isSupported($0.opType, domain: $0.domain) }
    }
}
