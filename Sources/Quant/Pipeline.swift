// The quantization pipeline: builds the plan from ModelPatterns, collects calibration activations a
// few layers at a time, runs each layer's search (adalog.md §1.7 schedules, or plain min-max) and
// returns a QuantizedModel.
import Foundation
import ONNXGraph
import FloatEngine
import Calibration

/// Progress of a pipeline run: `phase` ("collect", "search"), the layer being worked on, done/total units.
public struct PipelineProgress: Sendable {
    public var phase: String
    public var layer: String
    public var done: Int
    public var total: Int
}

/// Options of a pipeline run.
public struct PipelineOptions: Sendable {
    public var method: QuantMethod = .adalog
    public var plan: PlanOptions
    public var settings = FPCSSettings()
    /// Optional cost knob (not in the reference): score the attention searches (Q, K, V, softmax) on only the
    /// first this-many calibration images (the draw is random, so these are a random subset). nil = all images.
    public var attentionSearchImages: Int? = nil
    /// Upper bound on calibration floats held at once (tensors of a group of layers).
    public var memoryBudgetFloats = 40_000_000
    /// Layers searched at once, each on one thread (its products single-threaded). Every layer is calibrated
    /// against float inputs, so the searches are independent and the result is the same for any value; 2 keeps both
    /// cores busy where one search's products alone reach about 160 % CPU. 1 = one layer at a time, products threaded.
    public var concurrentSearches = min(2, max(1, ProcessInfo.processInfo.activeProcessorCount))
    public init(plan: PlanOptions) { self.plan = plan }
}

/// One searchable unit in graph order.
enum PipelineUnit {
    case linear(LinearLayer)
    case attention(AttentionPattern)
    case conv(ConvLayer)

    var name: String {
        switch self {
        case .linear(let l): return l.node
        case .attention(let a): return a.qkMatMul
        case .conv(let c): return c.node
        }
    }
}

/// The quantization pipeline (see the file comment).
public enum QuantizationPipeline {
    /// Model family from its patterns: transformer when it has attention or LayerNorms.
    public static func family(of p: ModelPatterns) -> ModelFamily {
        p.attentions.isEmpty && p.layerNorms.isEmpty ? .cnn : .transformer
    }

    /// Prepares a graph for quantization: BatchNorms folded into convs.
    public static func prepare(_ g: StaticGraph) throws -> (graph: StaticGraph, foldedBatchNorms: Bool) {
        let p = try ModelPatterns(graph: g)
        if p.convBatchNorms.isEmpty { return (g, false) }
        return (try g.foldingBatchNorms(), true)
    }

