import Testing
import Foundation
@testable import Quant
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

func layerNorm(_ x: [Float], rows: Int, cols: Int, gamma: [Float], beta: [Float]) -> [Float] {
    var y = x
    for r in 0..<rows {
        var m = 0.0, v = 0.0
        for c in 0..<cols { m += Double(x[r * cols + c]) }
        m /= Double(cols)
        for c in 0..<cols { let d = Double(x[r * cols + c]) - m; v += d * d }
        let inv = 1 / (v / Double(cols) + 1e-6).squareRoot()
        for c in 0..<cols { y[r * cols + c] = Float((Double(x[r * cols + c]) - m) * inv) * gamma[c] + beta[c] }
    }
    return y
}

func linear(_ x: [Float], rows: Int, k: Int, w: [Float], o: Int, bias: [Float]) -> [Float] {
    var y = [Float](repeating: 0, count: rows * o)
    for r in 0..<rows { for j in 0..<o {
        var s = Double(bias[j])
        for c in 0..<k { s += Double(x[r * k + c]) * Double(w[j * k + c]) }
        y[r * o + j] = Float(s)
    } }
    return y
}

@Suite struct ReparameterizationTests {
    @Test func floatFunctionUnchanged() throws {
        var rng = SplitMix(seed: 9)
        let n = 20, k = 12, o = 7
        let x = (0..<(n * k)).map { _ in rng.normal() * 3 }
        let gamma = (0..<k).map { _ in 0.5 + rng.uniform() * 2 }
        let beta = (0..<k).map { _ in rng.normal() }
        let w = (0..<(o * k)).map { _ in rng.normal() * 0.3 }
        let bias = (0..<o).map { _ in rng.normal() }
        let s = (0..<k).map { _ in 0.01 + rng.uniform() * 0.1 }
        let z = (0..<k).map { _ in Float(Int(rng.uniform() * 16)) }
        let rep = try LayerSearch.scaleReparameterization(channelScales: s, channelZeroPoints: z, gamma: gamma, beta: beta,
                                                          weight: w, bias: bias, outFeatures: o)
        let y0 = linear(layerNorm(x, rows: n, cols: k, gamma: gamma, beta: beta), rows: n, k: k, w: w, o: o, bias: bias)
        let ln1 = layerNorm(x, rows: n, cols: k, gamma: rep.gamma, beta: rep.beta)
        let y1 = linear(ln1, rows: n, k: k, w: rep.weight, o: o, bias: rep.bias)
        let maxDiff = zip(y0, y1).map { abs($0 - $1) }.max() ?? 1
        #expect(maxDiff <= 1e-4)
        // Per-tensor (s̄, z̄) on the folded LayerNorm output = per-channel (s_c, z_c) on the original one.
        let ln0 = layerNorm(x, rows: n, cols: k, gamma: gamma, beta: beta)
        let perChannel = try UniformQuantizer(bits: 4, granularity: .perChannel(axis: 1), scales: s, zeroPoints: z)
        let perTensor = try UniformQuantizer(bits: 4, scales: [rep.targetScale], zeroPoints: [rep.targetZeroPoint])
        let c0 = try perChannel.quantize(ln0, shape: [n, k]), c1 = try perTensor.quantize(ln1, shape: [n, k])
        // round((y/r − b)/s̄) + z̄ = round(y/s_c) + z_c when z̄ − z_c is an integer (float ties aside).
        let agree = zip(c0, c1).filter { $0 == $1 }.count
        #expect(agree >= c0.count - 2)
    }

    @Test func postLayerNormSearchKeepsFunction() throws {
        var rng = SplitMix(seed: 4)
        let n = 48, k = 8, o = 6
        let xin = (0..<(n * k)).map { _ in rng.normal() * 2 }
        let gamma = (0..<k).map { _ in 0.5 + rng.uniform() }, beta = (0..<k).map { _ in rng.normal() * 0.3 }
        let x = layerNorm(xin, rows: n, cols: k, gamma: gamma, beta: beta)
        let w = (0..<(o * k)).map { _ in rng.normal() * 0.3 }, bias = (0..<o).map { _ in rng.normal() }
        var st = FPCSSettings(); st.rounds = 1; st.steps = 2
        let r = try LayerSearch.postLayerNormLinear(x: x, tokens: n, inFeatures: k, weight: w, outFeatures: o, bias: bias,
                                                    gamma: gamma, beta: beta, weightBits: 4, inputBits: 4, settings: st)
        let rep = r.reparameterization
        let y0 = linear(x, rows: n, k: k, w: w, o: o, bias: bias)
        let y1 = linear(layerNorm(xin, rows: n, cols: k, gamma: rep.gamma, beta: rep.beta), rows: n, k: k, w: rep.weight, o: o, bias: rep.bias)
        #expect((zip(y0, y1).map { abs($0 - $1) }.max() ?? 1) <= 1e-4)
        #expect(r.linear.input.scales.count == 1 && r.linear.weight.scales.count == o)
        #expect(r.linear.stats.phases.first == "A channel self + fold")
    }
}

