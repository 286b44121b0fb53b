// Forward and reverse passes over one block of the fake-quant graph, for block reconstruction
// (BlockReconstruction.swift). The float engine runs fused plans and keeps no intermediates; a reconstruction step
// needs every value of the block and the gradient of a loss with respect to the block's weights and biases, so this
// is a small interpreter of its own over the block's nodes, on the graph's static shapes.
//
// Fake-quantized tensors pass gradients straight through (STE), except where a uniform quantizer clipped the value,
// which passes none: moving a clipped value does not move its code.
import Foundation
import ONNXGraph
import FloatEngine

final class DifferentiableBlock {
    let nodes: [Node]
    let input: String
    let output: String
    let shapes: [String: [Int]]
    /// Activation quantizers by tensor name; the scales of ``trainableScales`` are updated between steps.
    var quantizers: [String: QuantizerParameters]
    let prefixes: [String: TokenPrefixQuantization]
    let opset: Int
    /// Float constants the block reads (weights, biases, LayerNorm parameters, scalars); trainable ones are
    /// overwritten between steps.
    var constants: [String: [Float]]
    /// Constants whose gradient ``backward(_:)`` returns.
    var trainable: Set<String> = []
    /// Activation quantizers whose scale gradients ``backward(_:)`` returns (LSQ: the code held, uniform
    /// ∂x̂/∂s = (x̂ − x)/s where the value is inside the grid, (code − z) where it was clipped, per scale of a per-head
    /// quantizer; AdaLog the same with u = x + shift and the top level as the clip; class-token rows with their own
    /// quantizer contribute nothing).
    var trainableScales: Set<String> = []
    /// ∂x̂/∂s per element, the scale each element uses (−1: none trained), and the number of scales.
    private var scaleDerivatives: [String: (d: [Float], group: [Int32], count: Int)] = [:]

    private var values: [String: [Float]] = [:]
    private var passMasks: [String: [Float]] = [:]
    private var saved: [String: [Float]] = [:]

    static let supportedOps: Set<String> = ["MatMul", "Add", "Sub", "Mul", "Div", "Reshape", "Squeeze", "Unsqueeze",
                                            "Flatten", "Identity", "Transpose", "Split", "Softmax", "Erf",
                                            "LayerNormalization", "Gelu"]

    /// The nodes that depend on `input` and that `output` depends on, in graph order. Every other value they read
    /// must be a constant.
    init(graph g: StaticGraph, input: String, output: String, quantizers: [String: QuantizerParameters],
         prefixes: [String: TokenPrefixQuantization]) throws {
        var dependsOnInput: Set<String> = [input]
        var forward: [Node] = []
        for n in g.nodes where n.inputs.contains(where: { dependsOnInput.contains($0) }) {
            forward.append(n)
            for o in n.outputs { dependsOnInput.insert(o) }
        }
        var needed: Set<String> = [output]
        var picked: [Node] = []
        for n in forward.reversed() where n.outputs.contains(where: { needed.contains($0) }) {
            picked.append(n)
            for i in n.inputs where !i.isEmpty { needed.insert(i) }
        }
        nodes = picked.reversed()
        guard nodes.contains(where: { $0.outputs.contains(output) }) else {
            throw QuantError.emptyData("block reconstruction: '\(output)' does not depend on '\(input)'")
        }
        var produced: Set<String> = [input]
        var consts: [String: [Float]] = [:]
        var shapes = g.shapes
        for n in nodes {
            guard Self.supportedOps.contains(n.opType) else {
                throw QuantError.badPlanOption(n.displayName, reason: "block reconstruction has no gradient for op \(n.opType)")
            }
            for (k, i) in n.inputs.enumerated() where !i.isEmpty && !produced.contains(i) {
                guard let t = g.constants[i] else {
                    throw QuantError.emptyData("block reconstruction: node '\(n.displayName)' reads '\(i)', which is neither a constant nor computed in the block")
                }
                // Shape operands (Reshape, Split sizes, axes) are read from the graph's static shapes instead.
                if t.dtype.isFloat && !(n.opType == "Reshape" && k == 1) { consts[i] = t.floats; shapes[i] = t.shape }
            }
            for o in n.outputs { produced.insert(o) }
        }
        self.input = input; self.output = output
        self.shapes = shapes; opset = g.opset; constants = consts
        self.quantizers = quantizers; self.prefixes = prefixes
    }

