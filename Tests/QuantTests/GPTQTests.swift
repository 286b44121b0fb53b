import Testing
import Foundation
@testable import Quant
@testable import Imaging
import FloatEngine
import ONNXGraph
import Calibration

@Suite struct GPTQTests {
    /// Deterministic uniform values in [−1, 1).
    static func noise(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Float(rng.next() % 2_000_001) / 1_000_000 - 1 }
    }

    /// Correlated inputs: n rows of k features mixed from k/4 latent factors plus noise.
    static func correlatedInputs(n: Int, k: Int, seed: UInt64) -> [Float] {
        let f = k / 4
        let lat = noise(n * f, seed: seed), mix = noise(f * k, seed: seed + 1), eps = noise(n * k, seed: seed + 2)
        var x = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k {
            var s: Float = 0
            for t in 0..<f { s += lat[i * f + t] * mix[t * k + j] }
            x[i * k + j] = s + 0.1 * eps[i * k + j]
        } }
        return x
    }

    static func gram(_ x: [Float], n: Int, k: Int) -> [Float] {
        var h = [Float](repeating: 0, count: k * k)
        for i in 0..<k { for j in 0..<k {
            var s: Float = 0
            for r in 0..<n { s += x[r * k + i] * x[r * k + j] }
            h[i * k + j] = s
        } }
        return h
    }

    /// ‖A·(W − Ŵ)ᵀ‖² for A [n × k], W [o × k].
    static func outputError(_ a: [Float], n: Int, k: Int, _ w: [Float], _ wh: [Float], o: Int) -> Double {
        var e = 0.0
        for i in 0..<n { for r in 0..<o {
            var s = 0.0
            for j in 0..<k { s += Double(a[i * k + j]) * Double(w[r * k + j] - wh[r * k + j]) }
            e += s * s
        } }
        return e
    }

    static func perRowMinMax(_ w: [Float], o: Int, k: Int, bits: Int) throws -> UniformQuantizer {
        try UniformQuantizer.initialized(from: w, shape: [o, k], bits: bits, granularity: .perChannel(axis: 0), method: .minMax)
    }

    @Test func choleskyAndTriangularInverseAcrossBlocks() {
        // n = 150 spans three 64-blocks; H = AᵀA + I is SPD.
        let n = 150
        let a = Self.noise(200 * n, seed: 3)
        var h = Self.gram(a, n: 200, k: n)
        for i in 0..<n { h[i * n + i] += 1 }
        var l = h
        #expect(GPTQ.choleskyLower(&l, n: n))
        var maxErr: Float = 0, maxAbs: Float = 0
        for i in 0..<n { for j in 0..<n {
            #expect(j <= i || l[i * n + j] == 0)
            var s: Float = 0
            for t in 0..<n { s += l[i * n + t] * l[j * n + t] }
            maxErr = max(maxErr, abs(s - h[i * n + j])); maxAbs = max(maxAbs, abs(h[i * n + j]))
        } }
        #expect(maxErr < 1e-4 * maxAbs, "‖LLᵀ − H‖∞ = \(maxErr)")
        let x = GPTQ.lowerInverse(l, n: n)
        var idErr: Float = 0
        for i in 0..<n { for j in 0..<n {
            var s: Float = 0
            for t in 0..<n { s += l[i * n + t] * x[t * n + j] }
            idErr = max(idErr, abs(s - (i == j ? 1 : 0)))
        } }
        #expect(idErr < 1e-4, "‖L·L⁻¹ − I‖∞ = \(idErr)")
        // Not positive definite: refused.
        var bad: [Float] = [1, 2, 2, 1]
        #expect(!GPTQ.choleskyLower(&bad, n: 2))
    }

    @Test func diagonalHessianGivesNearestRounding() throws {
        let o = 7, k = 40
        let w = Self.noise(o * k, seed: 9)
        let q = try Self.perRowMinMax(w, o: o, k: k, bits: 3)
        var h = [Float](repeating: 0, count: k * k)
        for i in 0..<k { h[i * k + i] = Float(1 + i % 5) }
        let g = try GPTQ.round(weight: w, rows: o, cols: k, hessian: h, scales: q.scales, zeroPoints: q.zeroPoints, bits: 3)
        let nearest = try q.fakeQuantize(w, shape: [o, k])
        #expect(g == nearest)
    }

    @Test func lowersLayerOutputErrorAndStaysOnGrid() throws {
        let n = 256, k = 96, o = 16
        let x = Self.correlatedInputs(n: n, k: k, seed: 21)
        let w = Self.noise(o * k, seed: 22)
        for bits in [3, 4] {
            let q = try Self.perRowMinMax(w, o: o, k: k, bits: bits)
            let h = Self.gram(x, n: n, k: k)
            let g = try GPTQ.round(weight: w, rows: o, cols: k, hessian: h, scales: q.scales, zeroPoints: q.zeroPoints, bits: bits)
            let nearest = try q.fakeQuantize(w, shape: [o, k])
            let eG = Self.outputError(x, n: n, k: k, w, g, o: o), eN = Self.outputError(x, n: n, k: k, w, nearest, o: o)
            #expect(eG < 0.7 * eN, "W\(bits): GPTQ output error \(eG) vs nearest \(eN)")
            // Every value is on its row's grid, and the codes reproduce it.
            let codes = GPTQ.codes(of: g, rows: o, cols: k, scales: q.scales, zeroPoints: q.zeroPoints, bits: bits)
            for r in 0..<o { for j in 0..<k {
                #expect(codes[r * k + j] <= UInt8((1 << bits) - 1))
                #expect((Float(codes[r * k + j]) - q.zeroPoints[r]) * q.scales[r] == g[r * k + j])
            } }
            // Without act order the result differs but still beats nearest.
            let g2 = try GPTQ.round(weight: w, rows: o, cols: k, hessian: h, scales: q.scales, zeroPoints: q.zeroPoints,
                                    bits: bits, actOrder: false, block: 16)
            #expect(Self.outputError(x, n: n, k: k, w, g2, o: o) < 0.7 * eN)
        }
    }

    @Test func blockSizeDoesNotChangeTheResult() throws {
        let n = 128, k = 70, o = 5
        let x = Self.correlatedInputs(n: n, k: k, seed: 31)
        let w = Self.noise(o * k, seed: 32)
        let q = try Self.perRowMinMax(w, o: o, k: k, bits: 4)
        let h = Self.gram(x, n: n, k: k)
        let a = try GPTQ.round(weight: w, rows: o, cols: k, hessian: h, scales: q.scales, zeroPoints: q.zeroPoints, bits: 4, block: 128)
        let b = try GPTQ.round(weight: w, rows: o, cols: k, hessian: h, scales: q.scales, zeroPoints: q.zeroPoints, bits: 4, block: 8)
        let differing = zip(a, b).filter { $0 != $1 }.count
        #expect(differing <= 2, "\(differing) values differ between block sizes")   // float summation order only
    }

    @Test func inputAwareTargetLowersErrorAgainstFloatOutput() throws {
        // Input quantized to 3 bits: the error against the float output X·Wᵀ is smaller with the input-aware target.
        let n = 256, k = 64, o = 12
        let x = Self.correlatedInputs(n: n, k: k, seed: 41)
        let w = Self.noise(o * k, seed: 42)
        let aq = try UniformQuantizer.initialized(from: x, shape: [n, k], bits: 3, method: .minMax)
        let xh = try aq.fakeQuantize(x, shape: [n, k])
        let wq = try Self.perRowMinMax(w, o: o, k: k, bits: 4)
        let obj = WeightOutputObjective(x: x, xHat: xh, tokens: n, inFeatures: k, weight: w, outFeatures: o)
        func err(_ wh: [Float]) -> Double {
            var e = 0.0
            for i in 0..<n { for r in 0..<o {
                var s = 0.0
                for j in 0..<k { s += Double(x[i * k + j]) * Double(w[r * k + j]) - Double(xh[i * k + j]) * Double(wh[r * k + j]) }
                e += s * s
            } }
            return e
        }
        let plain = try LayerSearch.gptqRound(w, rows: o, cols: k, quantizer: wq, objective: obj, mode: .gptq, settings: FPCSSettings())
        let ia = try LayerSearch.gptqRound(w, rows: o, cols: k, quantizer: wq, objective: obj, mode: .gptqInputAware, settings: FPCSSettings())
        let nearest = try wq.fakeQuantize(w, shape: [o, k])
        #expect(err(plain) < err(nearest))
        #expect(err(ia) < err(plain), "input-aware \(err(ia)) vs plain \(err(plain))")
    }

    @Test func parseAndBadShapes() throws {
        #expect(try WeightRounding.parse("GPTQ") == .gptq)
        #expect(try WeightRounding.parse("gptq-ia") == .gptqInputAware)
        #expect(throws: QuantError.self) { _ = try WeightRounding.parse("adaround") }
        #expect(throws: QuantError.self) {
            _ = try GPTQ.round(weight: [1, 2, 3], rows: 1, cols: 2, hessian: [1, 0, 0, 1], scales: [1], zeroPoints: [0], bits: 4)
        }
    }

    @Test func pipelineStoresCodesThatTheSimulationUses() throws {
        let g = try PipelineFixtures.graph("vit_ts17.onnx")
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.settings = PipelineFixtures.fastSettings
        let cal = PipelineFixtures.calibration(count: 2, size: 32)
        let near = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"),
                                                foldedBatchNorms: false)
        #expect(near.weights.allSatisfy { $0.codes == nil })
        opts.settings.weightRounding = .gptq
        let q = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"),
                                             foldedBatchNorms: false)
        // Every transformer weight (linears and the patch embed) carries codes; the grids are the same search's.
        #expect(q.weights.allSatisfy { $0.codes != nil })
        #expect(q.settings.weightRounding == .gptq)
        let c = try QuantSimulator.quantizedConstants(model: q, graph: g)
        let c0 = try QuantSimulator.quantizedConstants(model: near, graph: g)
        let w0 = try #require(q.weights.first { $0.layer == near.weights[0].layer })
        #expect(c[w0.tensor]?.floats != c0[w0.tensor]?.floats)
        // Codes decode to the substituted constants.
        let wq = q.weights[q.weights.count - 1]
        let shape = try #require(g.constants[wq.tensor]?.shape)
        let o = wq.transposed ? shape.last! : shape.first!, k = shape.reduce(1, *) / o
        let rows = SearchContext.rowsFirst(try #require(c[wq.tensor]?.floats), k: k, o: o, transposed: !wq.transposed)
        let codes = [UInt8](try #require(wq.codes))
        for r in 0..<o { for j in 0..<k {
            #expect(rows[r * k + j] == (Float(codes[r * k + j]) - wq.quantizer.zeroPoints[r]) * wq.quantizer.scales[r])
        } }
        // JSON round trip keeps the codes; simulation runs.
        let path = NSTemporaryDirectory() + "gptq-roundtrip-\(getpid()).json"
        try q.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try QuantizedModel.load(from: path) == q)
        let sim = try QuantSimulator(model: q, graph: g)
        let out = try sim.session.run(cal.images)
        #expect(out.allSatisfy { $0.isFinite })
    }
}

