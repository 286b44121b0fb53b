// Recognising the structures a quantizer works on: linear and conv layers, LayerNorms, GELUs,
// attention (Q·Kᵀ → scale → Softmax → ·V), conv+BatchNorm pairs and residual adds.

/// A fully connected layer: MatMul with a constant 2-D weight (+ a constant bias Add), or Gemm.
public struct LinearLayer: Sendable, Equatable {
    /// Name of the MatMul/Gemm node.
    public var node: String
    public var input: String
    /// The layer's output: after the bias Add when there is one.
    public var output: String
    public var weight: String
    public var bias: String?
    /// True when the weight is stored [out, in] (Gemm transB = 1); false for [in, out] (MatMul).
    public var weightTransposed: Bool
    public var inFeatures: Int
    public var outFeatures: Int
    /// Names of the nodes making up the layer (MatMul, Add).
    public var nodes: [String]
}

/// A 2-D convolution with constant weights.
public struct ConvLayer: Sendable, Equatable {
    public var node: String
    public var input: String
    public var output: String
    public var weight: String
    public var bias: String?
    public var groups: Int
    public var kernel: [Int]
    /// A BatchNormalization right after the conv that can be folded into it.
    public var batchNorm: String?
}

/// A LayerNorm: the fused op or the ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div(+Mul/Add) chain.
public struct LayerNormPattern: Sendable, Equatable {
    public var fused: Bool
    public var input: String
    /// Output after the affine part (gamma/beta) when present.
    public var output: String
    public var gamma: String?
    public var beta: String?
    public var epsilon: Float
    public var nodes: [String]
}

/// A GELU: `Gelu` op, the Erf form, or the tanh approximation.
public struct GELUPattern: Sendable, Equatable {
    public enum Kind: String, Sendable { case op, erf, tanh }
    public var kind: Kind
    public var input: String
    public var output: String
    public var nodes: [String]
}

/// Scaled dot-product attention: scores = Q·Kᵀ (· scale) (+ bias/mask) → Softmax → probs·V.
public struct AttentionPattern: Sendable, Equatable {
    /// The Q·Kᵀ MatMul node and its operands as fed (k is already transposed: shape […, d, n]).
    public var qkMatMul: String
    public var q: String
    public var kTransposed: String
    /// K before the Transpose feeding the MatMul, if there is one.
    public var k: String?
    /// Total constant factor on the scores: between the MatMul and Softmax, and on the operands
    /// (scalar Muls on q and kᵀ, as the SDPA export emits) — 1 if none.
    public var scale: Float
    /// Added bias/mask tensors (Swin relative-position bias, window masks).
    public var scoreAdds: [String]
    public var softmax: String
    public var softmaxInput: String
    /// The attention probabilities (Softmax output).
    public var probabilities: String
    public var avMatMul: String
    public var v: String
    public var output: String
}

/// Everything the quantizer needs to know about a specialised graph.
public struct ModelPatterns: Sendable {
    public var graph: StaticGraph
    public var linears: [LinearLayer] = []
    public var convs: [ConvLayer] = []
    public var layerNorms: [LayerNormPattern] = []
    public var gelus: [GELUPattern] = []
    public var attentions: [AttentionPattern] = []
    /// (conv node, BatchNormalization node) pairs that can be folded.
    public var convBatchNorms: [(conv: String, batchNorm: String)] = []
    /// Add nodes joining two runtime branches of the same shape (skip connections).
    public var residualAdds: [String] = []
    /// Linear node → the LayerNorm output it reads (LayerNorm precedes linear).
    public var layerNormBeforeLinear: [String: String] = [:]
    /// Linear node → the GELU output it reads (the MLP's fc2, whose input is post-GELU).
    public var geluBeforeLinear: [String: String] = [:]

    public init(graph: StaticGraph) throws {
        self.graph = graph
        let nodes = graph.nodes
        var producer: [String: Int] = [:]
        var consumers: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            for o in n.outputs { producer[o] = i }
            for x in n.inputs where !x.isEmpty { consumers[x, default: []].append(i) }
        }
        let outputs = Set(graph.outputs.map(\.name))
        func sole(_ t: String) -> Node? {
            guard !outputs.contains(t), let c = consumers[t], c.count == 1 else { return nil }
            return nodes[c[0]]
        }
        func prod(_ t: String) -> Node? { producer[t].map { nodes[$0] } }
        func const(_ t: String) -> Tensor? { graph.constants[t] }
        func scalar(_ t: String) -> Float? { const(t).flatMap { $0.count == 1 ? $0.floats[0] : nil } }
        func otherInput(_ n: Node, _ t: String) -> String? {
            guard n.inputs.count == 2 else { return nil }
            return n.inputs[0] == t ? n.inputs[1] : (n.inputs[1] == t ? n.inputs[0] : nil)
        }
        var biasAdds = Set<String>()

