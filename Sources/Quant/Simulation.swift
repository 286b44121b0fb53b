// Fake-quant simulation of a QuantizedModel on the float engine: folded and quantized-dequantized
// constants substituted, activations fake-quantized through the session's transform hook on exactly
// the tensors the plan quantizes (a copy is made when a quantized tensor has other readers).
import Foundation
import ONNXGraph
import FloatEngine

/// A float session that runs a ``QuantizedModel`` in fake-quant simulation.
public final class QuantSimulator {
    public let session: FloatSession
    /// Tensor name in the simulated graph → its activation quantizer.
    public let activationQuantizers: [String: QuantizerParameters]
    /// Tensor name → the quantizer of its leading (class) tokens, where it has one.
    public let prefixQuantizers: [String: TokenPrefixQuantization]
    /// Outputs of the quantized layers (linear, conv, attention), for per-layer SQNR.
    public let layerOutputs: [(layer: String, tensor: String)]

    /// - Parameters: graph: the source graph, specialised to the batch and prepared as during quantization
    ///   (BN folded when `model.foldedBatchNorms`).
    public init(model: QuantizedModel, graph source: StaticGraph, options: SessionOptions = .init()) throws {
        let (g, aq, pq, replaced, _) = try Self.fakeQuantGraph(model: model, graph: source)
        session = try FloatSession(staticGraph: g, options: options)
        if !replaced.isEmpty { try session.substituteConstants(replaced) }
        activationQuantizers = aq
        prefixQuantizers = pq
        let p = try ModelPatterns(graph: source)
        let quantizedLayers = Set(model.weights.map(\.layer) + model.activations.map(\.consumer))
        var outs: [(String, String)] = []
        for l in p.linears where quantizedLayers.contains(l.node) { outs.append((l.node, l.output)) }
        for c in p.convs where quantizedLayers.contains(c.node) { outs.append((c.node, c.output)) }
        for a in p.attentions where quantizedLayers.contains(a.avMatMul) { outs.append((a.avMatMul, a.output)) }
        var order: [String: Int] = [:]
        for (i, n) in source.nodes.enumerated() { for o in n.outputs { order[o] = i } }
        layerOutputs = outs.sorted { (order[$0.1] ?? 0) < (order[$1.1] ?? 0) }
        let quantizers = aq, prefixes = pq
        session.transform = { name, shape, values in
            guard let q = quantizers[name] else { return }
            Self.fakeQuantize(q, prefix: prefixes[name], shape: shape, values)
        }
    }

    /// The graph the simulation runs: `source` with a private copy (`tensor::qN`) of each quantized tensor that has
    /// readers other than its consumer, the activation quantizers by (possibly copied) tensor name, and the
    /// replacement constants (folds and quantized weights; not yet substituted into the graph), and which entry of
    /// `model.activations` each quantized tensor name comes from.
    public static func fakeQuantGraph(model: QuantizedModel, graph source: StaticGraph) throws
        -> (graph: StaticGraph, quantizers: [String: QuantizerParameters], prefixes: [String: TokenPrefixQuantization],
            constants: [String: Tensor], sources: [String: Int]) {
        var g = source
        let replaced = try Self.quantizedConstants(model: model, graph: source)
        // Quantized activations: read through a private copy when the tensor has other readers.
        var aq: [String: QuantizerParameters] = [:]
        var pq: [String: TokenPrefixQuantization] = [:]
        var sources: [String: Int] = [:]
        var copyIndex = 0
        for (ai, a) in model.activations.enumerated() {
            let readers = g.nodes.filter { $0.inputs.contains(a.tensor) }
            let others = readers.filter { $0.name != a.consumer }
            let isOutput = g.outputs.contains { $0.name == a.tensor }
            if others.isEmpty && !isOutput && aq[a.tensor] == nil {
                aq[a.tensor] = a.quantizer
                pq[a.tensor] = a.prefix
                sources[a.tensor] = ai
                continue
            }
            guard let ci = g.nodes.firstIndex(where: { $0.name == a.consumer }) else {
                throw QuantError.emptyData("quantized tensor '\(a.tensor)': consumer node '\(a.consumer)' is not in the graph")
            }
            copyIndex += 1
            let copy = a.tensor + "::q\(copyIndex)", one = "::one::q\(copyIndex)"
            g.constants[one] = Tensor(scalar: 1)
            g.shapes[one] = []
            g.dtypes[one] = .float32
            g.shapes[copy] = g.shapes[a.tensor]
            g.dtypes[copy] = .float32
            var consumer = g.nodes[ci]
            consumer.inputs = consumer.inputs.map { $0 == a.tensor ? copy : $0 }
            g.nodes[ci] = consumer
            g.nodes.insert(Node(name: "fakequant_copy_\(copyIndex)", opType: "Mul", inputs: [a.tensor, one], outputs: [copy]), at: ci)
            aq[copy] = a.quantizer
            pq[copy] = a.prefix
            sources[copy] = ai
        }
        return (g, aq, pq, replaced, sources)
    }

