// Binding input shapes: constant folding of exporter shape arithmetic and static shape inference.

/// A named tensor with a concrete shape.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var dtype: DType
    public init(name: String, shape: [Int], dtype: DType = .float32) { self.name = name; self.shape = shape; self.dtype = dtype }
}

/// A graph specialised to concrete input shapes: every shape computation is folded into constants,
/// every remaining tensor has a static shape, and unused nodes are gone. This is what the executor runs
/// and what the quantizer analyses.
public struct StaticGraph: Sendable {
    public var inputs: [TensorSpec]
    public var outputs: [TensorSpec]
    /// Runtime nodes in execution order.
    public var nodes: [Node]
    /// Initializers and folded constants that remaining nodes (or outputs) read.
    public var constants: [String: Tensor]
    /// Shape of every runtime tensor (inputs and node outputs).
    public var shapes: [String: [Int]]
    public var dtypes: [String: DType]
    public var opset: Int
    /// The batch size the graph was bound to (first dim of the first input).
    public var batch: Int

    /// The node producing `name`, if it is a runtime tensor.
    public func producer(of name: String) -> Node? { nodes.first { $0.outputs.contains(name) } }
    /// Nodes reading `name`.
    public func consumers(of name: String) -> [Node] { nodes.filter { $0.inputs.contains(name) } }
}

extension Graph {
    /// Binds every symbolic leading dimension to `batch` and specialises the graph.
    /// A graph whose constants and runtime tensors would need more than `limits` is refused with
    /// `ONNXError.exceedsMemoryLimit` before the memory is allocated.
    public func specialized(batch: Int, limits: ResourceLimits = .default) throws -> StaticGraph {
        var shapes: [String: [Int]] = [:]
        for i in inputs {
            guard let dims = i.dims else {
                throw ONNXError.inputShape(input: i.name, expected: "a declared shape", got: [])
            }
            var s: [Int] = []
            for (k, d) in dims.enumerated() {
                switch d {
                case .fixed(let n): s.append(n)
                case .symbol(let name):
                    guard k == 0 else {
                        throw ONNXError.inputShape(input: i.name, expected: "\(i.shapeDescription) with only the batch dimension symbolic (dimension \(k) is '\(name)'; pass explicit shapes)", got: [])
                    }
                    s.append(batch)
                }
            }
            shapes[i.name] = s
        }
        return try specialized(inputShapes: shapes, limits: limits)
    }

