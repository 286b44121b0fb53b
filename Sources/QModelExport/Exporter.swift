// Converts the quantization pipeline's result (a QuantizedModel) plus the prepared source graph into an
// integer network (QModel) for Int8Runtime. The conversion is demand-driven: starting from the graph output,
// each tensor is materialized in the form its reader needs (float, uniform-quantized for a given quantizer, or
// AdaLog codes), so ops come out in execution order and fusions (LayerNorm+quantize, conv+clamp+requantize,
// attention output requantized into proj's input quantizer) fall out of which form is asked for.
import ONNXGraph
import Quant
import QModel
import Imaging

/// Why a quantized model could not be converted to the integer format.
public enum ExportError: Error, CustomStringConvertible, Sendable {
    /// A node (or layer) of the source graph has no mapping onto the integer runtime's ops.
    case unsupported(node: String, op: String, reason: String)
    /// The quantized model does not match the graph (wrong source file, a missing quantizer or constant).
    case inconsistent(String)
    /// The converted model failed the format's validation (a converter bug; the message names the op).
    case invalid(QModelError)

    public var description: String {
        switch self {
        case let .unsupported(node, op, reason): "cannot export node '\(node)' (\(op)) to the integer format: \(reason)"
        case let .inconsistent(m): "the quantized model does not match the source graph: \(m)"
        case let .invalid(e): "the converted integer model is invalid (converter bug): \(e)"
        }
    }
}

/// A converted model and the approximations the conversion made (printed by the tool).
public struct ExportResult: Sendable {
    public var model: QModel
    /// Human-readable notes, e.g. 8-bit weight rows whose zero point had to be folded differently.
    public var notes: [String]
}

/// Converts a ``QuantizedModel`` into a ``QModel`` for the integer runtime.
public enum QModelExporter {
    /// Specializes `graph` to batch 1 and folds BatchNorms the way the pipeline did (`model.foldedBatchNorms`).
    public static func prepare(_ graph: Graph, for model: QuantizedModel) throws -> StaticGraph {
        let g = try graph.specialized(batch: 1)
        return model.foldedBatchNorms ? try g.foldingBatchNorms() : g
    }

    /// Converts `model` (quantized from `graph`'s source) to an integer network.
    /// - Parameters:
    ///   - graph: the source graph prepared by ``prepare(_:for:)`` (batch 1, BatchNorms folded when the pipeline did).
    ///   - name: the model name written into the header.
    ///   - classNames: class names for the header (empty, or one per output logit).
    public static func export(_ model: QuantizedModel, graph: StaticGraph, name: String,
                              classNames: [String] = []) throws(ExportError) -> ExportResult {
        guard graph.batch == 1 else { throw .inconsistent("the graph must be specialized to batch 1 (got \(graph.batch))") }
        let b: Builder
        do { b = try Builder(model: model, graph: graph) } catch let e as ExportError { throw e } catch {
            throw .inconsistent("\(error)")
        }
        return try b.build(name: name, classNames: classNames)
    }
}

/// Where an ONNX tensor's float value lives in the runtime and how its elements are ordered.
enum Layout {
    /// Same element order as ONNX (batch dimension dropped).
    case plain
    /// ONNX NCHW [C, H, W]; the runtime holds NHWC [H, W, C].
    case nchw
    /// ONNX [C, H·W] (an NCHW tensor with H and W flattened); the runtime still holds [H, W, C].
    case channelMajorFlat
}

final class Builder {
    let q: QuantizedModel
    let g: StaticGraph
    let patterns: ModelPatterns
    var producer: [String: Node] = [:]
    var consumers: [String: [Node]] = [:]
    /// Folded and fake-quantized constants (as the simulation substitutes them).
    let fq: [String: Tensor]
    var activationQ: [String: [(consumer: String, q: QuantizerParameters, prefix: TokenPrefixQuantization?)]] = [:]
    var weightQ: [String: WeightQuantization] = [:]
    var linearByOutput: [String: LinearLayer] = [:]
    var convByNode: [String: ConvLayer] = [:]
    var lnByOutput: [String: LayerNormPattern] = [:]
    var geluByOutput: [String: GELUPattern] = [:]
    var attentionByOutput: [String: AttentionPattern] = [:]

    var tensors: [QTensorInfo] = []
    var shapes: [String: [Int]] = [:]
    var ops: [Op] = []
    var constants: [QConstant] = []
    var usedNames = Set<String>()
    var floatRep: [String: String] = [:]
    var layout: [String: Layout] = [:]
    var quantRep: [String: String] = [:]
    var notes: [String] = []
    var inputName = "input"

    init(model: QuantizedModel, graph: StaticGraph) throws {
        q = model; g = graph
        patterns = try ModelPatterns(graph: graph)
        fq = try QuantSimulator.quantizedConstants(model: model, graph: graph)
        for n in graph.nodes {
            for o in n.outputs { producer[o] = n }
            for i in Set(n.inputs) where !i.isEmpty { consumers[i, default: []].append(n) }
        }
        for a in model.activations { activationQ[a.tensor, default: []].append((a.consumer, a.quantizer, a.prefix)) }
        for w in model.weights { weightQ[w.tensor] = w }
        for l in patterns.linears { linearByOutput[l.output] = l }
        for c in patterns.convs { convByNode[c.node] = c }
        for l in patterns.layerNorms { lnByOutput[l.output] = l }
        for x in patterns.gelus { geluByOutput[x.output] = x }
        for a in patterns.attentions { attentionByOutput[a.output] = a }
    }

    // MARK: driver

