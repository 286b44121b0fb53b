/// Everything that can go wrong reading, specialising or running an ONNX model, with messages a
/// user can act on (file, node, op, what was expected).
public enum ONNXError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read.
    case cannotRead(path: String, reason: String)
    /// The bytes are not a valid ONNX ModelProto (malformed or truncated protobuf).
    case malformedProtobuf(path: String, reason: String)
    /// The model has no graph or an empty one.
    case emptyModel(path: String)
    /// An initializer or constant could not be decoded.
    case badTensor(name: String, reason: String)
    /// An external-data file is missing, escapes the model's folder, or is too short.
    case externalData(tensor: String, file: String, reason: String)
    /// A node uses an op (or domain/opset) the suite does not implement.
    case unsupportedOp(node: String, op: String, domain: String, opset: Int, supported: [String])
    /// A node's attributes or inputs are not what its op needs.
    case badNode(node: String, op: String, reason: String)
    /// A tensor name is used but never produced.
    case missingTensor(name: String, node: String)
    /// The input shape given does not fit what the model declares or can compute.
    case inputShape(input: String, expected: String, got: [Int])
    /// Shape inference failed at a node (usually: the model cannot take this input size).
    case shapeMismatch(node: String, op: String, reason: String)
    /// The model needs more memory than the configured cap (`ResourceLimits`, `--max-memory-mb`); refused before
    /// allocating. `bytes` is what `what` needs, `used` what was already counted.
    case exceedsMemoryLimit(what: String, bytes: Int, used: Int, limit: Int)
    /// Folding the graph's constant subgraphs would take more arithmetic than `ResourceLimits.maxFoldingOperations`
    /// (in all, counted before each node is evaluated).
    case exceedsFoldingLimit(node: String, op: String, operations: Int, limit: Int)
    /// Something about running the graph (wrong inputs, unknown tensor in a hook or substitution).
    case execution(String)

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): return "cannot read ONNX model '\(p)': \(r)"
        case .malformedProtobuf(let p, let r):
            return "'\(p)' is not a valid ONNX model (malformed or truncated protobuf): \(r)"
        case .emptyModel(let p): return "'\(p)' holds no graph (no nodes and no outputs)"
        case .badTensor(let n, let r): return "tensor '\(n)': \(r)"
        case .externalData(let t, let f, let r): return "external data of tensor '\(t)' (file '\(f)'): \(r)"
        case .unsupportedOp(let node, let op, let domain, let opset, let supported):
            let d = domain.isEmpty ? "ai.onnx" : domain
            return "node '\(node)': op '\(op)' (domain \(d), opset \(opset)) is not supported. Supported ops: "
                + supported.joined(separator: ", ")
        case .badNode(let n, let op, let r): return "node '\(n)' (\(op)): \(r)"
        case .missingTensor(let name, let node): return "node '\(node)' uses tensor '\(name)', which nothing produces"
        case .inputShape(let i, let e, let g): return "input '\(i)': expected shape \(e), got \(g)"
        case .shapeMismatch(let n, let op, let r):
            return "node '\(n)' (\(op)): \(r) — the model cannot take this input shape"
        case .exceedsMemoryLimit(let what, let bytes, let used, let limit):
            func mb(_ b: Int) -> String {
                b == Int.max ? "more than addressable memory" : b < 1 << 20 ? "\(b) bytes" : "\((b + (1 << 19)) >> 20) MiB"
            }
            return "\(what) needs \(mb(bytes)) on top of \(mb(used)) already counted, above the memory limit of \(mb(limit)) "
                + "(raise it with --max-memory-mb if this model is intended)"
        case .exceedsFoldingLimit(let node, let op, let operations, let limit):
            let count = operations == Int.max ? "more operations than can be counted" : "\(operations) operations"
            return "node '\(node)' (\(op)) has only constant inputs, and folding it would take \(count), more than is "
                + "left of the constant-folding limit of \(limit) operations (ResourceLimits.maxFoldingOperations)"
        case .execution(let m): return m
        }
    }
}
