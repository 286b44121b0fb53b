// The float executor: runs a StaticGraph on the FloatKernels API with buffers reused across runs,
// and exposes hooks for calibration (observe each tensor) and fake-quant simulation (transform a tensor
// right after it is produced), plus weight substitution without reloading the model.
import ONNXGraph

/// One tensor right after the node that produced it has run (graph inputs are reported too, with
/// `node == nil`). The values are only valid during the callback: copy what you keep.
public struct TensorObservation {
    public let name: String
    /// The node that produced the tensor (for fused steps: the last node of the fused group).
    public let node: Node?
    public let shape: [Int]
    public let values: UnsafeBufferPointer<Float>
}

/// Options fixed when a session is built.
public struct SessionOptions: Sendable {
    /// Fuse Conv/Gemm/MatMul with a following bias Add and Relu/Clip, and the Erf-form GELU chain.
    /// Fused-away intermediate tensors are then not materialised (hooks never see them); turn off to
    /// observe every ONNX tensor.
    public var fuse: Bool = true
    /// Tensors that must stay materialised even when fusing (so hooks see them), e.g. conv outputs
    /// ahead of a Relu that calibration wants to observe.
    public var keep: Set<String> = []
    public init(fuse: Bool = true, keep: Set<String> = []) { self.fuse = fuse; self.keep = keep }
}

/// A runnable float model bound to one batch size.
///
/// Hooks, in the order they are called for each produced tensor:
/// 1. `observer(obs)` sees the values as computed (from possibly transformed inputs);
/// 2. `transform(name, shape, values)` may overwrite the values in place (e.g. fake-quantize them);
///    every consumer downstream then reads the transformed values.
/// Weights: `substituteConstants(_:)` swaps initializers (e.g. quantized-dequantized weights) and
/// repacks only the affected layers; `restoreConstants()` goes back to the model's own.
///
/// Which tensors hooks see: graph inputs and every node output, except intermediates fused away
/// (MatMul before its bias Add, Conv before its Relu/Clip, the inside of an Erf-GELU chain, a Kᵀ
/// Transpose read by Q·Kᵀ). Keep them with `SessionOptions(keep:)` or turn fusion off.
/// The tensors the quantizer cares about (`ModelPatterns`: linear/conv inputs and outputs, LayerNorm and
/// GELU outputs, Q, K, V, softmax probabilities) are all materialised with default options except conv
/// outputs followed by an activation and Kᵀ (K itself is materialised).
///
/// ```swift
/// let model = try ONNXModel(contentsOf: "vit.onnx")
/// let session = try FloatSession(graph: model.graph, batch: 8)
/// let patterns = try ModelPatterns(graph: session.graph)
/// var maxAbs: [String: Float] = [:]
/// session.observer = { t in                       // calibration statistics
///     maxAbs[t.name] = max(maxAbs[t.name] ?? 0, t.values.map(abs).max() ?? 0)
/// }
/// session.transform = { name, _, v in             // fake-quantize the softmax outputs
///     guard patterns.attentions.contains(where: { $0.probabilities == name }) else { return }
///     for i in v.indices { v[i] = (v[i] * 255).rounded() / 255 }
/// }
/// try session.substituteConstants([fc.weight: dequantizedWeight])   // quantized weights
/// let logits = try session.run(images)
/// ```
///
/// A session is not thread-safe: run it from one thread at a time (kernels use 2 threads inside).
public final class FloatSession {
    public let graph: StaticGraph
    public let options: SessionOptions
    /// Called for every materialised tensor (graph inputs and node outputs) right after it is produced.
    public var observer: ((TensorObservation) -> Void)?
    /// Called after `observer`; may modify the tensor's values in place before consumers read them.
    public var transform: ((_ name: String, _ shape: [Int], _ values: UnsafeMutableBufferPointer<Float>) -> Void)?

    /// When set, each run adds its per-op wall time here (for finding slow steps).
    public var profile: OpProfile?

    /// When not empty, a run stops as soon as every one of these tensors has been produced (hooks have seen
    /// them); the graph outputs it returns are then not computed. For collecting early tensors cheaply.
    public var stopAfter: Set<String> = []

    let originalConstants: [String: Tensor]
    private(set) var constants: [String: Tensor]
    var plan: ExecutionPlan

    /// Specialises `model` to `batch` and prepares it (weights packed once).
    public convenience init(graph: Graph, batch: Int = 1, options: SessionOptions = .init(),
                            limits: ResourceLimits = .default) throws {
        try self.init(staticGraph: try graph.specialized(batch: batch, limits: limits), options: options)
    }

    public init(staticGraph: StaticGraph, options: SessionOptions = .init()) throws {
        graph = staticGraph
        self.options = options
        originalConstants = staticGraph.constants
        constants = staticGraph.constants
        plan = try ExecutionPlan(graph: staticGraph, constants: staticGraph.constants, options: options)
    }

    /// Replaces constant tensors (weights, biases) by name and re-prepares the layers that use them.
    /// Shapes must match the originals.
    public func substituteConstants(_ replacements: [String: Tensor]) throws {
        var next = constants
        for (k, v) in replacements {
            guard let old = originalConstants[k] else { throw ONNXError.execution("no constant named '\(k)' in the specialised graph") }
            guard old.shape == v.shape else {
                throw ONNXError.execution("constant '\(k)': replacement shape \(v.shape) differs from \(old.shape)")
            }
            next[k] = v
        }
        try plan.rebuild(graph: graph, constants: next, changed: Set(replacements.keys), options: options)
        constants = next
    }

    /// Goes back to the model's own constants.
    public func restoreConstants() throws {
        let changed = Set(constants.keys.filter { constants[$0] != originalConstants[$0] })
        try plan.rebuild(graph: graph, constants: originalConstants, changed: changed, options: options)
        constants = originalConstants
    }

    /// Runs the graph. `inputs` maps input names to row-major values of the bound shapes.
    /// Returns every graph output.
    public func run(_ inputs: [String: [Float]]) throws -> [String: Tensor] {
        for spec in graph.inputs {
            guard let v = inputs[spec.name] else { throw ONNXError.execution("missing input '\(spec.name)' (shape \(spec.shape))") }
            guard v.count == elementCount(spec.shape) else {
                throw ONNXError.inputShape(input: spec.name, expected: "\(spec.shape) (\(elementCount(spec.shape)) values)", got: [v.count])
            }
        }
        return try plan.execute(inputs: inputs, session: self)
    }

    /// Convenience for single-input, single-output models: returns the output's values.
    public func run(_ input: [Float]) throws -> [Float] {
        guard graph.inputs.count == 1, let out = graph.outputs.first else {
            throw ONNXError.execution("run(_:) needs a model with one input; this one has \(graph.inputs.count)")
        }
        let r = try run([graph.inputs[0].name: input])
        return r[out.name]?.floats ?? []
    }
}

/// Accumulated wall time per op type (fused groups are named like `Conv+Relu`).
public final class OpProfile {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var calls: [String: Int] = [:]
    public init() {}
    func add(_ op: String, _ s: Double) { seconds[op, default: 0] += s; calls[op, default: 0] += 1 }
    /// Lines "op  total ms  calls", slowest first.
    public var report: String {
        seconds.sorted { $0.value > $1.value }.map {
            let ms = $0.value * 1000
            let padded = $0.key.count < 28 ? $0.key + String(repeating: " ", count: 28 - $0.key.count) : $0.key
            return "\(padded) \((ms * 100).rounded() / 100) ms  \(calls[$0.key] ?? 0) calls"
        }.joined(separator: "\n")
    }
}