    func build(name: String, classNames: [String]) throws(ExportError) -> ExportResult {
        guard g.inputs.count == 1, let input = g.inputs.first, input.shape.count == 4, input.shape[0] == 1 else {
            throw .unsupported(node: g.inputs.first?.name ?? "?", op: "input", reason: "exactly one NCHW image input is supported, got \(g.inputs.map(\.shape))")
        }
        guard g.outputs.count == 1, let output = g.outputs.first else {
            throw .unsupported(node: g.outputs.first?.name ?? "?", op: "output", reason: "exactly one output is supported, got \(g.outputs.count)")
        }
        inputName = unique("input")
        let s = input.shape
        declare(inputName, .float32, [s[2], s[3], s[1]])
        floatRep[input.name] = inputName
        layout[input.name] = .nchw
        let out = try float(output.name)
        guard let outShape = shapes[out], layout[output.name] == .plain || outShape.count == 1 else {
            throw .unsupported(node: output.name, op: "output", reason: "the output must be a plain vector of logits, got runtime shape \(shapes[out] ?? [])")
        }
        if !classNames.isEmpty, classNames.count != outShape.reduce(1, *) {
            throw .inconsistent("\(classNames.count) class names for \(outShape.reduce(1, *)) outputs")
        }
        let spec = q.preprocessing
        let pre = Preprocessing(size: spec.size, cropPct: spec.cropPct, interpolation: spec.interpolation.rawValue,
                                mean: spec.mean, std: spec.std)
        let m = QNetwork(name: name, preprocessing: pre, classNames: classNames, tensors: tensors, ops: ops,
                         inputs: [inputName], outputs: [out], constants: constants)
        do { try m.validate() } catch { throw .invalid(error) }
        return ExportResult(model: m, notes: notes)
    }

    // MARK: names and declarations

    func unique(_ base: String) -> String {
        var n = base, i = 1
        while usedNames.contains(n) { i += 1; n = "\(base)#\(i)" }
        usedNames.insert(n)
        return n
    }

    func declare(_ name: String, _ dtype: QDType, _ shape: [Int], _ quantizer: TensorQuantizer? = nil, prefix: TokenPrefix? = nil) {
        tensors.append(QTensorInfo(name: name, dtype: dtype, shape: shape, quantizer: quantizer, prefix: prefix))
        shapes[name] = shape
    }

    func shape(_ onnx: String) -> [Int] { Array((g.shapes[onnx] ?? g.constants[onnx]?.shape ?? []).dropFirst()) }

    func constFloats(_ name: String) throws(ExportError) -> [Float] {
        if let t = fq[name] { return t.floats }
        guard let t = g.constants[name] else { throw .inconsistent("constant '\(name)' is missing") }
        return t.floats
    }

    func scalar(_ name: String) -> Float? {
        guard let t = g.constants[name], t.count == 1 else { return nil }
        return t.floats[0]
    }

    func addConstant(_ c: QConstant) -> String {
        let n = unique(c.name)
        var c = c
        c.name = n
        constants.append(c)
        return n
    }

    func activation(_ tensor: String, consumer: String) -> QuantizerParameters? {
        activationQ[tensor]?.first { $0.consumer == consumer }?.q
    }

    func activationPrefix(_ tensor: String, consumer: String) -> TokenPrefixQuantization? {
        activationQ[tensor]?.first { $0.consumer == consumer }?.prefix
    }

    // MARK: float tensors

    /// The runtime float tensor holding ONNX tensor `t` (its producer converted on first use).
    func float(_ t: String) throws(ExportError) -> String {
        if let r = floatRep[t] { return r }
        guard let n = producer[t] else {
            throw .unsupported(node: t, op: "constant", reason: "a constant is used where the runtime expects an activation")
        }
        let r = try floatFrom(n, t)
        floatRep[t] = r
        if layout[t] == nil { layout[t] = .plain }
        return r
    }

    func floatFrom(_ n: Node, _ t: String) throws(ExportError) -> String {
        if let l = linearByOutput[t] { return try emitLinear(l, output: t, quantizedOutput: nil) }
        if let (conv, clamp) = convProducing(t) {
            layout[t] = .nchw
            return try emitConv(conv, clamp: clamp, output: t, quantizedOutput: nil)
        }
        if let a = attentionBehind(t) { return try emitAttention(a, output: t, quantizedOutput: nil) }
        if let ge = geluByOutput[t] {
            let x = try float(ge.input)
            let y = unique(t)
            declare(y, .float32, shapes[x]!)
            ops.append(.gelu(UnaryOp(name: ge.nodes.last ?? t, input: x, output: y)))
            layout[t] = layout[ge.input]
            return y
        }
        if lnByOutput[t] != nil {
            throw .unsupported(node: n.name, op: "LayerNorm", reason: "its output is read in float by \(readers(t)); the runtime fuses LayerNorm with the next layer's input quantizer")
        }
        switch n.opType {
        case "Add":
            return try emitAdd(n, t)
        case "GlobalAveragePool", "ReduceMean":
            return try emitPool(n, t)
        case "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout":
            return try emitShapeOp(n, t)
        case "Transpose":
            return try emitTranspose(n, t)
        case "Gather":
            let (x, index) = try tokenSelectInput(n)
            let xr = try float(x)
            guard let xs = shapes[xr], xs.count == 2 else {
                throw .unsupported(node: n.name, op: n.opType, reason: "token select needs a [T, C] input, got \(shapes[xr] ?? [])")
            }
            let y = unique(t)
            declare(y, .float32, [xs[1]])
            ops.append(.tokenSelect(TokenSelectOp(name: n.name, input: xr, output: y, index: index)))
            return y
        default:
            throw .unsupported(node: n.name, op: n.opType, reason: "no integer-runtime op for it (supported: quantized linear/conv/attention, LayerNorm before a quantized layer, GELU, residual Add, class token + position embedding, token select, global average pool, ReLU/ReLU6 after a conv, zero Pad before a conv, reshapes)")
        }
    }

    func readers(_ t: String) -> String { (consumers[t] ?? []).map { "'\($0.name)' (\($0.opType))" }.joined(separator: ", ") }

