import Testing
import Foundation
@testable import Quant
@testable import Imaging
import FloatEngine
import ONNXGraph
import Calibration

@Suite struct BlockReconstructionTests {
    /// The tiny ViT's first block, on the float graph.
    static func firstBlock() throws -> (StaticGraph, BlockReconstruction.Block, ModelPatterns) {
        let g = try PipelineFixtures.graph("vit_ts17.onnx")
        let p = try ModelPatterns(graph: g)
        let blocks = BlockReconstruction.blocks(p, graph: g)
        #expect(blocks.count == 2, "two transformer blocks")
        return (g, try #require(blocks.first), p)
    }

    static func input(_ g: StaticGraph, _ name: String) throws -> [Float] {
        let cal = PipelineFixtures.calibration(count: g.batch, size: 32)
        return try #require(try ActivationCollector(graph: g, calibration: cal).collect([name])[name]).values
    }

    /// The block interpreter computes what the float engine computes.
    @Test func forwardMatchesTheFloatEngine() throws {
        let (g, b, _) = try Self.firstBlock()
        let block = try DifferentiableBlock(graph: g, input: b.input, output: b.output, quantizers: [:], prefixes: [:])
        let cal = PipelineFixtures.calibration(count: g.batch, size: 32)
        let both = try ActivationCollector(graph: g, calibration: cal).collect([b.input, b.output])
        let x = try #require(both[b.input]).values, reference = try #require(both[b.output]).values
        let y = block.forward(x)
        #expect(y.count == reference.count)
        let err = zip(y, reference).map { abs($0 - $1) }.max() ?? .infinity
        let scale = reference.map { abs($0) }.max() ?? 0
        #expect(err <= 1e-4 * max(scale, 1), "max |Δ| \(err) (max |y| \(scale))")
    }

    /// The local target is the float block on the given input: on the float model's own block input, its block output.
    @Test func localTargetIsTheFloatBlock() throws {
        let (g, b, _) = try Self.firstBlock()
        let cal = PipelineFixtures.calibration(count: 3, size: 32)   // not a multiple of the batch: the last run wraps
        let both = try ActivationCollector(graph: g, calibration: cal).collect([b.input, b.output])
        let input = try #require(both[b.input]), reference = try #require(both[b.output])
        let local = try BlockReconstruction.localTarget(b, graph: g, input: input)
        #expect(local.shape == reference.shape)
        let err = zip(local.values, reference.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(local.values.count == reference.values.count && err <= 1e-4, "max |Δ| \(err)")
    }

    /// Reverse-mode gradients agree with central differences for the block input, a weight and a bias, through
    /// LayerNorm, the attention (softmax) and the GELU.
    @Test func gradientsMatchFiniteDifferences() throws {
        let (g, b, p) = try Self.firstBlock()
        let block = try DifferentiableBlock(graph: g, input: b.input, output: b.output, quantizers: [:], prefixes: [:])
        let nodes = Set(block.nodes.map(\.name))
        let linears = p.linears.filter { nodes.contains($0.node) }
        #expect(linears.count == 4, "qkv, proj, fc1, fc2")
        let qkv = try #require(linears.first), fc2 = try #require(linears.last)
        let bias = try #require(fc2.bias)
        block.trainable = [qkv.weight, bias]
        let x = try Self.input(g, b.input)
        var rng = SplitMix64(seed: 3)
        func uniform() -> Float { Float(rng.next() % 2_000_001) / 1_000_000 - 1 }
        let r = (0..<block.forward(x).count).map { _ in uniform() }
        func loss(_ x: [Float]) -> Double { zip(block.forward(x), r).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        _ = block.forward(x)
        let (dx, dc, _) = block.backward(r)
        func check(_ analytic: Float, _ perturb: (Float) -> Double, _ what: String) {
            let eps: Float = 1e-2
            let numeric = (perturb(eps) - perturb(-eps)) / Double(2 * eps)
            let tol = 2e-2 * max(abs(numeric), 1e-1)
            #expect(abs(Double(analytic) - numeric) <= tol, "\(what): analytic \(analytic), numeric \(numeric)")
        }
        for _ in 0..<4 {
            let i = Int(rng.next() % UInt64(x.count))
            check(dx[i], { e in var xx = x; xx[i] += e; return loss(xx) }, "input[\(i)]")
        }
        let w = try #require(block.constants[qkv.weight]), dw = try #require(dc[qkv.weight])
        for _ in 0..<4 {
            let i = Int(rng.next() % UInt64(w.count))
            check(dw[i], { e in
                var ww = w; ww[i] += e; block.constants[qkv.weight] = ww
                defer { block.constants[qkv.weight] = w }
                return loss(x)
            }, "qkv weight[\(i)]")
        }
        let bv = try #require(block.constants[bias]), db = try #require(dc[bias])
        for i in [0, bv.count / 2, bv.count - 1] {
            check(db[i], { e in
                var bb = bv; bb[i] += e; block.constants[bias] = bb
                defer { block.constants[bias] = bv }
                return loss(x)
            }, "fc2 bias[\(i)]")
        }
    }

    /// With the fake-quant graph and quantizers, the block interpreter computes the simulation's block output.
    @Test func fakeQuantForwardMatchesTheSimulation() throws {
        let (g, b, _) = try Self.firstBlock()
        let cal = PipelineFixtures.calibration(count: 4, size: 32)
        let opts = try PipelineFixtures.fastOptions("W4A4")
        let model = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"),
                                                 foldedBatchNorms: false)
        let sim = try QuantSimulator(model: model, graph: g, options: SessionOptions(keep: [b.input, b.output]))
        let both = try ActivationCollector(session: sim.session, calibration: cal).collect([b.input, b.output])
        let (fq, quantizers, prefixes, replaced, _) = try QuantSimulator.fakeQuantGraph(model: model, graph: g)
        var graph = fq
        for (k, v) in replaced { graph.constants[k] = v }
        let block = try DifferentiableBlock(graph: graph, input: b.input, output: b.output, quantizers: quantizers, prefixes: prefixes)
        let x = try #require(both[b.input]).values, reference = try #require(both[b.output]).values
        let per = x.count / cal.count
        var y: [Float] = []
        for i in stride(from: 0, to: cal.count, by: g.batch) {
            y += block.forward(Array(x[(i * per)..<((i + g.batch) * per)]))
        }
        var s = 0.0, n = 0.0
        for (a, r) in zip(y, reference) { s += Double(r * r); n += Double((a - r) * (a - r)) }
        #expect(n <= 1e-6 * s, "SQNR \(10 * log10(s / max(n, 1e-30))) dB against the simulation")
    }

    /// `--block-reconstruction` on the tiny ViT: both blocks are tuned, their hard-rounded loss falls, codes and bias
    /// corrections are stored for the block linears, weight grids stay as searched, only the scales of per-tensor
    /// activation quantizers move, and the
    /// simulation of the stored result reproduces the tuned loss. (The fixture's weights are random, so its logits say
    /// nothing about accuracy; ViT-Tiny's are in the README.)
    @Test func tunesBothBlocksAndBringsTheOutputCloserToFloat() throws {
        let g = try PipelineFixtures.graph("vit_ts17.onnx")
        let cal = PipelineFixtures.calibration(count: 16, size: 32)
        var opts = try PipelineFixtures.fastOptions("W4A4")
        func run() throws -> QuantizedModel {
            try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"), foldedBatchNorms: false)
        }
        let plain = try run()
        opts.settings.blockReconstruction = 150
        opts.settings.blockReconstructionScales = .all
        let tuned = try run()
        let records = try #require(tuned.reconstruction)
        #expect(records.count == 2)
        for r in records { #expect(r.lossAfter <= r.lossBefore, "\(r.block): \(r.lossBefore) → \(r.lossAfter)") }
        #expect(records.contains { $0.kept && $0.lossAfter < 0.9 * $0.lossBefore }, "\(records.map { ($0.lossBefore, $0.lossAfter) })")
        // What was stored is what was tuned: the simulation of the result gives the first block's tuned loss.
        let first = try #require(BlockReconstruction.blocks(try ModelPatterns(graph: g), graph: g).first)
        let target = try #require(try ActivationCollector(graph: g, calibration: cal).collect([first.output])[first.output]).values
        let sim = try QuantSimulator(model: tuned, graph: g, options: SessionOptions(keep: [first.output]))
        let out = try #require(try ActivationCollector(session: sim.session, calibration: cal).collect([first.output])[first.output])
        let tokens = out.shape[1], perBatch = Double(out.values.count / cal.count * g.batch)
        let simLoss = zip(out.values, target).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } * Double(tokens) / perBatch / 10
        #expect(abs(simLoss - records[0].lossAfter) <= 1e-3 * records[0].lossAfter, "simulated \(simLoss), tuned \(records[0].lossAfter)")
        // `--resume`: the same reconstruction on the earlier search's result gives the same model.
        let resumed = try QuantizationPipeline.reconstructBlocks(plain, graph: g, calibration: cal,
                                                                 options: ReconstructionOptions(iterations: 150, scales: .all))
        #expect(resumed.weights == tuned.weights)
        #expect(resumed.activations == tuned.activations)
        #expect(resumed.biasCorrections == tuned.biasCorrections)
        #expect(resumed.settings.blockReconstruction == 150)
        // Activation quantizers: only scales move (LSQ), of the uniform ones and of the post-GELU AdaLog; the softmax's
        // AdaLog keeps scale 1 and the head's input (outside the blocks) is untouched.
        #expect(tuned.activations.count == plain.activations.count)
        var movedScales = 0
        for (t, p) in zip(tuned.activations, plain.activations) {
            #expect(t.tensor == p.tensor && t.consumer == p.consumer && t.prefix == p.prefix)
            switch (t.quantizer, p.quantizer) {
            case (.uniform(var u), .uniform(let v)):
                if u.scales != v.scales { movedScales += 1 }
                #expect(zip(u.scales, v.scales).allSatisfy { abs($0 / $1 - 1) < 0.5 })
                u.scales = v.scales
                #expect(u == v, "\(t.tensor): only the scales change")
            case (.adaLog(var a), .adaLog(let b)):
                if a.scale != b.scale { movedScales += 1 }
                #expect(b.shift > 0 || a.scale == b.scale, "\(t.tensor): the softmax scale stays 1")
                a.scale = b.scale
                #expect(a == b, "\(t.tensor): only the scale changes")
            default:
                #expect(t.quantizer == p.quantizer, "\(t.tensor)")
            }
            if t.consumer.hasPrefix("/head") { #expect(t.quantizer == p.quantizer) }
        }
        #expect(movedScales > 0)
        #expect(tuned.weights.map(\.quantizer) == plain.weights.map(\.quantizer))
        #expect(tuned.weights.filter { $0.codes != nil }.count == 4 * records.filter(\.kept).count)
        #expect(Set((tuned.biasCorrections ?? []).map(\.layer)) == Set(tuned.weights.filter { $0.codes != nil }.map(\.layer)),
                "every tuned linear has a bias correction")
    }

    /// `--reconstruction-scales none` leaves every activation quantizer as searched; per-tensor moves only per-tensor grids.
    @Test func scaleSelection() throws {
        let g = try PipelineFixtures.graph("vit_ts17.onnx")
        let cal = PipelineFixtures.calibration(count: 4, size: 32)
        let opts = try PipelineFixtures.fastOptions("W4A4")
        let plain = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("vit_ts17.onnx", "x"), foldedBatchNorms: false)
        let none = try QuantizationPipeline.reconstructBlocks(plain, graph: g, calibration: cal,
                                                             options: ReconstructionOptions(iterations: 20, scales: .none))
        #expect(none.activations == plain.activations)
        #expect(none.settings.blockReconstructionScales == ReconstructionScales.none)
        let perTensor = try QuantizationPipeline.reconstructBlocks(plain, graph: g, calibration: cal,
                                                                  options: ReconstructionOptions(iterations: 20))
        var moved = 0
        for (t, p) in zip(perTensor.activations, plain.activations) where t.quantizer != p.quantizer {
            moved += 1
            if case .uniform(let u) = t.quantizer { #expect(u.granularity == .perTensor, "\(t.tensor)") } else { Issue.record("\(t.tensor) moved") }
        }
        #expect(moved > 0)
    }

    /// The layernorm loss weights: mean 1, (mean γ² over the later LayerNorms)_c / σ²_row up to that normalisation.
    @Test func layerNormLossWeights() throws {
        let (g, b, p) = try Self.firstBlock()
        let cal = PipelineFixtures.calibration(count: g.batch, size: 32)
        let target = try #require(try ActivationCollector(graph: g, calibration: cal).collect([b.output])[b.output])
        #expect(BlockReconstruction.lossWeights(kind: .mse, target: target, after: b.output, graph: g, patterns: p) == nil)
        let w = try #require(BlockReconstruction.lossWeights(kind: .layerNorm, target: target, after: b.output, graph: g, patterns: p))
        #expect(abs(w.reduce(0, +) / Float(w.count) - 1) < 1e-3)
        let c = try #require(target.shape.last)
        var order: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() { for o in n.outputs { order[o] = i } }
        let later = p.layerNorms.filter { (order[$0.output] ?? 0) > (order[b.output] ?? 0) }
        #expect(later.count == 3, "block 2's two LayerNorms and the final one")
        var g2 = [Float](repeating: 0, count: c)
        for ln in later {
            let name = try #require(ln.gamma)
            let gm = try #require(g.constants[name]).floats
            for j in 0..<c { g2[j] += gm[j] * gm[j] }
        }
        func variance(_ r: Int) -> Float {
            let row = target.values[(r * c)..<((r + 1) * c)]
            let m = row.reduce(0, +) / Float(c)
            return row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(c) + 1e-5
        }
        // w[r, j] · σ²_r / γ²_j is the same constant everywhere
        let k0 = w[0] * variance(0) / g2[0]
        for (r, j) in [(0, 5), (3, 0), (7, c - 1)] {
            let k = w[r * c + j] * variance(r) / g2[j]
            #expect(abs(k / k0 - 1) < 1e-3, "row \(r) channel \(j)")
        }
    }

    /// A CNN has residual blocks but convolutions, which the block interpreter cannot differentiate: a clear error.
    @Test func refusesConvBlocks() throws {
        let (g, folded) = try QuantizationPipeline.prepare(try PipelineFixtures.graph("resnet_ts13.onnx"))
        let cal = PipelineFixtures.calibration(count: 2, size: 32)
        var opts = try PipelineFixtures.fastOptions("W4A4")
        opts.settings.blockReconstruction = 2
        #expect {
            _ = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("resnet_ts13.onnx", "x"), foldedBatchNorms: folded)
        } throws: { "\($0)".contains("Conv") || "\($0)".contains("transformer") }
    }
}
