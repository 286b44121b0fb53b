import ArgumentParser
import Foundation
import ONNXGraph

/// `quantize inspect MODEL [--json]`: what the model is and whether the suite can run it.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's inputs, outputs, ops, parameters and recognised patterns.")

    @Argument(help: "ONNX model file.") var model: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
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
            print(String(format: "  %-24@ %5d", k as NSString, v))
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