    func emitAdd(_ n: Node, _ t: String) throws(ExportError) -> String {
        guard n.inputs.count == 2 else { throw .unsupported(node: n.name, op: "Add", reason: "needs two inputs") }
        let a = n.inputs[0], b = n.inputs[1]
        let ca = g.constants[a] != nil, cb = g.constants[b] != nil
        if ca != cb {
            // class token + position embedding: Add(Concat(cls, x), pos)
            let (pos, other) = ca ? (a, b) : (b, a)
            guard let cat = producer[other], cat.opType == "Concat", cat.inputs.count == 2, cat.int("axis", default: 0) == 1 else {
                throw .unsupported(node: n.name, op: "Add", reason: "adding a constant is only supported as the position embedding after the class-token Concat")
            }
            let cls = try classToken(cat)
            let x = try float(cat.inputs[1])
            guard let xs = shapes[x], xs.count == 2 else {
                throw .unsupported(node: cat.name, op: "Concat", reason: "the patch tokens must be [T, C], got runtime shape \(shapes[x] ?? [])")
            }
            let pv = try constFloats(pos)
            guard cls.count == xs[1], pv.count == (xs[0] + 1) * xs[1] else {
                throw .unsupported(node: n.name, op: "Add", reason: "class token (\(cls.count)) / position embedding (\(pv.count)) sizes do not fit tokens \(xs)")
            }
            let cn = addConstant(.float(n.name + ".cls", shape: [xs[1]], cls))
            let pn = addConstant(.float(n.name + ".pos", shape: [xs[0] + 1, xs[1]], pv))
            let y = unique(t)
            declare(y, .float32, [xs[0] + 1, xs[1]])
            ops.append(.classPosition(ClassPositionOp(name: n.name, input: x, output: y, classToken: cn, position: pn)))
            return y
        }
        guard !ca else { throw .unsupported(node: n.name, op: "Add", reason: "both inputs are constants") }
        let xa = try float(a), xb = try float(b)
        guard shapes[xa] == shapes[xb], layout[a] == layout[b] else {
            throw .unsupported(node: n.name, op: "Add", reason: "residual add of different runtime shapes/layouts \(shapes[xa] ?? []) and \(shapes[xb] ?? []) (broadcasting is not supported)")
        }
        let y = unique(t)
        declare(y, .float32, shapes[xa]!)
        ops.append(.add(BinaryOp(name: n.name, a: xa, b: xb, output: y)))
        layout[t] = layout[a]
        return y
    }

    /// The class token of a `Concat(cls, x)`: a constant, or an Expand/Tile of one.
    func classToken(_ cat: Node) throws(ExportError) -> [Float] {
        var c = cat.inputs[0]
        for _ in 0..<3 {
            if let t = g.constants[c] { return t.floats }
            guard let p = producer[c], ["Expand", "Tile", "Identity", "Reshape"].contains(p.opType) else { break }
            c = p.inputs[0]
        }
        throw .unsupported(node: cat.name, op: "Concat", reason: "the first input must be the constant class token (optionally Expanded)")
    }

    func emitPool(_ n: Node, _ t: String) throws(ExportError) -> String {
        let x = n.inputs[0]
        if n.opType == "ReduceMean" {
            var axes = n.ints("axes") ?? []
            if axes.isEmpty, n.inputs.count > 1, let a = g.constants[n.inputs[1]] { axes = a.ints.map { Int($0) } }
            let norm = Set(axes.map { $0 < 0 ? $0 + 4 : $0 })
            guard norm == [2, 3] else { throw .unsupported(node: n.name, op: n.opType, reason: "only a spatial mean (axes 2, 3) maps to global average pooling") }
        }
        let xr = try float(x)
        guard layout[x] == .nchw, let xs = shapes[xr], xs.count == 3 else {
            throw .unsupported(node: n.name, op: n.opType, reason: "global pooling needs an NCHW feature map")
        }
        let y = unique(t)
        declare(y, .float32, [xs[2]])
        ops.append(.globalAveragePool(UnaryOp(name: n.name, input: xr, output: y)))
        layout[t] = .plain
        return y
    }

    func emitShapeOp(_ n: Node, _ t: String) throws(ExportError) -> String {
        let x = n.inputs[0]
        let xr = try float(x)
        let os = shape(t)
        switch layout[x] ?? .plain {
        case .plain:
            layout[t] = .plain
            return xr
        case .nchw:
            let xs = shapes[xr]!   // [H, W, C]
            if xs[0] == 1 && xs[1] == 1 { layout[t] = .plain; return xr }
            if n.opType == "Identity" || n.opType == "Dropout" { layout[t] = .nchw; return xr }
            if os == [xs[2], xs[0] * xs[1]] { layout[t] = .channelMajorFlat; return xr }
        case .channelMajorFlat:
            if n.opType == "Identity" || n.opType == "Dropout" { layout[t] = .channelMajorFlat; return xr }
        }
        throw .unsupported(node: n.name, op: n.opType, reason: "reshaping an NCHW feature map to \(os) has no NHWC equivalent in the runtime")
    }

    func emitTranspose(_ n: Node, _ t: String) throws(ExportError) -> String {
        let x = n.inputs[0]
        let xr = try float(x)
        let perm = n.ints("perm") ?? []
        if layout[x] == .channelMajorFlat, perm == [0, 2, 1], let xs = shapes[xr] {
            // [C, HW] → [HW, C]: the runtime's NHWC buffer already has this order; give it the token shape.
            let y = unique(t)
            declare(y, .float32, [xs[0] * xs[1], xs[2]])
            ops.append(.reshape(UnaryOp(name: n.name, input: xr, output: y)))
            layout[t] = .plain
            return y
        }
        throw .unsupported(node: n.name, op: "Transpose", reason: "permutation \(perm) is only supported as the patch-embed flatten (NCHW [C, HW] → tokens [HW, C]) or inside attention")
    }

    /// `Gather(x, i, axis=1)` on [1, T, C] with a constant scalar index: the class-token select.
    func tokenSelectInput(_ n: Node) throws(ExportError) -> (String, Int) {
        guard n.int("axis", default: 0) == 1, n.inputs.count == 2, let idx = g.constants[n.inputs[1]], idx.count == 1,
              shape(n.inputs[0]).count == 2 else {
            throw .unsupported(node: n.name, op: "Gather", reason: "only selecting one token (axis 1, constant scalar index) of a [1, T, C] tensor is supported")
        }
        var i = Int(idx.ints[0])
        if i < 0 { i += shape(n.inputs[0])[0] }
        return (n.inputs[0], i)
    }

