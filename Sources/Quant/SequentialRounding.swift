// `--weight-rounding gptq-seq` (not in the AdaLog reference): after every quantizer has been searched, the linear
// and conv layers are re-rounded one at a time in graph order, each against what it will really see.
//
// The search calibrates every layer on float inputs. In the quantized model a layer's input carries the error of
// every layer before it. Here, for layer L with the layers before it already re-rounded, the simulation gives L's
// input X as the quantized model computes it (N rows × K: tokens, or conv patches) and U, the same input after L's
// own input quantizer. The target is what L's float weight would make of X, Xw: the rounded weight ŵ minimises
// |Ūŵ − X̄w|² on centred data, so it compensates L's input quantization as well as its own rounding. With
// H = ŪᵀŪ and G = X̄ᵀŪ, that is GPTQ on H with the extra gradient w·(G − H) (GPTQ.round's gw), on the layer's
// searched per-row grid; the bias then gets the intercept mean(X)·w − mean(U)·ŵ (stored as a bias correction).
// Grids and activation quantizers stay as searched; the exporter and the int8 runtime read codes and corrected
// biases as they already do.
//
// Fitting L to the float model's output Y instead (the least-squares map from U to Y) was tried and is worse:
// on ViT-Tiny W4A4 it shrinks the weights of late layers towards noisy inputs (25.6 % top-1 against 59.8 % with
// no refit; this form gives 63.7 %).
//
// Groups with fewer than `minimumRowsPerInput` × K rows (a ViT head sees one row per image) keep their rounding:
// H would be too rank-poor to say anything about unseen images.
import Foundation
import ONNXGraph
import FloatEngine
import Calibration

enum SequentialRounding {
    static let minimumRowsPerInput = 4

    /// A layer to refit, linear or conv.
    struct Layer {
        var node, input, output, weight: String
        var bias: String?
        var conv: ConvLayer?
    }

    /// Re-rounds the weights of `model`'s quantized linear and conv layers in graph order (see the file comment).
    /// `graph` is the prepared graph the model was searched on, specialised to the calibration batch. (With
    /// `--sequential-search` the pipeline calls ``refit`` on each layer right after its search instead.)
    static func apply(_ model: inout QuantizedModel, graph: StaticGraph, patterns: ModelPatterns,
                      calibration: CalibrationSet, dampening: Float,
                      progress: ((PipelineProgress) -> Void)? = nil) throws {
        let quantized = Set(model.weights.map(\.layer))
        let layers = Self.layers(patterns, graph: graph).filter { quantized.contains($0.node) }
        for (i, l) in layers.enumerated() {
            progress?(PipelineProgress(phase: "refit", layer: l.node, done: i, total: layers.count))
            try refit(l, &model, graph: graph, calibration: calibration, dampening: dampening)
        }
        progress?(PipelineProgress(phase: "refit", layer: "", done: layers.count, total: layers.count))
    }

    /// The model's linear and conv layers in graph order.
    static func layers(_ patterns: ModelPatterns, graph: StaticGraph) -> [Layer] {
        var order: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { order[n.name] = i }
        var layers = patterns.linears.map {
            Layer(node: $0.node, input: $0.input, output: $0.output, weight: $0.weight, bias: $0.bias, conv: nil)
        }
        layers += patterns.convs.map {
            Layer(node: $0.node, input: $0.input, output: $0.output, weight: $0.weight, bias: $0.bias, conv: $0)
        }
        return layers.sorted { (order[$0.node] ?? 0) < (order[$1.node] ?? 0) }
    }