    /// Specialises the graph to the given input shapes (checked against the declared ones).
    public func specialized(inputShapes: [String: [Int]], limits: ResourceLimits = .default) throws -> StaticGraph {
        var consts: [String: Tensor] = initializers
        var budget = MemoryBudget(limits)
        var foldingOperationsLeft = limits.maxFoldingOperations
        for (name, t) in initializers {
            try budget.charge(t.count, bytesPerElement: storedBytes(t.dtype), for: "initializer '\(name)'")
        }
        var shapes: [String: [Int]] = [:]
        var dtypes: [String: DType] = [:]
        var specs: [TensorSpec] = []
        for i in inputs {
            guard let s = inputShapes[i.name] else {
                throw ONNXError.inputShape(input: i.name, expected: i.shapeDescription, got: [])
            }
            if let dims = i.dims {
                let ok = dims.count == s.count && zip(dims, s).allSatisfy { d, v in
                    if case .fixed(let n) = d { return n == v }
                    return v > 0
                }
                guard ok else { throw ONNXError.inputShape(input: i.name, expected: i.shapeDescription, got: s) }
            }
            guard s.allSatisfy({ $0 > 0 }), let n = checkedElementCount(s), n <= ShapeInference.maxElements else {
                throw ONNXError.inputShape(input: i.name, expected: i.shapeDescription, got: s)
            }
            try budget.charge(n, bytesPerElement: 4, for: "input '\(i.name)' of shape \(s)")
            shapes[i.name] = s
            dtypes[i.name] = i.dtype
            specs.append(TensorSpec(name: i.name, shape: s, dtype: i.dtype))
        }
        for (k, t) in initializers { dtypes[k] = t.dtype }
        let unknownInputs = Set(inputShapes.keys).subtracting(inputs.map(\.name))
        if let extra = unknownInputs.first { throw ONNXError.execution("the model has no input named '\(extra)'") }

        var kept: [Node] = []
        for node in try topologicallySorted() {
            let opsetHere = opsets[node.domain] ?? opset
            guard OpSupport.isSupported(node.opType, domain: node.domain) else {
                throw ONNXError.unsupportedOp(node: node.displayName, op: node.opType, domain: node.domain,
                                              opset: opsetHere, supported: OpSupport.allSupported.sorted())
            }
            let needed = ShapeInference.minimumInputs(node.opType, opset: opset)
            guard node.inputs.count >= needed, node.inputs.prefix(needed).allSatisfy({ !$0.isEmpty }) else {
                throw ONNXError.badNode(node: node.displayName, op: node.opType,
                                        reason: "needs at least \(needed) inputs, has \(node.inputs.filter { !$0.isEmpty }.count)")
            }
            // Inputs: constant, runtime (known shape), omitted, or missing.
            var constIns: [Tensor?] = []
            var inShapes: [[Int]?] = []
            var allConst = true
            for name in node.inputs {
                if name.isEmpty { constIns.append(nil); inShapes.append(nil); continue }
                if let c = consts[name] { constIns.append(c); inShapes.append(c.shape); continue }
                guard let s = shapes[name] else { throw ONNXError.missingTensor(name: name, node: node.displayName) }
                constIns.append(nil); inShapes.append(s); allConst = false
            }
            if node.opType == "Shape" || node.opType == "Size", let s = inShapes.first ?? nil {
                let t = node.opType == "Shape" ? ReferenceOps.shapeTensor(s, node) : Tensor(shape: [], ints: [Int64(elementCount(s))])
                consts[node.outputs[0]] = t
                continue
            }
            if allConst && ReferenceOps.supported.contains(node.opType) {
                // What folding may allocate is bounded by what is left of the budget (checked inside, before allocating).
                let room = min(ShapeInference.maxElements, max(0, budget.limit - budget.used) / 4)
                let operations = ReferenceOps.operationCount(node, constIns) ?? Int.max
                guard operations <= foldingOperationsLeft else {
                    throw ONNXError.exceedsFoldingLimit(node: node.displayName, op: node.opType, operations: operations,
                                                        limit: limits.maxFoldingOperations)
                }
                foldingOperationsLeft -= operations
                let outs = try ReferenceOps.$elementLimit.withValue(room) { try ReferenceOps.evaluate(node, constIns, opset: opset) }
                // What it wrote counts too (ConstantOfShape, Expand, Tile read little and write much): a chain of such
                // folds runs out of the work budget instead of repeating large passes.
                foldingOperationsLeft -= min(foldingOperationsLeft, outs.reduce(0) { $0 + $1.count })
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty {
                    try budget.charge(t.count, bytesPerElement: storedBytes(t.dtype), for: "folded constant '\(name)' (node \(node.displayName))")
                    consts[name] = t
                }
                continue
            }
            let inTypes = node.inputs.map { $0.isEmpty ? DType.float32 : (consts[$0]?.dtype ?? dtypes[$0] ?? .float32) }
            let outs = try ShapeInference.infer(node, shapes: inShapes, dtypes: inTypes, constants: constIns, opset: opset)
            for (name, o) in zip(node.outputs, outs) where !name.isEmpty {
                guard let n = checkedElementCount(o.shape), n <= ShapeInference.maxElements else {
                    throw ONNXError.shapeMismatch(node: node.displayName, op: node.opType,
                                                  reason: "output shape \(o.shape) is invalid or too large (limit \(ShapeInference.maxElements) elements)")
                }
                try budget.charge(n, bytesPerElement: 4, for: "tensor '\(name)' of shape \(o.shape) (node \(node.displayName))")
                shapes[name] = o.shape
                dtypes[name] = o.dtype
            }
            kept.append(node)
        }
        // Dead-node elimination from the outputs.
        var needed = Set(outputs.map(\.name))
        var live: [Node] = []
        for node in kept.reversed() where node.outputs.contains(where: { needed.contains($0) }) {
            live.append(node)
            for i in node.inputs where !i.isEmpty { needed.insert(i) }
        }
        live.reverse()
        var usedConsts: [String: Tensor] = [:]
        for n in needed { if let c = consts[n] { usedConsts[n] = c } }
        var outSpecs: [TensorSpec] = []
        for o in outputs {
            if let s = shapes[o.name] { outSpecs.append(TensorSpec(name: o.name, shape: s, dtype: dtypes[o.name] ?? .float32)) }
            else if let c = consts[o.name] { outSpecs.append(TensorSpec(name: o.name, shape: c.shape, dtype: c.dtype)) }
            else { throw ONNXError.missingTensor(name: o.name, node: "graph output") }
        }
        var liveShapes: [String: [Int]] = [:]
        var liveTypes: [String: DType] = [:]
        for n in needed { if let s = shapes[n] { liveShapes[n] = s; liveTypes[n] = dtypes[n] } }
        return StaticGraph(inputs: specs, outputs: outSpecs, nodes: live, constants: usedConsts, shapes: liveShapes,
                           dtypes: liveTypes, opset: opset, batch: specs.first?.shape.first ?? 1)
    }

