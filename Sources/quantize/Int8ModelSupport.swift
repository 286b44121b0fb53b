import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import Quant
import QModelExport
import Int8Runtime

/// True when `path` names an integer model file.
func isQModel(_ path: String) -> Bool { path.lowercased().hasSuffix(".qmodel") }

/// An integer model loaded for classification: the runtime session plus the preprocessing from its header.
final class Int8Classifier {
    let model: QModel
    let session: Session
    let spec: PreprocessSpec
    let size: Int

    init(path: String, batch: Int, threads: Int = 2, preset: String? = nil, limits: ResourceLimits = .default) throws {
        model = try QModelFile.load(path: path, maxFileSize: limits.maxBytes)
        session = try Session(model: model, batch: batch, threads: threads, maxMemoryBytes: limits.maxBytes)
        if let preset { spec = try PreprocessSpec.preset(named: preset) }
        else if let p = model.preprocessing {
            guard let interp = Interpolation(rawValue: p.interpolation) else {
                throw ValidationError("'\(path)': unknown interpolation '\(p.interpolation)' in the header; pass --preset")
            }
            spec = PreprocessSpec(size: p.size, cropPct: p.cropPct, interpolation: interp, mean: p.mean, std: p.std)
        } else {
            throw ValidationError("'\(path)' carries no preprocessing; pass --preset")
        }
        let s = session.inputShape
        guard s.count == 3, s[0] == spec.size, s[1] == spec.size, s[2] == 3 else {
            throw ValidationError("preprocessing size \(spec.size) does not fit the model input \(s) (NHWC)")
        }
        size = spec.size
    }

    /// Logits of `n` images given as NCHW floats (the preprocessing's layout), row-major [n, classes].
    func run(nchw x: [Float], n: Int) throws -> [Float] {
        let hw = size * size
        let dst = session.inputBuffer
        for b in 0..<n {
            for c in 0..<3 { for i in 0..<hw { dst[(b * hw + i) * 3 + c] = x[(b * 3 + c) * hw + i] } }
        }
        try session.execute(samples: n)
        let classes = session.outputShapes[0].reduce(1, *)
        return Array(UnsafeBufferPointer(start: session.outputBuffer(0), count: n * classes))
    }
}

/// Class names for the header of an exported model: ImageNet's for 1000 outputs, or the calibration
/// folder's classes when they match the output count.
func exportClassNames(outputs: Int, calibrationFolder: String?) -> [String] {
    if let n = classNames(count: outputs) { return n }
    if let f = calibrationFolder, let ds = try? ImageDataset.open(f, labels: nil), ds.classNames.count == outputs { return ds.classNames }
    return []
}

/// Converts `q` (quantized from `onnx`) and writes it to `path`; prints the conversion notes on stderr.
func writeInt8Model(_ q: QuantizedModel, onnx: ONNXModel, to path: String, classNames: [String]) throws -> QModel {
    let g = try QModelExporter.prepare(onnx.graph, for: q)
    let r = try QModelExporter.export(q, graph: g, name: URL(fileURLWithPath: q.sourceModel).deletingPathExtension().lastPathComponent
                                        + "-" + q.plan.options.bits.description, classNames: classNames)
    for n in r.notes { FileHandle.standardError.write("note: \(n)\n".data(using: .utf8)!) }
    try QModelFile.write(r.model, to: path)
    return r.model
}

/// `quantize export X.json -o X.qmodel`: converts a saved quantization to the integer model format.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a quantized model (.json from `quantize MODEL.onnx … -o X.json`) to an int8 model (.qmodel).",
        discussion: """
            Example: quantize export vit-w8a8.json -o vit-w8a8.qmodel
            The source ONNX file recorded in the JSON is read again (its SHA-256 is checked). The .qmodel holds the
            integer network, the preprocessing and the class names; run it with quantize infer/eval/bench or qmodel-run.
            """)

    @Argument(help: "Quantized model JSON.") var quantized: String
    @Option(name: [.short, .customLong("output")], help: "Output .qmodel file.") var output: String
    @Option(help: "Class-name source: an ImageFolder whose classes match the outputs (default: ImageNet names for 1000 outputs).")
    var classesFrom: String?
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        guard isQModel(output) else { throw ValidationError("--output must end in .qmodel") }
        let q = try QuantizedModel.load(from: quantized)
        let m = try ONNXModel(contentsOf: q.sourceModel, limits: resources.limits)
        if try sha256Hex(ofFileAt: q.sourceModel) != q.sourceSHA256 {
            throw ValidationError("'\(q.sourceModel)' changed since quantization (SHA-256 differs); quantize it again")
        }
        let outputs = m.graph.outputs.first?.dims?.last.flatMap { if case let .fixed(n) = $0 { n } else { nil } } ?? 0
        let model = try writeInt8Model(q, onnx: m, to: output, classNames: exportClassNames(outputs: outputs, calibrationFolder: classesFrom))
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print("\(output): \(model.ops.count) ops, \(size) bytes")
    }
}