    // MARK: quantized tensors

    func uniformParams(_ u: UniformQuantizer, _ what: String, node: String) throws(ExportError) -> (QDType, UniformParams) {
        guard u.scales.count == 1 else {
            throw .unsupported(node: node, op: what, reason: "per-channel activation quantizers (\(u.scales.count) scales) are not supported by the runtime's activations")
        }
        let z = u.symmetric ? Int32(1 << (u.bits - 1)) : Int32(u.zeroPoints[0])
        return (u.bits >= 8 ? .uint8 : .int8, UniformParams(scale: u.scales[0], zeroPoint: z, bits: u.bits))
    }

    func key(_ u: UniformQuantizer) -> String { "u\(u.bits):\(u.scales.map(\.bitPattern)):\(u.zeroPoints):\(u.symmetric)" }

    /// ONNX tensor `t` quantized with `u` as read by `consumer` (fused into its producer where possible).
    func quantized(_ t: String, _ u: UniformQuantizer, prefix pq: TokenPrefixQuantization? = nil, consumer: String) throws(ExportError) -> String {
        let k = t + "\u{1}" + key(u) + (pq.map { "\u{1}\($0.count)/\($0.tokens):" + key($0.quantizer) } ?? "")
        if let r = quantRep[k] { return r }
        let (dt0, up) = try uniformParams(u, "input quantizer", node: consumer)
        let tq = TensorQuantizer.uniform(up)
        var prefix: TokenPrefix? = nil
        if let pq {
            let (_, pp) = try uniformParams(pq.quantizer, "class-token quantizer", node: consumer)
            prefix = TokenPrefix(count: pq.count, quantizer: pp)
        }
        // with a class-token grid both grids are stored as uint8 (an 8-bit grid does not fit folded int8)
        let dt = prefix == nil ? dt0 : .uint8
        var r: String
        if let ln = lnByOutput[t] {
            r = try emitLayerNorm(ln, input: try float(ln.input), onnxOutput: t, dtype: dt, quantizer: tq, prefix: prefix)
        } else if let pq, let prefix {
            if floatRep[t] == nil, fusable(t), let a = attentionBehind(t) {
                r = try emitAttention(a, output: t, quantizedOutput: u, dtype: dt, prefix: prefix)
            } else {
                let x = try float(t)
                guard let xs = shapes[x], xs.count == 2, xs[0] == pq.tokens else {
                    throw .unsupported(node: consumer, op: "class-token quantizer", reason: "input '\(t)' has runtime shape \(shapes[x] ?? []), not [\(pq.tokens), C]")
                }
                r = try quantizeOp(x, u, onnx: t, node: consumer, dtype: dt, prefix: prefix)
            }
        } else if let n = producer[t], n.opType == "Gather", let (x, index) = try? tokenSelectInput(n), let ln = lnByOutput[x],
                  consumers[x]?.count == 1 {
            // LayerNorm → class-token select: select first (LayerNorm is per row), then LayerNorm+quantize one row.
            let xr = try float(ln.input)
            guard let xs = shapes[xr], xs.count == 2 else { throw .unsupported(node: n.name, op: "Gather", reason: "token select needs [T, C]") }
            let sel = unique(x + "::token")
            declare(sel, .float32, [xs[1]])
            ops.append(.tokenSelect(TokenSelectOp(name: n.name, input: xr, output: sel, index: index)))
            r = try emitLayerNorm(ln, input: sel, onnxOutput: t, dtype: dt, quantizer: tq)
        } else if floatRep[t] == nil, fusable(t), let (conv, clamp) = convProducing(t), activation(conv.input, consumer: conv.node) != nil {
            // (a float-input conv — patch embed, 8-bit stem — runs in float and is quantized by a separate op)
            r = try emitConv(conv, clamp: clamp, output: t, quantizedOutput: u)
        } else if floatRep[t] == nil, fusable(t), let l = linearByOutput[t] {
            r = try emitLinear(l, output: t, quantizedOutput: u)
        } else if floatRep[t] == nil, let a = attentionBehind(t), fusable(t) {
            r = try emitAttention(a, output: t, quantizedOutput: u)
        } else {
            r = try quantizeOp(try float(t), u, onnx: t, node: consumer)
        }
        quantRep[k] = r
        return r
    }

    /// True when `t` (looking through zero Pads) has exactly one reader and is not a graph output.
    func fusable(_ t: String) -> Bool {
        if g.outputs.contains(where: { $0.name == t }) { return false }
        let cs = consumers[t] ?? []
        guard cs.count == 1 else { return false }
        if cs[0].opType == "Pad" { return fusable(cs[0].outputs[0]) }
        return true
    }

    func emitLayerNorm(_ ln: LayerNormPattern, input x: String, onnxOutput t: String, dtype: QDType, quantizer: TensorQuantizer,
                       prefix: TokenPrefix? = nil) throws(ExportError) -> String {
        let c = shapes[x]!.last!
        let node = ln.nodes.last ?? t
        guard let gn = ln.gamma, let bn = ln.beta else {
            throw .unsupported(node: node, op: "LayerNorm", reason: "LayerNorm without γ and β constants")
        }
        let gamma = try constFloats(gn), beta = try constFloats(bn)
        guard gamma.count == c, beta.count == c else {
            throw .unsupported(node: node, op: "LayerNorm", reason: "γ/β of \(gamma.count)/\(beta.count) values for \(c) channels (LayerNorm must normalize the last axis)")
        }
        let gc = addConstant(.float(node + ".gamma", shape: [c], gamma))
        let bc = addConstant(.float(node + ".beta", shape: [c], beta))
        let y = unique(t + "::q")
        if let p = prefix, shapes[x]?.count != 2 || p.count >= shapes[x]![0] {
            throw .unsupported(node: node, op: "LayerNorm", reason: "a class-token quantizer needs a [T, C] LayerNorm output, got \(shapes[x]!)")
        }
        declare(y, dtype, shapes[x]!, quantizer, prefix: prefix)
        ops.append(.layerNormQuantize(LayerNormOp(name: node, input: x, output: y, gamma: gc, beta: bc, epsilon: ln.epsilon)))
        return y
    }