    static func refit(_ l: Layer, _ model: inout QuantizedModel, graph: StaticGraph, calibration: CalibrationSet,
                      dampening: Float) throws {
        guard let wi = model.weights.firstIndex(where: { $0.layer == l.node }), let wt = graph.constants[l.weight] else { return }
        let q = model.weights[wi].quantizer
        let o = q.scales.count, k = wt.count / max(o, 1)
        guard o > 0, k > 0, wt.count == o * k else { return }

        // The layer's input as the quantized model computes it, then quantized as the layer reads it.
        let sim = try QuantSimulator(model: model, graph: graph, options: SessionOptions(keep: [l.input]))
        guard let collected = try ActivationCollector(session: sim.session, calibration: calibration).collect([l.input])[l.input]
        else { throw CalibrationError.missingTensor(l.input) }
        let reference = collected.values
        var u = reference
        if let act = model.activations.first(where: { $0.consumer == l.node && $0.tensor == l.input }) {
            u.withUnsafeMutableBufferPointer { QuantSimulator.fakeQuantize(act.quantizer, prefix: act.prefix, shape: collected.shape, $0) }
        }
        // A Shift-AdaLog input (fc2) is quantized as x + shift, and the shift is folded into the bias with the
        // quantized weight (b − shift·Ŵ·1, recomputed from the codes): the layer effectively reads û − shift.
        if let fold = model.biasFolds.first(where: { $0.linear == l.node }) {
            for i in 0..<u.count { u[i] -= fold.shift }
        }
        // The float weight in the quantizer's view: [o × k], LayerNorm fold applied.
        var w = SearchContext.rowsFirst(wt.floats, k: k, o: o, transposed: !model.weights[wi].transposed)
        if let f = model.layerNormFolds.first(where: { $0.linear == l.node }), f.r.count == k {
            for r in 0..<o { for c in 0..<k { w[r * k + c] *= f.r[c] } }
        }
        // Regression moments per group of output rows.
        let groups: [Moments]
        let centred = l.bias != nil
        if let c = l.conv {
            guard let g = SearchContext.convGeometry(c, inputShape: collected.shape, graph: graph),
                  g.channels / g.groups * g.kh * g.kw == k, g.outChannels == o, o % g.groups == 0
            else { return }
            let means = (BiasCorrectionMath.tapMeans(u, g), BiasCorrectionMath.tapMeans(reference, g))
            groups = (0..<g.groups).map { Moments.conv(u, reference, g, group: $0, centred: centred, tapMeans: means) }
        } else {
            let n = u.count / k
            guard u.count == n * k else {
                throw QuantError.shapeMismatch("refit of '\(l.node)': input '\(l.input)' has \(u.count) values, not a multiple of \(k)")
            }
            groups = [Moments.linear(u, reference, rows: n, k: k, centred: centred)]
        }
        let og = o / groups.count
        var rounded = w
        var intercept = [Float](repeating: 0, count: o)
        var refit = [Bool](repeating: false, count: o)
        for (gi, m) in groups.enumerated() where m.rows >= minimumRowsPerInput * k {
            let rows = gi * og..<(gi + 1) * og
            let wg = Array(w[(rows.lowerBound * k)..<(rows.upperBound * k)])
            // ŪᵀX̄w − Hw = w·(G − H), G = X̄ᵀŪ (Ū is centred, so centring X as well changes nothing).
            var gmh = m.g
            for i in 0..<gmh.count { gmh[i] -= m.h[i] }
            let gw = LA.matmul(wg, gmh, m: og, n: k, k: k, bT: false)
            let r = try GPTQ.round(weight: wg, rows: og, cols: k, hessian: m.h, scales: Array(q.scales[rows]),
                                   zeroPoints: Array(q.zeroPoints[rows]), bits: q.bits, gw: gw, dampening: dampening)
            rounded.replaceSubrange((rows.lowerBound * k)..<(rows.upperBound * k), with: r)
            for oo in 0..<og where centred {
                var s = 0.0
                for j in 0..<k { s += Double(m.referenceMean[j]) * Double(wg[oo * k + j]) - Double(m.inputMean[j]) * Double(r[oo * k + j]) }
                intercept[rows.lowerBound + oo] = Float(s)
            }
            for j in rows { refit[j] = true }
        }
        guard refit.contains(true) else { return }
        model.weights[wi].codes = Data(GPTQ.codes(of: rounded, rows: o, cols: k, scales: q.scales, zeroPoints: q.zeroPoints, bits: q.bits))
        // The intercept is the whole bias change for the rows refit here: it replaces a bias correction from the
        // search (--bias-correction), which was computed for the nearest-rounded weight on float inputs. Groups left
        // alone keep theirs (and their codes: nearest rounding of w, as before unless an earlier rounding set them).
        guard let name = l.bias else { return }
        var delta = model.biasCorrections?.first(where: { $0.layer == l.node })?.delta ?? [Float](repeating: 0, count: o)
        for (j, r) in refit.enumerated() where r { delta[j] = intercept[j] }
        model.biasCorrections = (model.biasCorrections ?? []).filter { $0.layer != l.node }
        if delta.contains(where: { $0 != 0 }) {
            model.biasCorrections!.append(BiasCorrection(layer: l.node, bias: name, delta: delta))
        }
    }