    static func units(_ p: ModelPatterns) -> [PipelineUnit] {
        var order: [String: Int] = [:]
        for (i, n) in p.graph.nodes.enumerated() { order[n.name] = i }
        var u: [(Int, PipelineUnit)] = []
        for l in p.linears { u.append((order[l.node] ?? 0, .linear(l))) }
        for a in p.attentions { u.append((order[a.qkMatMul] ?? 0, .attention(a))) }
        for c in p.convs { u.append((order[c.node] ?? 0, .conv(c))) }
        return u.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Builds the plan and searches every layer. `graph` is specialised to the calibration batch and prepared
    /// (``prepare(_:)``). The returned model still needs its source path/hash/preprocessing filled by the caller
    /// (they are set from `source`).
    public static func run(graph: StaticGraph, calibration: CalibrationSet, options: PipelineOptions,
                           source: (path: String, sha256: String), foldedBatchNorms: Bool,
                           progress: ((PipelineProgress) -> Void)? = nil) throws -> QuantizedModel {
        let patterns = try ModelPatterns(graph: graph)
        let fam = family(of: patterns)
        let plan = QuantizationPlan(family: fam, options: options.plan)
        var model = QuantizedModel(sourceModel: source.path, sourceSHA256: source.sha256, preprocessing: calibration.spec,
                                   calibrationFiles: calibration.files, calibrationSeed: calibration.seed,
                                   method: options.method, plan: plan, settings: options.settings,
                                   foldedBatchNorms: foldedBatchNorms)
        let all = units(patterns)
        guard !all.isEmpty else {
            throw QuantError.emptyData("the model has no quantizable layers (no MatMul/Gemm with constant weights, no Conv, no attention)")
        }
        let ctx = SearchContext(patterns: patterns, plan: plan, options: options, graph: graph)

        // Tensors each unit needs.
        func needs(_ u: PipelineUnit) -> [String] {
            switch u {
            case .linear(let l): return ctx.isFloat(l.node, l.weight) ? [] : [l.input]
            case .attention(let a):
                return ctx.isFloat(a.qkMatMul, a.avMatMul) ? [] : [a.q, a.k ?? a.kTransposed, a.v, a.probabilities]
            case .conv(let c): return ctx.isFloat(c.node, c.weight) ? [] : [c.input]
            }
        }
        func size(_ t: String) -> Int {
            let s = graph.shapes[t] ?? []
            return s.reduce(1, *) / max(graph.batch, 1) * calibration.count
        }
        var done = 0
        let t0 = ContinuousClock.now
        var collectSeconds = 0.0
        let refitsEachLayer = options.settings.weightRounding == .gptqSequential
        let refitDampening = options.settings.gptqDampening ?? WeightRounding.gptqSequential.defaultDampening
        if options.settings.sequentialSearch == true {
            // One unit at a time on the tensors of the model quantized so far (see FPCSSettings.sequentialSearch);
            // with gptq-seq each layer is refit right after its search, so later layers see its final weights.
            let refitLayers = Dictionary(SequentialRounding.layers(patterns, graph: graph).map { ($0.node, $0) },
                                         uniquingKeysWith: { a, _ in a })
            for u in all {
                let names = Set(needs(u))
                progress?(PipelineProgress(phase: "collect", layer: u.name, done: done, total: all.count))
                let tc = ContinuousClock.now
                let data = names.isEmpty ? [:] : try ActivationCollector(
                    session: try QuantSimulator(model: model, graph: graph, options: SessionOptions(keep: names)).session,
                    calibration: calibration).collect(names)
                collectSeconds += seconds(since: tc)
                let parts = try searchUnits([u], context: ctx, data: data, template: model, workers: 1) { name in
                    progress?(PipelineProgress(phase: "search", layer: name, done: done, total: all.count))
                    done += 1
                }
                for p in parts { model.append(p) }
                if refitsEachLayer, let l = refitLayers[u.name], model.weights.contains(where: { $0.layer == l.node }) {
                    progress?(PipelineProgress(phase: "refit", layer: l.node, done: done, total: all.count))
                    try SequentialRounding.refit(l, &model, graph: graph, calibration: calibration, dampening: refitDampening)
                }
            }
        } else {
            let collector = try ActivationCollector(graph: graph, calibration: calibration)
            // Group units so a group's tensors fit the budget.
            var groups: [[PipelineUnit]] = []
            var cur: [PipelineUnit] = [], curSize = 0
            for u in all {
                let s = Set(needs(u)).reduce(0) { $0 + size($1) }
                if !cur.isEmpty && curSize + s > options.memoryBudgetFloats { groups.append(cur); cur = []; curSize = 0 }
                cur.append(u); curSize += s
            }
            if !cur.isEmpty { groups.append(cur) }
            for g in groups {
                let names = Set(g.flatMap(needs))
                let tc = ContinuousClock.now
                let data = names.isEmpty ? [:] : try collector.collect(names) { d, n in
                    progress?(PipelineProgress(phase: "collect", layer: g.first?.name ?? "", done: done, total: all.count))
                    _ = (d, n)
                }
                collectSeconds += seconds(since: tc)
                // Each unit appends to a model of its own; the parts are merged in graph order, so the result does not
                // depend on which thread finished first.
                let parts = try searchUnits(g, context: ctx, data: data, template: model, workers: options.concurrentSearches) { name in
                    progress?(PipelineProgress(phase: "search", layer: name, done: done, total: all.count))
                    done += 1
                }
                for p in parts { model.append(p) }
            }
        }
        guard !model.weights.isEmpty || !model.activations.isEmpty else {
            throw QuantError.emptyData("every layer was kept in float (check --keep-float patterns); nothing was quantized")
        }
        if refitsEachLayer && options.settings.sequentialSearch != true {
            try SequentialRounding.apply(&model, graph: graph, patterns: patterns, calibration: calibration,
                                         dampening: refitDampening, progress: progress)
        }
        if let r = ReconstructionOptions(options.settings) {
            try BlockReconstruction.apply(&model, graph: graph, patterns: patterns, calibration: calibration,
                                          options: r, seed: calibration.seed, progress: progress)
        }
        progress?(PipelineProgress(phase: "done", layer: "", done: all.count, total: all.count))
        let total = seconds(since: t0)
        model.calibrationSeconds = collectSeconds
        model.searchSeconds = total - collectSeconds
        return model
    }

    /// `--block-reconstruction` on a model searched earlier (`--resume`): the same graph and calibration images.
    public static func reconstructBlocks(_ start: QuantizedModel, graph: StaticGraph, calibration: CalibrationSet,
                                         options: ReconstructionOptions,
                                         progress: ((PipelineProgress) -> Void)? = nil) throws -> QuantizedModel {
        var model = start
        model.reconstruction = nil
        options.record(in: &model.settings)
        let t0 = ContinuousClock.now
        try BlockReconstruction.apply(&model, graph: graph, patterns: try ModelPatterns(graph: graph), calibration: calibration,
                                      options: options, seed: calibration.seed, progress: progress)
        model.searchSeconds += seconds(since: t0)
        return model
    }

    /// The models `units` produce (one per unit, in order), searched by `workers` threads taking units in turn.
    /// `started` is called (serialized) as each unit starts.
    static func searchUnits(_ units: [PipelineUnit], context: SearchContext, data: [String: CollectedTensor],
                            template: QuantizedModel, workers: Int, started: (String) -> Void) throws -> [QuantizedModel] {
        var empty = template
        empty.clearResults()
        func one(_ u: PipelineUnit, _ ctx: inout SearchContext) throws -> QuantizedModel {
            var part = empty
            let ts = ContinuousClock.now
            if let evals = try ctx.search(u, data: data, into: &part) {
                part.layers.append(LayerSearchRecord(layer: u.name, kind: evals.kind, evaluations: evals.count,
                                                     seconds: seconds(since: ts), phases: ctx.lastStats.phases,
                                                     phaseSeconds: ctx.lastStats.seconds))
            }
            return part
        }
        if workers <= 1 || units.count <= 1 {
            var ctx = context
            return try units.map { u in started(u.name); return try one(u, &ctx) }
        }
        // Products single-threaded while the layers run side by side.
        return try FloatKernels.withSingleThreadedKernels { try withoutActuallyEscaping(started) { startedEsc in
            try withoutActuallyEscaping(one) { oneEsc in
                let q = UnitQueue(units, context: context, started: startedEsc, search: oneEsc)
                DispatchQueue.concurrentPerform(iterations: min(workers, units.count)) { _ in q.work() }
                // the first failure in unit order, else every unit's model (all ran)
                for case .failure(let e)? in q.results { throw e }
                return q.results.compactMap { try? $0?.get() }
            }
        } }
    }

    static func seconds(since t: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - t
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// Per-run state of the searches.
struct SearchContext {
    let patterns: ModelPatterns
    let plan: QuantizationPlan
    let options: PipelineOptions
    let graph: StaticGraph
    /// The first conv reading a graph input (patch embed / stem).
    let imageInputs: Set<String>
    let consumers: [String: [String]]
    let producers: [String: Node]
    /// Phase timings of the last search.
    var lastStats = SearchStats()

    init(patterns: ModelPatterns, plan: QuantizationPlan, options: PipelineOptions, graph: StaticGraph) {
        self.patterns = patterns; self.plan = plan; self.options = options; self.graph = graph
        imageInputs = Set(graph.inputs.map(\.name))
        var c: [String: [String]] = [:], p: [String: Node] = [:]
        for n in graph.nodes {
            for i in n.inputs where !i.isEmpty { c[i, default: []].append(n.name) }
            for o in n.outputs { p[o] = n }
        }
        consumers = c; producers = p
    }

    func isFloat(_ names: String...) -> Bool { names.contains { plan.isKeptFloat($0) } }

    func const(_ name: String) throws -> [Float] {
        guard let t = graph.constants[name] else { throw QuantError.emptyData("constant '\(name)' is missing from the graph") }
        return t.floats
    }

    /// Weight as [O × K].
    static func rowsFirst(_ w: [Float], k: Int, o: Int, transposed: Bool) -> [Float] {
        if transposed { return w }   // already [O, K]
        var out = [Float](repeating: 0, count: w.count)
        for kk in 0..<k { for oo in 0..<o { out[oo * k + kk] = w[kk * o + oo] } }
        return out
    }

    static func fromRowsFirst(_ w: [Float], k: Int, o: Int, transposed: Bool) -> [Float] {
        if transposed { return w }
        var out = [Float](repeating: 0, count: w.count)
        for kk in 0..<k { for oo in 0..<o { out[kk * o + oo] = w[oo * k + kk] } }
        return out
    }

    /// The codes of a GPTQ-rounded weight [o × k] (nil when rounded to nearest).
    static func codes(_ rounded: [Float]?, _ q: UniformQuantizer, o: Int, k: Int) -> Data? {
        guard let rounded else { return nil }
        return Data(GPTQ.codes(of: rounded, rows: o, cols: k, scales: q.scales, zeroPoints: q.zeroPoints, bits: q.bits))
    }

    /// Per-tensor min-max quantizer with 0 inside the range.
    static func minMax(_ x: [Float], bits: Int, granularity: Granularity = .perTensor, shape: [Int]? = nil) throws -> UniformQuantizer {
        let groups = try groupedValues(x, shape: shape ?? [x.count], granularity: granularity)
        let levels = Float((1 << bits) - 1)
        var s: [Float] = [], z: [Float] = []
        for g in groups {
            var lo: Float = 0, hi: Float = 0
            for v in g where v.isFinite { lo = min(lo, v); hi = max(hi, v) }
            let sc = max((hi - lo) / levels, 1e-8)
            s.append(sc); z.append(min(max((-lo / sc).rounded(.toNearestOrEven), 0), levels))
        }
        return try UniformQuantizer(bits: bits, granularity: granularity, scales: s, zeroPoints: z)
    }

    /// Candidates per group (row-major groups of equal size): the [min, max] range (0 included) shrunk by
    /// α ∈ {1, 0.98, …, 0.38} (32 values), zero-point = round(−lo/s) clamped to the code range.
    static func shrunkRangeCandidates(_ x: [Float], groups g: Int, bits: Int) -> UniformCandidates {
        let per = x.count / max(g, 1), levels = Float((1 << bits) - 1)
        var lo = [Float](repeating: 0, count: g), hi = lo
        for gi in 0..<g { for v in x[(gi * per)..<((gi + 1) * per)] where v.isFinite { lo[gi] = min(lo[gi], v); hi[gi] = max(hi[gi], v) } }
        let n = 32
        var sc = [Float](repeating: 0, count: n * g), zp = sc
        for c in 0..<n {
            let a = 1 - 0.02 * Float(c)
            for gi in 0..<g {
                let s = max((hi[gi] - lo[gi]) * a / levels, 1e-8)
                sc[c * g + gi] = s
                zp[c * g + gi] = min(max((-lo[gi] * a / s).rounded(.toNearestOrEven), 0), levels)
            }
        }
        return UniformCandidates(count: n, groups: g, scales: sc, zeroPoints: zp)
    }

    /// Splits [images × tokens × cols] rows into the first `count` tokens of every image and the rest.
    static func splitLeadingRows(_ x: [Float], tokens: Int, count: Int, cols: Int) -> (leading: [Float], rest: [Float]) {
        var leading: [Float] = [], rest: [Float] = []
        let rows = x.count / cols
        leading.reserveCapacity((rows / tokens) * count * cols)
        rest.reserveCapacity(x.count)
        for r in 0..<rows {
            if r % tokens < count { leading.append(contentsOf: x[(r * cols)..<((r + 1) * cols)]) }
            else { rest.append(contentsOf: x[(r * cols)..<((r + 1) * cols)]) }
        }
        return (leading, rest)
    }

    /// Row permutation so that the first `n` rows of a token subsample are spread over all images.
    static func spreadRows(_ x: [Float], rows: Int, cols: Int) -> [Float] {
        var idx = Array(0..<rows)
        var state: UInt64 = 0x9E3779B97F4A7C15
        for i in stride(from: rows - 1, to: 0, by: -1) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let j = Int((state >> 33) % UInt64(i + 1))
            idx.swapAt(i, j)
        }
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                for (r, src) in idx.enumerated() {
                    (op.baseAddress! + r * cols).update(from: xp.baseAddress! + src * cols, count: cols)
                }
            }
        }
        return out
    }

