import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import FloatEngine
import Quant

/// `quantize eval MODEL --data DIR`: float top-1/top-5 accuracy over a labelled image set.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top-1/top-5 accuracy of a float model (.onnx), a quantized one (.json, fake-quant simulation) or an int8 model (.qmodel).",
        discussion: """
            Example: quantize eval vit_tiny_patch16_224.onnx --data imagenet-sample --labels imagenet-synsets.txt --preset vit
            Quantized: quantize eval vit-w4a4.json --data imagenet-sample --labels imagenet-synsets.txt
            (the preprocessing recorded in the JSON is used, and the calibration images are left out unless
            --include-calibration). JSON keys: model, images, top1, top5 (percent), seconds; for quantized models
            also floatTop1, floatTop5, agreement (top-1 agreement with float, percent) and layerSQNR (dB).
            Int8: quantize eval vit-w8a8.qmodel --data DIR --labels L --simulation vit-w8a8.json runs the integer model
            and the JSON's simulation side by side (keys simulationTop1, simulationAgreement, maxLogitDifference).
            """)

    @Argument(help: "ONNX model file, the JSON written by `quantize MODEL.onnx … -o OUT.json`, or an int8 .qmodel.") var model: String
    @Option(help: "Int8 models: also run this quantized JSON's fake-quant simulation on the same images and report agreement (its calibration images are left out).")
    var simulation: String?
    @Flag(help: ArgumentHelp("Int8 models with --simulation: also run the simulation a second time, unfused and on inputs scaled by (1 + 1e-6), and report how often the two simulations agree (keys simulationFloorAgreement, perturbedSimulationTop1).",
                              discussion: "A quantized network is a step function, so float rounding alone changes some predictions: this floor is the agreement any implementation that is not bit-identical to the simulation can expect."))
    var floor = false
    @Option(help: "Quantized models: images used for per-layer SQNR (the first N evaluated).") var sqnrImages: Int = 16
    @Flag(help: "Quantized models: also evaluate the calibration images.") var includeCalibration = false
    @Option(help: "Image folder (ImageFolder layout, or flat files named by synset with --labels).") var data: String
    @Option(help: "Labels file (synset list or class names), as the dataset reader accepts.") var labels: String?
    @Option(help: "Preprocessing preset (vit, imagenet, cifar10, efficientnet-lite0). Default: by input size.") var preset: String?
    @Option(help: "Evaluate only the first N images.") var limit: Int?
    @Option(help: "Images per model run.") var batch: Int = 8
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if model.lowercased().hasSuffix(".json") { return try runQuantized() }
        if isQModel(model) { return try runInt8() }
        let m = try ONNXModel(contentsOf: model, limits: resources.limits)
        let spec = try preprocessSpec(preset: preset, graph: m.graph)
        let ds = try ImageDataset.open(data, labels: labels)
        guard ds.isLabelled else { throw ValidationError("'\(data)' has no labels: use an ImageFolder layout or pass --labels") }
        let n = min(limit ?? ds.count, ds.count)
        guard n > 0 else { throw ValidationError("no images to evaluate in '\(data)'") }
        let b = min(batch, n)
        let session = try FloatSession(graph: m.graph, batch: b, limits: resources.limits)
        let per = 3 * spec.size * spec.size
        guard let inSpec = session.graph.inputs.first, elementCount(inSpec.shape) == b * per else {
            throw ValidationError("preset size \(spec.size) does not fit the model input \(session.graph.inputs.first?.shape ?? [])")
        }
        let start = Date()
        var top1 = 0, top5 = 0, counted = 0
        var i = 0
        var lastReport = Date.distantPast
        while i < n {
            let r = i..<min(i + b, n)
            var (x, labs) = try ds.batch(r, spec: spec)
            if r.count < b { x += [Float](repeating: 0, count: (b - r.count) * per) }
            let logits = try session.run(x)
            let classes = logits.count / b
            for (k, label) in labs.enumerated() {
                guard let label else { continue }
                let row = Array(logits[(k * classes)..<((k + 1) * classes)])
                let t = topK(row, 5)
                if t.first == label { top1 += 1 }
                if t.contains(label) { top5 += 1 }
                counted += 1
            }
            i = r.upperBound
            let el = Date().timeIntervalSince(start)
            if Date().timeIntervalSince(lastReport) < 1 && i < n { continue }
            lastReport = Date()
            FileHandle.standardError.write(String(format: "\reval %d/%d  top1 %.1f%%  top5 %.1f%%  %.1f s", i, n,
                                                  Double(top1) * 100 / Double(max(counted, 1)), Double(top5) * 100 / Double(max(counted, 1)), el).data(using: .utf8)!)
        }
        FileHandle.standardError.write("\n".data(using: .utf8)!)
        let secs = Date().timeIntervalSince(start)
        let t1 = Double(top1) * 100 / Double(max(counted, 1)), t5 = Double(top5) * 100 / Double(max(counted, 1))
        if json {
            let obj: [String: Any] = ["model": model, "images": counted, "top1": t1, "top5": t5, "seconds": secs]
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print(String(format: "%@: %d images, top-1 %.2f %%, top-5 %.2f %% (%.1f s)", model as NSString, counted, t1, t5, secs))
        }
    }
}