    /// AdaLog codes of ONNX tensor `t` (the GELU output feeding fc2).
    func codes(_ t: String, _ a: AdaLogQuantizer, consumer: String) throws(ExportError) -> String {
        let k = t + "\u{1}adalog\(a.bits):\(a.q):\(a.scale.bitPattern):\(a.shift.bitPattern)"
        if let r = quantRep[k] { return r }
        guard let ge = geluByOutput[t] else {
            throw .unsupported(node: consumer, op: "AdaLog input", reason: "an AdaLog-coded input must come straight from a GELU (tensor '\(t)' does not)")
        }
        let x = try float(ge.input)
        let y = unique(t + "::codes")
        declare(y, .code, shapes[x]!, .adaLog(AdaLogParams(q: a.q, r: AdaLogQuantizer.r, bits: a.bits, scale: a.scale, shift: a.shift)))
        ops.append(.geluAdaLog(UnaryOp(name: ge.nodes.last ?? t, input: x, output: y)))
        quantRep[k] = y
        return y
    }

    // MARK: weights

    /// Stores quantized weights `fqRows` ([O][K], fake-quantized values) with the quantizer's per-row scales.
    func weights(_ base: String, _ fqRows: [Float], o: Int, k: Int, _ wq: UniformQuantizer) throws(ExportError) -> WeightRef {
        guard wq.scales.count == o || wq.scales.count == 1 else {
            throw .inconsistent("weight '\(base)': \(wq.scales.count) scales for \(o) rows")
        }
        let scales = (0..<o).map { wq.scales.count == 1 ? wq.scales[0] : wq.scales[$0] }
        let zps = (0..<o).map { r -> Int in wq.symmetric ? 0 : Int(wq.zeroPoints[wq.zeroPoints.count == 1 ? 0 : r]) }
        var folded = [Int](repeating: 0, count: o * k)
        for r in 0..<o { for j in 0..<k { folded[r * k + j] = Int((fqRows[r * k + j] / scales[r]).rounded(.toNearestOrEven)) } }
        let bits = wq.bits
        let sc: String
        if bits <= 4 {
            if folded.allSatisfy({ (-8...7).contains($0) }) {
                let w = try int4(base + ".w", [o, k], folded.map { Int8($0) })
                sc = addConstant(.float(base + ".s", shape: [o], scales))
                return WeightRef(weights: w, scales: sc, bits: bits)
            }
            var raw = [UInt8](repeating: 0, count: o * k)
            for r in 0..<o { for j in 0..<k {
                let v = folded[r * k + j] + (wq.symmetric ? 1 << (bits - 1) : zps[r])
                guard (0...15).contains(v) else { throw .inconsistent("weight '\(base)': 4-bit code \(v) out of range") }
                raw[r * k + j] = UInt8(v)
            } }
            let zs = wq.symmetric ? [Int32](repeating: Int32(1 << (bits - 1)), count: o) : zps.map { Int32($0) }
            let w: String
            do { w = addConstant(try QConstant.uint4(base + ".w", shape: [o, k], raw)) } catch { throw .invalid(error) }
            let zn = addConstant(.int32(base + ".z", shape: [o], zs))
            sc = addConstant(.float(base + ".s", shape: [o], scales))
            return WeightRef(weights: w, scales: sc, zeroPoints: zn, bits: bits)
        }
        if folded.allSatisfy({ (-128...127).contains($0) }) {
            let w = addConstant(.int8(base + ".w", shape: [o, k], folded.map { Int8($0) }))
            sc = addConstant(.float(base + ".s", shape: [o], scales))
            return WeightRef(weights: w, scales: sc, bits: bits)
        }
        // 8-bit asymmetric rows whose W − z leaves int8: store the exact uint8 codes and zero points; the runtime runs
        // W − 128 and adds the exact weight zero-point term (128 − z)·Σx̃ to the int32 accumulator (depthwise convs: int16 W − z).
        var raw = [UInt8](repeating: 0, count: o * k)
        for r in 0..<o { for j in 0..<k {
            let v = folded[r * k + j] + (wq.symmetric ? 128 : zps[r])
            guard (0...255).contains(v) else { throw .inconsistent("weight '\(base)': 8-bit code \(v) out of range") }
            raw[r * k + j] = UInt8(v)
        } }
        let zs = wq.symmetric ? [Int32](repeating: 128, count: o) : zps.map { Int32($0) }
        let rows = (0..<o).filter { r in folded[(r * k)..<((r + 1) * k)].contains { !(-128...127).contains($0) } }.count
        notes.append("\(base): \(rows) of \(o) 8-bit weight rows have W − z outside int8; stored as uint8 codes + zero points (exact; the runtime adds the weight zero-point term in int32)")
        let w = addConstant(QConstant(name: base + ".w", dtype: .uint8, shape: [o, k], bytes: raw))
        let zn = addConstant(.int32(base + ".z", shape: [o], zs))
        sc = addConstant(.float(base + ".s", shape: [o], scales))
        return WeightRef(weights: w, scales: sc, zeroPoints: zn, bits: bits)
    }

    func int4(_ name: String, _ shape: [Int], _ v: [Int8]) throws(ExportError) -> String {
        do { return addConstant(try QConstant.int4(name, shape: shape, v)) } catch { throw .invalid(error) }
    }

    // MARK: linear and conv