@Suite struct AdaLogBaseRangeTests {
    @Test func qMinWidensTheBaseSearchAndHelpsAtEightBits() throws {
        var s = FPCSSettings()
        #expect(FPCS.adaLogQCandidates(s) == Array(10...137))
        s.adaLogQMin = 1
        #expect(FPCS.adaLogQCandidates(s) == Array(1...137))
        // 8-bit P·V on a small random attention: a base finer than 2^(10/37) wins and lowers the output error.
        let t = 24, d = 8
        let logits = GPTQTests.noise(t * t, seed: 51).map { $0 * 4 }
        var p = [Float](repeating: 0, count: t * t)
        for i in 0..<t {
            let row = logits[(i * t)..<((i + 1) * t)]
            let m = row.max()!
            let e = row.map { expf($0 - m) }
            let sum = e.reduce(0, +)
            for j in 0..<t { p[i * t + j] = e[j] / sum }
        }
        let v = GPTQTests.noise(t * d, seed: 52)
        var fast = FPCSSettings()
        fast.rounds = 1
        fast.steps = 2
        func outputError(_ r: AttentionValuesSearchResult) throws -> Double {
            let ph = try r.probabilityQuantizer.fakeQuantize(p), vh = try r.value.fakeQuantize(v, shape: [1, 1, t, d])
            var e = 0.0
            for i in 0..<t { for c in 0..<d {
                var a = 0.0, b = 0.0
                for j in 0..<t { a += Double(p[i * t + j] * v[j * d + c]); b += Double(ph[i * t + j] * vh[j * d + c]) }
                e += (a - b) * (a - b)
            } }
            return e
        }
        let ref = try LayerSearch.attentionValues(probabilities: p, value: v, batch: 1, heads: 1, tokens: t, headDim: d,
                                                  probabilityBits: 8, valueBits: 8, settings: fast)
        fast.adaLogQMin = 1
        let wide = try LayerSearch.attentionValues(probabilities: p, value: v, batch: 1, heads: 1, tokens: t, headDim: d,
                                                   probabilityBits: 8, valueBits: 8, settings: fast)
        #expect(ref.probabilities!.q >= 10)
        #expect(wide.probabilities!.q < 10)
        let eWide = try outputError(wide), eRef = try outputError(ref)
        #expect(eWide < eRef)
    }
}