    func data(_ d: [String: CollectedTensor], _ name: String) throws -> CollectedTensor {
        guard let t = d[name] else { throw QuantError.emptyData("no calibration values for tensor '\(name)'") }
        return t
    }

    /// Runs the search of one unit; returns (kind, evaluations) or nil when the unit stays float.
    mutating func search(_ u: PipelineUnit, data: [String: CollectedTensor],
                         into model: inout QuantizedModel) throws -> (kind: String, count: Int)? {
        lastStats = SearchStats()
        switch u {
        case .linear(let l): return try searchLinear(l, data, &model)
        case .attention(let a): return try searchAttention(a, data, &model)
        case .conv(let c): return try searchConv(c, data, &model)
        }
    }

    func linearKind(_ l: LinearLayer) -> TensorKind {
        if patterns.geluBeforeLinear[l.node] != nil { return .postGeluInput }
        if patterns.layerNormBeforeLinear[l.node] != nil { return .postLayerNormInput }
        return .linearInput
    }

    mutating func searchLinear(_ l: LinearLayer, _ d: [String: CollectedTensor],
                               _ model: inout QuantizedModel) throws -> (kind: String, count: Int)? {
        if isFloat(l.node, l.weight) { return nil }
        let bits = plan.bits(forLayer: l.node)
        let k = l.inFeatures, o = l.outFeatures
        let xt = try data(d, l.input)
        guard xt.values.count % k == 0, !xt.values.isEmpty else {
            throw QuantError.shapeMismatch("linear '\(l.node)': input '\(l.input)' has \(xt.values.count) values, not a multiple of \(k)")
        }
        let w = Self.rowsFirst(try const(l.weight), k: k, o: o, transposed: l.weightTransposed)
        let kind = linearKind(l)
        let reluBounded = plan.family == .cnn && (xt.values.min() ?? -1) >= 0
        let spec = plan.spec(for: kind, layer: l.node, reluBounded: reluBounded)
        let settings = options.settings
        var x = xt.values
        // The class token on its own grid (--class-token-bits): its rows leave the shared quantizer's search.
        var classToken: (bits: Int, tokens: Int, rows: [Float])? = nil
        if let cb = settings.classTokenBits, options.method == .adalog, plan.family != .cnn,
           xt.shape.count == 3, xt.shape[1] > 1, xt.shape[2] == k, spec.isUniform {
            let split = Self.splitLeadingRows(x, tokens: xt.shape[1], count: 1, cols: k)
            x = split.rest
            classToken = (cb, xt.shape[1], split.leading)
        }
        let n = x.count / k
        if settings.activationSearchTokens != nil { x = Self.spreadRows(x, rows: n, cols: k) }
        func addClassToken(_ rows: [Float]) throws {
            guard let ct = classToken else { return }
            let q = try Self.minMax(rows, bits: ct.bits)
            model.activations[model.activations.count - 1].prefix = TokenPrefixQuantization(tokens: ct.tokens, count: 1, quantizer: q)
        }

        if options.method == .uniformMinMax {
            let wq = try Self.minMax(w, bits: bits.weightBits, granularity: .perChannel(axis: 0), shape: [o, k])
            model.weights.append(WeightQuantization(layer: l.node, tensor: l.weight, transposed: !l.weightTransposed, quantizer: wq))
            let aq = try Self.minMax(x, bits: bits.activationBits)
            model.activations.append(ActivationQuantization(tensor: l.input, consumer: l.node, kind: kind, quantizer: .uniform(aq)))
            return ("linear min-max", 0)
        }
        if plan.family == .cnn {
            return try searchCNNLinearOrConv(layer: l.node, weightName: l.weight, transposedStore: !l.weightTransposed,
                                             w: w, o: o, k: k, input: l.input, x: x, kind: kind, bits: bits,
                                             reluBounded: reluBounded, bias: l.bias, geometry: nil, &model)
        }
        switch spec {
        case .uniformReparameterized(let ab):
            // Fold only when the LayerNorm output feeds just this layer and both have affine/bias constants.
            if let lnOut = patterns.layerNormBeforeLinear[l.node],
               let ln = patterns.layerNorms.first(where: { $0.output == lnOut }),
               let gName = ln.gamma, let bName = ln.beta, let biasName = l.bias,
               (consumers[lnOut] ?? []).count == 1,
               let gamma = graph.constants[gName]?.floats, let beta = graph.constants[bName]?.floats,
               gamma.count == k, beta.count == k {
                let bias = try const(biasName)
                let r = try LayerSearch.postLayerNormLinear(x: x, tokens: n, inFeatures: k, weight: w, outFeatures: o,
                                                            bias: bias, gamma: gamma, beta: beta,
                                                            weightBits: bits.weightBits, inputBits: ab, settings: settings)
                model.layerNormFolds.append(LayerNormFold(linear: l.node, gamma: gName, beta: bName, weight: l.weight,
                                                          bias: biasName, weightStoredInOut: !l.weightTransposed,
                                                          r: r.reparameterization.r, b: r.reparameterization.b))
                model.weights.append(WeightQuantization(layer: l.node, tensor: l.weight, transposed: !l.weightTransposed,
                                                        quantizer: r.linear.weight,
                                                        codes: Self.codes(r.linear.roundedWeight, r.linear.weight, o: o, k: k)))
                model.activations.append(ActivationQuantization(tensor: l.input, consumer: l.node, kind: kind,
                                                                quantizer: .uniform(r.linear.input)))
                if let ct = classToken {
                    // the class rows as the folded LayerNorm emits them: y / r − b per channel
                    let rp = r.reparameterization
                    try addClassToken(ct.rows.indices.map { ct.rows[$0] / rp.r[$0 % k] - rp.b[$0 % k] })
                }
                lastStats = r.linear.stats
                return ("post-LN linear (reparameterized)", r.linear.stats.totalEvaluations)
            }
            fallthrough
        case .uniform:
            let r = try LayerSearch.uniformLinear(x: x, tokens: n, inFeatures: k, weight: w, outFeatures: o,
                                                  weightBits: bits.weightBits, inputBits: bits.activationBits, settings: settings)
            model.weights.append(WeightQuantization(layer: l.node, tensor: l.weight, transposed: !l.weightTransposed, quantizer: r.weight,
                                                    codes: Self.codes(r.roundedWeight, r.weight, o: o, k: k)))
            model.activations.append(ActivationQuantization(tensor: l.input, consumer: l.node, kind: kind, quantizer: .uniform(r.input)))
            if let ct = classToken { try addClassToken(ct.rows) }
            lastStats = r.stats
            return ("uniform linear", r.stats.totalEvaluations)
        case .adaLog(let ab, let shift):
            let bias = try l.bias.map { try const($0) }
            let r = try LayerSearch.geluLinear(x: x, tokens: n, inFeatures: k, weight: w, outFeatures: o, bias: bias,
                                               weightBits: bits.weightBits, inputBits: ab, shift: shift, settings: settings)
            model.weights.append(WeightQuantization(layer: l.node, tensor: l.weight, transposed: !l.weightTransposed, quantizer: r.weight,
                                                    codes: Self.codes(r.roundedWeight, r.weight, o: o, k: k)))
            model.activations.append(ActivationQuantization(tensor: l.input, consumer: l.node, kind: kind, quantizer: .adaLog(r.input)))
            if let biasName = l.bias {
                model.biasFolds.append(BiasFold(linear: l.node, bias: biasName, weight: l.weight,
                                                weightStoredInOut: !l.weightTransposed, shift: shift))
            } else {
                // No bias constant to fold into: keep the shift in the quantizer.
                var a = r.input; a.biasReparameterized = false
                model.activations[model.activations.count - 1].quantizer = .adaLog(a)
            }
            lastStats = r.stats
            return ("fc2 (Shift-AdaLog input)", r.stats.totalEvaluations)
        case .float:
            return nil
        case .log2, .logSqrt2:
            throw QuantError.badPlanOption("\(spec)", reason: "log quantizers are not offered for linear inputs")
        }
    }