    /// Nodes in an order where every input is produced before use (ONNX files are usually sorted already).
    public func topologicallySorted() throws -> [Node] {
        var available = Set(initializers.keys).union(inputs.map(\.name))
        available.insert("")
        var sorted: [Node] = []
        var pending = nodes
        sorted.reserveCapacity(nodes.count)
        while !pending.isEmpty {
            var next: [Node] = []
            var progressed = false
            for n in pending {
                if n.inputs.allSatisfy({ available.contains($0) }) {
                    sorted.append(n)
                    for o in n.outputs { available.insert(o) }
                    progressed = true
                } else { next.append(n) }
            }
            if !progressed {
                let n = next[0]
                let missing = n.inputs.first { !available.contains($0) } ?? "?"
                throw ONNXError.missingTensor(name: missing, node: n.displayName)
            }
            pending = next
        }
        return sorted
    }
}

/// Static shape inference for runtime nodes (inputs with known shapes, some inputs constant).
public enum ShapeInference {
    /// Largest tensor the suite will allocate (2²⁸ floats = 1 GiB); bigger shapes are reported as errors.
    public static let maxElements = 1 << 28

    /// Inputs an op cannot do without (checked before folding or inference, so neither indexes past the list).
    public static func minimumInputs(_ op: String, opset: Int) -> Int {
        switch op {
        case "Constant": return 0
        case "Where", "Range": return 3
        case "BatchNormalization": return 5
        case "Slice": return opset >= 10 ? 3 : 1
        case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And",
             "Or", "Xor", "MatMul", "Gemm", "Conv", "ConvTranspose", "Reshape", "Expand", "Tile", "Gather",
             "GatherElements", "CastLike", "PRelu":
            return 2
        case "CumSum": return 2
        default: return 1
        }
    }

