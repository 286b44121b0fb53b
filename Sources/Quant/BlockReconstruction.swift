// `--block-reconstruction N` (adalog.md §1.9, the reference's optional "Retrain" step, in a reduced form): after the
// search (and any weight rounding), each transformer block is tuned in graph order so that its fake-quant output
// matches the float model's block output.
//
// A block runs from the residual stream into its first residual add to the output of its second. Its input is
// taken from the quantized model with the blocks before it already reconstructed (BRECQ feeds the float model's
// input; feeding the quantized one lets each block correct the drift it receives, as gptq-seq does), its target
// from the float model. Trained, with Adam, for N steps of one calibration batch each:
// - the rounding of every quantized weight of the block, AdaRound style: code = ⌊w/s⌋ + z + h(V), h the rectified
//   sigmoid, with the rounding regularizer λ·Σ(1 − |2h − 1|^β) (λ = 0.01, β annealed 20 → 2 after a 20 % warm-up),
//   hardened to h ≥ ½ at the end. V starts at the current rounding (GPTQ's codes where they are one of the two
//   neighbours of w/s, otherwise nearest);
// - the block's linear biases (not in the reference; they absorb the mean shift of the quantized path);
// - activation scales, LSQ style, as log s (ReconstructionScales: by default the per-tensor uniform grids; `all` adds
//   the per-head Q/K/V grids and the post-GELU AdaLog scale, as the reference does). Zero-points, bit widths, AdaLog
//   bases and the softmax's scale of 1 stay as searched.
// The loss is the reference's: squared error summed over tokens, averaged over the rest, over 10 (or weighted per
// element, ReconstructionLoss.layerNorm). A block whose tuned hard-rounded loss on all calibration images is not
// lower than where it started keeps what it had.
import Foundation
import ONNXGraph
import FloatEngine
import Calibration
import Imaging

/// What a reconstructed block's output is compared with the float model's by.
public enum ReconstructionLoss: String, Codable, Sendable, CaseIterable {
    /// Squared error (the reference's).
    case mse
    /// Squared error weighted per element by (γ_c/σ_t)²: as the LayerNorms after the block see it.
    case layerNorm = "layernorm"
}

/// Which activation scales a reconstruction tunes.
public enum ReconstructionScales: String, Codable, Sendable, CaseIterable {
    /// None: weight rounding and biases only.
    case none
    /// The per-tensor uniform quantizers (post-LayerNorm and projection inputs).
    case perTensor = "per-tensor"
    /// Those, the per-head Q/K/V quantizers and the post-GELU AdaLog scale (the reference trains all of them).
    case all
}

/// What a block's output is tuned towards.
public enum ReconstructionTarget: String, Codable, Sendable, CaseIterable {
    /// The float model's block output (the reference): the block also learns to undo the error it receives.
    case float
    /// The float block applied to the block's input in the quantized model: only the block's own error is fitted, as
    /// gptq-seq fits each layer to its float weight on the drifted input.
    case local
}

/// What `--block-reconstruction` does.
public struct ReconstructionOptions: Sendable, Equatable {
    public var iterations: Int
    public var loss: ReconstructionLoss = .mse
    public var scales: ReconstructionScales = .perTensor
    public var target: ReconstructionTarget = .float
    public init(iterations: Int, loss: ReconstructionLoss = .mse, scales: ReconstructionScales = .perTensor,
                target: ReconstructionTarget = .float) {
        self.iterations = iterations; self.loss = loss; self.scales = scales; self.target = target
    }

    /// Writes these options into `s`, the defaults as nil (as the JSON has always recorded them).
    public func record(in s: inout FPCSSettings) {
        s.blockReconstruction = iterations
        s.blockReconstructionLoss = loss == .mse ? nil : loss
        s.blockReconstructionScales = scales == .perTensor ? nil : scales
        s.blockReconstructionTarget = target == .float ? nil : target
    }

    /// As recorded in the settings (nil when the settings ask for none).
    public init?(_ s: FPCSSettings) {
        guard let n = s.blockReconstruction, n > 0 else { return nil }
        self.init(iterations: n, loss: s.blockReconstructionLoss ?? .mse, scales: s.blockReconstructionScales ?? .perTensor,
                  target: s.blockReconstructionTarget ?? .float)
    }
}

