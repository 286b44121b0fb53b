// `quantize report` as a library: float baseline once, then for every method × bit setting calibrate, search,
// simulate (fake-quant on the float engine), evaluate and measure per-layer SQNR; the result is a QuantReport.
import Foundation
import Imaging
import ONNXGraph
import FloatEngine
import Calibration
import Quant
import Reporting
import QModelExport
import Int8Runtime

/// Why a report run could not start or finish, with what the user can do about it.
public enum ReportRunError: Error, CustomStringConvertible, Equatable, Sendable {
    case argument(ArgumentCheckError)
    case missingModel(path: String)
    case noQuantizableLayers(model: String)
    case unlabelled(folder: String)
    case noEvaluationImages(folder: String, excludedCalibration: Int)
    case inputSizeMismatch(model: String, preprocessSize: Int, inputShape: [Int])
    case badValue(option: String, value: String, expected: String)
    case bundledFileMissing(path: String)

    public var description: String {
        switch self {
        case let .argument(e): return e.description
        case let .missingModel(p): return "model \(p): no such file; give the path of an .onnx model"
        case let .noQuantizableLayers(m):
            return "model \(m) has no quantizable layers (no MatMul/Gemm with constant weights, no Conv, no attention); nothing to report"
        case let .unlabelled(f):
            return "--data \(f): the images have no labels; use an ImageFolder layout (<class>/<image>) or pass --labels"
        case let .noEvaluationImages(f, x):
            return "--data \(f): no images left to evaluate" + (x > 0 ? " after leaving out the \(x) calibration images; use a separate --data folder or a smaller --calib-count" : "")
        case let .inputSizeMismatch(m, s, shape):
            return "model \(m): preprocessing size \(s) does not fit the model input \(shape); pass the right --preset"
        case let .badValue(o, v, e): return "\(o) '\(v)': expected \(e)"
        case let .bundledFileMissing(p):
            return "bundled file '\(p)' not found; run `quantize demo` from the repository root (where Package.swift, models/, calib-data/ and demo-data/ are)"
        }
    }
}

/// What to run: the command-line values of `quantize report`.
public struct ReportConfiguration: Sendable {
    public var modelPath: String
    public var calibrationFolder: String
    public var dataFolder: String
    public var labels: String?
    public var bits: [BitSetting]
    public var methods: [QuantMethod]
    /// Preprocessing preset name; nil picks by the model's input size (32 → cifar10, else imagenet).
    public var preset: String?
    public var calibrationCount = 32
    public var seed: UInt64 = 5
    /// Evaluate only the first N evaluation images.
    public var limit: Int?
    /// Images per model run.
    public var batch = 8
    /// Per-layer SQNR is measured on this many of the evaluation images (the first ones).
    public var sqnrImages = 16
    /// Search cost knobs, as `quantize --search-tokens/--search-images` (nil: exact search on all rows/images).
    public var searchTokens: Int?
    public var searchImages: Int?
    /// Zero-point candidates of the uniform searches (`--zero-points`).
    public var zeroPoints: ZeroPointPlacement = .dataCentred
    public var toolVersion = "0.1.0"
    /// Also convert one setting to an int8 model (.qmodel), write it to `path` and evaluate it on the integer runtime.
    public var int8Export: Int8Export?
    /// Memory cap for reading, specialising and running the model (`--max-memory-mb`).
    public var limits: ResourceLimits = .default

    public init(modelPath: String, calibrationFolder: String, dataFolder: String, labels: String? = nil,
                bits: [BitSetting], methods: [QuantMethod], preset: String? = nil) {
        self.modelPath = modelPath
        self.calibrationFolder = calibrationFolder
        self.dataFolder = dataFolder
        self.labels = labels
        self.bits = bits
        self.methods = methods
        self.preset = preset
    }
}

/// Which setting of a report to write as an int8 model, and where.
public struct Int8Export: Sendable {
    public var bits: BitSetting
    public var method: QuantMethod
    public var path: String
    public init(bits: BitSetting, method: QuantMethod, path: String) { self.bits = bits; self.method = method; self.path = path }
}

