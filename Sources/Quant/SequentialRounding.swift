// `--weight-rounding gptq-seq` (not in the AdaLog reference): after every quantizer has been searched, the linear
// and conv layers are re-rounded one at a time in graph order, each against what it will really see.
//
// The search calibrates every layer on float inputs. In the quantized model a layer's input carries the error of
// every layer before it plus its own input quantization. Here, for layer L with the layers before it already
// re-rounded, the simulation gives L's quantized input U (N rows × K: tokens, or conv patches) and the float model
// gives L's float output Y. The weight and bias that best map U to Y are the least-squares fit on centred data:
// with Ū = U − mean(U), T̄ = (Y − b) − mean(Y − b) and H = ŪᵀŪ, w* = w + H⁻¹(ŪᵀT̄ − H w), i.e. the ridge solution
// (H + λI)⁻¹(ŪᵀT̄ + λ w) with GPTQ's dampening λ. GPTQ rounds w* onto the layer's searched per-row grid with the
// same H, so rounding error is compensated too; then the bias gets the best intercept for the rounded weight,
// mean(T) − mean(U)·ŵ (stored as a bias correction). Grids and activation quantizers stay as searched; the
// exporter and the int8 runtime read codes and corrected biases as they already do.
//
// Groups with fewer than `minimumRowsPerInput` × K rows (a ViT head sees one row per image) keep their rounding:
// the regression would fit the calibration images instead of the layer.
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
    /// `graph` is the prepared graph the model was searched on, specialised to the calibration batch. The float
    /// outputs are collected a few layers at a time, within `memoryBudgetFloats`.
    static func apply(_ model: inout QuantizedModel, graph: StaticGraph, patterns: ModelPatterns,
                      calibration: CalibrationSet, dampening: Float, memoryBudgetFloats: Int,
                      progress: ((PipelineProgress) -> Void)? = nil) throws {
        var order: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { order[n.name] = i }
        let quantized = Set(model.weights.map(\.layer))
        var layers = patterns.linears.map {
            Layer(node: $0.node, input: $0.input, output: $0.output, weight: $0.weight, bias: $0.bias, conv: nil)
        }
        layers += patterns.convs.map {
            Layer(node: $0.node, input: $0.input, output: $0.output, weight: $0.weight, bias: $0.bias, conv: $0)
        }
        layers = layers.filter { quantized.contains($0.node) }.sorted { (order[$0.node] ?? 0) < (order[$1.node] ?? 0) }
        guard !layers.isEmpty else { return }
        func size(_ t: String) -> Int { (graph.shapes[t] ?? []).reduce(1, *) / max(graph.batch, 1) * calibration.count }
        let floatRun = try ActivationCollector(graph: graph, calibration: calibration,
                                               options: SessionOptions(keep: Set(layers.map(\.output))))
        var targets: [String: CollectedTensor] = [:]
        for (i, l) in layers.enumerated() {
            if targets[l.output] == nil {
                var names: Set<String> = [], total = 0
                for next in layers[i...] {
                    if !names.isEmpty && total + size(next.output) > memoryBudgetFloats { break }
                    names.insert(next.output); total += size(next.output)
                }
                targets = try floatRun.collect(names)
            }
            progress?(PipelineProgress(phase: "refit", layer: l.node, done: i, total: layers.count))
            guard let target = targets.removeValue(forKey: l.output) else { throw CalibrationError.missingTensor(l.output) }
            try refit(l, &model, graph: graph, calibration: calibration, target: target, dampening: dampening)
        }
        progress?(PipelineProgress(phase: "refit", layer: "", done: layers.count, total: layers.count))
    }

    static func refit(_ l: Layer, _ model: inout QuantizedModel, graph: StaticGraph, calibration: CalibrationSet,
                      target: CollectedTensor, dampening: Float) throws {
        guard let wi = model.weights.firstIndex(where: { $0.layer == l.node }), let wt = graph.constants[l.weight] else { return }
        let q = model.weights[wi].quantizer
        let o = q.scales.count, k = wt.count / max(o, 1)
        guard o > 0, k > 0, wt.count == o * k, target.values.count % o == 0 else { return }

        // The layer's input as the quantized model computes it, then quantized as the layer reads it.
        let sim = try QuantSimulator(model: model, graph: graph, options: SessionOptions(keep: [l.input]))
        guard let collected = try ActivationCollector(session: sim.session, calibration: calibration).collect([l.input])[l.input]
        else { throw CalibrationError.missingTensor(l.input) }
        var u = collected.values
        if let act = model.activations.first(where: { $0.consumer == l.node && $0.tensor == l.input }) {
            u.withUnsafeMutableBufferPointer { QuantSimulator.fakeQuantize(act.quantizer, prefix: act.prefix, shape: collected.shape, $0) }
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
        // The float weight in the quantizer's view: [o × k], LayerNorm fold applied.
        var w = SearchContext.rowsFirst(wt.floats, k: k, o: o, transposed: !model.weights[wi].transposed)
        if let f = model.layerNormFolds.first(where: { $0.linear == l.node }), f.r.count == k {
            for r in 0..<o { for c in 0..<k { w[r * k + c] *= f.r[c] } }
        }
        // Regression moments per group of output rows.
        let groups: [Moments]
        if let c = l.conv {
            guard let g = SearchContext.convGeometry(c, inputShape: collected.shape, graph: graph),
                  g.channels / g.groups * g.kh * g.kw == k, target.values.count == g.batch * o * g.outHeight * g.outWidth
            else { return }
            groups = (0..<g.groups).map { Moments.conv(u, target.values, bias: bias, g, group: $0, centred: l.bias != nil) }
        } else {
            let n = target.values.count / o
            guard u.count == n * k else {
                throw QuantError.shapeMismatch("refit of '\(l.node)': input '\(l.input)' has \(u.count) values, expected \(n)×\(k)")
            }
            groups = [Moments.linear(u, target.values, bias: bias, rows: n, k: k, o: o, centred: l.bias != nil)]
        }
        let og = o / groups.count
        var rounded = w
        var intercept = [Float](repeating: 0, count: o)
        var changed = false
        for (gi, m) in groups.enumerated() where m.rows >= minimumRowsPerInput * k {
            let rows = gi * og..<(gi + 1) * og
            let wg = Array(w[(rows.lowerBound * k)..<(rows.upperBound * k)])
            var gw = m.cross
            let wh = LA.matmul(wg, m.h, m: og, n: k, k: k, bT: false)
            for i in 0..<gw.count { gw[i] -= wh[i] }
            let r = try GPTQ.round(weight: wg, rows: og, cols: k, hessian: m.h, scales: Array(q.scales[rows]),
                                   zeroPoints: Array(q.zeroPoints[rows]), bits: q.bits, gw: gw, dampening: dampening)
            rounded.replaceSubrange((rows.lowerBound * k)..<(rows.upperBound * k), with: r)
            for oo in 0..<og {
                var s = Double(m.targetMean[oo])
                for j in 0..<k { s -= Double(m.inputMean[j]) * Double(r[oo * k + j]) }
                intercept[rows.lowerBound + oo] = Float(s)
            }
            changed = true
        }
        guard changed else { return }
        model.weights[wi].codes = Data(GPTQ.codes(of: rounded, rows: o, cols: k, scales: q.scales, zeroPoints: q.zeroPoints, bits: q.bits))
        // Groups left alone keep their bias (intercept 0 there, and their codes are the ones they had: nearest
        // rounding of w, which the previous codes also were unless an earlier rounding set them).
        if let name = l.bias, intercept.contains(where: { $0 != 0 }) {
            if let i = model.biasCorrections?.firstIndex(where: { $0.layer == l.node }) {
                for j in 0..<o { model.biasCorrections![i].delta[j] += intercept[j] }
            } else {
                if model.biasCorrections == nil { model.biasCorrections = [] }
                model.biasCorrections!.append(BiasCorrection(layer: l.node, bias: name, delta: intercept))
            }
        }
    }

    /// Centred regression moments of one group: H = ŪᵀŪ [k × k], cross = T̄ᵀŪ [og × k], and the means that were
    /// taken out (all zero when not centred: a layer without a bias has no intercept to refit).
    struct Moments {
        var h: [Float]
        var cross: [Float]
        var inputMean: [Float]
        var targetMean: [Float]
        var rows: Int

        /// Linear: u [n × k], target [n × o], minus the bias the layer runs with.
        static func linear(_ u: [Float], _ y: [Float], bias: [Float], rows n: Int, k: Int, o: Int, centred: Bool) -> Moments {
            var u = u, t = y
            for r in 0..<n { for c in 0..<o { t[r * o + c] -= bias[c] } }
            let um = centred ? columnMeans(u, rows: n, cols: k) : [Float](repeating: 0, count: k)
            let tm = centred ? columnMeans(t, rows: n, cols: o) : [Float](repeating: 0, count: o)
            for r in 0..<n {
                for c in 0..<k { u[r * k + c] -= um[c] }
                for c in 0..<o { t[r * o + c] -= tm[c] }
            }
            return Moments(h: LA.atb(u, u, n: n, k: k, m: k), cross: LA.atb(t, u, n: n, k: o, m: k),
                           inputMean: um, targetMean: tm, rows: n)
        }

        /// Conv group `group`: the zero-padded input patches ([cin·kh·kw], channel-major then tap, as the weight
        /// rows) of NCHW `x` against the group's channels of the NCHW output `y`, gathered a chunk of positions at
        /// a time.
        static func conv(_ x: [Float], _ y: [Float], bias: [Float], _ g: ConvGeometry, group: Int, centred: Bool) -> Moments {
            let cin = g.channels / g.groups, taps = g.kh * g.kw, k = cin * taps, og = g.outChannels / g.groups
            let oh = g.outHeight, ow = g.outWidth, plane = oh * ow, n = g.batch * plane
            var pm = [Float](repeating: 0, count: k), tm = [Float](repeating: 0, count: og)
            if centred {
                let all = BiasCorrectionMath.tapMeans(x, g)
                pm = Array(all[(group * cin * taps)..<((group + 1) * cin * taps)])
                for oc in 0..<og {
                    var s = 0.0
                    for b in 0..<g.batch {
                        let base = (b * g.outChannels + group * og + oc) * plane
                        for p in 0..<plane { s += Double(y[base + p]) }
                    }
                    tm[oc] = Float(s / Double(n)) - bias[group * og + oc]
                }
            }
            let chunk = 1024
            var pt = [Float](repeating: 0, count: k * chunk), tt = [Float](repeating: 0, count: og * chunk)
            var h = [Float](repeating: 0, count: k * k), cross = [Float](repeating: 0, count: og * k)
            var filled = 0, first = true
            func flush() {
                guard filled > 0 else { return }
                pt.withUnsafeBufferPointer { p in
                    tt.withUnsafeBufferPointer { t in
                        h.withUnsafeMutableBufferPointer { hp in
                            FloatKernels.matmul(m: k, n: k, k: filled, a: p.baseAddress!, lda: chunk, b: p.baseAddress!, ldb: chunk,
                                                bTransposed: true, c: hp.baseAddress!, ldc: k, accumulate: !first)
                        }
                        cross.withUnsafeMutableBufferPointer { cp in
                            FloatKernels.matmul(m: og, n: k, k: filled, a: t.baseAddress!, lda: chunk, b: p.baseAddress!, ldb: chunk,
                                                bTransposed: true, c: cp.baseAddress!, ldc: k, accumulate: !first)
                        }
                    }
                }
                first = false; filled = 0
            }
            for b in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow {
                for ci in 0..<cin {
                    let base = (b * g.channels + group * cin + ci) * g.height * g.width
                    for ty in 0..<g.kh {
                        let iy = oy * g.strideH - g.padTop + ty * g.dilationH
                        for tx in 0..<g.kw {
                            let ix = ox * g.strideW - g.padLeft + tx * g.dilationW
                            let j = ci * taps + ty * g.kw + tx
                            let v = (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width) ? x[base + iy * g.width + ix] : 0
                            pt[j * chunk + filled] = v - pm[j]
                        }
                    }
                }
                for oc in 0..<og {
                    let c = group * og + oc
                    tt[oc * chunk + filled] = y[((b * g.outChannels + c) * oh + oy) * ow + ox] - bias[c] - tm[oc]
                }
                filled += 1
                if filled == chunk { flush() }
            } } }
            flush()
            return Moments(h: h, cross: cross, inputMean: pm, targetMean: tm, rows: n)
        }

        static func columnMeans(_ a: [Float], rows n: Int, cols k: Int) -> [Float] {
            var s = [Double](repeating: 0, count: k)
            for r in 0..<n { for c in 0..<k { s[c] += Double(a[r * k + c]) } }
            return s.map { Float($0 / Double(max(n, 1))) }
        }
    }
}
