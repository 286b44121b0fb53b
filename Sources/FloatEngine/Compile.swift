// Turning node groups into steps: fast paths on FloatKernels, reference fallback for the rest.
import ONNXGraph

extension ExecutionPlan {
    func compile(graph: StaticGraph, constants: [String: Tensor], options: SessionOptions) throws {
        constSlots = [:]
        for (k, t) in constants {
            let b = FloatBuffer(capacity: t.count)
            t.floats.withUnsafeBufferPointer { if let base = $0.baseAddress { b.pointer.update(from: base, count: t.count) } }
            constSlots[k] = Slot(buffer: b, shape: t.shape)
        }
        var out: [Step] = []
        out.reserveCapacity(groups.count)
        for g in groups {
            var step = try compileGroup(g, graph: graph, constants: constants)
            step.label = g.count == 5 && g[1].opType == "Erf" ? "GELU(fused)" : g.map(\.opType).joined(separator: "+")
            out.append(step)
        }
        steps = out
    }

    func slot(_ name: String, _ node: Node) throws -> Slot {
        if let s = slots[name] { return s }
        if let c = constSlots[name] { return c }
        throw ONNXError.missingTensor(name: name, node: node.displayName)
    }

    private func activation(of node: Node?, constants: [String: Tensor]) -> FloatActivation {
        guard let node else { return .none }
        if node.opType == "Relu" { return .relu }
        if node.opType == "Clip" {
            let lo = node.input(1).flatMap { constants[$0]?.floats.first } ?? -.infinity
            let hi = node.input(2).flatMap { constants[$0]?.floats.first } ?? .infinity
            return .clamp(lo, hi)
        }
        return .none
    }