/// Receives progress: a bar per stage (`label`, `total`); the runner advances and finishes it.
public protocol ReportProgressSink: AnyObject {
    func bar(_ label: String, total: Int, unit: String) -> ProgressBar
    /// A short line for the user (stderr), e.g. a finished setting's accuracy.
    func note(_ text: String)
}

/// Progress that shows nothing (tests, `--quiet`).
public final class SilentProgress: ReportProgressSink {
    public init() {}
    public func bar(_ label: String, total: Int, unit: String) -> ProgressBar {
        ProgressBar(label: label, total: total, unit: unit, mode: .silent)
    }
    public func note(_ text: String) {}
}

/// Runs `quantize report` (see the file comment). Validate first with ``validate(_:)`` for user-facing messages.
public enum ReportRunner {
    /// Checks the folders and the model before any work: missing/empty folders, a model file that does not
    /// exist or has no quantizable layers.
    public static func validate(_ c: ReportConfiguration) throws(ReportRunError) {
        do {
            try ArgumentChecks.imageFolder(c.calibrationFolder, option: "--calib")
            try ArgumentChecks.imageFolder(c.dataFolder, option: "--data")
        } catch { throw .argument(error) }
        guard !c.bits.isEmpty else { throw .argument(.emptyList(option: "--bits")) }
        guard !c.methods.isEmpty else { throw .argument(.emptyList(option: "--methods")) }
        guard c.calibrationCount >= 1 else { throw .badValue(option: "--calib-count", value: "\(c.calibrationCount)", expected: "at least 1") }
        guard c.batch >= 1 else { throw .badValue(option: "--batch", value: "\(c.batch)", expected: "at least 1") }
        if let l = c.limit, l < 1 { throw .badValue(option: "--limit", value: "\(l)", expected: "at least 1") }
        guard FileManager.default.fileExists(atPath: c.modelPath) else { throw .missingModel(path: c.modelPath) }
    }

    /// Whether a prepared graph has anything the pipeline quantizes.
    public static func hasQuantizableLayers(_ g: StaticGraph) throws -> Bool {
        let p = try ModelPatterns(graph: g)
        return !(p.linears.isEmpty && p.convs.isEmpty && p.attentions.isEmpty)
    }

    /// Model size in bytes at a setting: every quantized weight at its own bit width (packed, rounded up to whole
    /// bytes per tensor) plus 4 bytes per scale and per zero point, and every other constant of the graph (biases,
    /// LayerNorm, embeddings, float-kept layers) at 4 bytes per element. Activation quantizer parameters (a few
    /// numbers per tensor) are not counted.
    public static func modelSizeBytes(model q: QuantizedModel, graph g: StaticGraph) -> Int {
        var quantized = Set<String>()
        var total = 0
        for w in q.weights {
            guard let t = g.constants[w.tensor] else { continue }
            quantized.insert(w.tensor)
            total += (t.count * w.quantizer.bits + 7) / 8
            total += 4 * w.quantizer.scales.count + (w.quantizer.symmetric ? 0 : 4 * w.quantizer.zeroPoints.count)
        }
        for (name, t) in g.constants where !quantized.contains(name) && t.dtype.isFloat { total += 4 * t.count }
        return total
    }