    private func shape(_ n: String) -> [Int] { shapes[n] ?? [] }
    private func value(_ n: String) -> [Float] { values[n] ?? constants[n] ?? [] }

    /// Runs the block on `x` (the input tensor, at its static shape) and returns the output.
    func forward(_ x: [Float]) -> [Float] {
        values = [input: x]; passMasks = [:]; saved = [:]; scaleDerivatives = [:]
        if quantizers[input] != nil { quantize(input) }
        for n in nodes {
            let outs = run(n)
            for (o, v) in zip(n.outputs, outs) {
                values[o] = v
                if quantizers[o] != nil { quantize(o) }
            }
        }
        return values[output] ?? []
    }

    private func quantize(_ name: String) {
        guard let q = quantizers[name], var v = values[name] else { return }
        let x = v
        let sh = shape(name)
        v.withUnsafeMutableBufferPointer { QuantSimulator.fakeQuantize(q, prefix: prefixes[name], shape: sh, $0) }
        // class-token rows on their own (fixed) grid
        var prefixRow: (Int) -> Bool = { _ in false }
        if let p = prefixes[name], sh.count == 3, sh[1] == p.tokens, let c = sh.last, c > 0 {
            prefixRow = { p.isPrefix(row: $0 / c) }
        }
        let train = trainableScales.contains(name)
        switch q {
        case .uniform(let u):
            let layout = try? ParameterLayout(shape: sh, granularity: u.granularity)
            let prefixScale = prefixes[name]?.quantizer.scales.first ?? 0
            var mask = [Float](repeating: 1, count: x.count)
            var d = train ? [Float](repeating: 0, count: x.count) : []
            var group = train ? [Int32](repeating: -1, count: x.count) : []
            for i in 0..<x.count {
                let pre = prefixRow(i)
                let p = layout?.index(i) ?? 0
                let s = pre ? prefixScale : u.scales[min(p, u.scales.count - 1)]
                if abs(x[i] - v[i]) > 0.5 * s * 1.0001 + 1e-12 { mask[i] = 0 }
                if train && !pre && s > 0 { d[i] = (v[i] - mask[i] * x[i]) / s; group[i] = Int32(p) }
            }
            passMasks[name] = mask
            if train { scaleDerivatives[name] = (d, group, u.scales.count) }
        case .adaLog(let a) where train && a.scale > 0:
            // û = s·level[k] with the code held; the identity STE treats û as u = x + shift below the top level
            let removed = a.biasReparameterized ? 0 : a.shift
            var d = [Float](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let uHat = v[i] + removed, u = x[i] + a.shift
                d[i] = u >= a.scale ? uHat / a.scale : (uHat - u) / a.scale
            }
            scaleDerivatives[name] = (d, [Int32](repeating: 0, count: x.count), 1)
        default:
            break
        }
        values[name] = v
    }

    /// Gradients of the loss with respect to the block input and the trainable constants, given ∂loss/∂output.
    func backward(_ dOutput: [Float]) -> (input: [Float], constants: [String: [Float]], scales: [String: [Float]]) {
        var grads: [String: [Float]] = [output: dOutput]
        var scaleGrads: [String: [Float]] = [:]
        func scaleGradient(_ name: String, _ g: [Float]) {
            guard let (d, group, count) = scaleDerivatives[name] else { return }
            var s = [Double](repeating: 0, count: count)
            for i in 0..<min(d.count, g.count) where group[i] >= 0 { s[Int(group[i])] += Double(d[i] * g[i]) }
            scaleGrads[name] = s.map { Float($0) }
        }
        func add(_ name: String, _ g: [Float]) {
            guard wants(name) else { return }
            if var cur = grads[name] {
                for i in 0..<cur.count { cur[i] += g[i] }
                grads[name] = cur
            } else {
                grads[name] = g
            }
        }
        for n in nodes.reversed() {
            var dOuts: [[Float]?] = []
            for o in n.outputs {
                guard var g = grads.removeValue(forKey: o) else { dOuts.append(nil); continue }
                scaleGradient(o, g)
                if let m = passMasks[o] { for i in 0..<g.count { g[i] *= m[i] } }
                dOuts.append(g)
            }
            guard dOuts.contains(where: { $0 != nil }) else { continue }
            for (i, g) in vjp(n, dOuts) {
                add(i, g)
            }
        }
        var dx = grads[input] ?? []
        scaleGradient(input, dx)
        if let m = passMasks[input] { for i in 0..<dx.count { dx[i] *= m[i] } }
        var dc: [String: [Float]] = [:]
        for t in trainable { if let g = grads[t] { dc[t] = g } }
        return (dx, dc, scaleGrads)
    }

