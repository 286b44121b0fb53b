import ArgumentParser
import Foundation
import ONNXGraph
import Int8Runtime
import QModel

/// `quantize inspect MODEL [--json]`: what the model is and whether the suite can run it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's inputs, outputs, ops, parameters and recognised patterns (.onnx), or an int8 model's contents (.qmodel).",
        discussion: """
            An .onnx model: opset, inputs and outputs, op counts, parameters, the patterns the quantizer recognises, and any \
            unsupported op (exit code 2). A .qmodel: format version, preprocessing, classes, ops by kind, weight bits and \
            storage, activation quantizers, and the runtime's planned memory at batch 1.
            """)

    @Argument(help: "Model file: .onnx or .qmodel.") var model: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        if isQModel(model) { return try inspectInt8() }
        let m = try ONNXModel(contentsOf: model, limits: resources.limits)
        let g = m.graph
        let unsupported = g.unsupportedNodes
        var patterns: PatternSummary? = nil
        var specError: String? = nil
        if unsupported.isEmpty {
            do { patterns = PatternSummary(try ModelPatterns(graph: try g.specialized(batch: 1, limits: resources.limits))) }
            catch { specError = "\(error)" }
        }
        let hist = g.opHistogram
        if json {
            var obj: [String: Any] = [
                "model": model,
                "opset": g.opset,
                "producer": g.producer.trimmingCharacters(in: .whitespaces),
                "inputs": g.inputs.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.dims?.map(\.description) ?? []] },
                "outputs": g.outputs.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.dims?.map(\.description) ?? []] },
                "ops": hist,
                "nodes": g.nodes.count,
                "parameters": g.parameterCount,
                "unsupported": unsupported.map { ["node": $0.displayName, "op": $0.opType, "domain": $0.domain] },
            ]
            if let p = patterns { obj["patterns"] = p.dictionary }
            if let e = specError { obj["error"] = e }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
            return
        }
        print("model: \(model)")
        print("opset: \(g.opset)   producer: \(g.producer.trimmingCharacters(in: .whitespaces))   nodes: \(g.nodes.count)")
        for i in g.inputs { print("input:  \(i.name) \(i.dtype) \(i.shapeDescription)") }
        for o in g.outputs { print("output: \(o.name) \(o.dtype) \(o.shapeDescription)") }
        print("parameters: \(g.parameterCount)")
        print("ops:")
        for (k, v) in hist.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            print("  \(padded(k, 24)) \(String(format: "%5d", v))")
        }
        if let p = patterns {
            print("patterns (batch 1, after shape folding):")
            for (k, v) in p.lines { print("  \(k): \(v)") }
        }
        if unsupported.isEmpty && specError == nil {
            print("unsupported: none")
        } else {
            for n in unsupported { print("unsupported: node '\(n.displayName)' op \(n.opType) domain \(n.domain.isEmpty ? "ai.onnx" : n.domain)") }
            if let e = specError { print("cannot prepare: \(e)") }
            throw ExitCode(2)
        }
    }
}

