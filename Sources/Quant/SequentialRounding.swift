// `--weight-rounding gptq-seq` (not in the AdaLog reference): after every quantizer has been searched, the linear
// layers are re-rounded one at a time in graph order, each against what it will really see.
//
// The search calibrates every layer on float inputs. In the quantized model a layer's input carries the error of
// every layer before it plus its own input quantization. Here, for layer L with the layers before it already
// re-rounded, the simulation gives L's quantized input U (N tokens × K) and the float model gives L's float output Y.
// The weight that best maps U to Y is the least-squares w*_o = argmin ‖Y_o − b_o − U w‖², found through
// H = UᵀU as w* = w + H⁻¹(Uᵀ(Y − b) − H w) (ridge towards w with GPTQ's dampening λ: w* = (H + λI)⁻¹(Uᵀ(Y − b) + λ w)).
// GPTQ then rounds w* onto the layer's searched per-row grid with the same H, so rounding error is compensated
// too. The grids (scales and zero-points) and every activation quantizer stay as searched; only the weight codes
// change, so the exporter and the int8 runtime need nothing new.
//
// Layers with fewer than `minimumRowsPerInput` × K calibration rows (a ViT head sees one row per image) keep
// nearest rounding: the regression would fit the calibration images instead of the layer.
import Foundation
import ONNXGraph
import FloatEngine
import Calibration

enum SequentialRounding {
    static let minimumRowsPerInput = 4

    /// Re-rounds the weights of `model`'s quantized linear layers in graph order (see the file comment).
    /// `graph` is the prepared graph the model was searched on, specialised to the calibration batch.
    static func apply(_ model: inout QuantizedModel, graph: StaticGraph, patterns: ModelPatterns,
                      calibration: CalibrationSet, dampening: Float,
                      progress: ((PipelineProgress) -> Void)? = nil) throws {
        let corrected = Set((model.biasCorrections ?? []).map(\.layer))
        let layers = patterns.linears.filter { l in
            !corrected.contains(l.node) && model.weights.contains { $0.layer == l.node }
        }
        guard !layers.isEmpty else { return }
        // Float outputs of every layer, in one pass.
        let floatRun = try ActivationCollector(graph: graph, calibration: calibration,
                                               options: SessionOptions(keep: Set(layers.map(\.output))))
        let targets = try floatRun.collect(Set(layers.map(\.output)))
        for (i, l) in layers.enumerated() {
            progress?(PipelineProgress(phase: "refit", layer: l.node, done: i, total: layers.count))
            try refit(l, &model, graph: graph, calibration: calibration, target: targets[l.output]!, dampening: dampening)
        }
        progress?(PipelineProgress(phase: "refit", layer: "", done: layers.count, total: layers.count))
    }

    static func refit(_ l: LinearLayer, _ model: inout QuantizedModel, graph: StaticGraph, calibration: CalibrationSet,
                      target: CollectedTensor, dampening: Float) throws {
        guard let wi = model.weights.firstIndex(where: { $0.layer == l.node }) else { return }
        let wq = model.weights[wi]
        let o = l.outFeatures, k = l.inFeatures
        let n = target.values.count / max(o, 1)
        guard n >= minimumRowsPerInput * k, target.values.count == n * o, wq.quantizer.scales.count == o else { return }

        // The layer's input as the quantized model computes it, then quantized as the layer reads it.
        let sim = try QuantSimulator(model: model, graph: graph, options: SessionOptions(keep: [l.input]))
        let collected = try ActivationCollector(session: sim.session, calibration: calibration).collect([l.input])
        guard var u = collected[l.input]?.values, u.count == n * k else {
            throw QuantError.shapeMismatch("refit of '\(l.node)': input '\(l.input)' has \(collected[l.input]?.values.count ?? 0) values, expected \(n)×\(k)")
        }
        let act = model.activations.first { $0.consumer == l.node && $0.tensor == l.input }
        if let act {
            let shape = collected[l.input]!.shape
            u.withUnsafeMutableBufferPointer { QuantSimulator.fakeQuantize(act.quantizer, prefix: act.prefix, shape: shape, $0) }
        }
        // The bias the layer runs with. A Shift-AdaLog input's shift was folded into the bias with the quantized
        // weight (b − shift·Ŵ·1): take it out of both sides, so the input is û − shift and the bias the original.
        let constants = try QuantSimulator.quantizedConstants(model: model, graph: graph)
        var bias = [Float](repeating: 0, count: o)
        if let fold = model.biasFolds.first(where: { $0.linear == l.node }) {
            for i in 0..<u.count { u[i] -= fold.shift }
            if let b = graph.constants[fold.bias]?.floats, b.count == o { bias = b }
        } else if let name = l.bias, let b = constants[name]?.floats ?? graph.constants[name]?.floats, b.count == o {
            bias = b
        }
        var t = target.values
        for r in 0..<n { for c in 0..<o { t[r * o + c] -= bias[c] } }

        // The float weight in the quantizer's view: [o × k], LayerNorm fold applied.
        guard let wt = graph.constants[l.weight] else { return }
        var w = SearchContext.rowsFirst(wt.floats, k: k, o: o, transposed: !wq.transposed)
        if let f = model.layerNormFolds.first(where: { $0.linear == l.node }), f.r.count == k {
            for r in 0..<o { for c in 0..<k { w[r * k + c] *= f.r[c] } }
        }
        let h = LA.atb(u, u, n: n, k: k, m: k)                                 // UᵀU       [k × k]
        var gw = LA.atb(t, u, n: n, k: o, m: k)                                // (Y − b)ᵀU [o × k]
        let wh = LA.matmul(w, h, m: o, n: k, k: k, bT: false)                  // W·H       [o × k]
        for i in 0..<gw.count { gw[i] -= wh[i] }
        let q = wq.quantizer
        let rounded = try GPTQ.round(weight: w, rows: o, cols: k, hessian: h, scales: q.scales, zeroPoints: q.zeroPoints,
                                     bits: q.bits, gw: gw, dampening: dampening)
        model.weights[wi].codes = Data(GPTQ.codes(of: rounded, rows: o, cols: k, scales: q.scales,
                                                  zeroPoints: q.zeroPoints, bits: q.bits))
    }
}