enum BlockReconstruction {
    struct Block {
        var name: String
        var input: String
        var output: String
    }

    /// Consecutive residual-add pairs (a, b) where b's skip input is a's output: a block from a's skip input to
    /// b's output (a pre-norm transformer block: attention branch, then MLP branch).
    static func blocks(_ p: ModelPatterns, graph: StaticGraph) -> [Block] {
        let byName = Dictionary(graph.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var producer: [String: Node] = [:]
        for n in graph.nodes { for o in n.outputs { producer[o] = n } }
        // x is an ancestor of y
        func reaches(_ x: String, _ y: String) -> Bool {
            var stack = [y], seen: Set<String> = []
            while let t = stack.popLast() {
                if t == x { return true }
                guard seen.insert(t).inserted, let n = producer[t] else { continue }
                stack += n.inputs.filter { !$0.isEmpty && graph.constants[$0] == nil }
            }
            return false
        }
        func skip(_ add: Node) -> String? {
            let a = add.inputs[0], b = add.inputs[1]
            if reaches(a, b) { return a }
            if reaches(b, a) { return b }
            return nil
        }
        let adds = p.residualAdds.compactMap { byName[$0] }
        var out: [Block] = []
        var i = 0
        while i + 1 < adds.count {
            let a = adds[i], b = adds[i + 1]
            if let sa = skip(a), skip(b) == a.outputs[0] {
                out.append(Block(name: a.name, input: sa, output: b.outputs[0]))
                i += 2
            } else {
                i += 1
            }
        }
        return out
    }

    /// A trained weight: its rounding variables and grid, in the quantizer's row-first view [o × k].
    struct TrainedWeight {
        var index: Int           // into model.weights
        var tensor: String
        var transposed: Bool     // stored [in, out]
        var o: Int, k: Int
        var base: [Float]        // ⌊w/s⌋ + z
        var v: [Float]           // rounding variables
        var scales: [Float], zeroPoints: [Float]
        var maxCode: Float
        var adam: Adam

        static let zeta: Float = 1.1, gamma: Float = -0.1

        func h(_ i: Int) -> Float { min(max(1 / (1 + expf(-v[i])) * (Self.zeta - Self.gamma) + Self.gamma, 0), 1) }

        /// The weight in the graph's layout, soft (h) or hard (h ≥ ½).
        func weight(hard: Bool) -> [Float] {
            var w = [Float](repeating: 0, count: o * k)
            for r in 0..<o {
                for c in 0..<k {
                    let i = r * k + c
                    let hv = hard ? (h(i) >= 0.5 ? 1 : 0) : h(i)
                    w[i] = (min(max(base[i] + hv, 0), maxCode) - zeroPoints[r]) * scales[r]
                }
            }
            return SearchContext.fromRowsFirst(w, k: k, o: o, transposed: !transposed)
        }

        func codes() -> Data {
            var d = Data(count: o * k)
            for i in 0..<(o * k) { d[i] = UInt8(min(max(base[i] + (h(i) >= 0.5 ? 1 : 0), 0), maxCode)) }
            return d
        }
    }

    /// A trained bias; `shift`: fc2 after a Shift-AdaLog input, whose graph bias is base − shift·Ŵ·1.
    struct TrainedBias {
        var name: String
        var value: [Float]
        var foldedWeight: Int?   // into the trained weights
        var shift: Float
        var adam: Adam
    }

    struct Adam {
        var m: [Float], s: [Float]
        var t = 0
        init(count: Int) { m = [Float](repeating: 0, count: count); s = m }
        mutating func step(_ x: inout [Float], _ g: [Float], lr: Float) {
            t += 1
            let b1: Float = 0.9, b2: Float = 0.999
            let c1 = 1 - powf(b1, Float(t)), c2 = 1 - powf(b2, Float(t))
            for i in 0..<x.count {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                s[i] = b2 * s[i] + (1 - b2) * g[i] * g[i]
                x[i] -= lr * (m[i] / c1) / ((s[i] / c2).squareRoot() + 1e-8)
            }
        }
    }

    /// Per-element loss weights (mean 1) for `.layerNorm`: (γ_c / σ_t)², γ² the mean over the LayerNorms after the
    /// block of their squared scales, σ_t² the variance of the float target's token row: the error as the following
    /// LayerNorms see it, rather than dominated by the residual stream's outlier channels. nil for `.mse`.
    static func lossWeights(kind: ReconstructionLoss, target: CollectedTensor, after output: String, graph: StaticGraph,
                            patterns: ModelPatterns) -> [Float]? {
        guard kind == .layerNorm, let c = target.shape.last, c > 0 else { return nil }
        var order: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for o in n.outputs { order[o] = i } }
        let start = order[output] ?? 0
        var g2 = [Double](repeating: 0, count: c), count = 0
        for ln in patterns.layerNorms where (order[ln.output] ?? 0) > start {
            guard let name = ln.gamma, let gamma = graph.constants[name]?.floats, gamma.count == c else { continue }
            for j in 0..<c { g2[j] += Double(gamma[j] * gamma[j]) }
            count += 1
        }
        if count == 0 { g2 = [Double](repeating: 1, count: c) }
        let rows = target.values.count / c
        var w = [Float](repeating: 0, count: target.values.count)
        var total = 0.0
        for r in 0..<rows {
            var mean = 0.0, v = 0.0
            for j in 0..<c { mean += Double(target.values[r * c + j]) }
            mean /= Double(c)
            for j in 0..<c { let d = Double(target.values[r * c + j]) - mean; v += d * d }
            let inv = 1 / (v / Double(c) + 1e-5)
            for j in 0..<c { let x = g2[j] * inv; w[r * c + j] = Float(x); total += x }
        }
        let scale = Float(Double(w.count) / max(total, 1e-30))
        for i in 0..<w.count { w[i] *= scale }
        return w
    }

