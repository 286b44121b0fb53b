// Same inputs → the same quantization JSON, run to run and for 1 vs 2 kernel threads. Only the wall-clock fields
// (calibrationSeconds, searchSeconds, per-layer seconds) may differ; they are zeroed before comparing bytes.
import Foundation
import Testing
@testable import Quant
import Calibration
@testable import ONNXGraph
import FloatEngine

@Suite(.serialized) struct PipelineDeterminismTests {
    func quantizedJSON(threads: Int, model: String, method: QuantMethod) throws -> Data {
        let saved = FloatKernels.threadCount
        FloatKernels.threadCount = threads
        defer { FloatKernels.threadCount = saved }
        var (g, folded) = (try PipelineFixtures.graph(model), false)
        if model.hasPrefix("resnet") { (g, folded) = try QuantizationPipeline.prepare(g) }
        var opts = PipelineOptions(plan: PlanOptions(bits: try BitSetting(parsing: "W4A4")))
        opts.method = method
        opts.settings = PipelineFixtures.fastSettings
        var q = try QuantizationPipeline.run(graph: g, calibration: PipelineFixtures.calibration(count: 2, size: 32),
                                             options: opts, source: (model, "sha"), foldedBatchNorms: folded)
        q.calibrationSeconds = 0
        q.searchSeconds = 0
        for i in q.layers.indices {
            q.layers[i].seconds = 0
            q.layers[i].phaseSeconds = q.layers[i].phaseSeconds.map { _ in 0 }
        }
        return try q.jsonData()
    }

    @Test(arguments: [("vit_ts17.onnx", QuantMethod.adalog), ("resnet_ts13.onnx", QuantMethod.uniformMinMax)])
    func sameJSONForOneAndTwoThreadsAndRunToRun(model: String, method: QuantMethod) throws {
        let one = try quantizedJSON(threads: 1, model: model, method: method)
        let two = try quantizedJSON(threads: 2, model: model, method: method)
        let again = try quantizedJSON(threads: 2, model: model, method: method)
        #expect(one.count > 1000)
        #expect(one == two, "1 vs 2 threads differ for \(model)")
        #expect(two == again, "run to run differs for \(model)")
    }
}