    private func compileGroup(_ g: [Node], graph: StaticGraph, constants: [String: Tensor]) throws -> Step {
        let node = g[0]
        let last = g[g.count - 1]
        let finalOut = last.outputs
        func bad(_ r: String) -> ONNXError { .badNode(node: node.displayName, op: node.opType, reason: r) }
        let opset = graph.opset

        if node.opType == "Transpose" && last.opType == "MatMul" {
            // A · (c·Kᵀ) with K read in place (scaled into a scratch buffer when there is a Mul)
            let a = try slot(last.inputs[0], last), kk = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            guard g.count == 3 else { return try batchedMatMul(last, a, kk, y, bTransposed: true) }
            let c = constants[g[1].inputs[1]]?.floats.first ?? 1
            let scratch = FloatBuffer(capacity: kk.count)
            let scaled = Slot(buffer: scratch, shape: kk.shape)
            let mm = try batchedMatMul(last, a, scaled, y, bTransposed: true)
            let n = kk.count
            return Step(node: last, outputs: finalOut) {
                for i in 0..<n { scratch.pointer[i] = kk.ptr[i] * c }
                try mm.run()
            }
        }
        if g.count > 1 && node.opType != "Conv" && node.opType != "MatMul" && node.opType != "Gemm" {
            // Erf-form GELU chain
            let x = try slot(node.inputs[0], node), y = try slot(last.outputs[0], last)
            let n = x.count
            return Step(node: last, outputs: finalOut) {
                y.ptr.update(from: x.ptr, count: n)
                FloatKernels.apply(.gelu, y.ptr, count: n)
            }
        }
        // epilogue of a fused group: optional bias Add, optional activation
        var biasName: String? = nil
        var act: FloatActivation = .none
        for n in g.dropFirst() {
            if n.opType == "Add" {
                biasName = n.inputs[0] == g[0].outputs[0] ? n.inputs[1] : n.inputs[0]
            } else { act = activation(of: n, constants: constants) }
        }

        switch node.opType {
        case "Conv":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            guard let w = constants[node.inputs[1]] else { throw bad("weights must be a constant") }
            let geo = try Geometry.window(node, inSpatial: Array(x.shape[2...]), kernel: node.ints("kernel_shape") ?? Array(w.shape[2...]))
            let p = Conv2DParams(inChannels: x.shape[1], outChannels: w.shape[0], inHeight: x.shape[2], inWidth: x.shape[3],
                                 kernelH: w.shape[2], kernelW: w.shape[3], strideH: geo.strides[0], strideW: geo.strides[1],
                                 padTop: geo.padBegin[0], padLeft: geo.padBegin[1], padBottom: geo.padEnd[0], padRight: geo.padEnd[1],
                                 dilationH: geo.dilations[0], dilationW: geo.dilations[1], groups: node.int("group", default: 1))
            let key = node.inputs[1] + "|conv|\(p.inHeight)x\(p.inWidth)"
            let packed: PackedConvWeights
            if let c = packCache[key] as? PackedConvWeights { packed = c } else {
                packed = w.floats.withUnsafeBufferPointer { PackedConvWeights($0.baseAddress!, params: p) }
                packCache[key] = packed
            }
            let bias: Slot? = try (node.input(2) ?? biasName).map { try slot($0, node) }
            let batch = x.shape[0], inSize = elementCount(Array(x.shape[1...])), outSize = elementCount(Array(y.shape[1...]))
            return Step(node: last, outputs: finalOut) {
                for b in 0..<batch {
                    FloatKernels.conv2d(input: x.ptr + b * inSize, weights: packed, bias: bias.map { UnsafePointer($0.ptr) },
                                        activation: act, output: y.ptr + b * outSize)
                }
            }
        case "Gemm":
            let a = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            guard let w = constants[node.inputs[1]] else { return try fallback(g, graph: graph) }
            let transA = node.int("transA", default: 0) != 0, transB = node.int("transB", default: 0) != 0
            let alpha = node.float("alpha", default: 1), beta = node.float("beta", default: 1)
            let m = y.shape[0], n = y.shape[1], k = transA ? a.shape[0] : a.shape[1]
            let key = node.inputs[1] + "|gemm|\(transB)|\(alpha)"
            let packed: PackedMatrix
            if let c = packCache[key] as? PackedMatrix { packed = c } else {
                let wf = alpha == 1 ? w.floats : w.floats.map { $0 * alpha }
                packed = wf.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: n, transposed: transB) }
                packCache[key] = packed
            }
            // bias: per-column vector fast; general C added afterwards with broadcasting
            var biasVec: [Float]? = nil
            var cFull: Slot? = nil
            if let cName = node.input(2) {
                let cs = try slot(cName, node)
                if cs.count == n && (cs.shape.last ?? 1) == n || cs.count == 1 {
                    let vals = Array(UnsafeBufferPointer(start: cs.ptr, count: cs.count))
                    biasVec = cs.count == 1 ? [Float](repeating: vals[0] * beta, count: n) : vals.map { $0 * beta }
                } else { cFull = cs }
            }
            let scratch: FloatBuffer? = transA ? FloatBuffer(capacity: m * k) : nil
            let cShape = cFull?.shape ?? []
            return Step(node: last, outputs: finalOut) {
                var ap = UnsafePointer(a.ptr)
                if let scratch {
                    for i in 0..<m { for kk in 0..<k { scratch.pointer[i * k + kk] = a.ptr[kk * m + i] } }
                    ap = UnsafePointer(scratch.pointer)
                }
                let epilogue: FloatActivation = cFull == nil ? act : .none
                if let bv = biasVec {
                    bv.withUnsafeBufferPointer { FloatKernels.gemm(m: m, a: ap, lda: k, b: packed, bias: $0.baseAddress, activation: epilogue, c: y.ptr, ldc: n) }
                } else {
                    FloatKernels.gemm(m: m, a: ap, lda: k, b: packed, bias: nil, activation: epilogue, c: y.ptr, ldc: n)
                }
                if let cf = cFull {
                    let st = broadcastStrides(cShape, to: [m, n])
                    for i in 0..<m { for j in 0..<n { y.ptr[i * n + j] = act.apply(y.ptr[i * n + j] + beta * cf.ptr[i * st[0] + j * st[1]]) } }
                }
            }
        case "MatMul":
            let a = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            if let w = constants[node.inputs[1]], w.rank == 2, a.shape.count >= 2 {
                let k = w.shape[0], n = w.shape[1], m = a.count / k
                let key = node.inputs[1] + "|mm"
                let packed: PackedMatrix
                if let c = packCache[key] as? PackedMatrix { packed = c } else {
                    packed = w.floats.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: n) }
                    packCache[key] = packed
                }
                let bias: Slot? = try biasName.map { try slot($0, node) }
                return Step(node: last, outputs: finalOut) {
                    FloatKernels.gemm(m: m, a: a.ptr, lda: k, b: packed, bias: bias.map { UnsafePointer($0.ptr) },
                                      activation: act, c: y.ptr, ldc: n)
                }
            }
            let b = try slot(node.inputs[1], node)
            return try batchedMatMul(node, a, b, y)
        case "Softmax" where (node.int("axis", default: -1) == -1 || node.int("axis", default: -1) == (slots[node.inputs[0]]?.shape.count ?? 0) - 1) && opset >= 13:
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let cols = x.shape.last ?? 1, rows = x.count / max(cols, 1)
            return Step(node: last, outputs: finalOut) {
                y.ptr.update(from: x.ptr, count: rows * cols)
                FloatKernels.softmaxRows(y.ptr, rows: rows, cols: cols)
            }
        case "LayerNormalization":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            guard let axis = normalizeAxis(node.int("axis", default: -1), rank: x.shape.count) else { throw bad("axis out of range") }
            let cols = elementCount(Array(x.shape[axis...])), rows = x.count / max(cols, 1)
            let gamma = try slot(node.inputs[1], node)
            let beta: Slot? = try node.input(2).map { try slot($0, node) }
            guard gamma.count == cols, beta == nil || beta!.count == cols else { return try fallbackLayerNorm(node, graph: graph) }
            let eps = node.float("epsilon", default: 1e-5)
            return Step(node: last, outputs: finalOut) {
                FloatKernels.layerNormRows(x.ptr, rows: rows, cols: cols, gamma: gamma.ptr, beta: beta.map { UnsafePointer($0.ptr) },
                                           epsilon: eps, output: y.ptr)
            }
        case "Add", "Sub", "Mul", "Div" where node.inputs.count == 2:
            let a = try slot(node.inputs[0], node), b = try slot(node.inputs[1], node), y = try slot(finalOut[0], last)
            if dtypes[finalOut[0]].map({ !$0.isFloat }) ?? false { return try fallback(g, graph: graph) }
            return binaryStep(node, a, b, y)
        case "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let n = x.count
            if x.buffer === y.buffer { return Step(node: last, outputs: [finalOut[0]]) {} }  // aliased: nothing to do
            return Step(node: last, outputs: [finalOut[0]]) { y.ptr.update(from: x.ptr, count: n) }
        case "Transpose":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let perm = node.ints("perm") ?? Array((0..<x.shape.count).reversed())
            return transposeStep(node, x, y, perm: perm)
        case "Erf", "Tanh", "Sigmoid", "Exp":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let f: FloatKernels.Unary = node.opType == "Erf" ? .erf : node.opType == "Tanh" ? .tanh : node.opType == "Sigmoid" ? .sigmoid : .exp
            let n = x.count
            return Step(node: last, outputs: finalOut) { y.ptr.update(from: x.ptr, count: n); FloatKernels.apply(f, y.ptr, count: n) }
        case "Relu", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "Sqrt", "Neg", "Abs", "Reciprocal", "Gelu", "Elu", "Softplus", "Mish":
            if node.opType == "Clip", node.inputs.dropFirst().contains(where: { !$0.isEmpty && constants[$0] == nil }) { break }
            if dtypes[finalOut[0]].map({ !$0.isFloat }) ?? false { break }
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let n = x.count
            if node.opType == "Relu" || node.opType == "Clip" {
                let a = node.opType == "Relu" ? FloatActivation.relu : activation(of: node, constants: constants)
                let lo: Float, hi: Float
                switch a { case .relu: lo = 0; hi = .infinity; case .clamp(let l, let h): lo = l; hi = h; default: lo = -.infinity; hi = .infinity }
                return Step(node: last, outputs: finalOut) { for i in 0..<n { y.ptr[i] = min(max(x.ptr[i], lo), hi) } }
            }
            if node.opType == "Gelu" && node.string("approximate") != "tanh" {
                return Step(node: last, outputs: finalOut) { y.ptr.update(from: x.ptr, count: n); FloatKernels.apply(.gelu, y.ptr, count: n) }
            }
            guard let f = ReferenceOps.unaryFunction(node) else { break }
            return Step(node: last, outputs: finalOut) { for i in 0..<n { y.ptr[i] = f(x.ptr[i]) } }
        case "BatchNormalization":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let c = x.shape.count > 1 ? x.shape[1] : 1
            let sc = try slot(node.inputs[1], node), bi = try slot(node.inputs[2], node)
            let mean = try slot(node.inputs[3], node), vr = try slot(node.inputs[4], node)
            let eps = node.float("epsilon", default: 1e-5)
            let inner = elementCount(Array(x.shape.dropFirst(2))), batch = x.shape[0]
            return Step(node: last, outputs: [finalOut[0]]) {
                for ch in 0..<c {
                    let s = sc.ptr[ch] / (vr.ptr[ch] + eps).squareRoot()
                    let t = bi.ptr[ch] - mean.ptr[ch] * s
                    for b in 0..<batch {
                        let base = (b * c + ch) * inner
                        for i in 0..<inner { y.ptr[base + i] = x.ptr[base + i] * s + t }
                    }
                }
            }
        case "GlobalAveragePool", "GlobalMaxPool":
            let x = try slot(node.inputs[0], node), y = try slot(finalOut[0], last)
            let nc = x.shape[0] * x.shape[1], inner = x.count / max(nc, 1)
            let isMax = node.opType == "GlobalMaxPool"
            return Step(node: last, outputs: finalOut) {
                for i in 0..<nc {
                    let p = x.ptr + i * inner
                    if isMax { var m = -Float.infinity; for j in 0..<inner { m = max(m, p[j]) }; y.ptr[i] = m }
                    else { var s: Float = 0; for j in 0..<inner { s += p[j] }; y.ptr[i] = s / Float(inner) }
                }
            }
        case "MaxPool", "AveragePool":
            return try poolStep(node, try slot(node.inputs[0], node), try slot(finalOut[0], last))
        case "ConvTranspose":
            return try convTransposeStep(node, graph: graph, constants: constants)
        case "Resize", "Upsample":
            return try resizeStep(node, graph: graph, constants: constants)
        case "InstanceNormalization", "GroupNormalization":
            return try groupNormStep(node)
        case "Split", "Slice" where node.opType == "Split" || node.inputs.dropFirst().allSatisfy({ $0.isEmpty || constants[$0] != nil }):
            // strided copies of boxes of the input
            let x = try slot(node.inputs[0], node)
            var boxes: [(Slot, ReferenceOps.SliceSpec)] = []
            if node.opType == "Split" {
                let sizes = try ReferenceOps.splitSizes(node, x.shape, node.input(1).flatMap { constants[$0] }, opset: opset, bad)
                guard let axis = normalizeAxis(node.int("axis", default: 0), rank: x.shape.count) else { throw bad("axis out of range") }
                var start = 0
                for (o, sz) in zip(node.outputs, sizes) {
                    var spec = try ReferenceOps.sliceSpec(x.shape, starts: [Int64(start)], ends: [Int64(start + sz)], axes: [Int64(axis)], steps: nil, bad)
                    spec.shape = x.shape
                    if !o.isEmpty, let ys = slots[o] { boxes.append((ys, spec)) }
                    start += sz
                }
            } else {
                guard let st = node.input(1).flatMap({ constants[$0] }), let en = node.input(2).flatMap({ constants[$0] }) else { break }
                let spec = try ReferenceOps.sliceSpec(x.shape, starts: st.ints, ends: en.ints, axes: node.input(3).flatMap { constants[$0]?.ints },
                                                      steps: node.input(4).flatMap { constants[$0]?.ints }, bad)
                boxes.append((try slot(finalOut[0], last), spec))
            }
            let ins = rowMajorStrides(x.shape)
            let plans: [(Slot, [Int], [Int], Int, Int, Int)] = boxes.map { ys, spec in
                let st = zip(ins, spec.steps).map { $0 * $1 }
                let base = zip(ins, spec.starts).reduce(0) { $0 + $1.0 * $1.1 }
                return (ys, Array(spec.sizes.dropLast()), Array(st.dropLast()), spec.sizes.last ?? 1, st.last ?? 1, base)
            }
            return Step(node: last, outputs: node.outputs) {
                for (ys, outer, os, inner, istride, base) in plans {
                    if ys.count == 0 { continue }
                    let src = x.ptr + base
                    forEachBroadcast(outer, [os]) { o, off in
                        let p = src + off[0], q = ys.ptr + o * inner
                        if istride == 1 { q.update(from: p, count: inner) } else { for j in 0..<inner { q[j] = p[j * istride] } }
                    }
                }
            }
        case "Concat":
            let ins = try node.inputs.filter { !$0.isEmpty }.map { try slot($0, node) }
            let y = try slot(finalOut[0], last)
            guard let axis = normalizeAxis(node.int("axis", default: 0), rank: y.shape.count) else { throw bad("axis out of range") }
            let outer = elementCount(Array(y.shape[..<axis]))
            let chunks = ins.map { $0.count / max(outer, 1) }
            return Step(node: last, outputs: finalOut) {
                var p = y.ptr
                for o in 0..<outer { for (s, c) in zip(ins, chunks) { p.update(from: s.ptr + o * c, count: c); p += c } }
            }
        default:
            break
        }
        return try fallback(g, graph: graph)
    }

    /// Runs a node through the reference evaluator (inputs converted to `Tensor`, outputs copied back).
    func fallback(_ g: [Node], graph: StaticGraph) throws -> Step {
        precondition(g.count == 1, "fused groups have fast paths")
        let node = g[0]
        let ins: [Slot?] = try node.inputs.map { $0.isEmpty ? nil : try slot($0, node) }
        let inTypes: [DType] = node.inputs.map { dtypes[$0] ?? graph.constants[$0]?.dtype ?? .float32 }
        let outs: [Slot?] = node.outputs.map { $0.isEmpty ? nil : slots[$0] }
        let opset = graph.opset
        return Step(node: node, outputs: node.outputs) {
            var tensors: [Tensor?] = []
            for (s, t) in zip(ins, inTypes) {
                guard let s else { tensors.append(nil); continue }
                let v = Array(UnsafeBufferPointer(start: s.ptr, count: s.count))
                tensors.append(t.isFloat ? Tensor(shape: s.shape, dtype: t, floats: v) : Tensor(shape: s.shape, dtype: t, ints: v.map(saturatingInt64)))
            }
            let r = try ReferenceOps.evaluate(node, tensors, opset: opset)
            for (o, t) in zip(outs, r) {
                guard let o else { continue }
                guard t.count == o.count else {
                    throw ONNXError.shapeMismatch(node: node.displayName, op: node.opType, reason: "produced \(t.shape), expected \(o.shape)")
                }
                t.floats.withUnsafeBufferPointer { if let b = $0.baseAddress { o.ptr.update(from: b, count: t.count) } }
            }
        }
    }

    func fallbackLayerNorm(_ node: Node, graph: StaticGraph) throws -> Step {
        let x = try slot(node.inputs[0], node), y = try slot(node.outputs[0], node)
        let gamma = try slot(node.inputs[1], node)
        let beta: Slot? = try node.input(2).map { try slot($0, node) }
        let axis = normalizeAxis(node.int("axis", default: -1), rank: x.shape.count)!
        let cols = elementCount(Array(x.shape[axis...])), rows = x.count / max(cols, 1)
        let eps = node.float("epsilon", default: 1e-5)
        let gs = broadcastStrides(gamma.shape, to: Array(x.shape[axis...]))
        let bs = beta.map { broadcastStrides($0.shape, to: Array(x.shape[axis...])) }
        let inner = Array(x.shape[axis...])
        return Step(node: node, outputs: [node.outputs[0]]) {
            FloatKernels.layerNormRows(x.ptr, rows: rows, cols: cols, gamma: nil, beta: nil, epsilon: eps, output: y.ptr)
            for r in 0..<rows {
                let p = y.ptr + r * cols
                forEachBroadcast(inner, bs.map { [gs, $0] } ?? [gs]) { i, off in
                    p[i] = p[i] * gamma.ptr[off[0]] + (beta.map { $0.ptr[off[1]] } ?? 0)
                }
            }
        }
    }
}