    public static func infer(_ node: Node, shapes: [[Int]?], dtypes: [DType], constants: [Tensor?],
                             opset: Int) throws -> [(shape: [Int], dtype: DType)] {
        let op = node.opType
        func bad(_ r: String) -> ONNXError { .shapeMismatch(node: node.displayName, op: op, reason: r) }
        func s(_ i: Int) throws -> [Int] {
            guard i < shapes.count, let v = shapes[i] else { throw bad("input \(i) is missing") }
            return v
        }
        func c(_ i: Int, _ what: String) throws -> Tensor {
            guard i < constants.count, let v = constants[i] else {
                throw ONNXError.badNode(node: node.displayName, op: op, reason: "\(what) (input \(i)) must be a constant after shape folding")
            }
            return v
        }
        let t0 = dtypes.first ?? .float32
        let x = try s(0)
        switch op {
        case "Identity", "Dropout", "Softmax", "LogSoftmax", "BatchNormalization", "InstanceNormalization",
             "GroupNormalization", "Trilu", "CumSum":
            return [(x, t0)]
        case "LayerNormalization":
            guard let a = normalizeAxis(node.int("axis", default: -1), rank: x.count) else { throw bad("axis out of range") }
            let stat = Array(x[..<a]) + [Int](repeating: 1, count: x.count - a)
            return [(x, t0), (stat, .float32), (stat, .float32)]
        case "Cast":
            return [(x, DType(onnxCode: node.int("to", default: 1)) ?? .float32)]
        case "CastLike": return [(x, dtypes.count > 1 ? dtypes[1] : t0)]
        case "Not": return [(x, .bool)]
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Sum", "Mean":
            guard let o = broadcastShape(shapes.compactMap { $0 }) else { throw bad("shapes \(shapes.compactMap { $0 }) do not broadcast") }
            return [(o, dtypes.contains { $0.isFloat } ? .float32 : t0)]
        case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
            guard let o = broadcastShape(shapes.compactMap { $0 }) else { throw bad("shapes do not broadcast") }
            return [(o, .bool)]
        case "Where":
            guard let o = broadcastShape(shapes.compactMap { $0 }) else { throw bad("shapes do not broadcast") }
            return [(o, dtypes.count > 1 ? dtypes[1] : .float32)]
        case "Gather":
            guard let a = normalizeAxis(node.int("axis", default: 0), rank: x.count) else { throw bad("axis out of range") }
            let idx = try s(1)
            return [(Array(x[..<a]) + idx + Array(x[(a + 1)...]), t0)]
        case "GatherElements": return [(try s(1), t0)]
        case "Unsqueeze":
            let axes = opset >= 13 ? try c(1, "axes").ints.map { Int($0) } : (node.ints("axes") ?? [])
            return [(try ReferenceOps.unsqueezeShape(x, axes: axes, bad), t0)]
        case "Squeeze":
            let axes: [Int]? = opset >= 13 ? (shapes.count > 1 && (constants.count > 1 && constants[1] != nil) ? try c(1, "axes").ints.map { Int($0) } : nil) : node.ints("axes")
            return [(try ReferenceOps.squeezeShape(x, axes: axes, bad), t0)]
        case "Concat":
            let all = shapes.compactMap { $0 }
            guard let a = normalizeAxis(node.int("axis", default: 0), rank: x.count) else { throw bad("axis out of range") }
            var o = x; o[a] = 0
            for sh in all {
                guard sh.count == x.count else { throw bad("rank mismatch \(sh) vs \(x)") }
                for d in 0..<x.count where d != a && sh[d] != x[d] { throw bad("shapes \(all) differ outside axis \(a)") }
                o[a] += sh[a]
            }
            return [(o, t0)]
        case "Reshape":
            return [(try ReferenceOps.reshapeShape(x, try c(1, "shape").ints, allowZero: node.int("allowzero", default: 0) != 0, bad), t0)]
        case "Flatten":
            var a = node.int("axis", default: 1); if a < 0 { a += x.count }
            guard a >= 0, a <= x.count else { throw bad("axis out of range") }
            return [([elementCount(Array(x[..<a])), elementCount(Array(x[a...]))], t0)]
        case "Transpose":
            return [(try ReferenceOps.transposeShape(x, perm: node.ints("perm") ?? Array((0..<x.count).reversed()), bad), t0)]
        case "Slice":
            let spec = try ReferenceOps.sliceSpec(x, starts: try c(1, "starts").ints, ends: try c(2, "ends").ints,
                                                  axes: constants.count > 3 ? constants[3]?.ints : nil,
                                                  steps: constants.count > 4 ? constants[4]?.ints : nil, bad)
            return [(spec.sizes, t0)]
        case "Split":
            let sizes = try ReferenceOps.splitSizes(node, x, constants.count > 1 ? constants[1] : nil, opset: opset, bad)
            let a = normalizeAxis(node.int("axis", default: 0), rank: x.count)!
            return sizes.map { var o = x; o[a] = $0; return (o, t0) }
        case "Expand":
            let target = try c(1, "shape").ints.map { Int($0) }
            guard let o = broadcastShape([x, target]) else { throw bad("cannot expand \(x) to \(target)") }
            return [(o, t0)]
        case "Tile":
            let reps = try c(1, "repeats").ints.map { Int($0) }
            guard reps.count == x.count, reps.allSatisfy({ $0 >= 0 && $0 < 1 << 28 }) else { throw bad("repeats \(reps) do not fit rank \(x.count) or are out of range") }
            return [(zip(x, reps).map { $0 * $1 }, t0)]
        case "Pad":
            let (b, e, _, _) = try ReferenceOps.padSpec(node, constants, rank: x.count, opset: opset, bad)
            return [((0..<x.count).map { x[$0] + b[$0] + e[$0] }, t0)]
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare":
            let axes = ReferenceOps.reduceAxes(node, constants, opset: opset)
            if axes == nil, shapes.count > 1, shapes[1] != nil { throw bad("axes must be constant") }
            let r = try ReferenceOps.reduceShape(x, axes: axes, keepDims: node.int("keepdims", default: 1) != 0,
                                                 noopWithEmpty: node.int("noop_with_empty_axes", default: 0) != 0, bad)
            return [(r.shape, t0)]
        case "ArgMax", "ArgMin":
            guard let a = normalizeAxis(node.int("axis", default: 0), rank: x.count) else { throw bad("axis out of range") }
            var o = x
            if node.int("keepdims", default: 1) != 0 { o[a] = 1 } else { o.remove(at: a) }
            return [(o, .int64)]
        case "MatMul":
            return [(try ReferenceOps.matmulShape(x, try s(1), bad), .float32)]
        case "Gemm":
            let w = try s(1)
            guard x.count == 2, w.count == 2 else { throw bad("Gemm needs 2-D operands, got \(x) and \(w)") }
            let m = node.int("transA", default: 0) != 0 ? x[1] : x[0]
            let ka = node.int("transA", default: 0) != 0 ? x[0] : x[1]
            let kb = node.int("transB", default: 0) != 0 ? w[1] : w[0]
            let n = node.int("transB", default: 0) != 0 ? w[0] : w[1]
            guard ka == kb else { throw bad("inner dimensions differ: \(x) · \(w)") }
            return [([m, n], .float32)]
        case "Conv":
            let w = try s(1)
            guard x.count == 4, w.count == 4 else { throw bad("only 2-D convolution (NCHW) is supported, got input \(x), weights \(w)") }
            let g = node.int("group", default: 1)
            guard g > 0, g <= x[1], x[1] == w[1] * g, w[0] % g == 0 else { throw bad("channels \(x[1]) do not match weights \(w) with group \(g)") }
            let geo = try Geometry.window(node, inSpatial: Array(x[2...]), kernel: node.ints("kernel_shape") ?? Array(w[2...]))
            return [([x[0], w[0]] + geo.outSpatial, .float32)]
        case "ConvTranspose":
            let w = try s(1)
            guard x.count == 4, w.count == 4 else { throw bad("only 2-D ConvTranspose is supported") }
            let g = node.int("group", default: 1)
            guard g > 0, g <= x[1], x[1] == w[0], x[1] % g == 0 else { throw bad("channels \(x[1]) do not match weights \(w) with group \(g)") }
            let (geo, _) = try Geometry.convTranspose(node, inSpatial: Array(x[2...]), kernel: node.ints("kernel_shape") ?? Array(w[2...]))
            return [([x[0], w[1] * g] + geo.outSpatial, .float32)]
        case "MaxPool", "AveragePool":
            guard x.count == 4 else { throw bad("only 2-D pooling (NCHW) is supported, got \(x)") }
            guard let k = node.ints("kernel_shape") else { throw bad("kernel_shape missing") }
            let geo = try Geometry.window(node, inSpatial: Array(x[2...]), kernel: k)
            return [([x[0], x[1]] + geo.outSpatial, .float32)]
        case "GlobalAveragePool", "GlobalMaxPool":
            guard x.count >= 3 else { throw bad("needs NC… input") }
            return [([x[0], x[1]] + [Int](repeating: 1, count: x.count - 2), .float32)]
        case "Resize", "Upsample":
            let out = try resizeShape(node, x, constants, opset: opset, bad)
            return [(out, .float32)]
        case "ConstantOfShape", "Range", "Constant", "Shape", "Size":
            throw ONNXError.badNode(node: node.displayName, op: op, reason: "inputs must be constant after shape folding")
        default:
            if ReferenceOps.unaryFunction(node) != nil { return [(x, t0)] }
            throw ONNXError.unsupportedOp(node: node.displayName, op: op, domain: node.domain, opset: opset,
                                          supported: OpSupport.allSupported.sorted())
        }
    }