    func emitLinear(_ l: LinearLayer, output t: String, quantizedOutput: UniformQuantizer?) throws(ExportError) -> String {
        let op = producer[l.output]?.opType ?? "MatMul"
        guard let wq = weightQ[l.weight] else {
            throw .unsupported(node: l.node, op: op, reason: "the layer is kept in float; the integer runtime has no float linear layer (quantize every linear layer to export)")
        }
        guard let aq = activation(l.input, consumer: l.node) else {
            throw .unsupported(node: l.node, op: op, reason: "the layer's input is not quantized (kept in float); the runtime runs every linear layer on quantized inputs")
        }
        let x: String
        var adaLog: AdaLogQuantizer? = nil
        switch aq {
        case let .uniform(u): x = try quantized(l.input, u, prefix: activationPrefix(l.input, consumer: l.node), consumer: l.node)
        case let .adaLog(a): x = try codes(l.input, a, consumer: l.node); adaLog = a
        case .log2, .logSqrt2: throw .unsupported(node: l.node, op: op, reason: "log2/log√2 linear inputs are not supported by the runtime")
        }
        let k = l.inFeatures, o = l.outFeatures
        guard let xs = shapes[x], xs.last == k else {
            throw .unsupported(node: l.node, op: op, reason: "input runtime shape \(shapes[x] ?? []) does not end in K = \(k)")
        }
        let w = try constFloats(l.weight)
        var rows = w
        if !l.weightTransposed { for kk in 0..<k { for oo in 0..<o { rows[oo * k + kk] = w[kk * o + oo] } } }
        let wr = try weights(l.node, rows, o: o, k: k, wq.quantizer)
        var bias = try l.bias.map { b throws(ExportError) in try constFloats(b) }
        if let a = adaLog, !a.biasReparameterized, a.shift != 0 {
            // The shift was not folded into a bias constant (there was none): fold b' = b − shift·Ŵ·1 here.
            var b = bias ?? [Float](repeating: 0, count: o)
            for oo in 0..<o {
                var s = 0.0
                for kk in 0..<k { s += Double(rows[oo * k + kk]) }
                b[oo] = Float(Double(b[oo]) - Double(a.shift) * s)
            }
            bias = b
        }
        let bn = bias.map { addConstant(.float(l.node + ".b", shape: [o], $0)) }
        let outShape = Array(xs.dropLast()) + [o]
        let requantize = quantizedOutput != nil
        var y = unique(quantizedOutput == nil ? t : t + (requantize ? "::q" : "::f"))
        if let u = quantizedOutput, requantize {
            let (dt, up) = try uniformParams(u, "output quantizer", node: l.node)
            declare(y, dt, outShape, .uniform(up))
        } else {
            declare(y, .float32, outShape)
        }
        let lop = LinearOp(name: l.node, input: x, output: y, weight: wr, bias: bn)
        if adaLog != nil {
            guard quantizedOutput == nil else { throw .unsupported(node: l.node, op: op, reason: "an AdaLog-input layer has a float output") }
            ops.append(.adaLogLinear(lop))
        } else {
            ops.append(.linear(lop))
        }
        if let u = quantizedOutput, !requantize { y = try quantizeOp(y, u, onnx: t, node: l.node) }
        layout[t] = .plain
        return y
    }

    /// The conv producing `t`, directly or through a ReLU/ReLU6 that is its only reader.
    func convProducing(_ t: String) -> (ConvLayer, QClamp)? {
        guard let n = producer[t] else { return nil }
        if n.opType == "Conv" { return convByNode[n.name].map { ($0, .none) } }
        guard n.opType == "Relu" || n.opType == "Clip", let c = producer[n.inputs[0]], c.opType == "Conv",
              consumers[n.inputs[0]]?.count == 1, !g.outputs.contains(where: { $0.name == n.inputs[0] }),
              let conv = convByNode[c.name] else { return nil }
        if n.opType == "Relu" { return (conv, .relu) }
        var lo = n.float("min", default: -.infinity), hi = n.float("max", default: .infinity)
        if n.inputs.count > 1, !n.inputs[1].isEmpty { guard let v = scalar(n.inputs[1]) else { return nil }; lo = v }
        if n.inputs.count > 2, !n.inputs[2].isEmpty { guard let v = scalar(n.inputs[2]) else { return nil }; hi = v }
        if lo == 0 && hi == 6 { return (conv, .relu6) }
        if lo == 0 && hi == .infinity { return (conv, .relu) }
        return nil
    }

