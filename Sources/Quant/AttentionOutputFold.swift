// Per-channel scale reparameterization of the attention output (the input of the projection after
// P·V), folded into V's rows of the qkv layer and the projection's input columns. Not part of the AdaLog
// reference, which quantizes this tensor per tensor; it is RepQ-ViT's post-LayerNorm idea applied where
// the scale can move through P·V instead of through a LayerNorm.
//
// Attention output channel c is a mix of V's channel c over tokens (O = P·V per head), so dividing V's
// channel c by r_c divides the projection input's channel c by r_c exactly, and multiplying the projection's
// weight column c by r_c undoes it. With r_c = s_c / s̄ (s_c the channel's own searched scale, s̄ their mean)
// every channel spans about the same number of codes of one per-tensor quantizer, as a per-channel
// quantizer would give, with an unchanged integer kernel. V's per-head quantizer sees equalized channels too.
// Only the scale moves: a per-channel shift would travel through P·V only as far as the rows of the
// quantized P sum to 1.
import ONNXGraph

/// One fold: qkv's V rows divided by r, the projection's input columns multiplied by r.
public struct ValueProjectionFold: Codable, Equatable, Sendable {
    /// The linear layer producing Q, K and V (its output feature `valueOffset + c` is V's channel c).
    public var qkvLinear: String
    public var qkvWeight: String
    public var qkvBias: String?
    /// The weight is stored [in, out] (ONNX MatMul), not [out, in].
    public var qkvWeightStoredInOut: Bool
    public var valueOffset: Int
    /// The projection reading the attention output.
    public var projLinear: String
    public var projWeight: String
    public var projWeightStoredInOut: Bool
    /// Per attention-output channel.
    public var r: [Float]

    /// Applies the fold to the float constants read by `get` and written by `set` (weights in their stored layout).
    func apply(shape: (String) -> [Int], get: (String) throws -> [Float], set: (String, [Float]) -> Void) throws {
        let c = r.count
        let qs = shape(qkvWeight), ps = shape(projWeight)
        guard qs.count == 2, ps.count == 2 else {
            throw QuantError.shapeMismatch("attention-output fold of '\(projLinear)': weights are not matrices (\(qs), \(ps))")
        }
        let qkvOut = qkvWeightStoredInOut ? qs[1] : qs[0], qkvIn = qkvWeightStoredInOut ? qs[0] : qs[1]
        let projIn = projWeightStoredInOut ? ps[0] : ps[1], projOut = projWeightStoredInOut ? ps[1] : ps[0]
        guard projIn == c, valueOffset >= 0, valueOffset + c <= qkvOut, r.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw QuantError.shapeMismatch("attention-output fold of '\(projLinear)': \(c) factors for a projection of \(projIn) inputs and V rows \(valueOffset)..<\(valueOffset + c) of \(qkvOut)")
        }
        var wq = try get(qkvWeight)
        for ch in 0..<c {
            let j = valueOffset + ch, inv = 1 / r[ch]
            for i in 0..<qkvIn {
                let idx = qkvWeightStoredInOut ? i * qkvOut + j : j * qkvIn + i
                wq[idx] *= inv
            }
        }
        set(qkvWeight, wq)
        if let qkvBias {
            var b = try get(qkvBias)
            guard b.count == qkvOut else { throw QuantError.shapeMismatch("attention-output fold: bias '\(qkvBias)' has \(b.count) values for \(qkvOut) outputs") }
            for ch in 0..<c { b[valueOffset + ch] /= r[ch] }
            set(qkvBias, b)
        }
        var wp = try get(projWeight)
        for ch in 0..<c {
            for o in 0..<projOut {
                let idx = projWeightStoredInOut ? ch * projOut + o : o * projIn + ch
                wp[idx] *= r[ch]
            }
        }
        set(projWeight, wp)
    }

    /// The graph with the folds applied to its constants.
    static func applying(_ folds: [ValueProjectionFold], to graph: StaticGraph) throws -> StaticGraph {
        var g = graph
        for f in folds {
            try f.apply(shape: { g.constants[$0]?.shape ?? [] },
                        get: { name in
                            guard let t = g.constants[name] else { throw QuantError.emptyData("constant '\(name)' is missing from the graph") }
                            return t.floats
                        },
                        set: { name, v in g.constants[name] = Tensor(shape: g.constants[name]?.shape ?? [v.count], floats: v) })
        }
        return g
    }

    /// (qkv, attention, projection) triples whose V channel c is the projection's input channel c: V reached
    /// from the qkv output through layout ops only, the attention output reaching the projection through layout
    /// ops only, qkv producing three projection widths of features (V is the last third).
    static func candidates(_ p: ModelPatterns) -> [(qkv: LinearLayer, attention: AttentionPattern, proj: LinearLayer)] {
        let nodes = p.graph.nodes
        var producer: [String: Node] = [:], consumers: [String: [Node]] = [:]
        for n in nodes {
            for o in n.outputs { producer[o] = n }
            for i in n.inputs where !i.isEmpty { consumers[i, default: []].append(n) }
        }
        let layout: Set<String> = ["Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Split", "Slice", "Identity"]
        let byOutput = Dictionary(p.linears.map { ($0.output, $0) }, uniquingKeysWith: { a, _ in a })
        let byInput = Dictionary(p.linears.map { ($0.input, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [(LinearLayer, AttentionPattern, LinearLayer)] = []
        for a in p.attentions {
            var t = a.v, qkv: LinearLayer? = nil
            for _ in 0..<8 {
                if let l = byOutput[t] { qkv = l; break }
                guard let n = producer[t], layout.contains(n.opType), let first = n.inputs.first else { break }
                t = first
            }
            var u = a.output, proj: LinearLayer? = nil
            for _ in 0..<8 {
                if let l = byInput[u] { proj = l; break }
                guard let cs = consumers[u], cs.count == 1, layout.contains(cs[0].opType), let o = cs[0].outputs.first else { break }
                u = o
            }
            guard let qkv, let proj, qkv.outFeatures == 3 * proj.inFeatures,
                  (consumers[proj.input] ?? []).count == 1 else { continue }
            out.append((qkv, a, proj))
        }
        return out
    }

    /// The projection's input tensor name in `graph`.
    static func projectionInput(of f: ValueProjectionFold, in graph: StaticGraph) -> String? {
        graph.nodes.first { $0.name == f.projLinear }?.inputs.first
    }
}
