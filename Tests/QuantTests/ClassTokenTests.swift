// `--class-token-bits`: the class token's own grid in the search output and in the fake-quant simulation.
import Testing
import Foundation
@testable import Quant
import Calibration
@testable import ONNXGraph

@Suite struct ClassTokenQuantizerTests {
    /// Rows 0 and 3 of a [2 images, 3 tokens, 2 channels] tensor go through the class-token quantizer, the others
    /// through the tensor's quantizer (hand-computed: steps 1 and 0.1).
    @Test func simulationQuantizesClassRowsOnTheirOwnGrid() throws {
        let coarse = try UniformQuantizer(bits: 4, scales: [1], zeroPoints: [8])
        let fine = try UniformQuantizer(bits: 8, scales: [0.1], zeroPoints: [128])
        let prefix = TokenPrefixQuantization(tokens: 3, count: 1, quantizer: fine)
        var x: [Float] = [0.26, -1.33, 0.26, -1.33, 2.6, 0.4, 0.26, -1.33, 0.74, 0.74, 0.4, 100]
        x.withUnsafeMutableBufferPointer { QuantSimulator.fakeQuantize(.uniform(coarse), prefix: prefix, shape: [2, 3, 2], $0) }
        let want: [Float] = [0.3, -1.3, 0, -1, 3, 0, 0.3, -1.3, 1, 1, 0, 7]
        for (a, b) in zip(x, want) { #expect(abs(a - b) < 1e-5, "\(x) vs \(want)") }
        // without a [images, tokens, C] shape the class-token grid cannot be placed: the tensor's quantizer everywhere
        var y: [Float] = [0.26, -1.33, 0.26]
        y.withUnsafeMutableBufferPointer { QuantSimulator.fakeQuantize(.uniform(coarse), prefix: prefix, shape: [3], $0) }
        #expect(y == [0, -1, 0])
    }

    /// On the tiny ViT fixture: the qkv, fc1 (post-LayerNorm) and projection inputs get an 8-bit min-max grid over
    /// their class-token rows; fc2 (AdaLog) and the head do not; the JSON round trip keeps it; the shared grid is
    /// searched on the patch tokens (it differs from the run without the option).
    @Test func searchRecordsClassTokenGrids() throws {
        let g = try PipelineFixtures.graph("vit_ts17.onnx")
        let cal = PipelineFixtures.calibration(count: 2, size: 32)
        var opts = try PipelineFixtures.fastOptions("W4A4")
        let plain = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("v", "x"), foldedBatchNorms: false)
        opts.settings.classTokenBits = 8
        let q = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: ("v", "x"), foldedBatchNorms: false)
        let withPrefix = q.activations.filter { $0.prefix != nil }
        #expect(!withPrefix.isEmpty)
        #expect(plain.activations.allSatisfy { $0.prefix == nil })
        for a in q.activations {
            let tokenMajor = g.shapes[a.tensor]?.count == 3
            let expected = tokenMajor && (a.kind == .postLayerNormInput || a.kind == .linearInput)
            #expect((a.prefix != nil) == expected, "\(a.consumer) (\(a.kind))")
            if let p = a.prefix {
                #expect(p.count == 1 && p.quantizer.bits == 8 && p.quantizer.scales.count == 1)
                #expect(p.tokens == g.shapes[a.tensor]?[1], "\(a.tensor) shape \(g.shapes[a.tensor] ?? [])")
            }
        }
        #expect(zip(plain.activations, q.activations).contains { $0.quantizer != $1.quantizer }, "the shared grids ignore the class token")
        let decoded = try JSONDecoder().decode(QuantizedModel.self, from: try JSONEncoder().encode(q))
        let same = decoded.activations == q.activations
        #expect(same)
        // the simulation runs it
        let sim = try QuantSimulator(model: q, graph: g)
        #expect(sim.prefixQuantizers.count == withPrefix.count)
        let out = try sim.session.run(Array(cal.images[0..<(2 * 3 * 32 * 32)]))
        let finite = out.allSatisfy { $0.isFinite }
        #expect(finite)
    }
}