    func emitConv(_ c: ConvLayer, clamp: QClamp, output t: String, quantizedOutput: UniformQuantizer?) throws(ExportError) -> String {
        guard let node = g.nodes.first(where: { $0.name == c.node }) else { throw .inconsistent("conv '\(c.node)' is not in the graph") }
        func no(_ r: String) -> ExportError { .unsupported(node: c.node, op: "Conv", reason: r) }
        guard c.kernel.count == 2 else { throw no("only 2-D convolutions are supported") }
        guard (node.ints("dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }) else { throw no("dilated convolutions are not supported") }
        let ap = node.string("auto_pad") ?? "NOTSET"
        guard ap == "NOTSET" || ap == "VALID" else { throw no("auto_pad \(ap) is not supported (export with explicit pads)") }
        guard let wq = weightQ[c.weight] else { throw no("the layer is kept in float; the integer runtime needs quantized conv weights") }
        let strides = node.ints("strides") ?? [1, 1]
        var pads = node.ints("pads") ?? [0, 0, 0, 0]
        // Fold a zero constant Pad on H/W (TF-style "same" padding of EfficientNet-Lite) into the conv's pads.
        var xin = c.input
        if let p = producer[xin], p.opType == "Pad" {
            let inputs = p.inputs.map { g.constants[$0] }
            guard let spec = try? ReferenceOps.padSpec(p, inputs, rank: 4, opset: g.opset, { ONNXError.badTensor(name: p.name, reason: $0) }),
                  spec.mode == "constant", spec.value == 0, spec.begin[0] == 0, spec.begin[1] == 0, spec.end[0] == 0, spec.end[1] == 0,
                  (spec.begin + spec.end).allSatisfy({ $0 >= 0 }) else {
                throw .unsupported(node: p.name, op: "Pad", reason: "only zero constant padding of H and W before a conv is supported")
            }
            pads = [pads[0] + spec.begin[2], pads[1] + spec.begin[3], pads[2] + spec.end[2], pads[3] + spec.end[3]]
            xin = p.inputs[0]
        }
        let x: String
        switch activation(c.input, consumer: c.node) {
        case let .uniform(u)?: x = try quantized(xin, u, consumer: c.node)
        case nil: x = try float(xin)
        default: throw no("conv inputs must be uniform-quantized or float")
        }
        guard layout[xin] == .nchw, let xs = shapes[x], xs.count == 3 else { throw no("the input must be an NCHW feature map") }
        guard let wt = g.constants[c.weight], wt.shape.count == 4 else { throw .inconsistent("conv weight '\(c.weight)' missing") }
        let o = wt.shape[0], cg = wt.shape[1], kh = wt.shape[2], kw = wt.shape[3]
        guard c.groups == 1 || (c.groups == xs[2] && o == xs[2] && cg == 1) else {
            throw no("grouped convs other than depthwise (groups = C = O) are not supported (groups \(c.groups))")
        }
        // ONNX [O][C/g][kh][kw] → runtime [O][kh][kw][C/g]
        let fw = try constFloats(c.weight)
        let k = cg * kh * kw
        var rows = [Float](repeating: 0, count: fw.count)
        for oo in 0..<o { for cc in 0..<cg { for y in 0..<kh { for xx in 0..<kw {
            rows[oo * k + (y * kw + xx) * cg + cc] = fw[oo * k + (cc * kh + y) * kw + xx]
        } } } }
        let wr = try weights(c.node, rows, o: o, k: k, wq.quantizer)
        let bn = try c.bias.map { b throws(ExportError) in addConstant(.float(c.node + ".b", shape: [o], try constFloats(b))) }
        let oh = (xs[0] + pads[0] + pads[2] - kh) / strides[0] + 1, ow = (xs[1] + pads[1] + pads[3] - kw) / strides[1] + 1
        let requantize = quantizedOutput != nil
        var y = unique(quantizedOutput == nil ? t : t + (requantize ? "::q" : "::f"))
        if let u = quantizedOutput, requantize {
            let (dt, up) = try uniformParams(u, "output quantizer", node: c.node)
            declare(y, dt, [oh, ow, o], .uniform(up))
        } else {
            declare(y, .float32, [oh, ow, o])
        }
        guard xs[2] == cg * c.groups else { throw no("the input has \(xs[2]) channels, the weight expects \(cg * c.groups)") }
        ops.append(.conv2d(ConvOp(name: c.node, input: x, output: y, weight: wr, bias: bn, kernel: [kh, kw], stride: strides,
                                  pads: pads, groups: c.groups, clamp: clamp)))
        if let u = quantizedOutput, !requantize { y = try quantizeOp(y, u, onnx: t, node: c.node) }
        layout[t] = .nchw
        return y
    }

    /// A `quantize` op from runtime float tensor `x` into a new tensor with quantizer `u`.
    func quantizeOp(_ x: String, _ u: UniformQuantizer, onnx t: String, node: String, dtype: QDType? = nil,
                    prefix: TokenPrefix? = nil) throws(ExportError) -> String {
        let (dt, up) = try uniformParams(u, "input quantizer", node: node)
        let r = unique(t + "::q")
        declare(r, dtype ?? dt, shapes[x]!, .uniform(up), prefix: prefix)
        ops.append(.quantize(UnaryOp(name: r, input: x, output: r)))
        return r
    }

    // MARK: attention

    /// The attention whose output reaches `t` through the head merge (Transpose [0,2,1,3] → Reshape [1, T, C]).
    func attentionBehind(_ t: String) -> AttentionPattern? {
        var cur = t
        for _ in 0..<3 {
            if let a = attentionByOutput[cur] { return cur == t ? nil : a }
            guard let p = producer[cur], ["Reshape", "Transpose", "Flatten"].contains(p.opType) else { return nil }
            if p.opType == "Transpose", p.ints("perm") != [0, 2, 1, 3] { return nil }
            cur = p.inputs[0]
        }
        return nil
    }

    /// Traces an attention operand back to the fused qkv tensor: Gather(i, axis 0) of Transpose[2,0,3,1,4] of
    /// Reshape([1, T, 3, H, d]) of the qkv linear output; scalar Mul/Div on the way multiply `scale`.
    func qkvSource(_ t: String) -> (index: Int, qkv: String, scale: Float, heads: Int, headDim: Int)? {
        var cur = t, scale: Float = 1
        for _ in 0..<8 {
            guard let p = producer[cur] else { return nil }
            switch p.opType {
            case "Mul", "Div":
                guard p.inputs.count == 2 else { return nil }
                if let c = scalar(p.inputs[1]) { scale *= p.opType == "Mul" ? c : 1 / c; cur = p.inputs[0] }
                else if p.opType == "Mul", let c = scalar(p.inputs[0]) { scale *= c; cur = p.inputs[1] }
                else { return nil }
            case "Transpose" where p.ints("perm") == [0, 1, 3, 2]:
                cur = p.inputs[0]
            case "Gather", "Squeeze":
                // q, k, v = qkv.unbind(0): Gather(i, axis 0), or Squeeze(axis 0) of output i of Split(axis 0)
                var index = 0, source = p.inputs[0]
                if p.opType == "Gather" {
                    guard p.int("axis", default: 0) == 0, p.inputs.count == 2, let idx = g.constants[p.inputs[1]], idx.count == 1 else { return nil }
                    index = Int(idx.ints[0])
                } else {
                    guard let sp = producer[p.inputs[0]], sp.opType == "Split", sp.int("axis", default: 0) == 0,
                          let i = sp.outputs.firstIndex(of: p.inputs[0]), sp.outputs.count == 3 else { return nil }
                    index = i; source = sp.inputs[0]
                }
                guard let tr = producer[source], tr.opType == "Transpose", tr.ints("perm") == [2, 0, 3, 1, 4],
                      let rs = producer[tr.inputs[0]], rs.opType == "Reshape" else { return nil }
                let s = g.shapes[rs.outputs[0]] ?? []
                guard s.count == 5, s[0] == 1, s[2] == 3 else { return nil }
                return (index, rs.inputs[0], scale, s[3], s[4])
            default:
                return nil
            }
        }
        return nil
    }

    func emitAttention(_ a: AttentionPattern, output t: String, quantizedOutput: UniformQuantizer?, dtype: QDType? = nil,
                       prefix: TokenPrefix? = nil) throws(ExportError) -> String {
        func no(_ r: String) -> ExportError { .unsupported(node: a.qkMatMul, op: "attention", reason: r) }
        guard a.scoreAdds.isEmpty else { throw no("attention with an added score bias or mask (e.g. Swin) is not supported") }
        let kName = a.k ?? a.kTransposed
        guard let qs = qkvSource(a.q), let ks = qkvSource(kName), let vs = qkvSource(a.v),
              let kOp = qkvSource(g.nodes.first(where: { $0.name == a.qkMatMul })?.inputs[1] ?? a.kTransposed),
              qs.index == 0, ks.index == 1, vs.index == 2, qs.qkv == ks.qkv, ks.qkv == vs.qkv else {
            throw no("Q, K and V must be slices 0, 1, 2 of one fused qkv projection reshaped to [1, T, 3, H, d] (timm layout)")
        }
        guard vs.scale == 1 else { throw no("a scaled V is not supported") }
        // Total factor on the logits relative to raw q·k: operand scalars times the scalars between Q·Kᵀ and Softmax.
        var post: Float = 1, cur = a.softmaxInput
        for _ in 0..<6 {
            guard let p = producer[cur] else { break }
            if p.name == a.qkMatMul { break }
            if (p.opType == "Mul" || p.opType == "Div"), p.inputs.count == 2, let c = scalar(p.inputs[1]) {
                post *= p.opType == "Mul" ? c : 1 / c; cur = p.inputs[0]; continue
            }
            if ["Reshape", "Identity", "Cast"].contains(p.opType) { cur = p.inputs[0]; continue }
            throw no("unexpected \(p.opType) between Q·Kᵀ and Softmax")
        }
        let heads = qs.heads, d = qs.headDim
        let total = qs.scale * kOp.scale * post
        guard abs(Double(total) * Double(d).squareRoot() - 1) < 1e-3 else {
            throw no("logit scale \(total) is not 1/√d = \(1 / Double(d).squareRoot()) (the runtime computes softmax(q·kᵀ/√d))")
        }
        func group(_ tensor: String, _ consumer: String?, alpha: Float, _ what: String) throws(ExportError) -> UniformGroupParams {
            let p = consumer.flatMap { activation(tensor, consumer: $0) } ?? activationQ[tensor]?.first?.q
            guard case let .uniform(u)? = p else { throw no("\(what) has no uniform quantizer (kept in float?)") }
            guard u.scales.count == heads || u.scales.count == 1 else { throw no("\(what) quantizer has \(u.scales.count) scales for \(heads) heads") }
            let s = (0..<heads).map { u.scales[u.scales.count == 1 ? 0 : $0] / alpha }
            let z = (0..<heads).map { h -> Int32 in u.symmetric ? Int32(1 << (u.bits - 1)) : Int32(u.zeroPoints[u.zeroPoints.count == 1 ? 0 : h]) }
            return UniformGroupParams(scale: s, zeroPoint: z, bits: u.bits)
        }
        let gq = try group(a.q, a.qkMatMul, alpha: qs.scale, "Q")
        let gk = try group(kName, nil, alpha: ks.scale, "K")
        let gv = try group(a.v, a.avMatMul, alpha: 1, "V")
        let probs: TensorQuantizer
        switch activation(a.probabilities, consumer: a.avMatMul) {
        case let .adaLog(p)?:
            guard p.scale == 1, p.shift == 0 else { throw no("post-softmax AdaLog needs scale 1 and shift 0") }
            if p.dequantization == .exact { notes.append("\(a.qkMatMul): post-softmax AdaLog uses the exact dequantization; the runtime uses the hardware table") }
            probs = .adaLog(AdaLogParams(q: p.q, r: AdaLogQuantizer.r, bits: p.bits, scale: 1))
        case let .log2(p)?:
            guard p.scale == 1, p.shift == 0 else { throw no("post-softmax log2 needs scale 1 and shift 0") }
            probs = .adaLog(AdaLogParams(q: 37, r: 37, bits: p.bits, scale: 1))
        case let .uniform(u)?:
            guard u.scales.count == 1, !u.symmetric, u.zeroPoints[0] == 0 else { throw no("a uniform post-softmax quantizer needs one scale and zero point 0") }
            probs = .uniform(UniformParams(scale: u.scales[0], zeroPoint: 0, bits: u.bits))
        case .logSqrt2?:
            throw no("log√2 post-softmax quantizers are not supported by the runtime (use adalog or log2)")
        case nil:
            throw no("the attention probabilities are not quantized (kept in float?)")
        }
        let x = try float(qs.qkv)
        guard let xs = shapes[x], xs.count == 2, xs[1] == 3 * heads * d else {
            throw no("the qkv projection output must be [T, 3·H·d], got runtime shape \(shapes[x] ?? [])")
        }
        let y = unique(quantizedOutput == nil ? t : t + "::q")
        if let u = quantizedOutput {
            let (dt, up) = try uniformParams(u, "output quantizer", node: a.avMatMul)
            if let p = prefix, p.count >= xs[0] { throw no("class-token rows \(p.count) must be fewer than the \(xs[0]) tokens") }
            declare(y, dtype ?? dt, [xs[0], heads * d], .uniform(up), prefix: prefix)
        } else {
            declare(y, .float32, [xs[0], heads * d])
        }
        ops.append(.attention(AttentionOp(name: a.qkMatMul, input: x, output: y, heads: heads, headDim: d, query: gq, key: gk,
                                          value: gv, probabilities: probs)))
        layout[t] = .plain
        return y
    }
}