extension Eval {
    /// Evaluates a quantized model (fake-quant simulation) next to its float source on the same images.
    func runQuantized() throws {
        let q = try QuantizedModel.load(from: model)
        let m = try ONNXModel(contentsOf: q.sourceModel, limits: resources.limits)
        let hash = try sha256Hex(ofFileAt: q.sourceModel)
        if hash != q.sourceSHA256 {
            FileHandle.standardError.write("warning: '\(q.sourceModel)' changed since quantization (SHA-256 differs)\n".data(using: .utf8)!)
        }
        let spec = preset != nil ? try preprocessSpec(preset: preset, graph: m.graph) : q.preprocessing
        var ds = try ImageDataset.open(data, labels: labels)
        guard ds.isLabelled else { throw ValidationError("'\(data)' has no labels: use an ImageFolder layout or pass --labels") }
        var excluded = 0
        if !includeCalibration { excluded = leaveOut(q.calibrationFiles, from: &ds) }
        let n = min(limit ?? ds.count, ds.count)
        guard n > 0 else { throw ValidationError("no images to evaluate in '\(data)'") }
        let b = min(batch, n)
        var g = try m.graph.specialized(batch: b, limits: resources.limits)
        if q.foldedBatchNorms { g = try g.foldingBatchNorms() }
        let floatSession = try FloatSession(staticGraph: g)
        let sim = try QuantSimulator(model: q, graph: g)
        let per = 3 * spec.size * spec.size
        guard let inSpec = g.inputs.first, elementCount(inSpec.shape) == b * per else {
            throw ValidationError("preprocessing size \(spec.size) does not fit the model input \(g.inputs.first?.shape ?? [])")
        }
        let outputs = Dictionary(sim.layerOutputs.map { ($0.tensor, $0.layer) }, uniquingKeysWith: { a, _ in a })
        var sq = LayerSQNRAccumulator()
        var reference: [String: [Float]] = [:]
        let start = Date()
        var top1 = 0, top5 = 0, ftop1 = 0, ftop5 = 0, agree = 0, counted = 0
        var i = 0
        let progress = ProgressLine(enabled: true)
        while i < n {
            let r = i..<min(i + b, n)
            var (x, labs) = try ds.batch(r, spec: spec)
            if r.count < b { x += [Float](repeating: 0, count: (b - r.count) * per) }
            let measure = i < sqnrImages
            reference = [:]
            floatSession.observer = measure ? { o in
                if outputs[o.name] != nil { reference[o.name] = Array(o.values) }
            } : nil
            sim.session.observer = measure ? { o in
                guard let layer = outputs[o.name], let ref = reference[o.name] else { return }
                let keep = r.count * (o.values.count / b)
                ref.withUnsafeBufferPointer { rp in
                    sq.add(layer: layer, reference: UnsafeBufferPointer(rebasing: rp[0..<keep]),
                           test: UnsafeBufferPointer(rebasing: o.values[0..<keep]))
                }
            } : nil
            let fl = try floatSession.run(x)
            let ql = try sim.session.run(x)
            let classes = ql.count / b
            for (k, label) in labs.enumerated() {
                let qrow = Array(ql[(k * classes)..<((k + 1) * classes)])
                let frow = Array(fl[(k * classes)..<((k + 1) * classes)])
                let qt = topK(qrow, 5), ft = topK(frow, 5)
                if qt.first == ft.first { agree += 1 }
                guard let label else { continue }
                if qt.first == label { top1 += 1 }
                if qt.contains(label) { top5 += 1 }
                if ft.first == label { ftop1 += 1 }
                if ft.contains(label) { ftop5 += 1 }
                counted += 1
            }
            i = r.upperBound
            progress.show(String(format: "eval %d/%d  top1 %.1f%% (float %.1f%%)", i, n,
                                 Double(top1) * 100 / Double(max(counted, 1)), Double(ftop1) * 100 / Double(max(counted, 1))))
        }
        progress.finish()
        let secs = Date().timeIntervalSince(start)
        func pct(_ v: Int, _ d: Int) -> Double { Double(v) * 100 / Double(max(d, 1)) }
        let db = sq.decibels
        let layers = sim.layerOutputs.map(\.layer).filter { db[$0] != nil }
        if json {
            let obj: [String: Any] = [
                "model": model, "source": q.sourceModel, "method": q.method.rawValue, "bits": q.plan.options.bits.description,
                "images": counted, "excludedCalibrationImages": excluded,
                "top1": pct(top1, counted), "top5": pct(top5, counted),
                "floatTop1": pct(ftop1, counted), "floatTop5": pct(ftop5, counted), "agreement": pct(agree, n),
                "sqnrImages": min(sqnrImages, n), "seconds": secs,
                "layerSQNR": layers.map { ["layer": $0, "dB": db[$0]!.isFinite ? db[$0]! : 999] },
            ]
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print(String(format: "%@ (%@ %@): %d images (%d calibration images left out), top-1 %.2f %%, top-5 %.2f %% | float top-1 %.2f %%, top-5 %.2f %% | top-1 agreement %.2f %% (%.1f s)",
                         model as NSString, q.method.rawValue as NSString, q.plan.options.bits.description as NSString, counted, excluded,
                         pct(top1, counted), pct(top5, counted), pct(ftop1, counted), pct(ftop5, counted), pct(agree, n), secs))
            let worst = layers.sorted { db[$0]! < db[$1]! }.prefix(8)
            print("lowest per-layer output SQNR (dB, first \(min(sqnrImages, n)) images): " +
                  worst.map { String(format: "%@ %.1f", $0 as NSString, db[$0]!) }.joined(separator: ", "))
        }
    }
}