@Suite struct SequentialRoundingTests {
    /// Squared logit error against float over the calibration images, `batch` images per run.
    static func logitError(_ m: QuantizedModel, _ g: StaticGraph, _ cal: CalibrationSet) throws -> Double {
        let sim = try QuantSimulator(model: m, graph: g)
        let float = try FloatSession(staticGraph: g)
        let per = cal.imageSize * g.batch
        var e = 0.0
        for b in 0..<(cal.count / g.batch) {
            let x = Array(cal.images[(b * per)..<((b + 1) * per)])
            let y = try sim.session.run(x), f = try float.run(x)
            for (a, r) in zip(y, f) { e += Double(a - r) * Double(a - r) }
        }
        return e
    }

    /// `gptq-seq` on the tiny ViT (16 images, 17 tokens): every linear with at least 4·K calibration rows gets codes
    /// and a bias correction (the head, one row per image, keeps nearest rounding; so does the patch embed, 16 rows
    /// an image for K = 192), grids and activation quantizers are the search's, and the simulated model's logits
    /// move closer to float on the calibration images.
    @Test func refitsLinearsAndBringsTheOutputCloserToFloat() throws {
        let g = try PipelineFixtures.graph("vit_ts17.onnx")
        let count = 16
        let cal = PipelineFixtures.calibration(count: count, size: 32)
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.settings = PipelineFixtures.fastSettings
        let near = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"),
                                                foldedBatchNorms: false)
        opts.settings.weightRounding = .gptqSequential
        // GPTQ's own 1 % dampening: the default 0.1 was chosen on ViT-Tiny (6,000+ rows per layer); on this toy's
        // 272 rows per layer it regularises the fit away (squared logit error 0.025 against 0.023 for nearest).
        opts.settings.gptqDampening = 0.01
        let seq = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"),
                                               foldedBatchNorms: false)
        #expect(seq.activations == near.activations)
        #expect(seq.layerNormFolds == near.layerNormFolds)
        #expect(seq.weights.map(\.quantizer) == near.weights.map(\.quantizer))
        let patterns = try ModelPatterns(graph: g)
        var refit: [String] = []
        for l in patterns.linears {
            let w = try #require(seq.weights.first { $0.layer == l.node })
            let shape = try #require(g.shapes[l.input])
            let rows = shape.dropLast().reduce(1, *) / g.batch * count
            #expect((w.codes != nil) == (rows >= 4 * l.inFeatures), "\(l.node): \(rows) rows for K = \(l.inFeatures)")
            if w.codes != nil { refit.append(l.node) }
        }
        #expect(refit.count == 8, "qkv, proj, fc1, fc2 of both blocks")
        #expect(Set((seq.biasCorrections ?? []).map(\.layer)) == Set(refit))
        #expect(seq.weights.filter { w in !patterns.linears.contains { $0.node == w.layer } }.allSatisfy { $0.codes == nil },
                "the patch embed has too few rows")
        let eNear = try Self.logitError(near, g, cal), eSeq = try Self.logitError(seq, g, cal)
        #expect(eSeq < 0.8 * eNear, "squared logit error: gptq-seq \(eSeq), nearest \(eNear)")
    }

    /// The conv moments gathered patch by patch equal the linear moments of the explicit im2col matrices, per group,
    /// with padding, stride 2 and grouped channels.
    @Test func convMomentsMatchExplicitPatches() {
        let g = ConvGeometry(batch: 2, channels: 4, height: 5, width: 6, kh: 3, kw: 3, strideH: 2, strideW: 1, padTop: 1,
                             padLeft: 1, padBottom: 1, padRight: 1, dilationH: 1, dilationW: 1, groups: 2, outChannels: 6)
        let count = g.batch * g.channels * g.height * g.width
        let x = GPTQTests.noise(count, seed: 3).map { $0 + 0.5 }
        let u = zip(x, GPTQTests.noise(count, seed: 4)).map { $0 + 0.1 * $1 }
        let oh = g.outHeight, ow = g.outWidth
        let cin = 2, k = cin * 9, n = g.batch * oh * ow
        func patches(_ a: [Float], group: Int) -> [Float] {
            var p = [Float](repeating: 0, count: n * k)
            var row = 0
            for b in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow {
                for ci in 0..<cin { for ty in 0..<3 { for tx in 0..<3 {
                    let iy = oy * 2 - 1 + ty, ix = ox - 1 + tx
                    let inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                    p[row * k + ci * 9 + ty * 3 + tx] = inside ? a[((b * 4 + group * cin + ci) * g.height + iy) * g.width + ix] : 0
                } } }
                row += 1
            } } }
            return p
        }
        for group in 0..<2 {
            for centred in [false, true] {
                let a = SequentialRounding.Moments.conv(u, x, g, group: group, centred: centred)
                let e = SequentialRounding.Moments.linear(patches(u, group: group), patches(x, group: group), rows: n, k: k,
                                                          centred: centred)
                #expect(a.rows == e.rows)
                for (p, q) in zip(a.h + a.g + a.inputMean + a.referenceMean, e.h + e.g + e.inputMean + e.referenceMean) {
                    #expect(abs(p - q) < 1e-4, "group \(group) centred \(centred): \(p) vs \(q)")
                }
            }
        }
    }

    /// On the tiny CNN (BN folded, 16 images of 32×32): the convs with enough patch rows are refit (codes and bias
    /// corrections) and the logits move closer to float.
    @Test func refitsConvsAndBringsTheOutputCloserToFloat() throws {
        let (g, folded) = try QuantizationPipeline.prepare(try PipelineFixtures.graph("resnet_ts13.onnx"))
        let cal = PipelineFixtures.calibration(count: 16, size: 32)
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.settings = PipelineFixtures.fastSettings
        let near = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        opts.settings.weightRounding = .gptqSequential
        let seq = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        #expect(seq.activations == near.activations)
        let refit = seq.weights.filter { $0.codes != nil }.map(\.layer)
        let convs = try ModelPatterns(graph: g).convs
        #expect(refit.filter { r in convs.contains { $0.node == r } }.count >= 2, "refit: \(refit)")
        // the intercept goes into the bias (layers1.0/conv2 has an all-zero folded weight, zero-init BN γ: intercept 0)
        let corrected = Set((seq.biasCorrections ?? []).map(\.layer))
        #expect(corrected.isSubset(of: Set(refit)) && corrected.count >= 2, "corrected: \(corrected)")
        let eNear = try Self.logitError(near, g, cal), eSeq = try Self.logitError(seq, g, cal)
        #expect(eSeq < 0.8 * eNear, "squared logit error: gptq-seq \(eSeq), nearest \(eNear)")

        // With --bias-correction the search stores a correction for each conv; the refit's intercept replaces it
        // (it is the whole bias change for the refit weight), so the refit layers' bias changes are the plain refit's
        // and the layers left alone keep the search's correction. (Whether that beats nearest rounding with bias
        // correction is not asserted: on this CNN and on EfficientNet-Lite0 it does not; see the README.)
        opts.settings.biasCorrection = true
        let seqBC = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        opts.settings.weightRounding = nil
        let nearBC = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet", "x"), foldedBatchNorms: folded)
        for w in seqBC.weights {
            let a = seqBC.biasCorrections?.first { $0.layer == w.layer }?.delta
            let b = (w.codes != nil ? seq : nearBC).biasCorrections?.first { $0.layer == w.layer }?.delta
            #expect(a == b, "\(w.layer) (refit: \(w.codes != nil)): bias change \(a ?? []) vs \(b ?? [])")
        }
        #expect(seqBC.weights.contains { w in w.codes == nil && nearBC.biasCorrections?.contains { $0.layer == w.layer } == true },
                "some layer is left alone and keeps the search's correction")
    }

    /// `--sequential-search`: the first unit (the patch embed, fed by the image) is searched on the same data as
    /// without it, later units on the quantized model's tensors, so some later activation quantizers differ; with
    /// gptq-seq each layer is refit right after its search and the logits end up closer to float than the plain
    /// search's, on the tiny ViT and the tiny CNN.
    @Test(arguments: ["vit_ts17.onnx", "resnet_ts13.onnx"])
    func sequentialSearchUsesTheQuantizedModelsTensors(fixture: String) throws {
        let (g, folded) = try QuantizationPipeline.prepare(try PipelineFixtures.graph(fixture))
        let cal = PipelineFixtures.calibration(count: 16, size: 32)
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.settings = PipelineFixtures.fastSettings
        func run() throws -> QuantizedModel {
            try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: (fixture, "x"), foldedBatchNorms: folded)
        }
        let plain = try run()
        opts.settings.sequentialSearch = true
        let sequential = try run()
        let first = try #require(QuantizationPipeline.units(try ModelPatterns(graph: g)).first?.name)
        #expect(sequential.weights.filter { $0.layer == first } == plain.weights.filter { $0.layer == first })
        #expect(sequential.activations.filter { $0.consumer == first } == plain.activations.filter { $0.consumer == first })
        #expect(sequential.activations.count == plain.activations.count)
        let changed = zip(sequential.activations, plain.activations).filter { $0.quantizer != $1.quantizer }.count
        #expect(changed > 0, "every activation quantizer came out as on float data")
        opts.settings.weightRounding = .gptqSequential
        let refit = try run()
        #expect(refit.weights.contains { $0.codes != nil })
        let ePlain = try Self.logitError(plain, g, cal), eRefit = try Self.logitError(refit, g, cal)
        #expect(eRefit < 0.8 * ePlain, "squared logit error: sequential + gptq-seq \(eRefit), plain \(ePlain)")
    }
}