    /// Whether the gradient with respect to input `name` is wanted.
    private func wants(_ name: String) -> Bool { values[name] != nil || trainable.contains(name) }

    // MARK: forward ops

    private func run(_ n: Node) -> [[Float]] {
        let x = value(n.inputs[0])
        switch n.opType {
        case "MatMul":
            return [matmul(n)]
        case "Add", "Sub", "Mul", "Div":
            let a = value(n.inputs[0]), b = value(n.inputs[1])
            let so = shape(n.outputs[0])
            let count = so.reduce(1, *)
            let ea = Broadcast(shape(n.inputs[0]), to: so).expand(a, count: count)
            let eb = Broadcast(shape(n.inputs[1]), to: so).expand(b, count: count)
            var y = [Float](repeating: 0, count: count)
            switch n.opType {
            case "Add": for i in 0..<count { y[i] = ea[i] + eb[i] }
            case "Sub": for i in 0..<count { y[i] = ea[i] - eb[i] }
            case "Mul": for i in 0..<count { y[i] = ea[i] * eb[i] }
            default: for i in 0..<count { y[i] = ea[i] / eb[i] }
            }
            return [y]
        case "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity":
            return [x]
        case "Transpose":
            return [Self.transpose(x, shape: shape(n.inputs[0]), perm: perm(n))]
        case "Split":
            let s = shape(n.inputs[0]), axis = normalized(n.int("axis", default: 0), rank: s.count)
            let outer = s[..<axis].reduce(1, *), inner = s[(axis + 1)...].reduce(1, *), total = s[axis]
            var start = 0
            return n.outputs.map { o in
                let size = shape(o)[axis]
                var y = [Float](repeating: 0, count: outer * size * inner)
                for a in 0..<outer {
                    for j in 0..<(size * inner) { y[a * size * inner + j] = x[(a * total + start) * inner + j] }
                }
                start += size
                return y
            }
        case "Softmax":
            let s = shape(n.inputs[0]), cols = s.last ?? 1
            var y = x
            y.withUnsafeMutableBufferPointer { FloatKernels.softmaxRows($0.baseAddress!, rows: x.count / max(cols, 1), cols: cols) }
            saved[n.name] = y
            return [y]
        case "Erf":
            return [x.map { erff($0) }]
        case "Gelu":
            return [x.map { 0.5 * $0 * (1 + erff($0 * 0.70710678)) }]
        case "LayerNormalization":
            let cols = shape(n.inputs[0]).last ?? 1, rows = x.count / max(cols, 1)
            let eps = n.float("epsilon", default: 1e-5)
            let gamma = n.inputs.count > 1 ? value(n.inputs[1]) : [Float](repeating: 1, count: cols)
            let beta = n.input(2).map { value($0) } ?? [Float](repeating: 0, count: cols)
            var y = x
            var stats = [Float](repeating: 0, count: 2 * rows)
            for r in 0..<rows {
                var mean: Double = 0
                for c in 0..<cols { mean += Double(x[r * cols + c]) }
                mean /= Double(cols)
                var v: Double = 0
                for c in 0..<cols { let d = Double(x[r * cols + c]) - mean; v += d * d }
                let rstd = Float(1 / (v / Double(cols) + Double(eps)).squareRoot())
                stats[2 * r] = Float(mean); stats[2 * r + 1] = rstd
                for c in 0..<cols { y[r * cols + c] = (x[r * cols + c] - Float(mean)) * rstd * gamma[c] + beta[c] }
            }
            saved[n.name] = stats
            return [y]
        default:
            return [x]
        }
    }

