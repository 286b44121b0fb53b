import Foundation
import Testing
@testable import ONNXGraph
@testable import FloatEngine

/// Every committed timm export against onnxruntime's output for the same fixed input.
@Suite struct ParityTests {
    @Test(arguments: Fixtures.names)
    func matchesOnnxRuntime(_ name: String) throws {
        let entry = try #require(try Fixtures.manifest()[name])
        let model = try ONNXModel(contentsOf: Fixtures.url(entry.model).path)
        let batch = entry.input_shape[0]
        let session = try FloatSession(graph: model.graph, batch: batch)
        let input = try Fixtures.floats("\(name).input.f32")
        let expected = try Fixtures.floats("\(name).expected.f32")
        let out = try session.run(input)
        #expect(out.count == expected.count)
        let maxLogit = expected.map { abs($0) }.max() ?? 0
        let diff = maxAbsDiff(out, expected)
        #expect(diff <= 1e-3 * maxLogit, "\(name): max abs diff \(diff), max |logit| \(maxLogit)")
        #expect(argmaxRows(out, rows: batch) == argmaxRows(expected, rows: batch), "\(name): top-1 differs")
        // no shape arithmetic survives specialisation
        let shapeOps: Set<String> = ["Shape", "ConstantOfShape", "Range", "Size"]
        #expect(!session.graph.nodes.contains { shapeOps.contains($0.opType) })
    }

    @Test func batchSizeIsSymbolic() throws {
        let model = try ONNXModel(contentsOf: Fixtures.url("vit_ts17.onnx").path)
        let input = try Fixtures.floats("vit_ts17.input.f32")
        let expected = try Fixtures.floats("vit_ts17.expected.f32")
        // batch 1: the first image alone gives the first row of the batch-2 reference
        let s1 = try FloatSession(graph: model.graph, batch: 1)
        let one = try s1.run(Array(input[0..<(3 * 32 * 32)]))
        #expect(maxAbsDiff(one, Array(expected[0..<10])) < 1e-4)
        // batch 3 specialises to [3, 10]
        let g3 = try model.graph.specialized(batch: 3)
        #expect(g3.outputs[0].shape == [3, 10])
        #expect(g3.inputs[0].shape == [3, 3, 32, 32])
    }
}