    /// CNN layers: per-output-channel weights (FPCS, self error), per-tensor input (FPCS, self error; zero-point 0
    /// when the input is ReLU-bounded).
    mutating func searchCNNLinearOrConv(layer: String, weightName: String, transposedStore: Bool, w: [Float], o: Int, k: Int,
                                        input: String, x: [Float]?, kind: TensorKind, bits: BitSetting, reluBounded: Bool,
                                        bias: String? = nil, geometry: ConvGeometry? = nil, isConv: Bool = false,
                                        _ model: inout QuantizedModel) throws -> (kind: String, count: Int) {
        let s = options.settings
        // CNN weight rows (e.g. 9-tap depthwise rows) are often one-sided, which the reference's mid-range
        // zero-point window cannot represent: search shrunk min-max ranges with their own zero-points instead.
        let wc = Self.shrunkRangeCandidates(w, groups: o, bits: bits.weightBits)
        let wr = FPCS.best(of: wc) { c in weightSelfLosses(w: w, rows: o, cols: k, bits: bits.weightBits, c) }
        var wrs = wr
        wrs.scales = wr.scales.map { $0 > 0 && $0.isFinite ? $0 : 1e-8 }   // all-zero rows (e.g. zero-init BN gamma folded in)
        let wq = try LayerSearch.perRowQuantizer(wrs, bits: bits.weightBits)
        model.weights.append(WeightQuantization(layer: layer, tensor: weightName, transposed: transposedStore, quantizer: wq))
        var evals = wr.evaluations
        var inputQuantizer: UniformQuantizer? = nil
        let aspec = plan.spec(for: imageInputs.contains(input) ? .imageInput : kind, layer: layer, reluBounded: reluBounded)
        if case .uniform(let ab, _, _) = aspec, let x {
            // Subsample very large activations for the self-error objective (every 4th value past 4M values).
            let stride = max(1, x.count / 4_000_000)
            let xs = stride == 1 ? x : Swift.stride(from: 0, to: x.count, by: stride).map { x[$0] }
            // Shrunk min-max ranges with their own zero-point (0 for ReLU-bounded inputs, whose minimum is 0).
            let cands = Self.shrunkRangeCandidates(xs, groups: 1, bits: ab)
            let delta0 = [cands.scales.count > 1 ? abs(cands.scales[1] - cands.scales[0]) : cands.scales[0] / 2]
            let ar = FPCS.uniform(grid: cands, delta0: delta0, minScale: 1e-6, settings: s) { c in
                activationSelfLosses(x: xs, rows: xs.count, cols: 1, bits: ab, c)
            }
            evals += ar.evaluations
            let aq = try UniformQuantizer(bits: ab, scales: ar.scales.map { $0 > 0 && $0.isFinite ? $0 : 1e-8 }, zeroPoints: ar.zeroPoints)
            model.activations.append(ActivationQuantization(tensor: input, consumer: layer, kind: kind, quantizer: .uniform(aq)))
            inputQuantizer = aq
        }
        var rounded: [Float]? = nil
        if let mode = s.weightRounding, mode.roundsDuringSearch, let x, !isConv || geometry != nil {
            // GPTQ per group with H from the (quantized) input patches of that group.
            let xh = try inputQuantizer.map { try $0.fakeQuantize(x, shape: [x.count]) } ?? x
            let groups = geometry?.groups ?? 1
            let og = o / groups
            var out = [Float](repeating: 0, count: o * k)
            for gi in 0..<groups {
                let h: [Float]
                if let g = geometry { h = BiasCorrectionMath.patchGram(xh, g, group: gi) }
                else { h = LA.atb(xh, xh, n: xh.count / k, k: k, m: k) }
                let rows = Array(w[(gi * og * k)..<((gi + 1) * og * k)])
                let r = try GPTQ.round(weight: rows, rows: og, cols: k, hessian: h,
                                       scales: Array(wq.scales[(gi * og)..<((gi + 1) * og)]),
                                       zeroPoints: Array(wq.zeroPoints[(gi * og)..<((gi + 1) * og)]), bits: wq.bits,
                                       dampening: s.gptqDampening ?? mode.defaultDampening)
                out.replaceSubrange((gi * og * k)..<((gi + 1) * og * k), with: r)
            }
            rounded = out
            model.weights[model.weights.count - 1].codes = Self.codes(out, wq, o: o, k: k)
        }
        if s.biasCorrection == true, let bias, let x, !isConv || geometry != nil {
            let wh = try rounded ?? wq.fakeQuantize(w, shape: [o, k])
            let xh = try inputQuantizer.map { try $0.fakeQuantize(x, shape: [x.count]) } ?? x
            let delta = BiasCorrectionMath.delta(x: x, xHat: xh, w: w, wHat: wh, o: o, k: k, geometry: geometry)
            if model.biasCorrections == nil { model.biasCorrections = [] }
            model.biasCorrections?.append(BiasCorrection(layer: layer, bias: bias, delta: delta))
        }
        return ("CNN layer (self error)", evals)
    }