@Suite struct LayerSearchTests {
    static func outputMSE(x: [Float], w: [Float], n: Int, k: Int, o: Int, aq: UniformQuantizer, wq: UniformQuantizer) throws -> Double {
        let xh = try aq.fakeQuantize(x, shape: [n, k]), wh = try wq.fakeQuantize(w, shape: [o, k])
        let zero = [Float](repeating: 0, count: o)
        let y = linear(x, rows: n, k: k, w: w, o: o, bias: zero), yh = linear(xh, rows: n, k: k, w: wh, o: o, bias: zero)
        return zip(y, yh).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
    }

    @Test func uniformLinearBeatsMinMax() throws {
        var rng = SplitMix(seed: 21)
        let n = 64, k = 16, o = 8
        let x = (0..<(n * k)).map { i in rng.normal() * (i % k == 3 ? 6 : 1) }
        let w = (0..<(o * k)).map { _ in rng.normal() * 0.2 }
        var st = FPCSSettings(); st.rounds = 1
        let r = try LayerSearch.uniformLinear(x: x, tokens: n, inFeatures: k, weight: w, outFeatures: o,
                                              weightBits: 4, inputBits: 4, settings: st)
        #expect(r.stats.phases == ["W self", "A self", "W out r1", "A out r1"])
        #expect(r.stats.evaluations == [768, 768, 768, 768])
        let found = try Self.outputMSE(x: x, w: w, n: n, k: k, o: o, aq: r.input, wq: r.weight)
        let mm = try Self.outputMSE(x: x, w: w, n: n, k: k, o: o,
                                    aq: try UniformQuantizer.initialized(from: x, shape: [n, k], bits: 4),
                                    wq: try UniformQuantizer.initialized(from: w, shape: [o, k], bits: 4, granularity: .perChannel(axis: 0)))
        #expect(found < mm)
    }

    @Test func geluLinearFoldsBias() throws {
        var rng = SplitMix(seed: 8)
        let n = 40, k = 16, o = 4
        let x = (0..<(n * k)).map { _ -> Float in let v = rng.normal(); return 0.5 * v * (1 + erff(v / 2.0.squareRoot().f)) }
        let w = (0..<(o * k)).map { _ in rng.normal() * 0.2 }, bias = (0..<o).map { _ in rng.normal() }
        var st = FPCSSettings(); st.rounds = 1; st.steps = 2
        let r = try LayerSearch.geluLinear(x: x, tokens: n, inFeatures: k, weight: w, outFeatures: o, bias: bias,
                                           weightBits: 4, inputBits: 4, settings: st)
        #expect(r.input.biasReparameterized && r.input.shift == geluShift && AdaLogQuantizer.qRange.contains(r.input.q))
        #expect(r.stats.evaluations == [256, 128 + 128 + 128, 256])
        // y = Ŵ·û + b' equals Ŵ·(û − c) + b.
        let wh = try r.weight.fakeQuantize(w, shape: [o, k])
        var unfolded = r.input; unfolded.biasReparameterized = false
        let y1 = linear(r.input.fakeQuantize(x), rows: n, k: k, w: wh, o: o, bias: r.foldedBias)
        let y2 = linear(unfolded.fakeQuantize(x), rows: n, k: k, w: wh, o: o, bias: bias)
        #expect((zip(y1, y2).map { abs($0 - $1) }.max() ?? 1) <= 1e-4)
    }

    @Test func attentionSearchesImproveOnInitialisation() throws {
        var rng = SplitMix(seed: 12)
        let b = 1, h = 2, t = 6, d = 4
        let q = (0..<(b * h * t * d)).map { _ in rng.normal() }, k = (0..<(b * h * t * d)).map { _ in rng.normal() }
        var st = FPCSSettings(); st.rounds = 1; st.steps = 2
        let s = try LayerSearch.attentionScores(query: q, key: k, batch: b, heads: h, tokens: t, headDim: d, bits: 4, settings: st)
        #expect(s.query.scales.count == h && s.key.scales.count == h)
        var p = [Float](repeating: 0, count: b * h * t * t)
        for r in 0..<(b * h * t) {
            let e = (0..<t).map { _ in expf(rng.normal() * 2) }, sum = e.reduce(0, +)
            for j in 0..<t { p[r * t + j] = e[j] / sum }
        }
        let v = (0..<(b * h * t * d)).map { _ in rng.normal() }
        let a = try LayerSearch.attentionValues(probabilities: p, value: v, batch: b, heads: h, tokens: t, headDim: d,
                                                probabilityBits: 4, valueBits: 4, settings: st)
        let ada = try #require(a.probabilities)
        #expect(ada.scale == 1 && AdaLogQuantizer.qRange.contains(ada.q))
        #expect(a.stats.evaluations == [128, 256])
        st.rounds = 2
        let l2 = try LayerSearch.attentionValues(probabilities: p, value: v, batch: b, heads: h, tokens: t, headDim: d,
                                                 probabilityBits: 4, valueBits: 4, softmax: .logsqrt2, settings: st)
        #expect(l2.stats.phases == ["V out r1"] && l2.probabilities == nil)
        let un = try LayerSearch.attentionValues(probabilities: p, value: v, batch: b, heads: h, tokens: t, headDim: d,
                                                 probabilityBits: 4, valueBits: 4, softmax: .uniform, settings: st)
        #expect(un.stats.phases == ["P out r1", "V out r1", "P out r2", "V out r2"])
        if case .uniform(let uq) = un.probabilityQuantizer { #expect(uq.scales.count == 1) } else { Issue.record("not uniform") }
        #expect(throws: QuantError.self) {
            try LayerSearch.attentionValues(probabilities: [1], value: v, batch: b, heads: h, tokens: t, headDim: d,
                                            probabilityBits: 4, valueBits: 4)
        }
    }
}

