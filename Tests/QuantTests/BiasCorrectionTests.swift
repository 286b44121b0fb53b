import Testing
import Foundation
@testable import Quant
import FloatEngine

@Suite struct BiasCorrectionTests {
    @Test func tapMeansMatchBruteForceIm2col() {
        // 2 images, 3 channels, 5×6 input, 3×3 kernel, stride 2, asymmetric padding (1, 1, 0, 2), dilation 1.
        let g = ConvGeometry(batch: 2, channels: 3, height: 5, width: 6, kh: 3, kw: 3, strideH: 2, strideW: 2,
                             padTop: 1, padLeft: 1, padBottom: 0, padRight: 2, dilationH: 1, dilationW: 1, groups: 3, outChannels: 3)
        let x = GPTQTests.noise(2 * 3 * 5 * 6, seed: 5)
        let m = BiasCorrectionMath.tapMeans(x, g)
        let oh = g.outHeight, ow = g.outWidth
        #expect(oh == 2 && ow == 4)
        for c in 0..<3 { for ty in 0..<3 { for tx in 0..<3 {
            var s: Float = 0
            for n in 0..<2 { for oy in 0..<oh { for ox in 0..<ow {
                let iy = oy * 2 - 1 + ty, ix = ox * 2 - 1 + tx
                if iy >= 0 && iy < 5 && ix >= 0 && ix < 6 { s += x[((n * 3 + c) * 5 + iy) * 6 + ix] }
            } } }
            #expect(abs(m[c * 9 + ty * 3 + tx] - s / Float(2 * oh * ow)) < 1e-5)
        } } }
    }

    @Test func correctedLinearLayerHasFloatMeanOutput() throws {
        let n = 200, k = 24, o = 6
        var x = GPTQTests.noise(n * k, seed: 7)
        for i in 0..<x.count { x[i] = max(0, x[i] + 0.3) }   // one-sided (ReLU-like) inputs: non-zero means
        let w = GPTQTests.noise(o * k, seed: 8)
        let wq = try GPTQTests.perRowMinMax(w, o: o, k: k, bits: 3)
        let aq = try UniformQuantizer.initialized(from: x, shape: [n, k], bits: 3, method: .percentile(0.95))
        let wh = try wq.fakeQuantize(w, shape: [o, k]), xh = try aq.fakeQuantize(x, shape: [n, k])
        let d = BiasCorrectionMath.delta(x: x, xHat: xh, w: w, wHat: wh, o: o, k: k, geometry: nil)
        var before = 0.0, after = 0.0
        for r in 0..<o {
            var mf = 0.0, mq = 0.0
            for i in 0..<n { for j in 0..<k { mf += Double(x[i * k + j] * w[r * k + j]); mq += Double(xh[i * k + j] * wh[r * k + j]) } }
            mf /= Double(n); mq /= Double(n)
            before = max(before, abs(mf - mq)); after = max(after, abs(mf - mq - Double(d[r])))
        }
        #expect(before > 1e-2)
        #expect(after < 1e-4, "mean output error after correction \(after) (before \(before))")
    }

    @Test func cnnPipelineRecordsAndAppliesCorrections() throws {
        let (g, folded) = try QuantizationPipeline.prepare(try PipelineFixtures.graph("resnet_ts13.onnx"))
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.settings = PipelineFixtures.fastSettings
        let cal = PipelineFixtures.calibration(count: 2, size: 32)
        let q0 = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        #expect(q0.biasCorrections == nil)
        opts.settings.biasCorrection = true
        let q = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        let bc = try #require(q.biasCorrections)
        #expect(!bc.isEmpty && bc.allSatisfy { $0.delta.allSatisfy(\.isFinite) })
        #expect(q.weights == q0.weights && q.activations == q0.activations)
        let c = try QuantSimulator.quantizedConstants(model: q, graph: g), c0 = try QuantSimulator.quantizedConstants(model: q0, graph: g)
        let b = bc[0]
        let orig = try #require(c0[b.bias]?.floats ?? g.constants[b.bias]?.floats), now = try #require(c[b.bias]?.floats)
        for i in 0..<orig.count { #expect(abs(now[i] - (orig[i] + b.delta[i])) <= 1e-6 * max(1, abs(orig[i]))) }
    }
}

@Suite struct ConvGPTQTests {
    static func bruteGram(_ x: [Float], _ g: ConvGeometry, group: Int) -> [Float] {
        let cin = g.channels / g.groups, taps = g.kh * g.kw, k = cin * taps
        var h = [Float](repeating: 0, count: k * k)
        for n in 0..<g.batch { for oy in 0..<g.outHeight { for ox in 0..<g.outWidth {
            var p = [Float](repeating: 0, count: k)
            for ci in 0..<cin { for ty in 0..<g.kh { for tx in 0..<g.kw {
                let iy = oy * g.strideH - g.padTop + ty * g.dilationH, ix = ox * g.strideW - g.padLeft + tx * g.dilationW
                if iy >= 0 && iy < g.height && ix >= 0 && ix < g.width {
                    p[ci * taps + ty * g.kw + tx] = x[((n * g.channels + group * cin + ci) * g.height + iy) * g.width + ix]
                }
            } } }
            for i in 0..<k { for j in 0..<k { h[i * k + j] += p[i] * p[j] } }
        } } }
        return h
    }

    @Test func patchGramMatchesBruteForce() {
        // Grouped 3×3 stride-2 conv with padding, and a 1×1 conv (the GEMM path).
        let g3 = ConvGeometry(batch: 2, channels: 4, height: 7, width: 6, kh: 3, kw: 3, strideH: 2, strideW: 2,
                              padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, dilationH: 1, dilationW: 1, groups: 2, outChannels: 4)
        let g1 = ConvGeometry(batch: 2, channels: 4, height: 7, width: 6, kh: 1, kw: 1, strideH: 1, strideW: 1,
                              padTop: 0, padLeft: 0, padBottom: 0, padRight: 0, dilationH: 1, dilationW: 1, groups: 1, outChannels: 3)
        let x = GPTQTests.noise(2 * 4 * 7 * 6, seed: 61)
        for (g, group) in [(g3, 0), (g3, 1), (g1, 0)] {
            let a = BiasCorrectionMath.patchGram(x, g, group: group), b = Self.bruteGram(x, g, group: group)
            #expect(a.count == b.count)
            #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-4 }, "group \(group) kernel \(g.kh)")
        }
    }

    @Test func cnnPipelineWithGPTQStoresCodesForEveryLayer() throws {
        let (g, folded) = try QuantizationPipeline.prepare(try PipelineFixtures.graph("resnet_ts13.onnx"))
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.settings = PipelineFixtures.fastSettings
        opts.settings.weightRounding = .gptq
        opts.settings.biasCorrection = true
        let cal = PipelineFixtures.calibration(count: 2, size: 32)
        let q = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        #expect(!q.weights.isEmpty && q.weights.allSatisfy { $0.codes != nil })
        let sim = try QuantSimulator(model: q, graph: g)
        #expect(try sim.session.run(cal.images).allSatisfy(\.isFinite))
    }
}