    mutating func searchConv(_ c: ConvLayer, _ d: [String: CollectedTensor],
                             _ model: inout QuantizedModel) throws -> (kind: String, count: Int)? {
        if isFloat(c.node, c.weight) { return nil }
        let bits = plan.bits(forLayer: c.node)
        guard let wt = graph.constants[c.weight], wt.shape.count == 4 else { return nil }
        let o = wt.shape[0], k = wt.count / max(o, 1)
        let w = wt.floats
        let xt = try data(d, c.input)
        let isImage = imageInputs.contains(c.input)
        let kind: TensorKind = isImage ? .imageInput : .linearInput
        let reluBounded = (xt.values.min() ?? -1) >= 0
        if options.method == .uniformMinMax {
            let wq = try Self.minMax(w, bits: bits.weightBits, granularity: .perChannel(axis: 0), shape: [o, k])
            model.weights.append(WeightQuantization(layer: c.node, tensor: c.weight, transposed: false, quantizer: wq))
            if case .uniform(let ab, _, _) = plan.spec(for: kind, layer: c.node, reluBounded: reluBounded) {
                let aq = try Self.minMax(xt.values, bits: ab)
                model.activations.append(ActivationQuantization(tensor: c.input, consumer: c.node, kind: kind, quantizer: .uniform(aq)))
            }
            return ("conv min-max", 0)
        }
        if plan.family == .transformer, isImage, let cols = try patchColumns(c, xt) {
            // Patch embed: one W FPCS on the output error with the float image (adalog.md §1.7 table).
            let r = try LayerSearch.patchEmbed(columns: cols, rows: cols.count / k, inFeatures: k, weight: w, outChannels: o,
                                               weightBits: bits.weightBits, settings: options.settings)
            model.weights.append(WeightQuantization(layer: c.node, tensor: c.weight, transposed: false, quantizer: r.weight,
                                                    codes: Self.codes(r.roundedWeight, r.weight, o: o, k: k)))
            return ("patch embed", r.stats.totalEvaluations)
        }
        return try searchCNNLinearOrConv(layer: c.node, weightName: c.weight, transposedStore: false, w: w, o: o, k: k,
                                         input: c.input, x: xt.values, kind: kind, bits: bits,
                                         reluBounded: reluBounded, bias: c.bias, geometry: convGeometry(c, xt), isConv: true, &model)
    }

