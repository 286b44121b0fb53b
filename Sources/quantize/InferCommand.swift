import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import FloatEngine

/// `quantize infer MODEL IMAGE...`: float top-k predictions for image files.
struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model (.onnx float, .qmodel int8) on images and print the top-k classes.",
        discussion: """
            Example: quantize infer vit_tiny_patch16_224.onnx cat.jpg --preset vit --top 5
            Class names are ImageNet's when the model has 1000 outputs.
            """)

    @Argument(help: "ONNX model file, or an int8 model (.qmodel; its header's preprocessing and class names are used).") var model: String
    @Argument(help: "Image files (JPEG or PNG).") var images: [String]
    @Option(help: "Preprocessing preset (vit, imagenet, cifar10, efficientnet-lite0). Default: cifar10 for 32×32 inputs, else imagenet.")
    var preset: String?
    @Option(help: "How many classes to print per image.") var top: Int = 5
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Write the logits [images, classes] as float32 .npy.") var logitsOut: String?
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        let spec: PreprocessSpec
        let runOne: ([Float]) throws -> [Float]
        var headerNames: [String] = []
        if isQModel(model) {
            let c = try Int8Classifier(path: model, batch: 1, preset: preset, limits: resources.limits)
            spec = c.spec
            headerNames = c.model.classNames
            runOne = { x in try c.run(nchw: x, n: 1) }
        } else {
            let m = try ONNXModel(contentsOf: model, limits: resources.limits)
            spec = try preprocessSpec(preset: preset, graph: m.graph)
            let session = try FloatSession(graph: m.graph, batch: 1, limits: resources.limits)
            runOne = { x in try session.run(x) }
        }
        var all: [Float] = []
        var results: [[String: Any]] = []
        var classes = 0
        for path in images {
            let x = try Preprocessor.tensor(fileAt: path, spec: spec)
            let logits = try runOne(x)
            classes = logits.count
            all += logits
            let probs = softmax(logits)
            let order = topK(logits, top)
            let names = headerNames.count == logits.count ? headerNames : classNames(count: logits.count)
            if json {
                results.append(["image": path, "top": order.map { ["class": $0, "name": names?[$0] ?? String($0), "logit": Double(logits[$0]), "probability": Double(probs[$0])] }])
            } else {
                print(path)
                for c in order {
                    let name = names?[c] ?? ""
                    print(String(format: "  %5d  %6.2f%%  %@", c, probs[c] * 100, name as NSString))
                }
            }
        }
        if json {
            let d = try JSONSerialization.data(withJSONObject: ["model": model, "results": results], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        }
        if let out = logitsOut { try NPY.write(all, shape: [images.count, classes], to: out) }
    }
}

/// The preprocessing for a model: a named preset, or a guess from its input size.
func preprocessSpec(preset: String?, graph: Graph) throws -> PreprocessSpec {
    if let preset { return try PreprocessSpec.preset(named: preset) }
    if case .fixed(32)? = graph.inputs.first?.dims?.last { return try PreprocessSpec.preset(named: "cifar10") }
    return try PreprocessSpec.preset(named: "imagenet")
}

func classNames(count: Int) -> [String]? {
    count == 1000 && ImageNetClasses.names.count == 1000 ? ImageNetClasses.names : nil
}

func softmax(_ v: [Float]) -> [Float] {
    let m = v.max() ?? 0
    let e = v.map { expf($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

/// Indices of the k largest values, largest first (ties: lower index first).
func topK(_ v: [Float], _ k: Int) -> [Int] {
    Array(v.indices.sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }.prefix(k))
}