    static let roundingLearningRate: Float = 1e-2
    static let biasLearningRate: Float = 1e-4
    static let scaleLearningRate: Float = 1e-3
    static let regularization: Float = 0.01

    static func apply(_ model: inout QuantizedModel, graph: StaticGraph, patterns: ModelPatterns,
                      calibration: CalibrationSet, options: ReconstructionOptions, seed: UInt64,
                      progress: ((PipelineProgress) -> Void)? = nil) throws {
        let all = blocks(patterns, graph: graph)
        guard !all.isEmpty else {
            throw QuantError.badPlanOption("--block-reconstruction", reason: "the model has no transformer blocks (pairs of residual adds)")
        }
        var targets: [String: CollectedTensor] = [:]
        if options.target == .float {
            progress?(PipelineProgress(phase: "reconstruct: float targets", layer: "", done: 0, total: all.count))
            targets = try ActivationCollector(graph: graph, calibration: calibration).collect(Set(all.map(\.output)))
        }
        var rng = SplitMix64(seed: seed)
        for (bi, b) in all.enumerated() {
            progress?(PipelineProgress(phase: "reconstruct", layer: b.name, done: bi, total: all.count))
            try reconstruct(b, &model, graph: graph, patterns: patterns, calibration: calibration, target: targets[b.output],
                            options: options, rng: &rng)
        }
        progress?(PipelineProgress(phase: "reconstruct", layer: "", done: all.count, total: all.count))
    }

    /// The float block on the quantized model's block input, a graph batch at a time.
    static func localTarget(_ b: Block, graph: StaticGraph, input: CollectedTensor) throws -> CollectedTensor {
        let float = try DifferentiableBlock(graph: graph, input: b.input, output: b.output, quantizers: [:], prefixes: [:])
        let n = input.shape.first ?? 0, batch = max(graph.batch, 1)
        let perIn = input.values.count / max(n, 1)
        var out: [Float] = []
        var i = 0
        while i < n {
            var x: [Float] = []
            for j in 0..<batch { let k = (i + j) % n; x += input.values[(k * perIn)..<((k + 1) * perIn)] }
            let y = float.forward(x)
            out += y[0..<(y.count / batch * min(batch, n - i))]
            i += batch
        }
        var shape = graph.shapes[b.output] ?? []
        if !shape.isEmpty { shape[0] = n }
        return CollectedTensor(shape: shape, values: out)
    }