    /// Geometry of a 2-D conv for the bias correction (nil when it cannot be read: auto_pad, not rank 4).
    func convGeometry(_ c: ConvLayer, _ x: CollectedTensor) -> ConvGeometry? { Self.convGeometry(c, inputShape: x.shape, graph: graph) }

    static func convGeometry(_ c: ConvLayer, inputShape shape: [Int], graph: StaticGraph) -> ConvGeometry? {
        guard let node = graph.nodes.first(where: { $0.name == c.node }), c.kernel.count == 2, shape.count == 4,
              node.attributes["auto_pad"] == nil || (node.attributes["auto_pad"].map { "\($0)" }?.contains("NOTSET") ?? false)
        else { return nil }
        let st = node.ints("strides") ?? [1, 1], pads = node.ints("pads") ?? [0, 0, 0, 0], dl = node.ints("dilations") ?? [1, 1]
        guard st.count == 2, pads.count == 4, dl.count == 2, let wt = graph.constants[c.weight], wt.shape.count == 4 else { return nil }
        return ConvGeometry(batch: shape[0], channels: shape[1], height: shape[2], width: shape[3],
                            kh: c.kernel[0], kw: c.kernel[1], strideH: st[0], strideW: st[1], padTop: pads[0], padLeft: pads[1],
                            padBottom: pads[2], padRight: pads[3], dilationH: dl[0], dilationW: dl[1], groups: c.groups,
                            outChannels: wt.shape[0])
    }

    /// im2col rows of a non-overlapping patchify conv (kernel = stride, no padding, no dilation, 1 group).
    func patchColumns(_ c: ConvLayer, _ x: CollectedTensor) throws -> [Float]? {
        guard let node = graph.nodes.first(where: { $0.name == c.node }), c.groups == 1, c.kernel.count == 2,
              x.shape.count == 4 else { return nil }
        let kh = c.kernel[0], kw = c.kernel[1]
        let strides = node.ints("strides") ?? [1, 1], pads = node.ints("pads") ?? [0, 0, 0, 0]
        guard strides == [kh, kw], pads.allSatisfy({ $0 == 0 }), (node.ints("dilations") ?? [1, 1]) == [1, 1] else { return nil }
        let n = x.shape[0], ch = x.shape[1], h = x.shape[2], wd = x.shape[3]
        let oh = h / kh, ow = wd / kw, k = ch * kh * kw
        var out = [Float](repeating: 0, count: n * oh * ow * k)
        for img in 0..<n { for py in 0..<oh { for px in 0..<ow {
            let row = (img * oh + py) * ow + px
            var j = 0
            for cc in 0..<ch { for yy in 0..<kh { for xx in 0..<kw {
                out[row * k + j] = x.values[((img * ch + cc) * h + py * kh + yy) * wd + px * kw + xx]; j += 1
            } } }
        } } }
        return out
    }