    /// Runs everything and returns the report (not yet written).
    public static func run(_ c: ReportConfiguration, progress: ReportProgressSink = SilentProgress()) throws -> QuantReport {
        try validate(c)
        let m = try ONNXModel(contentsOf: c.modelPath, limits: c.limits)
        let spec: PreprocessSpec
        if let p = c.preset { spec = try PreprocessSpec.preset(named: p) }
        else if case .fixed(32)? = m.graph.inputs.first?.dims?.last { spec = try PreprocessSpec.preset(named: "cifar10") }
        else { spec = try PreprocessSpec.preset(named: "imagenet") }

        // Calibration images (one draw, shared by every setting).
        let calDS = try ImageDataset.open(c.calibrationFolder, labels: c.labels)
        let calCount = min(c.calibrationCount, calDS.count)
        let calBar = progress.bar("preprocess calibration", total: calCount, unit: "img")
        let cal = try CalibrationSet.draw(from: calDS, count: calCount, seed: c.seed, spec: spec) { d, _ in
            calBar.update(completed: d)
        }
        calBar.finish()
        if c.calibrationCount > calDS.count {
            progress.note("note: '\(c.calibrationFolder)' has only \(calDS.count) images; calibrating on all of them")
        }
        let bt = min(c.batch, cal.count)
        let (qGraph, folded) = try QuantizationPipeline.prepare(try m.graph.specialized(batch: bt, limits: c.limits))
        guard try hasQuantizableLayers(qGraph) else { throw ReportRunError.noQuantizableLayers(model: c.modelPath) }

        // Evaluation images: calibration images left out when the folders are the same.
        var ds = try ImageDataset.open(c.dataFolder, labels: c.labels)
        guard ds.isLabelled else { throw ReportRunError.unlabelled(folder: c.dataFolder) }
        let calFiles = Set(cal.files.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        let kept = ds.items.filter { !calFiles.contains(URL(fileURLWithPath: $0.path).standardizedFileURL.path) }
        let excluded = ds.count - kept.count
        ds = ImageDataset(root: ds.root, layout: ds.layout, items: kept, classNames: ds.classNames)
        let n = min(c.limit ?? ds.count, ds.count)
        guard n > 0 else { throw ReportRunError.noEvaluationImages(folder: c.dataFolder, excludedCalibration: excluded) }
        let b = min(c.batch, n)
        var eGraph = try m.graph.specialized(batch: b, limits: c.limits)
        if folded { eGraph = try eGraph.foldingBatchNorms() }
        let per = 3 * spec.size * spec.size
        guard let inSpec = eGraph.inputs.first, elementCount(inSpec.shape) == b * per else {
            throw ReportRunError.inputSizeMismatch(model: c.modelPath, preprocessSize: spec.size,
                                                   inputShape: eGraph.inputs.first?.shape ?? [])
        }

        // Preprocessed evaluation batches, kept in memory when small (≤ 256 MB), else decoded again per setting.
        let cacheable = n * per <= 64_000_000
        var cache: [[Float]] = []
        var labelsCache: [[Int?]] = []
        func batch(_ k: Int) throws -> ([Float], [Int?]) {
            if k < cache.count { return (cache[k], labelsCache[k]) }
            let r = (k * b)..<min(k * b + b, n)
            var (x, labs) = try ds.batch(r, spec: spec)
            if r.count < b { x += [Float](repeating: 0, count: (b - r.count) * per) }
            if cacheable { cache.append(x); labelsCache.append(labs) }
            return (x, labs)
        }
        let batches = (n + b - 1) / b

        // Float baseline.
        let floatSession = try FloatSession(staticGraph: eGraph)
        var floatTop1: [Int] = []
        var ftop1 = 0, ftop5 = 0
        let fbar = progress.bar("evaluate float", total: n, unit: "img")
        for k in 0..<batches {
            let (x, labs) = try batch(k)
            let logits = try floatSession.run(x)
            let classes = logits.count / b
            for (i, label) in labs.enumerated() {
                let t = topKIndices(logits[(i * classes)..<((i + 1) * classes)], 5)
                floatTop1.append(t.first ?? -1)
                if let label {
                    if t.first == label { ftop1 += 1 }
                    if t.contains(label) { ftop5 += 1 }
                }
            }
            fbar.advance(by: labs.count)
        }
        fbar.finish()
        let labelled = ds.items.prefix(n).filter { $0.label != nil }.count
        func pct(_ v: Int, _ d: Int) -> Double { Double(v) * 100 / Double(max(d, 1)) }
        let floatAcc = Accuracy(top1: pct(ftop1, labelled), top5: pct(ftop5, labelled))
        progress.note(String(format: "float: top-1 %.2f %%, top-5 %.2f %% on %d images", floatAcc.top1, floatAcc.top5, n))

        // The report does not write the QuantizedModel, so its source hash is left empty.
        let hash = ""
        var results: [ResultRow] = []
        var layers: [LayerRow] = []
        var ops: [String: String] = [:]
        var int8Notes: [String] = []
        for node in qGraph.nodes { ops[node.name] = node.opType }
        for method in c.methods {
            for bits in c.bits {
                let setting = "\(bits) \(method.rawValue)"
                var opts = PipelineOptions(plan: PlanOptions(bits: bits))
                opts.method = method
                if let t = c.searchTokens { opts.settings.activationSearchTokens = t }
                opts.attentionSearchImages = c.searchImages
                opts.settings.zeroPoints = c.zeroPoints
                let sbar = progress.bar("\(setting) calibrate+search", total: 100, unit: "%")
                let t0 = Date()
                let q = try QuantizationPipeline.run(graph: qGraph, calibration: cal, options: opts,
                                                     source: (c.modelPath, hash), foldedBatchNorms: folded) { p in
                    sbar.setLabel("\(setting) \(p.phase) \(p.layer)")
                    if p.total > 0 { sbar.update(completed: min(p.done, p.total) * 100 / p.total) }
                }
                let calSeconds = Date().timeIntervalSince(t0)
                sbar.finish()

                let sim = try QuantSimulator(model: q, graph: eGraph)
                let outputs = Dictionary(sim.layerOutputs.map { ($0.tensor, $0.layer) }, uniquingKeysWith: { a, _ in a })
                var sq = LayerSQNRAccumulator()
                var top1 = 0, top5 = 0, index = 0
                var qTop1: [Int] = []
                let ebar = progress.bar("\(setting) evaluate", total: n, unit: "img")
                for k in 0..<batches {
                    let (x, labs) = try batch(k)
                    let measure = k * b < c.sqnrImages
                    var reference: [String: [Float]] = [:]
                    let valid = labs.count
                    if measure {
                        floatSession.observer = { o in if outputs[o.name] != nil { reference[o.name] = Array(o.values) } }
                        _ = try floatSession.run(x)
                        floatSession.observer = nil
                        sim.session.observer = { o in
                            guard let layer = outputs[o.name], let ref = reference[o.name] else { return }
                            let keep = valid * (o.values.count / b)
                            ref.withUnsafeBufferPointer { rp in
                                sq.add(layer: layer, reference: UnsafeBufferPointer(rebasing: rp[0..<keep]),
                                       test: UnsafeBufferPointer(rebasing: o.values[0..<keep]))
                            }
                        }
                    } else {
                        sim.session.observer = nil
                    }
                    let ql = try sim.session.run(x)
                    let classes = ql.count / b
                    for (i, label) in labs.enumerated() {
                        let t = topKIndices(ql[(i * classes)..<((i + 1) * classes)], 5)
                        qTop1.append(t.first ?? -1)
                        if let label {
                            if t.first == label { top1 += 1 }
                            if t.contains(label) { top5 += 1 }
                        }
                        index += 1
                    }
                    ebar.advance(by: labs.count)
                }
                sim.session.observer = nil
                ebar.finish()
                if let ex = c.int8Export, ex.bits == bits, ex.method == method {
                    let g1 = try QModelExporter.prepare(m.graph, for: q)
                    let names = ds.classNames.count == (qGraph.outputs.first.map { $0.shape.reduce(1, *) / max(qGraph.batch, 1) } ?? 0) ? ds.classNames : []
                    let r = try QModelExporter.export(q, graph: g1, name: "\(URL(fileURLWithPath: c.modelPath).deletingPathExtension().lastPathComponent)-\(bits)",
                                                      classNames: names)
                    try QModelFile.write(r.model, to: ex.path)
                    // Evaluate the written file on the integer runtime, against the simulation's predictions.
                    let session = try Session(model: try QModelFile.load(path: ex.path, maxFileSize: c.limits.maxBytes), batch: b,
                                                    maxMemoryBytes: c.limits.maxBytes)
                    let hw = spec.size * spec.size
                    var i8top1 = 0, agree = 0, seen = 0
                    for k in 0..<batches {
                        let (x, labs) = try batch(k)
                        let dst = session.inputBuffer
                        for s in 0..<labs.count { for ch in 0..<3 { for j in 0..<hw { dst[(s * hw + j) * 3 + ch] = x[(s * 3 + ch) * hw + j] } } }
                        try session.execute(samples: labs.count)
                        let classes = session.outputShapes[0].reduce(1, *)
                        let out = UnsafeBufferPointer(start: session.outputBuffer(0), count: labs.count * classes)
                        for (i, label) in labs.enumerated() {
                            let t = topKIndices(ArraySlice(out[(i * classes)..<((i + 1) * classes)]), 1).first ?? -1
                            if t == qTop1[seen] { agree += 1 }
                            if let label, t == label { i8top1 += 1 }
                            seen += 1
                        }
                    }
                    int8Notes.append(String(format: "Int8 model (%@ %@) written to %@: top-1 %.2f %% on the integer runtime, top-1 agreement with the simulation %.2f %%.",
                                            bits.description as NSString, method.rawValue as NSString, ex.path as NSString,
                                            pct(i8top1, labelled), pct(agree, seen)))
                    progress.note(int8Notes.last!)
                }
                let row = ResultRow(bits: bits, method: method.rawValue, top1: pct(top1, labelled), top5: pct(top5, labelled),
                                    agreement: ReportMetrics.agreement(floatTop1: floatTop1, quantizedTop1: qTop1),
                                    sizeBytes: modelSizeBytes(model: q, graph: qGraph), calibrationSeconds: calSeconds)
                results.append(row)
                let db = sq.decibels
                for (layer, _) in sim.layerOutputs {
                    let v = db[layer].flatMap { $0.isNaN ? nil : $0 }
                    layers.append(LayerRow(name: layer, bits: bits, method: method.rawValue, sqnrDB: v, op: ops[layer]))
                }
                progress.note(String(format: "%@: top-1 %.2f %% (float %.2f %%), agreement %.1f %%, calibration+search %.1f s",
                                     setting as NSString, row.top1 ?? 0, floatAcc.top1, row.agreement ?? 0, calSeconds))
            }
        }

        var pre: [String: ReportValue] = [
            "size": .int(spec.size), "crop_pct": .double(spec.cropPct), "interpolation": .string(spec.interpolation.rawValue),
            "mean": .array(spec.mean.map { .double(Double("\($0)") ?? Double($0)) }),
            "std": .array(spec.std.map { .double(Double("\($0)") ?? Double($0)) }),
        ]
        if let p = c.preset { pre["preset"] = .string(p) }
        var meta = ReportMetadata(toolVersion: c.toolVersion, modelPath: c.modelPath, preprocessing: pre,
                                  calibrationImages: cal.count, calibrationSeed: c.seed,
                                  calibrationFolder: c.calibrationFolder, evaluationImages: n, evaluationFolder: c.dataFolder)
        if excluded > 0 {
            meta.notes.append("The \(excluded) calibration images drawn from the evaluation folder were left out of the evaluation.")
        }
        meta.notes.append("Per-layer SQNR measured on the first \(min(c.sqnrImages, n)) evaluation images: each layer's output in the fake-quant simulation against the float model's, so errors of earlier layers are included.")
        if c.searchTokens != nil || c.searchImages != nil {
            meta.notes.append("Searches shortened: activation candidates scored on \(c.searchTokens.map { "\($0) sampled token rows" } ?? "all token rows"), attention searches on \(c.searchImages.map { "\($0)" } ?? "all") calibration images.")
        }
        meta.notes.append(c.zeroPoints == .dataCentred
            ? "Zero-point candidates of the uniform searches: data-centred (not the AdaLog reference's mid-range window; `--zero-points mid-range` reproduces it)."
            : "Zero-point candidates of the uniform searches: mid-range, as in the AdaLog reference.")
        meta.notes += int8Notes
        meta.notes.append("Model size: quantized weights at their bit width plus 4 bytes per scale and zero point, other constants as float32; activation quantizer parameters not counted.")
        let name = URL(fileURLWithPath: c.modelPath).deletingPathExtension().lastPathComponent
        return QuantReport(model: name, float: floatAcc, results: results, layers: layers, metadata: meta)
    }

    /// Indices of the k largest values, largest first (ties: lower index first).
    static func topKIndices(_ v: ArraySlice<Float>, _ k: Int) -> [Int] {
        let base = v.startIndex
        return Array(v.indices.sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }.prefix(k).map { $0 - base })
    }
}