        for n in nodes {
            switch n.opType {
            case "MatMul":
                guard let w = const(n.inputs[1]), w.rank == 2 else { continue }
                var out = n.outputs[0], bias: String? = nil, parts = [n.name]
                if let a = sole(out), a.opType == "Add", let b = otherInput(a, out), let bt = const(b), bt.count == w.shape[1] {
                    out = a.outputs[0]; bias = b; parts.append(a.name); biasAdds.insert(a.name)
                }
                linears.append(LinearLayer(node: n.name, input: n.inputs[0], output: out, weight: n.inputs[1], bias: bias,
                                           weightTransposed: false, inFeatures: w.shape[0], outFeatures: w.shape[1], nodes: parts))
            case "Gemm":
                guard let w = const(n.inputs[1]), w.rank == 2, n.int("transA", default: 0) == 0 else { continue }
                let tb = n.int("transB", default: 0) != 0
                linears.append(LinearLayer(node: n.name, input: n.inputs[0], output: n.outputs[0], weight: n.inputs[1],
                                           bias: n.input(2), weightTransposed: tb, inFeatures: tb ? w.shape[1] : w.shape[0],
                                           outFeatures: tb ? w.shape[0] : w.shape[1], nodes: [n.name]))
            case "Conv":
                guard let w = const(n.inputs[1]), w.rank == 4 else { continue }
                var bn: String? = nil
                if let b = sole(n.outputs[0]), b.opType == "BatchNormalization", b.inputs.dropFirst().allSatisfy({ const($0) != nil }) {
                    bn = b.name; convBatchNorms.append((n.name, b.name))
                }
                convs.append(ConvLayer(node: n.name, input: n.inputs[0], output: n.outputs[0], weight: n.inputs[1], bias: n.input(2),
                                       groups: n.int("group", default: 1), kernel: Array(w.shape[2...]), batchNorm: bn))
            case "LayerNormalization":
                layerNorms.append(LayerNormPattern(fused: true, input: n.inputs[0], output: n.outputs[0], gamma: n.input(1),
                                                   beta: n.input(2), epsilon: n.float("epsilon", default: 1e-5), nodes: [n.name]))
            case "Div":
                // decomposed LayerNorm: Div(Sub(x, mean), Sqrt(Add(ReduceMean(Pow(Sub,2)), eps)))
                guard let sub = prod(n.inputs[0]), sub.opType == "Sub", let rm = prod(sub.inputs[1]), rm.opType == "ReduceMean",
                      rm.inputs[0] == sub.inputs[0], let sq = prod(n.inputs[1]), sq.opType == "Sqrt",
                      let addEps = prod(sq.inputs[0]), addEps.opType == "Add" else { continue }
                let varName = addEps.inputs.first { const($0) == nil } ?? ""
                guard let rm2 = prod(varName), rm2.opType == "ReduceMean", let pw = prod(rm2.inputs[0]),
                      pw.opType == "Pow" || pw.opType == "Mul", pw.inputs[0] == sub.outputs[0] else { continue }
                let eps = addEps.inputs.compactMap { scalar($0) }.first ?? 0
                var out = n.outputs[0], gamma: String? = nil, beta: String? = nil
                var parts = [rm.name, sub.name, pw.name, rm2.name, addEps.name, sq.name, n.name]
                if let m = sole(out), m.opType == "Mul", let g = otherInput(m, out), const(g) != nil {
                    gamma = g; out = m.outputs[0]; parts.append(m.name)
                    if let a = sole(out), a.opType == "Add", let b = otherInput(a, out), const(b) != nil {
                        beta = b; out = a.outputs[0]; parts.append(a.name)
                    }
                }
                layerNorms.append(LayerNormPattern(fused: false, input: sub.inputs[0], output: out, gamma: gamma, beta: beta,
                                                   epsilon: eps, nodes: parts))
            case "Gelu":
                gelus.append(GELUPattern(kind: .op, input: n.inputs[0], output: n.outputs[0], nodes: [n.name]))
            case "Erf":
                guard let pre = prod(n.inputs[0]), pre.opType == "Div" || pre.opType == "Mul", pre.inputs.count == 2,
                      let c = scalar(pre.inputs[1]) else { continue }
                let ok = pre.opType == "Div" ? abs(c - 1.4142135) < 1e-3 : abs(c - 0.70710677) < 1e-3
                guard ok, let add = sole(n.outputs[0]), add.opType == "Add",
                      add.inputs.contains(where: { scalar($0) == 1 }), let m1 = sole(add.outputs[0]), m1.opType == "Mul" else { continue }
                let x = pre.inputs[0]
                var out = m1.outputs[0], parts = [pre.name, n.name, add.name, m1.name]
                if m1.inputs.contains(x), let m2 = sole(out), m2.opType == "Mul", m2.inputs.contains(where: { scalar($0) == 0.5 }) {
                    out = m2.outputs[0]; parts.append(m2.name)
                } else if let o = otherInput(m1, add.outputs[0]), let h = prod(o), h.opType == "Mul", h.inputs.contains(x) {
                    parts.append(h.name)
                } else { continue }
                gelus.append(GELUPattern(kind: .erf, input: x, output: out, nodes: parts))
            case "Tanh":
                // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
                var x: String? = nil
                var frontier = [n.inputs[0]]
                for _ in 0..<6 {
                    guard let t = frontier.popLast(), let p = prod(t) else { break }
                    if p.opType == "Pow", scalar(p.inputs[1]) == 3 { x = p.inputs[0]; break }
                    frontier += p.inputs.filter { const($0) == nil }
                }
                guard let x, let add = sole(n.outputs[0]), add.opType == "Add", var m = sole(add.outputs[0]), m.opType == "Mul" else { continue }
                var parts = [n.name, add.name, m.name]
                if let m2 = sole(m.outputs[0]), m2.opType == "Mul" { m = m2; parts.append(m2.name) }
                gelus.append(GELUPattern(kind: .tanh, input: x, output: m.outputs[0], nodes: parts))
            case "Softmax":
                // walk up: optional Add(s) (bias/mask), optional Mul/Div by a scalar, then MatMul Q·Kᵀ
                var t = n.inputs[0]
                var adds: [String] = []
                var scale: Float = 1
                var qk: Node? = nil
                for _ in 0..<6 {
                    guard let p = prod(t) else { break }
                    if p.opType == "MatMul" { qk = p; break }
                    if p.opType == "Add", p.inputs.count == 2 {
                        let bigger = p.inputs.max { elementCount(graph.shapes[$0] ?? const($0)?.shape ?? []) < elementCount(graph.shapes[$1] ?? const($1)?.shape ?? []) } ?? p.inputs[0]
                        adds.append(p.inputs[0] == bigger ? p.inputs[1] : p.inputs[0]); t = bigger; continue
                    }
                    if (p.opType == "Mul" || p.opType == "Div"), p.inputs.count == 2, let c = scalar(p.inputs[1]) ?? scalar(p.inputs[0]) {
                        scale *= p.opType == "Mul" ? c : 1 / c
                        t = scalar(p.inputs[1]) != nil ? p.inputs[0] : p.inputs[1]; continue
                    }
                    if ["Reshape", "Identity", "Cast"].contains(p.opType) { t = p.inputs[0]; continue }
                    break
                }
                guard let qk, const(qk.inputs[1]) == nil else { continue }
                var probs = n.outputs[0]
                var av: Node? = nil
                for _ in 0..<3 {
                    guard let c = sole(probs) else { break }
                    if c.opType == "MatMul", c.inputs[0] == probs { av = c; break }
                    if ["Dropout", "Identity", "Reshape", "Cast"].contains(c.opType) { probs = c.outputs[0]; continue }
                    break
                }
                guard let av else { continue }
                // scalar factors applied to the operands (the SDPA export scales q and kᵀ by √scale each)
                func unscaled(_ t: String) -> String {
                    if let p = prod(t), p.opType == "Mul", p.inputs.count == 2, let c = scalar(p.inputs[1]) { scale *= c; return p.inputs[0] }
                    return t
                }
                _ = unscaled(qk.inputs[0])
                let kT = unscaled(qk.inputs[1])
                var kPre: String? = nil
                if let tr = prod(kT), tr.opType == "Transpose" { kPre = tr.inputs[0] }
                attentions.append(AttentionPattern(qkMatMul: qk.name, q: qk.inputs[0], kTransposed: qk.inputs[1], k: kPre,
                                                   scale: scale, scoreAdds: adds, softmax: n.name, softmaxInput: n.inputs[0],
                                                   probabilities: n.outputs[0], avMatMul: av.name, v: av.inputs[1], output: av.outputs[0]))
            default: break
            }
        }
        for n in nodes where n.opType == "Add" && !biasAdds.contains(n.name) && n.inputs.count == 2 {
            let a = n.inputs[0], b = n.inputs[1]
            guard a != b, const(a) == nil, const(b) == nil, let sa = graph.shapes[a], sa == graph.shapes[b] else { continue }
            residualAdds.append(n.name)
        }
        let lnOut = Set(layerNorms.map(\.output)), geluOut = Set(gelus.map(\.output))
        for l in linears {
            if lnOut.contains(l.input) { layerNormBeforeLinear[l.node] = l.input }
            if geluOut.contains(l.input) { geluBeforeLinear[l.node] = l.input }
        }
    }
}