    mutating func searchAttention(_ a: AttentionPattern, _ d: [String: CollectedTensor],
                                  _ model: inout QuantizedModel) throws -> (kind: String, count: Int)? {
        if isFloat(a.qkMatMul, a.avMatMul) { return nil }
        let bits = plan.bits(forLayer: a.qkMatMul)
        let qt = try data(d, a.q), vt = try data(d, a.v), pt = try data(d, a.probabilities)
        let kName = a.k ?? a.kTransposed
        var kt = try data(d, kName)
        guard qt.shape.count == 4, vt.shape.count == 4, pt.shape.count == 4 else {
            throw QuantError.shapeMismatch("attention '\(a.qkMatMul)': Q/V/P must be rank 4 [batch, heads, tokens, dim], got \(qt.shape), \(vt.shape), \(pt.shape)")
        }
        let b = qt.shape[0], h = qt.shape[1], t = qt.shape[2], hd = qt.shape[3]
        let bs = min(b, max(1, options.attentionSearchImages ?? b))
        func head(_ v: [Float]) -> [Float] { bs == b ? v : Array(v[0..<(v.count / b * bs)]) }
        if a.k == nil {
            // Kᵀ [B, H, d, T] → K [B, H, T, d] (per-head parameters are layout-independent).
            var kk = [Float](repeating: 0, count: kt.values.count)
            for s in 0..<(b * h) { for i in 0..<hd { for j in 0..<t { kk[s * t * hd + j * hd + i] = kt.values[s * t * hd + i * t + j] } } }
            kt = CollectedTensor(shape: [b, h, t, hd], values: kk)
        }
        let kindOp = TensorKind.attentionOperand, kindP = TensorKind.attentionProbabilities
        if options.method == .uniformMinMax {
            let ab = bits.activationBits
            for (name, vals, consumer) in [(a.q, qt.values, a.qkMatMul), (kName, kt.values, a.k == nil ? a.qkMatMul : ""),
                                           (a.v, vt.values, a.avMatMul), (a.probabilities, pt.values, a.avMatMul)] {
                let cons = consumer.isEmpty ? (consumers[kName]?.first ?? a.qkMatMul) : consumer
                let q = try Self.minMax(vals, bits: ab)
                model.activations.append(ActivationQuantization(tensor: name, consumer: cons,
                                                                kind: name == a.probabilities ? kindP : kindOp, quantizer: .uniform(q)))
            }
            return ("attention min-max", 0)
        }
        let s = options.settings
        let sr = try LayerSearch.attentionScores(query: head(qt.values), key: head(kt.values), batch: bs, heads: h, tokens: t, headDim: hd,
                                                 bits: bits.activationBits, settings: s)
        let vr = try LayerSearch.attentionValues(probabilities: head(pt.values), value: head(vt.values), batch: bs, heads: h, tokens: t,
                                                 headDim: hd, probabilityBits: bits.activationBits, valueBits: bits.activationBits,
                                                 softmax: plan.options.softmax, settings: s)
        let kConsumer = a.k == nil ? a.qkMatMul : (consumers[kName]?.first ?? a.qkMatMul)
        model.activations.append(ActivationQuantization(tensor: a.q, consumer: a.qkMatMul, kind: kindOp, quantizer: .uniform(sr.query)))
        model.activations.append(ActivationQuantization(tensor: kName, consumer: kConsumer, kind: kindOp, quantizer: .uniform(sr.key)))
        model.activations.append(ActivationQuantization(tensor: a.v, consumer: a.avMatMul, kind: kindOp, quantizer: .uniform(vr.value)))
        let pq: QuantizerParameters
        switch vr.probabilityQuantizer {
        case .adaLog(let q): pq = .adaLog(q)
        case .log2(let q): pq = .log2(q)
        case .logSqrt2(let q): pq = .logSqrt2(q)
        case .uniform(let q): pq = .uniform(q)
        }
        model.activations.append(ActivationQuantization(tensor: a.probabilities, consumer: a.avMatMul, kind: kindP, quantizer: pq))
        lastStats = sr.stats
        lastStats.phases += vr.stats.phases; lastStats.evaluations += vr.stats.evaluations; lastStats.seconds += vr.stats.seconds
        return ("attention", sr.stats.totalEvaluations + vr.stats.totalEvaluations)
    }
}

extension UniformGrid {
    /// The conv-weight zero-point window (2^(b−1) zero-points) when it leaves at least 4 scales in the grid;
    /// above that (7–8 bits, never run by the reference) the grid would hold a single scale (P90−P10 range,
    /// Δ0 = 0, so FPCS could not move it): the linear-weight window (16 zero-points) is used instead.
    public static func convWeightRole(bits: Int, eqN: Int) -> TensorRole {
        (1 << (bits - 1)) * 4 <= eqN ? .convWeight : .weight
    }
}


/// Geometry of a 2-D convolution (NCHW input), for the bias correction's per-tap input means.
struct ConvGeometry {
    var batch, channels, height, width, kh, kw, strideH, strideW, padTop, padLeft, padBottom, padRight: Int
    var dilationH, dilationW, groups, outChannels: Int
    var outHeight: Int { (height + padTop + padBottom - dilationH * (kh - 1) - 1) / strideH + 1 }
    var outWidth: Int { (width + padLeft + padRight - dilationW * (kw - 1) - 1) / strideW + 1 }

    /// Writes the zero-padded input patch of `group` at output position (b, oy, ox) — [cin·kh·kw], channel-major
    /// then tap, as the weight rows — to dst[j·stride] (stride = a chunk's row count: patches as columns).
    func gatherPatch(_ x: UnsafeBufferPointer<Float>, group: Int, b: Int, oy: Int, ox: Int,
                     into dst: UnsafeMutablePointer<Float>, stride: Int) {
        let cin = channels / groups, taps = kh * kw
        for ci in 0..<cin {
            let base = (b * channels + group * cin + ci) * height * width
            for ty in 0..<kh {
                let iy = oy * strideH - padTop + ty * dilationH
                for tx in 0..<kw {
                    let ix = ox * strideW - padLeft + tx * dilationW
                    dst[(ci * taps + ty * kw + tx) * stride] = iy >= 0 && iy < height && ix >= 0 && ix < width ? x[base + iy * width + ix] : 0
                }
            }
        }
    }
}

enum BiasCorrectionMath {
    /// Mean over images and output positions of the (zero-padded) input seen by each (channel, tap): [C × kh·kw].
    static func tapMeans(_ x: [Float], _ g: ConvGeometry) -> [Float] {
        let oh = g.outHeight, ow = g.outWidth, taps = g.kh * g.kw
        var out = [Float](repeating: 0, count: g.channels * taps)
        let count = Double(g.batch * oh * ow)
        x.withUnsafeBufferPointer { xp in
            for c in 0..<g.channels {
                // Prefix sums would be faster; a direct sum over valid positions is plenty for calibration sizes.
                for ty in 0..<g.kh { for tx in 0..<g.kw {
                    var s = 0.0
                    for n in 0..<g.batch {
                        let base = (n * g.channels + c) * g.height * g.width
                        for oy in 0..<oh {
                            let iy = oy * g.strideH - g.padTop + ty * g.dilationH
                            if iy < 0 || iy >= g.height { continue }
                            var rs: Float = 0
                            let row = base + iy * g.width
                            for ox in 0..<ow {
                                let ix = ox * g.strideW - g.padLeft + tx * g.dilationW
                                if ix >= 0 && ix < g.width { rs += xp[row + ix] }
                            }
                            s += Double(rs)
                        }
                    }
                    out[c * taps + ty * g.kw + tx] = Float(s / count)
                } }
            }
        }
        return out
    }