extension Inspect {
    /// `.qmodel`: what the file holds, read through the validating loader and checked by preparing a session.
    func inspectInt8() throws {
        let limits = resources.limits
        let (m, version) = try QModelFile.loadWithVersion(path: model, maxFileSize: limits.maxBytes)
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? 0
        var kinds: [String: Int] = [:]
        for op in m.ops { kinds[op.kind, default: 0] += 1 }
        var weightForms: [String: Int] = [:]    // "8-bit int8" → layers
        var weightBytes = 0
        for op in m.ops {
            let w: WeightRef
            switch op {
            case let .conv2d(o): w = o.weight
            case let .linear(o), let .adaLogLinear(o): w = o.weight
            default: continue
            }
            let c = m.constant(w.weights)
            weightForms["\(w.bits)-bit \(c?.dtype.rawValue ?? "?")\(w.zeroPoints == nil ? "" : " + zero points")", default: 0] += 1
            weightBytes += c?.bytes.count ?? 0
        }
        var activations: [String: Int] = [:]
        for t in m.tensors {
            switch t.quantizer {
            case let .uniform(p)?: activations["uniform \(p.bits)-bit", default: 0] += 1
            case let .adaLog(p)?: activations["AdaLog \(p.bits)-bit", default: 0] += 1
            case nil: continue
            }
        }
        for op in m.ops {
            guard case let .attention(a) = op else { continue }
            switch a.probabilities {
            case let .uniform(p): activations["softmax uniform \(p.bits)-bit", default: 0] += 1
            case let .adaLog(p): activations["softmax AdaLog \(p.bits)-bit", default: 0] += 1
            }
        }
        // Preparing a session checks that the runtime can run the file, and gives its memory plan.
        let session = try Session(model: m, batch: 1, threads: 1, maxMemoryBytes: limits.maxBytes)
        let memory = session.arenaBytes + session.scratchBytes
        let io = { (names: [String]) in names.map { n in m.tensor(n).map { "\(n) \($0.dtype.rawValue) \($0.shape)" } ?? n } }
        if json {
            var obj: [String: Any] = [
                "model": model, "name": m.name, "format_version": version, "file_bytes": fileBytes,
                "inputs": io(m.inputs), "outputs": io(m.outputs), "ops": kinds, "op_count": m.ops.count,
                "tensors": m.tensors.count, "constants": m.constants.count, "weight_bytes": weightBytes,
                "weights": weightForms, "activation_quantizers": activations, "classes": m.classNames.count,
                "runtime_memory_bytes_batch1": memory,
            ]
            if let p = m.preprocessing {
                obj["preprocessing"] = ["size": p.size, "crop_pct": p.cropPct, "interpolation": p.interpolation,
                                        "mean": p.mean.map(Double.init), "std": p.std.map(Double.init), "layout": p.layout] as [String: Any]
            }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
            return
        }
        print("int8 model: \(model) (\(m.name)), format version \(version), \(fileBytes) bytes")
        for i in io(m.inputs) { print("input:  \(i)") }
        for o in io(m.outputs) { print("output: \(o)") }
        if let p = m.preprocessing {
            print("preprocessing: \(p.size)×\(p.size), crop \(p.cropPct), \(p.interpolation), mean \(p.mean), std \(p.std), \(p.layout)")
        } else {
            print("preprocessing: none stored (pass --preset to infer/eval)")
        }
        let shown = m.classNames.prefix(5).joined(separator: ", ")
        print("classes: \(m.classNames.count)\(m.classNames.isEmpty ? "" : " (\(shown)\(m.classNames.count > 5 ? ", …" : ""))")")
        print("ops: \(m.ops.count)")
        for (k, v) in kinds.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            print("  \(padded(k, 24)) \(String(format: "%5d", v))")
        }
        print("weights: \(weightBytes) bytes")
        for (k, v) in weightForms.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v) layers") }
        print("activation quantizers:")
        for (k, v) in activations.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
        print("runtime memory at batch 1: \(memory) bytes (activations and scratch, planned once)")
    }
}

struct PatternSummary {
    var lines: [(String, String)]
    var dictionary: [String: Any]
    init(_ p: ModelPatterns) {
        lines = [
            ("runtime nodes", "\(p.graph.nodes.count)"),
            ("linear layers", "\(p.linears.count)"),
            ("conv layers", "\(p.convs.count) (\(p.convs.filter { $0.groups > 1 }.count) grouped/depthwise)"),
            ("layer norms", "\(p.layerNorms.count) (\(p.layerNorms.filter { $0.fused }.count) fused op, \(p.layerNorms.filter { !$0.fused }.count) decomposed)"),
            ("GELUs", "\(p.gelus.count)"),
            ("attention blocks", "\(p.attentions.count)"),
            ("batch norms foldable into conv", "\(p.convBatchNorms.count)"),
            ("residual adds", "\(p.residualAdds.count)"),
        ]
        dictionary = [
            "runtime_nodes": p.graph.nodes.count, "linears": p.linears.count, "convs": p.convs.count,
            "layer_norms": p.layerNorms.count, "gelus": p.gelus.count, "attention_blocks": p.attentions.count,
            "conv_batchnorm": p.convBatchNorms.count, "residual_adds": p.residualAdds.count,
            "linear_layers": p.linears.map { l -> [String: Any] in
                var d: [String: Any] = ["node": l.node, "input": l.input, "output": l.output, "weight": l.weight,
                                        "in_features": l.inFeatures, "out_features": l.outFeatures]
                if let ln = p.layerNormBeforeLinear[l.node] { d["after_layernorm"] = ln }
                if let g = p.geluBeforeLinear[l.node] { d["after_gelu"] = g }
                return d
            },
            "attention": p.attentions.map { ["q": $0.q, "k_transposed": $0.kTransposed, "v": $0.v, "probabilities": $0.probabilities,
                                             "scale": Double($0.scale), "output": $0.output] as [String: Any] },
        ]
    }
}