    /// Fake-quantizes `values` in place; the prefix rows (when given and the shape is [images, tokens, C]) with
    /// their own quantizer.
    public static func fakeQuantize(_ q: QuantizerParameters, prefix: TokenPrefixQuantization? = nil, shape: [Int],
                                    _ values: UnsafeMutableBufferPointer<Float>) {
        let x = Array(values)
        let y: [Float]
        switch q {
        case .uniform(let u): y = (try? u.fakeQuantize(x, shape: shape)) ?? (try? u.fakeQuantize(x, shape: [x.count])) ?? x
        case .adaLog(let a): y = a.fakeQuantize(x)
        case .log2(let l): y = l.fakeQuantize(x)
        case .logSqrt2(let l): y = l.fakeQuantize(x)
        }
        for i in 0..<min(y.count, values.count) { values[i] = y[i] }
        // The class-token rows again, from the input, on their own grid (uniform grids act element by element, so
        // the other rows are what the tensor's own quantizer gave them).
        if let p = prefix, shape.count == 3, shape[1] == p.tokens, case .uniform = q {
            let c = shape[2]
            for r in 0..<(values.count / max(c, 1)) where p.isPrefix(row: r) {
                let row = Array(x[(r * c)..<((r + 1) * c)])
                let fq = (try? p.quantizer.fakeQuantize(row, shape: [c])) ?? row
                for j in 0..<c { values[r * c + j] = fq[j] }
            }
        }
    }