extension Double { var f: Float { Float(self) } }

@Suite struct PlanTests {
    @Test func bitSettings() throws {
        #expect(try BitSetting(parsing: "W4A4") == BitSetting(weightBits: 4, activationBits: 4))
        #expect(try BitSetting(parsing: " w6a8 ").activationBits == 8)
        for bad in ["W9A4", "4A4", "WxA4", "W4", "W4A1", "", "A4W4"] {
            #expect(throws: QuantError.self) { try BitSetting(parsing: bad) }
        }
        do { _ = try BitSetting(parsing: "W9A4"); Issue.record("no error") } catch {
            #expect(error.description.contains("W9A4") && error.description.contains("weight bits 9"))
        }
    }

    @Test func planMapAndOverrides() throws {
        var opt = PlanOptions(bits: try BitSetting(parsing: "W4A4"))
        opt.keepFloat = ["head"]
        try opt.addLayerBits("blocks.0.*=W8A8")
        #expect(throws: QuantError.self) { try opt.addLayerBits("=W8A8") }
        #expect(throws: QuantError.self) { try opt.addLayerBits("blocks.1.attn") }
        opt.softmax = try PlanOptions.parseSoftmax("LogSqrt2")
        #expect(throws: QuantError.self) { try PlanOptions.parseSoftmax("log3") }
        #expect(throws: QuantError.self) { try PlanOptions.parseGelu("log2") }
        let plan = QuantizationPlan(family: .transformer, options: opt)
        #expect(plan.spec(for: .linearWeight, layer: "head") == .float)
        #expect(plan.spec(for: .linearWeight, layer: "blocks.0.attn.qkv") == .uniform(bits: 8, granularity: .perChannel(axis: 0), reluBounded: false))
        #expect(plan.spec(for: .postLayerNormInput, layer: "blocks.3.attn.qkv") == .uniformReparameterized(bits: 4))
        #expect(plan.spec(for: .attentionProbabilities, layer: "blocks.3.attn") == .logSqrt2(bits: 4, shift: 0))
        #expect(plan.spec(for: .postGeluInput, layer: "blocks.3.mlp.fc2") == .adaLog(bits: 4, shift: geluShift))
        #expect(plan.spec(for: .imageInput, layer: "patch_embed.proj") == .float)
        let cnn = QuantizationPlan(family: .cnn, options: PlanOptions(bits: try BitSetting(parsing: "W6A6")))
        #expect(cnn.spec(for: .linearInput, layer: "features.3", reluBounded: true) == .uniform(bits: 6, granularity: .perTensor, reluBounded: true))
        #expect(globMatch("blocks.*.mlp.fc?", "blocks.11.mlp.fc2") && !globMatch("blocks.*.fc2", "blocks.1.mlp.fc1"))
    }

    @Test func parametersRoundTripThroughJSON() throws {
        var params = QuantizationParameters(plan: QuantizationPlan(family: .transformer, options: PlanOptions(bits: try BitSetting(parsing: "W4A4"))))
        params.quantizers["blocks.0.mlp.fc2.input"] = .adaLog(try AdaLogQuantizer(bits: 4, q: 29, scale: 2.5, shift: geluShift))
        params.quantizers["blocks.0.mlp.fc2.weight"] = .uniform(try UniformQuantizer(bits: 4, granularity: .perChannel(axis: 0), scales: [0.1, 0.2], zeroPoints: [7, 8]))
        params.replacedTensors["blocks.0.norm1.weight"] = [1, 2]
        params.layerSQNR["blocks.0.mlp.fc2"] = 21.5
        let data = try JSONEncoder().encode(params)
        #expect(try JSONDecoder().decode(QuantizationParameters.self, from: data) == params)
    }

    @Test func sqnrValues() throws {
        #expect(abs(try sqnr(reference: [1, 1], test: [1, 0]) - 3.0103) < 1e-3)
        #expect(try sqnr(reference: [1, 2], test: [1, 2]) == .infinity)
        #expect(throws: QuantError.self) { try sqnr(reference: [1], test: []) }
    }
}