extension Eval {
    /// Evaluates an int8 model on the integer runtime, optionally next to the fake-quant simulation it came from.
    func runInt8() throws {
        var ds = try ImageDataset.open(data, labels: labels)
        guard ds.isLabelled else { throw ValidationError("'\(data)' has no labels: use an ImageFolder layout or pass --labels") }
        var sim: QuantSimulator? = nil
        var perturbed: QuantSimulator? = nil
        var excluded = 0
        let q = try simulation.map { try QuantizedModel.load(from: $0) }
        if let q, !includeCalibration { excluded = leaveOut(q.calibrationFiles, from: &ds) }
        let n = min(limit ?? ds.count, ds.count)
        guard n > 0 else { throw ValidationError("no images to evaluate in '\(data)'") }
        let b = min(batch, n)
        let c = try Int8Classifier(path: model, batch: b, preset: preset, limits: resources.limits)
        if let q {
            let m = try ONNXModel(contentsOf: q.sourceModel, limits: resources.limits)
            var g = try m.graph.specialized(batch: b, limits: resources.limits)
            if q.foldedBatchNorms { g = try g.foldingBatchNorms() }
            sim = try QuantSimulator(model: q, graph: g)
            if floor { perturbed = try QuantSimulator(model: q, graph: g, options: SessionOptions(fuse: false)) }
        } else if floor {
            throw ValidationError("--floor needs --simulation")
        }
        let per = 3 * c.size * c.size
        let start = Date()
        var top1 = 0, top5 = 0, stop1 = 0, ptop1 = 0, agree = 0, floorAgree = 0, counted = 0, seen = 0
        var maxDiff = 0.0, maxLogit = 0.0
        var i = 0
        let progress = ProgressLine(enabled: true)
        while i < n {
            let r = i..<min(i + b, n)
            var (x, labs) = try ds.batch(r, spec: c.spec)
            if r.count < b { x += [Float](repeating: 0, count: (b - r.count) * per) }
            let il = try c.run(nchw: x, n: b)
            let sl = try sim?.session.run(x)
            let pl = try perturbed?.session.run(x.map { $0 * (1 + 1e-6) })
            let classes = il.count / b
            for (k, label) in labs.enumerated() {
                let row = Array(il[(k * classes)..<((k + 1) * classes)])
                let t = topK(row, 5)
                if let sl {
                    let srow = Array(sl[(k * classes)..<((k + 1) * classes)])
                    if topK(srow, 1).first == t.first { agree += 1 }
                    for j in 0..<classes { maxDiff = max(maxDiff, Double(abs(row[j] - srow[j]))); maxLogit = max(maxLogit, Double(abs(srow[j]))) }
                    if let label, topK(srow, 1).first == label { stop1 += 1 }
                    if let pl {
                        let p1 = topK(Array(pl[(k * classes)..<((k + 1) * classes)]), 1).first
                        if p1 == topK(srow, 1).first { floorAgree += 1 }
                        if let label, p1 == label { ptop1 += 1 }
                    }
                }
                seen += 1
                guard let label else { continue }
                if t.first == label { top1 += 1 }
                if t.contains(label) { top5 += 1 }
                counted += 1
            }
            i = r.upperBound
            progress.show(String(format: "eval %d/%d  int8 top1 %.1f%%", i, n, Double(top1) * 100 / Double(max(counted, 1))))
        }
        progress.finish()
        let secs = Date().timeIntervalSince(start)
        func pct(_ v: Int, _ d: Int) -> Double { Double(v) * 100 / Double(max(d, 1)) }
        if json {
            var obj: [String: Any] = ["model": model, "images": counted, "top1": pct(top1, counted), "top5": pct(top5, counted), "seconds": secs,
                                      "excludedCalibrationImages": excluded]
            if sim != nil {
                obj["simulation"] = simulation!
                obj["simulationTop1"] = pct(stop1, counted)
                obj["simulationAgreement"] = pct(agree, seen)
                obj["maxLogitDifference"] = maxDiff
                obj["maxAbsLogit"] = maxLogit
                if perturbed != nil { obj["simulationFloorAgreement"] = pct(floorAgree, seen); obj["perturbedSimulationTop1"] = pct(ptop1, counted) }
            }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            var line = String(format: "%@ (int8): %d images, top-1 %.2f %%, top-5 %.2f %%", model as NSString, counted, pct(top1, counted), pct(top5, counted))
            if sim != nil {
                line += String(format: " | simulation top-1 %.2f %% | int8 vs simulation top-1 agreement %.2f %%, max |logit difference| %.4f (max |logit| %.2f)",
                               pct(stop1, counted), pct(agree, seen), maxDiff, maxLogit)
                if perturbed != nil {
                    line += String(format: " | floor: perturbed simulation top-1 %.2f %%, agreement with the simulation %.2f %%", pct(ptop1, counted), pct(floorAgree, seen))
                }
            }
            if excluded > 0 { line += " | \(excluded) calibration images left out" }
            print(line + String(format: " (%.1f s)", secs))
        }
    }
}

/// Removes the calibration images from an evaluation dataset (paths compared after standardizing); returns how many.
func leaveOut(_ calibrationFiles: [String], from ds: inout ImageDataset) -> Int {
    let cal = Set(calibrationFiles.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
    let kept = ds.items.filter { !cal.contains(URL(fileURLWithPath: $0.path).standardizedFileURL.path) }
    let removed = ds.count - kept.count
    ds = ImageDataset(root: ds.root, layout: ds.layout, items: kept, classNames: ds.classNames)
    return removed
}