    private func perm(_ n: Node) -> [Int] {
        n.ints("perm") ?? Array((0..<shape(n.inputs[0]).count).reversed())
    }

    private func normalized(_ axis: Int, rank: Int) -> Int { axis < 0 ? axis + rank : axis }

    /// MatMul on the static shapes: a 2-D right operand (a linear layer), or equal leading batch dimensions.
    private func matmulGeometry(_ n: Node) -> (batch: Int, m: Int, k: Int, n: Int, bBatched: Bool) {
        let sa = shape(n.inputs[0]), sb = shape(n.inputs[1])
        let k = sa.last ?? 1, nn = sb.last ?? 1
        if sb.count <= 2 { return (1, sa.reduce(1, *) / max(k, 1), k, nn, false) }
        let batch = sb.dropLast(2).reduce(1, *)
        return (batch, sa[sa.count - 2], k, nn, true)
    }

    private func matmul(_ n: Node) -> [Float] {
        let a = value(n.inputs[0]), b = value(n.inputs[1])
        let (batch, m, k, nn, _) = matmulGeometry(n)
        var c = [Float](repeating: 0, count: batch * m * nn)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            FloatKernels.batchedMatmul(batch: batch, m: m, n: nn, k: k, a: ap.baseAddress!, lda: k, strideA: m * k,
                                       b: bp.baseAddress!, ldb: nn, strideB: k * nn, bTransposed: false,
                                       c: cp.baseAddress!, ldc: nn, strideC: m * nn)
        } } }
        return c
    }

    // MARK: reverse ops

    private func vjp(_ n: Node, _ dOuts: [[Float]?]) -> [(String, [Float])] {
        let inName = n.inputs[0]
        switch n.opType {
        case "MatMul":
            guard let dc = dOuts[0] else { return [] }
            let a = value(n.inputs[0]), b = value(n.inputs[1])
            let (batch, m, k, nn, _) = matmulGeometry(n)
            var out: [(String, [Float])] = []
            if wants(n.inputs[0]) {   // dA = dC·Bᵀ
                var da = [Float](repeating: 0, count: batch * m * k)
                dc.withUnsafeBufferPointer { dp in b.withUnsafeBufferPointer { bp in da.withUnsafeMutableBufferPointer { ap in
                    FloatKernels.batchedMatmul(batch: batch, m: m, n: k, k: nn, a: dp.baseAddress!, lda: nn, strideA: m * nn,
                                               b: bp.baseAddress!, ldb: nn, strideB: k * nn, bTransposed: true,
                                               c: ap.baseAddress!, ldc: k, strideC: m * k)
                } } }
                out.append((n.inputs[0], da))
            }
            if wants(n.inputs[1]) {   // dB = Aᵀ·dC
                var at = [Float](repeating: 0, count: batch * m * k)
                for bi in 0..<batch {
                    for r in 0..<m { for c in 0..<k { at[bi * m * k + c * m + r] = a[bi * m * k + r * k + c] } }
                }
                var db = [Float](repeating: 0, count: batch * k * nn)
                at.withUnsafeBufferPointer { tp in dc.withUnsafeBufferPointer { dp in db.withUnsafeMutableBufferPointer { bp in
                    FloatKernels.batchedMatmul(batch: batch, m: k, n: nn, k: m, a: tp.baseAddress!, lda: m, strideA: m * k,
                                               b: dp.baseAddress!, ldb: nn, strideB: m * nn, bTransposed: false,
                                               c: bp.baseAddress!, ldc: nn, strideC: k * nn)
                } } }
                out.append((n.inputs[1], db))
            }
            return out
        case "Add", "Sub", "Mul", "Div":
            guard let dy = dOuts[0] else { return [] }
            let an = n.inputs[0], bn = n.inputs[1]
            let a = value(an), b = value(bn)
            let so = shape(n.outputs[0])
            let ia = Broadcast(shape(an), to: so), ib = Broadcast(shape(bn), to: so)
            let count = dy.count
            var out: [(String, [Float])] = []
            if wants(an) {
                var g: [Float]
                switch n.opType {
                case "Add", "Sub": g = dy
                case "Mul":
                    let eb = ib.expand(b, count: count)
                    g = dy
                    for i in 0..<count { g[i] *= eb[i] }
                default:
                    let eb = ib.expand(b, count: count)
                    g = dy
                    for i in 0..<count { g[i] /= eb[i] }
                }
                out.append((an, ia.reduce(g, to: a.count)))
            }
            if wants(bn) {
                var g: [Float]
                switch n.opType {
                case "Add": g = dy
                case "Sub": g = dy.map { -$0 }
                case "Mul":
                    let ea = ia.expand(a, count: count)
                    g = dy
                    for i in 0..<count { g[i] *= ea[i] }
                default:
                    let ea = ia.expand(a, count: count), eb = ib.expand(b, count: count)
                    g = dy
                    for i in 0..<count { g[i] = -g[i] * ea[i] / (eb[i] * eb[i]) }
                }
                out.append((bn, ib.reduce(g, to: b.count)))
            }
            return out
        case "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity":
            guard let dy = dOuts[0] else { return [] }
            return [(inName, dy)]
        case "Transpose":
            guard let dy = dOuts[0] else { return [] }
            let p = perm(n)
            var inverse = [Int](repeating: 0, count: p.count)
            for (i, v) in p.enumerated() { inverse[v] = i }
            return [(inName, Self.transpose(dy, shape: shape(n.outputs[0]), perm: inverse))]
        case "Split":
            let s = shape(inName), axis = normalized(n.int("axis", default: 0), rank: s.count)
            let outer = s[..<axis].reduce(1, *), inner = s[(axis + 1)...].reduce(1, *), total = s[axis]
            var dx = [Float](repeating: 0, count: s.reduce(1, *))
            var start = 0
            for (o, g) in zip(n.outputs, dOuts) {
                let size = shape(o)[axis]
                if let g {
                    for a in 0..<outer {
                        for j in 0..<(size * inner) { dx[(a * total + start) * inner + j] = g[a * size * inner + j] }
                    }
                }
                start += size
            }
            return [(inName, dx)]
        case "Softmax":
            guard let dy = dOuts[0], let y = saved[n.name] else { return [] }
            let cols = shape(inName).last ?? 1
            var dx = [Float](repeating: 0, count: dy.count)
            for r in 0..<(dy.count / max(cols, 1)) {
                var s: Float = 0
                for c in 0..<cols { s += dy[r * cols + c] * y[r * cols + c] }
                for c in 0..<cols { dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - s) }
            }
            return [(inName, dx)]
        case "Erf":
            guard let dy = dOuts[0] else { return [] }
            let x = value(inName)
            return [(inName, (0..<dy.count).map { dy[$0] * 1.1283792 * expf(-x[$0] * x[$0]) })]
        case "Gelu":
            guard let dy = dOuts[0] else { return [] }
            let x = value(inName)
            return [(inName, (0..<dy.count).map { i in
                let v = x[i]
                return dy[i] * (0.5 * (1 + erff(v * 0.70710678)) + v * 0.39894228 * expf(-0.5 * v * v))
            })]
        case "LayerNormalization":
            guard let dy = dOuts[0], let stats = saved[n.name] else { return [] }
            let x = value(inName)
            let cols = shape(inName).last ?? 1, rows = x.count / max(cols, 1)
            let gamma = n.inputs.count > 1 ? value(n.inputs[1]) : [Float](repeating: 1, count: cols)
            var dx = [Float](repeating: 0, count: x.count)
            var xh = [Float](repeating: 0, count: cols), g = [Float](repeating: 0, count: cols)
            for r in 0..<rows {
                let mean = stats[2 * r], rstd = stats[2 * r + 1]
                var sg: Float = 0, sgx: Float = 0
                for c in 0..<cols {
                    xh[c] = (x[r * cols + c] - mean) * rstd
                    g[c] = dy[r * cols + c] * gamma[c]
                    sg += g[c]; sgx += g[c] * xh[c]
                }
                let inv = 1 / Float(cols)
                for c in 0..<cols { dx[r * cols + c] = rstd * (g[c] - sg * inv - xh[c] * sgx * inv) }
            }
            return [(inName, dx)]
        default:
            return []
        }
    }

    /// Row-major transpose of `x` (shape `s`) by `perm`: output axis i is input axis perm[i].
    static func transpose(_ x: [Float], shape s: [Int], perm: [Int]) -> [Float] {
        let rank = s.count
        guard rank > 1 else { return x }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * s[i + 1] }
        let os = perm.map { s[$0] }, st = perm.map { inStrides[$0] }
        var y = [Float](repeating: 0, count: x.count)
        var idx = [Int](repeating: 0, count: rank)
        let last = os[rank - 1], lastStride = st[rank - 1]
        var o = 0
        let outer = x.count / max(last, 1)
        for _ in 0..<outer {
            var base = 0
            for d in 0..<(rank - 1) { base += idx[d] * st[d] }
            for j in 0..<last { y[o + j] = x[base + j * lastStride] }
            o += last
            var d = rank - 2
            while d >= 0 {
                idx[d] += 1
                if idx[d] < os[d] { break }
                idx[d] = 0; d -= 1
            }
        }
        return y
    }
}

