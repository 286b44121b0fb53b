import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import FloatEngine
import Quant
import Int8Kernels
import Int8Runtime

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

    struct Row {
        var op: String, kind: String, tensor: String, dtype: String
        var errSq = 0.0, refSq = 0.0, maxDiff = 0.0, count = 0
        var codeMismatch = 0, codeAbsDiff = 0
        var quantized: Bool
    }

    func run() throws {
        guard isQModel(model) else { throw ValidationError("'\(model)' is not a .qmodel file") }
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        var ds = try ImageDataset.open(data, labels: labels)
        let q = try QuantizedModel.load(from: simulation)
        _ = leaveOut(q.calibrationFiles, from: &ds)
        let n = min(limit, ds.count)
        guard n > 0 else { throw ValidationError("no images in '\(data)'") }
        let c = try Int8Classifier(path: model, batch: 1)
        let m = try ONNXModel(contentsOf: q.sourceModel)
        var g = try m.graph.specialized(batch: 1)
        if q.foldedBatchNorms { g = try g.foldingBatchNorms() }
        let sim = try QuantSimulator(model: q, graph: g, options: SessionOptions(fuse: false))
        var simValues: [String: (shape: [Int], values: [Float])] = [:]
        sim.session.observer = { o in simValues[o.name] = (o.shape, Array(o.values)) }
        var rows: [String: Row] = [:]
        var order: [String] = []
        var current: [String: (shape: [Int], values: [Float])] = [:]
        c.session.observer = { op, t, data, _ in
            let base = String(t.name.split(separator: "#").first ?? "").components(separatedBy: "::").first ?? t.name
            guard let ref = current[base], ref.values.count == t.elementCount else { return }
            let refValues = Compare.toRuntimeLayout(ref.values, simShape: ref.shape, runtimeShape: t.shape)
            if rows[t.name] == nil {
                order.append(t.name)
                rows[t.name] = Row(op: op.name, kind: op.kind, tensor: t.name, dtype: t.dtype.rawValue, quantized: t.quantizer != nil && t.dtype != .float32)
            }
            Compare.accumulate(&rows[t.name]!, t, data, refValues)
        }
        let progress = ProgressLine(enabled: !json)
        for i in 0..<n {
            let (x, _) = try ds.batch(i..<(i + 1), spec: c.spec)
            simValues = [:]
            _ = try sim.session.run(x)
            current = simValues
            _ = try c.run(nchw: x, n: 1)
            progress.show("compare \(i + 1)/\(n)")
        }
        progress.finish()
        let list = order.map { rows[$0]! }
        if list.isEmpty { throw ValidationError("no runtime tensor matched a simulation tensor by name; was '\(model)' exported from '\(simulation)'?") }
        if json {
            for r in list {
                var o: [String: Any] = ["op": r.op, "kind": r.kind, "tensor": r.tensor, "dtype": r.dtype, "sqnrDB": sqnr(r), "maxAbsDiff": r.maxDiff]
                if r.quantized { o["codeMismatchPercent"] = 100 * Double(r.codeMismatch) / Double(max(r.count, 1)); o["meanAbsCodeDiff"] = Double(r.codeAbsDiff) / Double(max(r.count, 1)) }
                let d = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            }
        } else {
            print("int8 runtime vs simulation over \(n) image(s); \(list.count) tensors matched by name")
            print(String(format: "%-10@ %-18@ %9@ %10@ %9@ %8@  %@", "dtype" as NSString, "op" as NSString, "SQNR dB" as NSString, "max|Δ|" as NSString,
                         "codes≠ %" as NSString, "|Δcode|" as NSString, "tensor" as NSString))
            for r in list {
                let codes = r.quantized ? String(format: "%9.3f %8.4f", 100 * Double(r.codeMismatch) / Double(max(r.count, 1)), Double(r.codeAbsDiff) / Double(max(r.count, 1))) : String(repeating: " ", count: 18)
                print(String(format: "%-10@ %-18@ %9.2f %10.4g %@  %@", r.dtype as NSString, r.kind as NSString, sqnr(r), r.maxDiff, codes, r.tensor as NSString))
            }
        }
    }

    func sqnr(_ r: Row) -> Double { r.errSq == 0 ? 999 : 10 * log10(r.refSq / r.errSq) }

    /// NCHW simulation tensors → the runtime's NHWC when the runtime tensor is [H, W, C].
    static func toRuntimeLayout(_ v: [Float], simShape: [Int], runtimeShape: [Int]) -> [Float] {
        guard simShape.count == 4, runtimeShape.count == 3, simShape[1] == runtimeShape[2], simShape[2] == runtimeShape[0], simShape[3] == runtimeShape[1] else { return v }
        let ch = simShape[1], hw = simShape[2] * simShape[3]
        var out = [Float](repeating: 0, count: v.count)
        for cc in 0..<ch { for p in 0..<hw { out[p * ch + cc] = v[cc * hw + p] } }
        return out
    }

    /// Adds one sample's comparison. Quantized runtime tensors are compared in codes against the runtime's own
    /// quantizer applied to the simulation's float values, and in real values against that quantization.
    static func accumulate(_ r: inout Row, _ t: TensorInfo, _ data: UnsafeRawPointer, _ ref: [Float]) {
        let count = t.elementCount
        var rt = [Float](repeating: 0, count: count), want = ref
        var rtCode = [Int](repeating: 0, count: count), wantCode = [Int](repeating: 0, count: count)
        switch (t.dtype, t.quantizer) {
        case (.float32, _):
            let p = data.assumingMemoryBound(to: Float.self)
            for i in 0..<count { rt[i] = p[i] }
        case let (.uint8, .uniform(u)?), let (.int8, .uniform(u)?):
            let top = (1 << u.bits) - 1, z = Int(u.zeroPoint)
            for i in 0..<count {
                let stored = t.dtype == .uint8 ? Int(data.load(fromByteOffset: i, as: UInt8.self)) : Int(data.load(fromByteOffset: i, as: Int8.self)) + z
                rtCode[i] = stored
                let w = min(top, max(0, Int((ref[i] / u.scale).rounded(.toNearestOrEven)) + z))
                wantCode[i] = w
                rt[i] = Float(stored - z) * u.scale; want[i] = Float(w - z) * u.scale
            }
        case let (.code, .adaLog(a)?):
            guard let table = try? AdaLogTable(q: a.q, bits: a.bits, r: a.r) else { return }
            let tau = table.thresholds(scale: Double(a.scale))
            for i in 0..<count {
                let code = Int(data.load(fromByteOffset: i, as: UInt8.self))
                let v = ref[i] + a.shift
                var k = 0
                while k < tau.count, v < tau[k] { k += 1 }
                // 8-bit: code 255 and the zero state share a byte (both worth 0)
                let w = min(k, a.bits == 8 ? table.zeroCode - 1 : table.zeroCode)
                rtCode[i] = code; wantCode[i] = w
                rt[i] = Float(table.value(code: code, scale: Double(a.scale))); want[i] = Float(table.value(code: w, scale: Double(a.scale)))
            }
        default:
            return
        }
        for i in 0..<count {
            let d = Double(rt[i] - want[i])
            r.errSq += d * d; r.refSq += Double(want[i]) * Double(want[i]); r.maxDiff = max(r.maxDiff, abs(d))
            if t.dtype != .float32 { if rtCode[i] != wantCode[i] { r.codeMismatch += 1 }; r.codeAbsDiff += abs(rtCode[i] - wantCode[i]) }
        }
        r.count += count
    }
}