    /// Regression moments of one group: with U the quantized input rows and X the same rows unquantized (tokens, or
    /// conv patches), Ū = U − mean(U) (not centred: a layer without a bias has no intercept to refit),
    /// H = ŪᵀŪ and G = XᵀŪ (both [k × k]), and the means.
    struct Moments {
        var h: [Float]
        var g: [Float]
        var inputMean: [Float]
        var referenceMean: [Float]
        var rows: Int

        /// Linear: u and x [n × k].
        static func linear(_ u: [Float], _ x: [Float], rows n: Int, k: Int, centred: Bool) -> Moments {
            var u = u
            let um = centred ? columnMeans(u, rows: n, cols: k) : [Float](repeating: 0, count: k)
            for r in 0..<n { for c in 0..<k { u[r * k + c] -= um[c] } }
            return Moments(h: LA.atb(u, u, n: n, k: k, m: k), g: LA.atb(x, u, n: n, k: k, m: k), inputMean: um,
                           referenceMean: columnMeans(x, rows: n, cols: k), rows: n)
        }

        /// Conv group `group`: the zero-padded patches ([cin·kh·kw], channel-major then tap, as the weight rows) of
        /// the NCHW inputs u (quantized) and x, gathered a chunk of output positions at a time.
        /// `tapMeans`: BiasCorrectionMath.tapMeans of u and x (all groups; computed here when nil, which for a
        /// depthwise conv called once per group would cost a pass over the whole tensor per channel).
        static func conv(_ u: [Float], _ x: [Float], _ g: ConvGeometry, group: Int, centred: Bool,
                         tapMeans: (u: [Float], x: [Float])? = nil) -> Moments {
            let cin = g.channels / g.groups, taps = g.kh * g.kw, k = cin * taps
            let oh = g.outHeight, ow = g.outWidth, n = g.batch * oh * ow
            let all = tapMeans ?? (BiasCorrectionMath.tapMeans(u, g), BiasCorrectionMath.tapMeans(x, g))
            func means(_ a: [Float]) -> [Float] { Array(a[(group * k)..<((group + 1) * k)]) }
            let um = centred ? means(all.u) : [Float](repeating: 0, count: k)
            let chunk = 1024
            var ut = [Float](repeating: 0, count: k * chunk), xt = [Float](repeating: 0, count: k * chunk)
            var h = [Float](repeating: 0, count: k * k), gm = [Float](repeating: 0, count: k * k)
            var filled = 0, first = true
            func flush() {
                guard filled > 0 else { return }
                ut.withUnsafeBufferPointer { up in
                    xt.withUnsafeBufferPointer { xp in
                        h.withUnsafeMutableBufferPointer { c in   // ŪᵀŪ
                            FloatKernels.matmul(m: k, n: k, k: filled, a: up.baseAddress!, lda: chunk, b: up.baseAddress!, ldb: chunk,
                                                bTransposed: true, c: c.baseAddress!, ldc: k, accumulate: !first)
                        }
                        gm.withUnsafeMutableBufferPointer { c in  // XᵀŪ
                            FloatKernels.matmul(m: k, n: k, k: filled, a: xp.baseAddress!, lda: chunk, b: up.baseAddress!, ldb: chunk,
                                                bTransposed: true, c: c.baseAddress!, ldc: k, accumulate: !first)
                        }
                    }
                }
                first = false; filled = 0
            }
            u.withUnsafeBufferPointer { up in
                x.withUnsafeBufferPointer { xp in
                    for b in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow {
                        ut.withUnsafeMutableBufferPointer { g.gatherPatch(up, group: group, b: b, oy: oy, ox: ox, into: $0.baseAddress! + filled, stride: chunk) }
                        xt.withUnsafeMutableBufferPointer { g.gatherPatch(xp, group: group, b: b, oy: oy, ox: ox, into: $0.baseAddress! + filled, stride: chunk) }
                        for j in 0..<k { ut[j * chunk + filled] -= um[j] }
                        filled += 1
                        if filled == chunk { flush() }
                    } } }
                }
            }
            flush()
            return Moments(h: h, g: gm, inputMean: um, referenceMean: means(all.x), rows: n)
        }

        static func columnMeans(_ a: [Float], rows n: Int, cols k: Int) -> [Float] {
            var s = [Double](repeating: 0, count: k)
            for r in 0..<n { for c in 0..<k { s[c] += Double(a[r * k + c]) } }
            return s.map { Float($0 / Double(max(n, 1))) }
        }
    }
}