    /// The replacement constants: LayerNorm folds, then quantized-dequantized weights, then GELU bias folds.
    public static func quantizedConstants(model: QuantizedModel, graph: StaticGraph) throws -> [String: Tensor] {
        var c: [String: [Float]] = [:]
        func get(_ n: String) throws -> [Float] {
            if let v = c[n] { return v }
            guard let t = graph.constants[n] else {
                throw QuantError.emptyData("the quantized model refers to constant '\(n)', which is not in the source model (wrong model file?)")
            }
            return t.floats
        }
        func shape(_ n: String) -> [Int] { graph.constants[n]?.shape ?? [] }
        for f in model.layerNormFolds {
            let k = f.r.count
            let wShape = shape(f.weight)
            guard wShape.count == 2, f.b.count == k else { throw QuantError.shapeMismatch("LayerNorm fold of '\(f.linear)'") }
            let o = wShape[0] * wShape[1] / k
            var gamma = try get(f.gamma), beta = try get(f.beta)
            guard gamma.count == k, beta.count == k else { throw QuantError.shapeMismatch("LayerNorm fold of '\(f.linear)': γ/β sizes") }
            for i in 0..<k { gamma[i] = gamma[i] / f.r[i]; beta[i] = beta[i] / f.r[i] - f.b[i] }
            var w = SearchContext.rowsFirst(try get(f.weight), k: k, o: o, transposed: !f.weightStoredInOut)
            for row in 0..<o { for i in 0..<k { w[row * k + i] *= f.r[i] } }
            var bias = try get(f.bias)
            for row in 0..<o {
                var acc: Float = 0
                for i in 0..<k { acc += w[row * k + i] * f.b[i] }
                bias[row] += acc
            }
            c[f.gamma] = gamma; c[f.beta] = beta; c[f.bias] = bias
            c[f.weight] = SearchContext.fromRowsFirst(w, k: k, o: o, transposed: !f.weightStoredInOut)
        }
        var quantizedRows: [String: (w: [Float], o: Int, k: Int)] = [:]
        for wq in model.weights {
            let s = shape(wq.tensor)
            guard let o = wq.transposed ? s.last : s.first, o > 0 else { throw QuantError.shapeMismatch("weight '\(wq.tensor)' shape \(s)") }
            let all = try get(wq.tensor)
            let k = all.count / o
            let rows = SearchContext.rowsFirst(all, k: k, o: o, transposed: !wq.transposed)
            var fq: [Float]
            if let codes = wq.codes {
                guard codes.count == o * k, wq.quantizer.scales.count == o else {
                    throw QuantError.shapeMismatch("weight '\(wq.tensor)': \(codes.count) codes for \(o)×\(k)")
                }
                fq = [Float](repeating: 0, count: o * k)
                let s = wq.quantizer.scales, z = wq.quantizer.zeroPoints
                codes.withUnsafeBytes { cp in
                    for r in 0..<o { for j in 0..<k { fq[r * k + j] = (Float(cp[r * k + j]) - z[r]) * s[r] } }
                }
            } else {
                fq = try wq.quantizer.fakeQuantize(rows, shape: [o, k])
            }
            quantizedRows[wq.tensor] = (fq, o, k)
            c[wq.tensor] = SearchContext.fromRowsFirst(fq, k: k, o: o, transposed: !wq.transposed)
        }
        for f in model.biasFolds {
            // The fold uses the weight the layer runs with: the quantized one, or the float one when the
            // weight is kept in float (the shift must still be removed from the input's Shift-AdaLog codes).
            let q: (w: [Float], o: Int, k: Int)
            if let quantized = quantizedRows[f.weight] {
                q = quantized
            } else {
                let s = shape(f.weight), all = try get(f.weight)
                guard s.count == 2, let o = f.weightStoredInOut ? s.last : s.first, o > 0 else {
                    throw QuantError.shapeMismatch("bias fold of '\(f.linear)': weight '\(f.weight)' shape \(s)")
                }
                q = (SearchContext.rowsFirst(all, k: all.count / o, o: o, transposed: !f.weightStoredInOut), o, all.count / o)
            }
            c[f.bias] = try AdaLogQuantizer.foldShift(f.shift, intoBias: try get(f.bias), quantizedWeight: q.w,
                                                      outFeatures: q.o, inFeatures: q.k)
        }
        for bc in model.biasCorrections ?? [] {
            var b = try get(bc.bias)
            guard b.count == bc.delta.count else {
                throw QuantError.shapeMismatch("bias correction of '\(bc.layer)': \(bc.delta.count) values for a bias of \(b.count)")
            }
            for i in 0..<b.count { b[i] += bc.delta[i] }
            c[bc.bias] = b
        }
        var out: [String: Tensor] = [:]
        for (k, v) in c { out[k] = Tensor(shape: shape(k), floats: v) }
        return out
    }
}

/// Accumulates per-layer output SQNR (dB) of a simulated model against float over several batches.
public struct LayerSQNRAccumulator {
    public private(set) var signal: [String: Double] = [:]
    public private(set) var noise: [String: Double] = [:]
    public init() {}

    public mutating func add(layer: String, reference: UnsafeBufferPointer<Float>, test: UnsafeBufferPointer<Float>) {
        var s = 0.0, n = 0.0
        for i in 0..<min(reference.count, test.count) {
            let r = Double(reference[i]), d = r - Double(test[i])
            s += r * r; n += d * d
        }
        signal[layer, default: 0] += s; noise[layer, default: 0] += n
    }

    /// SQNR in dB per layer (+∞ when there is no noise).
    public var decibels: [String: Double] {
        var out: [String: Double] = [:]
        for (k, s) in signal {
            let n = noise[k] ?? 0
            out[k] = n == 0 ? .infinity : 10 * log10(s / n)
        }
        return out
    }
}