    /// Σ over images and output positions of pᵀp, p the zero-padded input patch of group `group`
    /// ([cin·kh·kw], channel-major then tap), i.e. the GPTQ Hessian of that group's weight rows.
    static func patchGram(_ x: [Float], _ g: ConvGeometry, group: Int) -> [Float] {
        let cin = g.channels / g.groups, taps = g.kh * g.kw, k = cin * taps
        let oh = g.outHeight, ow = g.outWidth
        if g.kh == 1 && g.kw == 1 && g.strideH == 1 && g.strideW == 1 && g.padTop == 0 && g.padLeft == 0 && oh == g.height && ow == g.width {
            // 1×1 conv: H = Σ_n A_n A_nᵀ with A_n the [cin × HW] slice of image n.
            var h = [Float](repeating: 0, count: k * k)
            let hw = g.height * g.width
            x.withUnsafeBufferPointer { xp in
                h.withUnsafeMutableBufferPointer { hp in
                    for n in 0..<g.batch {
                        let a = xp.baseAddress! + (n * g.channels + group * cin) * hw
                        FloatKernels.matmul(m: k, n: k, k: hw, a: a, lda: hw, b: a, ldb: hw, bTransposed: true,
                                            c: hp.baseAddress!, ldc: k, accumulate: n > 0)
                    }
                }
            }
            return h
        }
        // General case: gather patches in chunks (as columns) and accumulate PᵀP.
        let chunk = 1024
        var pbuf = [Float](repeating: 0, count: chunk * k)
        var h = [Float](repeating: 0, count: k * k)
        var filled = 0, first = true
        func flush() {
            guard filled > 0 else { return }
            pbuf.withUnsafeBufferPointer { tp in
                h.withUnsafeMutableBufferPointer { hp in
                    FloatKernels.matmul(m: k, n: k, k: filled, a: tp.baseAddress!, lda: chunk, b: tp.baseAddress!, ldb: chunk,
                                        bTransposed: true, c: hp.baseAddress!, ldc: k, accumulate: !first)
                }
            }
            first = false; filled = 0
        }
        x.withUnsafeBufferPointer { xp in
            for n in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow {
                pbuf.withUnsafeMutableBufferPointer { g.gatherPatch(xp, group: group, b: n, oy: oy, ox: ox, into: $0.baseAddress! + filled, stride: chunk) }
                filled += 1
                if filled == chunk { flush() }
            } } }
        }
        flush()
        return h
    }

    /// delta_o = E[x]·w_o − E[x̂]·ŵ_o. Linear layers (geometry nil): x is [n × k] and the means are per column.
    static func delta(x: [Float], xHat: [Float], w: [Float], wHat: [Float], o: Int, k: Int, geometry: ConvGeometry?) -> [Float] {
        var m: [Float], mh: [Float]
        var colIndex: (Int, Int) -> Int = { _, j in j }
        if let g = geometry, g.channels * g.kh * g.kw / max(g.groups, 1) == k, g.outChannels == o {
            m = tapMeans(x, g); mh = tapMeans(xHat, g)
            let taps = g.kh * g.kw, cin = g.channels / g.groups, perGroupOut = o / g.groups
            colIndex = { oo, j in ((oo / perGroupOut) * cin + j / taps) * taps + j % taps }
        } else {
            let n = x.count / max(k, 1)
            m = [Float](repeating: 0, count: k); mh = m
            var sm = [Double](repeating: 0, count: k), smh = sm
            for i in 0..<n { for j in 0..<k { sm[j] += Double(x[i * k + j]); smh[j] += Double(xHat[i * k + j]) } }
            for j in 0..<k { m[j] = Float(sm[j] / Double(max(n, 1))); mh[j] = Float(smh[j] / Double(max(n, 1))) }
        }
        var d = [Float](repeating: 0, count: o)
        for oo in 0..<o {
            var s = 0.0
            for j in 0..<k {
                let ci = colIndex(oo, j)
                s += Double(w[oo * k + j]) * Double(m[ci]) - Double(wHat[oo * k + j]) * Double(mh[ci])
            }
            d[oo] = Float(s)
        }
        return d
    }
}

/// The units of one group handed out to the search threads in order; results kept by index. The closures are only
/// called while `searchUnits` waits for the threads (hence unchecked Sendable).
final class UnitQueue: @unchecked Sendable {
    let units: [PipelineUnit]
    let context: SearchContext
    let started: (String) -> Void
    let search: (PipelineUnit, inout SearchContext) throws -> QuantizedModel
    let lock = NSLock()
    var next = 0
    var failed = false
    var results: [Result<QuantizedModel, Error>?]

    init(_ units: [PipelineUnit], context: SearchContext, started: @escaping (String) -> Void,
         search: @escaping (PipelineUnit, inout SearchContext) throws -> QuantizedModel) {
        self.units = units; self.context = context; self.started = started; self.search = search
        results = Array(repeating: nil, count: units.count)
    }

    /// One thread's loop: take the next unit, search it, store the result; stop at the end or after a failure.
    func work() {
        var ctx = context
        while true {
            lock.lock()
            let i = next
            next += 1
            let go = i < units.count && !failed
            if go { started(units[i].name) }
            lock.unlock()
            guard go else { return }
            let r = Result { try search(units[i], &ctx) }
            lock.lock()
            results[i] = r
            if case .failure = r { failed = true }
            lock.unlock()
        }
    }
}