extension StaticGraph {
    /// Folds each BatchNormalization that directly follows a Conv (sole consumer, constant statistics)
    /// into the conv's weights and bias. The conv then produces the BN's output tensor.
    public func foldingBatchNorms() throws -> StaticGraph {
        var g = self
        // Pairs are found by tensor, not by node name: names may be empty or repeated (an unnamed conv_bn model made
        // the name lookup pick the conv as its own BatchNorm and index past its inputs; found by fuzzing).
        let outputs = Set(outputs.map(\.name))
        var ci = 0
        while ci < g.nodes.count {
            let conv = g.nodes[ci]
            ci += 1
            guard conv.opType == "Conv", conv.inputs.count >= 2, let out = conv.outputs.first, conv.outputs.count == 1,
                  !outputs.contains(out) else { continue }
            let readers = g.nodes.indices.filter { g.nodes[$0].inputs.contains(out) }
            guard readers.count == 1, let bi = readers.first, bi >= ci else { continue }
            let bn = g.nodes[bi]
            guard bn.opType == "BatchNormalization", bn.inputs.count >= 5, bn.inputs[0] == out, !bn.outputs.isEmpty,
                  let w = g.constants[conv.inputs[1]], w.rank == 4, let sc = g.constants[bn.inputs[1]], let b = g.constants[bn.inputs[2]],
                  let mean = g.constants[bn.inputs[3]], let vr = g.constants[bn.inputs[4]] else { continue }
            let o = w.shape[0], per = w.count / max(o, 1)
            // Per-channel statistics must have one value per output channel (a hostile file may say otherwise).
            let oldBiasCount = conv.input(2).flatMap { g.constants[$0]?.count } ?? o
            guard [sc.count, b.count, mean.count, vr.count, oldBiasCount].allSatisfy({ $0 == o }) else { continue }
            let eps = bn.float("epsilon", default: 1e-5)
            let s = (0..<o).map { sc.floats[$0] / (vr.floats[$0] + eps).squareRoot() }
            var wf = w.floats
            for oc in 0..<o { for j in 0..<per { wf[oc * per + j] *= s[oc] } }
            let oldBias = conv.input(2).flatMap { g.constants[$0]?.floats } ?? [Float](repeating: 0, count: o)
            let nb = (0..<o).map { (oldBias[$0] - mean.floats[$0]) * s[$0] + b.floats[$0] }
            // Named after the conv's (unique) output tensor: node names may be empty, and two unnamed convs used to
            // write their folded biases to the same "::bnfold_bias" constant.
            let wName = conv.inputs[1] + "::bnfold@" + out, bName = out + "::bnfold_bias"
            g.constants[wName] = Tensor(shape: w.shape, floats: wf)
            g.constants[bName] = Tensor(shape: [o], floats: nb)
            var nc = conv
            nc.inputs = [conv.inputs[0], wName, bName]
            nc.outputs = [bn.outputs[0]]
            g.shapes[conv.outputs[0]] = nil
            g.nodes[ci - 1] = nc
            g.nodes.remove(at: bi)
        }
        return g
    }
}
