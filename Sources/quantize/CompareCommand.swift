import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import FloatEngine
import Quant
import Int8Runtime
import ReportRunner

/// `quantize compare X.qmodel --simulation X.json --data DIR`: where the integer runtime departs from the
/// fake-quant simulation, op by op.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare an int8 model's intermediate tensors with the fake-quant simulation it was exported from, op by op.",
        discussion: """
            Example: quantize compare vit-w8a8.qmodel --simulation vit-w8a8.json --data imagenet-sample --limit 4
            Both run the same images. Every runtime tensor whose ONNX name the simulation also produces is compared:
            float tensors by SQNR (dB, the simulation as reference) and max |difference|; quantized tensors by the
            share of codes that differ from the runtime quantizer applied to the simulation's float tensor (and the
            mean |code difference|). Errors compound along the network, so the first op that departs is the one to
            look at. The calibration images are left out as in `quantize eval`.
            """)

    @Argument(help: "Int8 model (.qmodel).") var model: String
    @Option(help: "The quantized JSON the model was exported from.") var simulation: String
    @Option(help: "Image folder (or flat files with --labels).") var data: String
    @Option(help: "Labels file, as the dataset reader accepts (only used to open flat folders).") var labels: String?
    @Option(help: "Number of images.") var limit: Int = 4
    @Flag(help: "Print JSON (one object per compared tensor).") var json = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        guard isQModel(model) else { throw ValidationError("'\(model)' is not a .qmodel file") }
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        var ds = try ImageDataset.open(data, labels: labels)
        let q = try QuantizedModel.load(from: simulation)
        _ = leaveOut(q.calibrationFiles, from: &ds)
        let n = min(limit, ds.count)
        guard n > 0 else { throw ValidationError("no images in '\(data)'") }
        let c = try Int8Classifier(path: model, batch: 1, limits: resources.limits)
        let m = try ONNXModel(contentsOf: q.sourceModel, limits: resources.limits)
        var g = try m.graph.specialized(batch: 1, limits: resources.limits)
        if q.foldedBatchNorms { g = try g.foldingBatchNorms() }
        let cmp = RuntimeComparison(simulation: try QuantSimulator(model: q, graph: g, options: SessionOptions(fuse: false)), session: c.session)
        let progress = ProgressLine(enabled: !json)
        let hw = c.size * c.size
        for i in 0..<n {
            let (x, _) = try ds.batch(i..<(i + 1), spec: c.spec)
            var nhwc = [Float](repeating: 0, count: x.count)
            for ch in 0..<3 { for p in 0..<hw { nhwc[p * 3 + ch] = x[ch * hw + p] } }
            try cmp.add(nchw: x, nhwc: nhwc)
            progress.show("compare \(i + 1)/\(n)")
        }
        progress.finish()
        let list = cmp.results
        if list.isEmpty { throw ValidationError("no runtime tensor matched a simulation tensor by name; was '\(model)' exported from '\(simulation)'?") }
        func db(_ r: RuntimeComparison.Row) -> Double { r.sqnrDB.isFinite ? r.sqnrDB : 999 }
        if json {
            for r in list {
                var o: [String: Any] = ["op": r.op, "kind": r.kind, "tensor": r.tensor, "dtype": r.dtype, "sqnrDB": db(r), "maxAbsDiff": r.maxAbsDifference]
                if r.quantized { o["codeMismatchPercent"] = r.codeMismatchPercent; o["meanAbsCodeDiff"] = r.meanAbsCodeDifference }
                let d = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            }
        } else {
            print("int8 runtime vs simulation over \(n) image(s); \(list.count) tensors matched by name (SQNR 999 = identical)")
            print("dtype    op                   SQNR dB     max|Δ|  codes≠ %  |Δcode|  tensor")
            for r in list {
                let codes = r.quantized ? String(format: "%9.3f %8.4f", r.codeMismatchPercent, r.meanAbsCodeDifference) : String(repeating: " ", count: 18)
                print("\(padded(r.dtype, 8)) \(padded(r.kind, 18)) \(String(format: "%9.2f %10.4g", db(r), r.maxAbsDifference)) \(codes)  \(r.tensor)")
            }
        }
    }
}
