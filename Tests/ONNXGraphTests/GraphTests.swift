import Foundation
import Testing
@testable import ONNXGraph
@testable import FloatEngine

/// Patterns, hooks, weight substitution and BN folding on the committed fixtures.
@Suite struct GraphTests {
    func load(_ name: String) throws -> ONNXModel { try ONNXModel(contentsOf: Fixtures.url(name + ".onnx").path) }

    @Test(arguments: ["vit_ts13", "vit_ts17"])
    func vitPatterns(_ name: String) throws {
        let g = try load(name).graph.specialized(batch: 1)
        let p = try ModelPatterns(graph: g)
        // depth 2: per block qkv, proj, fc1, fc2 + head; 2 LN per block + final; 1 GELU and 1 attention per block
        #expect(p.linears.count == 9)
        #expect(p.layerNorms.count == 5)
        #expect(p.layerNorms.allSatisfy { $0.fused == name.hasSuffix("17") })
        #expect(p.gelus.count == 2)
        #expect(p.attentions.count == 2)
        #expect(p.convs.count == 1)
        #expect(p.residualAdds.count == 4)
        // LN feeds qkv and fc1 in each block; GELU feeds fc2
        #expect(p.layerNormBeforeLinear.count == 4)
        #expect(p.geluBeforeLinear.count == 2)
        for a in p.attentions {
            #expect(g.shapes[a.probabilities] == [1, 2, 17, 17])
            #expect(abs(a.scale - 1 / Float(16).squareRoot()) < 1e-6)  // head dim 16
        }
        for l in p.linears where p.geluBeforeLinear[l.node] != nil { #expect(l.inFeatures == 64 && l.outFeatures == 32) }
    }

    @Test func cnnPatternsAndBatchNormFolding() throws {
        let m = try load("resnet_ts13")
        let g = try m.graph.specialized(batch: 2)
        let p = try ModelPatterns(graph: g)
        #expect(p.convs.count >= 9)
        #expect(p.linears.count == 1)
        #expect(p.residualAdds.count == 4)
        let folded = try g.foldingBatchNorms()
        let input = try Fixtures.floats("resnet_ts13.input.f32")
        let expected = try Fixtures.floats("resnet_ts13.expected.f32")
        let out = try FloatSession(staticGraph: folded).run(input)
        #expect(maxAbsDiff(out, expected) < 1e-4)
        // the ONNX exporter already folds BN in eval mode; a graph with an explicit BN folds to fewer nodes
        #expect(folded.nodes.count <= g.nodes.count)
    }

    @Test func observerSeesEveryTensorAndTransformChangesResults() throws {
        let m = try load("vit_ts17")
        let session = try FloatSession(graph: m.graph, batch: 1, options: SessionOptions(fuse: false))
        let input = Array(try Fixtures.floats("vit_ts17.input.f32")[0..<(3 * 32 * 32)])
        let base = try session.run(input)
        var seen: [String: [Int]] = [:]
        var softmaxRowSums: [Float] = []
        session.observer = { obs in
            seen[obs.name] = obs.shape
            #expect(obs.values.count == obs.shape.reduce(1, *))
            if obs.node?.opType == "Softmax" { softmaxRowSums.append(obs.values[0..<17].reduce(0, +)) }
        }
        let again = try session.run(input)
        #expect(again == base)
        #expect(seen.count == session.graph.nodes.flatMap(\.outputs).count + 1)
        #expect(seen["input"] == [1, 3, 32, 32])
        #expect(softmaxRowSums.count == 2 && softmaxRowSums.allSatisfy { abs($0 - 1) < 1e-5 })

        // fake-quant-like transform on every GELU output changes the logits, a no-op transform does not
        let p = try ModelPatterns(graph: session.graph)
        let geluOuts = Set(p.gelus.map(\.output))
        session.observer = nil
        session.transform = { name, _, values in
            if geluOuts.contains(name) { for i in values.indices { values[i] = (values[i] * 4).rounded() / 4 } }
        }
        let quantized = try session.run(input)
        #expect(maxAbsDiff(quantized, base) > 1e-6)
        session.transform = { _, _, _ in }
        #expect(try session.run(input) == base)
    }

    @Test func substitutedWeightsWithoutReloading() throws {
        let m = try load("vit_ts17")
        let session = try FloatSession(graph: m.graph, batch: 1)
        let input = Array(try Fixtures.floats("vit_ts17.input.f32")[0..<(3 * 32 * 32)])
        let base = try session.run(input)
        let p = try ModelPatterns(graph: session.graph)
        let head = try #require(p.linears.last)
        let w = try #require(session.graph.constants[head.weight])
        // zero head weights → logits equal the bias
        try session.substituteConstants([head.weight: Tensor(shape: w.shape, floats: [Float](repeating: 0, count: w.count))])
        let zeroed = try session.run(input)
        let biasName = try #require(head.bias)
        let bias = try #require(session.graph.constants[biasName])
        #expect(maxAbsDiff(zeroed, bias.floats) < 1e-6)
        try session.restoreConstants()
        #expect(try session.run(input) == base)
        #expect(throws: ONNXError.self) { try session.substituteConstants([head.weight: Tensor(shape: [1], floats: [0])]) }
    }

    @Test func keptTensorsStayVisibleWhenFusing() throws {
        let m = try load("efficientnet_lite_ts13")
        let g = try m.graph.specialized(batch: 2)
        let convOuts = Set(try ModelPatterns(graph: g).convs.map(\.output))
        let input = try Fixtures.floats("efficientnet_lite_ts13.input.f32")
        func seen(_ opts: SessionOptions) throws -> Set<String> {
            let s = try FloatSession(staticGraph: g, options: opts)
            var names = Set<String>()
            s.observer = { names.insert($0.name) }
            _ = try s.run(input)
            return names
        }
        let fused = try seen(SessionOptions(fuse: true))
        #expect(!convOuts.isSubset(of: fused))  // conv+ReLU6 fused: the conv outputs are not materialised
        #expect(convOuts.isSubset(of: try seen(SessionOptions(fuse: true, keep: convOuts))))
    }

    @Test func fusedAndUnfusedAgree() throws {
        for name in ["vit_ts13", "efficientnet_lite_ts13", "mobilenetv3_ts13"] {
            let m = try load(name)
            let input = try Fixtures.floats("\(name).input.f32")
            let a = try FloatSession(graph: m.graph, batch: 2, options: SessionOptions(fuse: true)).run(input)
            let b = try FloatSession(graph: m.graph, batch: 2, options: SessionOptions(fuse: false)).run(input)
            #expect(maxAbsDiff(a, b) < 1e-5, "\(name)")
        }
    }
}