    static func reconstruct(_ b: Block, _ model: inout QuantizedModel, graph: StaticGraph, patterns: ModelPatterns,
                            calibration: CalibrationSet, target floatTarget: CollectedTensor?, options: ReconstructionOptions,
                            rng: inout SplitMix64) throws {
        let iterations = options.iterations
        // The block's input as the quantized model computes it.
        let sim = try QuantSimulator(model: model, graph: graph, options: SessionOptions(keep: [b.input]))
        guard let input = try ActivationCollector(session: sim.session, calibration: calibration).collect([b.input])[b.input]
        else { throw CalibrationError.missingTensor(b.input) }
        let target: CollectedTensor
        if let floatTarget {
            target = floatTarget
        } else {
            target = try localTarget(b, graph: graph, input: input)
        }
        let (fq, quantizers, prefixes, replaced, sources) = try QuantSimulator.fakeQuantGraph(model: model, graph: graph)
        var g = fq
        for (k, v) in replaced { g.constants[k] = v }
        let block = try DifferentiableBlock(graph: g, input: b.input, output: b.output, quantizers: quantizers, prefixes: prefixes)
        let nodeNames = Set(block.nodes.map(\.name))

        // Trained weights and biases: the quantized linears inside the block.
        var weights: [TrainedWeight] = []
        var biases: [TrainedBias] = []
        var codesNotNextToWeight = 0, total = 0
        for l in patterns.linears where nodeNames.contains(l.node) {
            guard let wi = model.weights.firstIndex(where: { $0.layer == l.node }), let wt = graph.constants[l.weight],
                  block.constants[l.weight] != nil else { continue }
            let wq = model.weights[wi]
            let q = wq.quantizer
            let o = q.scales.count, k = wt.count / max(o, 1)
            guard o > 0, wt.count == o * k else { continue }
            var w = SearchContext.rowsFirst(wt.floats, k: k, o: o, transposed: !wq.transposed)
            if let f = model.layerNormFolds.first(where: { $0.linear == l.node }), f.r.count == k {
                for r in 0..<o { for c in 0..<k { w[r * k + c] *= f.r[c] } }
            }
            let maxCode = Float((1 << q.bits) - 1)
            let current: [UInt8]? = wq.codes.map { [UInt8]($0) }
            var base = [Float](repeating: 0, count: o * k), v = base
            for r in 0..<o {
                for c in 0..<k {
                    let i = r * k + c
                    let t = w[i] / q.scales[r] + q.zeroPoints[r]
                    let fl = t.rounded(.down)
                    base[i] = fl
                    // the current code: GPTQ's, else nearest (ties to even, as the quantizer)
                    let code = current.map { Float($0[i]) } ?? min(max(t.rounded(.toNearestOrEven), 0), maxCode)
                    let up = code >= fl + 1   // codes further away start from the nearer neighbour
                    if current != nil && code != fl && code != fl + 1 { codesNotNextToWeight += 1 }
                    let h0: Float = up ? 0.7 : 0.3
                    let sig = (h0 - TrainedWeight.gamma) / (TrainedWeight.zeta - TrainedWeight.gamma)
                    v[i] = logf(sig / (1 - sig))
                }
            }
            total += o * k
            weights.append(TrainedWeight(index: wi, tensor: l.weight, transposed: wq.transposed, o: o, k: k, base: base, v: v,
                                         scales: q.scales, zeroPoints: q.zeroPoints, maxCode: maxCode, adam: Adam(count: o * k)))
            if let bn = l.bias, let bv = block.constants[bn] {
                var value = bv
                var shift: Float = 0
                if let fold = model.biasFolds.first(where: { $0.linear == l.node }) {
                    // graph bias = base − shift·Ŵ·1: recover the base from the current weight
                    shift = fold.shift
                    let cur = SearchContext.rowsFirst(block.constants[l.weight]!, k: k, o: o, transposed: !wq.transposed)
                    value = try AdaLogQuantizer.foldShift(-shift, intoBias: bv, quantizedWeight: cur, outFeatures: o, inFeatures: k)
                }
                biases.append(TrainedBias(name: bn, value: value, foldedWeight: shift != 0 ? weights.count - 1 : nil,
                                          shift: shift, adam: Adam(count: o)))
            }
        }
        guard !weights.isEmpty else { return }
        block.trainable = Set(weights.map(\.tensor) + biases.map(\.name))
        // Activation quantizers read inside the block: their scales, as log s (uniform: per tensor or per head;
        // AdaLog: the post-GELU one; the softmax's stays at 1, which the integer attention kernels assume).
        struct TrainedScale { var name: String; var activation: Int; var quantizer: QuantizerParameters; var logScale: [Float]; var adam: Adam }
        var scales: [TrainedScale] = []
        let read = Set(block.nodes.flatMap(\.inputs))
        for (name, ai) in sources.sorted(by: { $0.key < $1.key }) where read.contains(name) || name == b.input {
            let q = model.activations[ai].quantizer
            switch q {
            case .uniform(let u) where u.scales.allSatisfy({ $0 > 0 })
                && (options.scales == .all || (options.scales == .perTensor && u.granularity == .perTensor)):
                scales.append(TrainedScale(name: name, activation: ai, quantizer: q, logScale: u.scales.map { logf($0) },
                                           adam: Adam(count: u.scales.count)))
            case .adaLog(let a) where options.scales == .all && a.shift > 0 && a.scale > 0:
                scales.append(TrainedScale(name: name, activation: ai, quantizer: q, logScale: [logf(a.scale)], adam: Adam(count: 1)))
            default:
                continue
            }
        }
        block.trainableScales = Set(scales.map(\.name))
        func setScales() {
            for t in scales {
                switch t.quantizer {
                case .uniform(var u):
                    u.scales = t.logScale.map { expf($0) }
                    block.quantizers[t.name] = .uniform(u)
                case .adaLog(var a):
                    a.scale = expf(t.logScale[0])
                    block.quantizers[t.name] = .adaLog(a)
                default: break
                }
            }
        }

        let n = input.shape.first ?? 0
        let batch = max(graph.batch, 1)
        let perIn = input.values.count / max(n, 1), perOut = target.values.count / max(n, 1)
        let outShape = graph.shapes[b.output] ?? []
        let tokens = outShape.count >= 3 ? outShape[1] : 1
        guard n >= 1, perIn * batch == (graph.shapes[b.input] ?? []).reduce(1, *) else {
            throw QuantError.shapeMismatch("block reconstruction of '\(b.name)': input '\(b.input)' shape \(input.shape)")
        }

        func setConstants(hard: Bool) throws {
            var ws: [[Float]] = []
            for t in weights {
                let w = t.weight(hard: hard)
                block.constants[t.tensor] = w
                ws.append(w)
            }
            for bias in biases {
                var v = bias.value
                if let wi = bias.foldedWeight {   // the fold the simulation applies, with this weight
                    let t = weights[wi]
                    let rows = SearchContext.rowsFirst(ws[wi], k: t.k, o: t.o, transposed: !t.transposed)
                    v = try AdaLogQuantizer.foldShift(bias.shift, intoBias: v, quantizedWeight: rows, outFeatures: t.o, inFeatures: t.k)
                }
                block.constants[bias.name] = v
            }
        }
        // Batch of images → (input, target) at the graph's batch (the last batch wraps around).
        let elementWeights = lossWeights(kind: options.loss, target: target, after: b.output, graph: graph, patterns: patterns)
        func slices(_ images: [Int]) -> ([Float], [Float], [Float]) {
            var x = [Float](), y = [Float](), w = [Float]()
            x.reserveCapacity(perIn * batch); y.reserveCapacity(perOut * batch)
            for i in images {
                x += input.values[(i * perIn)..<((i + 1) * perIn)]
                y += target.values[(i * perOut)..<((i + 1) * perOut)]
                if let elementWeights { w += elementWeights[(i * perOut)..<((i + 1) * perOut)] }
            }
            return (x, y, w)
        }
        let lossScale = Float(tokens) / Float(perOut * batch) / 10
        func loss(_ y: [Float], _ t: ([Float], [Float], [Float])) -> (Float, [Float]) {
            var l: Double = 0
            var d = [Float](repeating: 0, count: y.count)
            let target = t.1, w = t.2
            for i in 0..<y.count {
                let e = y[i] - target[i]
                let we = w.isEmpty ? e : w[i] * e
                l += Double(we * e)
                d[i] = 2 * we * lossScale
            }
            return (Float(l) * lossScale, d)
        }
        func evaluate() -> Double {
            var s = 0.0
            var i = 0
            while i < n {
                let idx = (0..<batch).map { (i + $0) % n }
                let t = slices(idx)
                s += Double(loss(block.forward(t.0), t).0)
                i += batch
            }
            return s
        }

        try setConstants(hard: true)
        let before = evaluate()
        let started = ContinuousClock.now
        var order: [Int] = []
        let warmup = iterations / 5
        for it in 0..<iterations {
            if order.count < batch { order += Array(0..<n).shuffled(using: &rng) }
            let idx = Array(order.prefix(batch)); order.removeFirst(batch)
            let t = slices(idx)
            try setConstants(hard: false)
            let (_, dy) = loss(block.forward(t.0), t)
            let beta: Float = it < warmup ? 20 : 2 + 18 * (1 - Float(it - warmup) / Float(max(iterations - warmup, 1)))
            let cosine = 0.5 * (1 + cosf(Float.pi * Float(it) / Float(iterations)))
            let back = block.backward(dy)
            let grads = back.constants
            for si in 0..<scales.count {
                guard let ds = back.scales[scales[si].name] else { continue }
                var t = scales[si]
                t.adam.step(&t.logScale, (0..<ds.count).map { ds[$0] * expf(t.logScale[$0]) }, lr: scaleLearningRate * cosine)
                scales[si] = t
            }
            setScales()
            // weight gradients (graph layout → rows-first), plus the fold's share through fc2's bias
            var dw: [[Float]] = weights.map { t in
                SearchContext.rowsFirst(grads[t.tensor] ?? [Float](repeating: 0, count: t.o * t.k), k: t.k, o: t.o, transposed: !t.transposed)
            }
            for (bj, bias) in biases.enumerated() {
                guard let db = grads[bias.name] else { continue }
                if let wi = bias.foldedWeight {
                    let k = weights[wi].k
                    for r in 0..<weights[wi].o { for c in 0..<k { dw[wi][r * k + c] -= bias.shift * db[r] } }
                }
                var t = biases[bj]
                t.adam.step(&t.value, db, lr: biasLearningRate * cosine)
                biases[bj] = t
            }
            for wi in 0..<weights.count {
                var t = weights[wi]
                var dv = [Float](repeating: 0, count: t.o * t.k)
                for r in 0..<t.o {
                    for c in 0..<t.k {
                        let i = r * t.k + c
                        let sig = 1 / (1 + expf(-t.v[i]))
                        let hs = sig * (TrainedWeight.zeta - TrainedWeight.gamma) + TrainedWeight.gamma
                        guard hs > 0 && hs < 1 else { continue }
                        let code = t.base[i] + hs
                        var dh: Float = (code >= 0 && code <= t.maxCode) ? dw[wi][i] * t.scales[r] : 0
                        if it >= warmup {
                            let u = 2 * hs - 1
                            dh += -regularization * beta * powf(abs(u), beta - 1) * (u >= 0 ? 1 : -1) * 2
                        }
                        dv[i] = dh * sig * (1 - sig) * (TrainedWeight.zeta - TrainedWeight.gamma)
                    }
                }
                t.adam.step(&t.v, dv, lr: roundingLearningRate)
                weights[wi] = t
            }
        }
        try setConstants(hard: true)
        let after = evaluate()
        let record = BlockReconstructionRecord(block: b.name, lossBefore: before, lossAfter: after, kept: after < before,
                                               seconds: QuantizationPipeline.seconds(since: started),
                                               weights: total, codesNotNextToWeight: codesNotNextToWeight)
        defer { model.reconstruction = (model.reconstruction ?? []) + [record] }
        guard record.kept else { return }
        for t in weights { model.weights[t.index].codes = t.codes() }
        for t in scales { model.activations[t.activation].quantizer = block.quantizers[t.name] ?? t.quantizer }
        // Bias deltas against what the model gives without any correction, with the new codes.
        var plain = model
        let layers = Set(weights.map { model.weights[$0.index].layer })
        plain.biasCorrections = (plain.biasCorrections ?? []).filter { !layers.contains($0.layer) }
        let reference = try QuantSimulator.quantizedConstants(model: plain, graph: graph)
        var corrections = plain.biasCorrections ?? []
        for l in patterns.linears where layers.contains(l.node) {
            guard let bn = l.bias, let trained = block.constants[bn], let ref = reference[bn]?.floats ?? graph.constants[bn]?.floats,
                  ref.count == trained.count else { continue }
            let delta = zip(trained, ref).map { $0 - $1 }
            if delta.contains(where: { $0 != 0 }) { corrections.append(BiasCorrection(layer: l.node, bias: bn, delta: delta)) }
        }
        model.biasCorrections = corrections
    }
}