/// Source index of each output element when a tensor of shape `s` is broadcast to `out` (numpy rules).
struct Broadcast {
    private enum Mode { case same, scalar, suffix(Int), general([Int]) }
    private let mode: Mode

    init(_ s: [Int], to out: [Int]) {
        let count = s.reduce(1, *), outCount = out.reduce(1, *)
        if count == outCount { mode = .same; return }
        if count == 1 { mode = .scalar; return }
        var trimmed = s
        while trimmed.first == 1 { trimmed.removeFirst() }
        if out.count >= trimmed.count && Array(out.suffix(trimmed.count)) == trimmed { mode = .suffix(count); return }
        // general: walk the output index
        let rank = out.count
        let padded = [Int](repeating: 1, count: rank - s.count) + s
        var strides = [Int](repeating: 0, count: rank)
        var acc = 1
        for i in stride(from: rank - 1, through: 0, by: -1) {
            strides[i] = padded[i] == 1 ? 0 : acc
            acc *= padded[i]
        }
        var map = [Int](repeating: 0, count: outCount)
        var idx = [Int](repeating: 0, count: rank)
        for o in 0..<outCount {
            var src = 0
            for d in 0..<rank { src += idx[d] * strides[d] }
            map[o] = src
            var d = rank - 1
            while d >= 0 {
                idx[d] += 1
                if idx[d] < out[d] { break }
                idx[d] = 0; d -= 1
            }
        }
        mode = .general(map)
    }

    /// `v` (the source) at every output position.
    func expand(_ v: [Float], count: Int) -> [Float] {
        switch mode {
        case .same: return v
        case .scalar: return [Float](repeating: v[0], count: count)
        case .suffix(let n):
            var y = [Float](); y.reserveCapacity(count)
            for _ in 0..<(count / n) { y += v }
            return y
        case .general(let m): return m.map { v[$0] }
        }
    }

    /// The sum of `g` (one value per output position) into each source position.
    func reduce(_ g: [Float], to count: Int) -> [Float] {
        switch mode {
        case .same: return g
        case .scalar: return [g.reduce(0, +)]
        case .suffix(let n):
            var y = [Float](repeating: 0, count: n)
            for r in 0..<(g.count / n) { for j in 0..<n { y[j] += g[r * n + j] } }
            return y
        case .general(let m):
            var y = [Float](repeating: 0, count: count)
            for (i, src) in m.enumerated() { y[src] += g[i] }
            return y
        }
    }
}
