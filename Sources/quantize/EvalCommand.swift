import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import FloatEngine

/// `quantize eval MODEL --data DIR`: float top-1/top-5 accuracy over a labelled image set.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top-1/top-5 accuracy of the float model over a labelled image folder.",
        discussion: """
            Example: quantize eval vit_tiny_patch16_224.onnx --data imagenet-sample --labels imagenet-synsets.txt --preset vit
            JSON keys: model, images, top1, top5 (percent), seconds.
            """)

    @Argument(help: "ONNX model file.") var model: String
    @Option(help: "Image folder (ImageFolder layout, or flat files named by synset with --labels).") var data: String
    @Option(help: "Labels file (synset list or class names), as the dataset reader accepts.") var labels: String?
    @Option(help: "Preprocessing preset (vit, imagenet, cifar10, efficientnet-lite0). Default: by input size.") var preset: String?
    @Option(help: "Evaluate only the first N images.") var limit: Int?
    @Option(help: "Images per model run.") var batch: Int = 8
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        let m = try ONNXModel(contentsOf: model)
        let spec = try preprocessSpec(preset: preset, graph: m.graph)
        let ds = try ImageDataset.open(data, labels: labels)
        guard ds.isLabelled else { throw ValidationError("'\(data)' has no labels: use an ImageFolder layout or pass --labels") }
        let n = min(limit ?? ds.count, ds.count)
        guard n > 0 else { throw ValidationError("no images to evaluate in '\(data)'") }
        let b = min(batch, n)
        let session = try FloatSession(graph: m.graph, batch: b)
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