    /// Output shape of Resize/Upsample from its constant scales or sizes.
    public static func resizeShape(_ node: Node, _ x: [Int], _ consts: [Tensor?], opset: Int,
                                   _ bad: (String) -> ONNXError) throws -> [Int] {
        if node.opType == "Upsample" {
            let sc = consts.count > 1 ? consts[1]?.floats : node.floats("scales")
            guard let sc, sc.count == x.count else { throw bad("scales missing") }
            return try zip(x, sc).map {
                let v = (Float($0) * $1).rounded(.down)
                guard v.isFinite, v >= 1, v < Float(1 << 30) else { throw bad("scale \($1) gives an invalid size") }
                return Int(v)
            }
        }
        // Resize: X, roi, scales, sizes (opset ≥ 11)
        if consts.count > 3, let sizes = consts[3], sizes.count > 0 {
            let sz = sizes.ints.map { Int($0) }
            if let axes = node.ints("axes") {
                guard axes.count == sz.count else { throw bad("sizes \(sz) do not match axes \(axes)") }
                var o = x
                for (i, a) in axes.enumerated() { guard let aa = normalizeAxis(a, rank: x.count) else { throw bad("axis") }; o[aa] = sz[i] }
                return o
            }
            guard sz.count == x.count else { throw bad("sizes \(sz) do not fit rank \(x.count)") }
            return sz
        }
        if consts.count > 2, let scales = consts[2], scales.count > 0 {
            var sc = [Float](repeating: 1, count: x.count)
            if let axes = node.ints("axes") {
                guard axes.count == scales.count else { throw bad("scales do not match axes \(axes)") }
                for (i, a) in axes.enumerated() { guard let aa = normalizeAxis(a, rank: x.count) else { throw bad("axis") }; sc[aa] = scales.floats[i] }
            } else {
                guard scales.count == x.count else { throw bad("scales do not fit rank") }
                sc = scales.floats
            }
            return try zip(x, sc).map {
                let v = (Float($0) * $1).rounded(.down)
                guard v.isFinite, v >= 1, v < Float(1 << 30) else { throw bad("scale \($1) gives an invalid size") }
                return Int(v)
            }
        }
        throw bad("Resize needs constant scales or sizes")
    }
}
