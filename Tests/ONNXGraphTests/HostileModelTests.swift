// Hostile ONNX files: each is refused with a typed ONNXError (no trap, no huge allocation, no stack overflow).
// Inputs found by fuzzing (fuzz/, tools/fuzz.sh onnx) are committed under Fixtures/hostile/ and replayed here.
import Foundation
import OnnxProto
import SwiftProtobuf
import Testing
@testable import ONNXGraph
import FloatEngine

@Suite("Hostile ONNX files")
struct HostileModelTests {
    /// A small valid model: y = x · w + b.
    func linear(_ w: [Float] = [1, 2, 3, 4, 5, 6]) -> ModelBuilder {
        var b = ModelBuilder()
        b.input("x", ["N", 2])
        b.output("y", ["N", 3])
        b.floatInit("w", [2, 3], w)
        b.floatInit("b", [3], [0, 0, 0])
        b.node("MatMul", ["x", "w"], ["m"])
        b.node("Add", ["m", "b"], ["y"])
        return b
    }

    @Test func truncatedAtEveryTenthByteIsATypedError() throws {
        let data = try linear().data()
        for cut in stride(from: 1, to: data.count, by: 10) {
            do { _ = try ONNXModel(serialized: data.prefix(cut)) } catch {
                // Any ONNXError is fine (a prefix can even be a valid, smaller model); only a crash is not.
                continue
            }
        }
    }

    @Test func initializerDeclaringBillionsOfElementsWithFewBytes() throws {
        var b = linear()
        var t = Onnx_TensorProto(); t.name = "huge"; t.dataType = 1; t.dims = [1 << 20, 1 << 20]; t.rawData = Data(count: 16)
        b.initializer(t)
        #expect {
            try b.model()
        } throws: { e in
            guard case .badTensor(let name, _)? = e as? ONNXError else { return false }
            return name == "huge"
        }
    }

    @Test func initializerAboveTheMemoryCapIsRefusedBeforeDecoding() throws {
        var b = linear()
        b.floatInit("big", [256, 256], [Float](repeating: 1, count: 65536))   // 256 KiB
        let data = try b.data()
        #expect(throws: Never.self) { try ONNXModel(serialized: data, limits: .megabytes(1)) }
        // The file and its decoded protobuf fit; the 'big' initializer decoded to floats (256 KiB more) does not.
        let cap = data.count + (try WireEstimate.modelBytes(data)) + 100_000
        #expect {
            try ONNXModel(serialized: data, limits: ResourceLimits(maxBytes: cap))
        } throws: { e in
            guard case .exceedsMemoryLimit(let what, let bytes, _, let limit)? = e as? ONNXError else { return false }
            return what.contains("'big'") && bytes == 65536 * 4 && limit == cap
                && (e as! ONNXError).description.contains("--max-memory-mb")
        }
    }

    @Test func modelFileAboveTheCapIsRefusedBeforeReading() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.onnx").path
        try linear([Float](repeating: 0.5, count: 6)).data().write(to: URL(fileURLWithPath: path))
        #expect {
            try ONNXModel(contentsOf: path, limits: ResourceLimits(maxBytes: 64))
        } throws: { e in
            guard case .exceedsMemoryLimit(let what, _, _, _)? = e as? ONNXError else { return false }
            return what.contains("m.onnx")
        }
    }

    @Test func activationsAboveTheCapAreRefusedAtSpecialisation() throws {
        let m = try linear().model()
        #expect(throws: Never.self) { try m.graph.specialized(batch: 4, limits: .megabytes(1)) }
        #expect {
            try m.graph.specialized(batch: 100_000, limits: .megabytes(1))
        } throws: { e in
            if case .exceedsMemoryLimit? = e as? ONNXError { return true }
            return false
        }
    }

    @Test func constantFoldingAboveTheCapIsRefusedBeforeAllocating() throws {
        // ConstantOfShape([16384, 16384]) would fold to 1 GiB of floats.
        var b = ModelBuilder()
        b.input("x", [1])
        b.output("y", [16384, 16384])
        var shape = Onnx_TensorProto(); shape.name = "shape"; shape.dataType = 7; shape.dims = [2]; shape.int64Data = [16384, 16384]
        b.initializer(shape)
        b.node("ConstantOfShape", ["shape"], ["c"])
        b.node("Add", ["x", "c"], ["y"])
        let m = try b.model()
        #expect {
            try m.graph.specialized(batch: 1, limits: .megabytes(64))
        } throws: { e in
            guard case .badNode(_, let op, let reason)? = e as? ONNXError else { return false }
            return op == "ConstantOfShape" && reason.contains("memory cap")
        }
    }

    @Test func protobufThatExpandsFarBeyondItsFileIsRefusedBeforeDecoding() throws {
        // 1,000,000 empty NodeProtos: 2 bytes each on the wire (2 MB), hundreds of bytes each decoded.
        var graph = [UInt8](); graph.reserveCapacity(2_000_000)
        for _ in 0..<1_000_000 { graph += [0x0A, 0x00] }                  // GraphProto.node = 1, length 0
        var model: [UInt8] = [0x3A]                                         // ModelProto.graph = 7, length-delimited
        var n = graph.count
        repeat { var byte = UInt8(n & 0x7F); n >>= 7; if n > 0 { byte |= 0x80 }; model.append(byte) } while n > 0
        model += graph
        #expect {
            try ONNXModel(serialized: Data(model), limits: .megabytes(64))
        } throws: { e in
            guard case .exceedsMemoryLimit(let what, let bytes, _, _)? = e as? ONNXError else { return false }
            return what.contains("decoding the protobuf") && bytes >= 1_000_000 * 256
        }
    }

    @Test(arguments: ["vit_ts13.onnx", "efficientnet_lite_ts13.onnx", "opzoo_ts13.onnx"])
    func decodedSizeEstimateOfRealModelsStaysNearTheirFileSize(_ name: String) throws {
        // The estimate must not refuse ordinary models: it stays within a small factor of the file.
        let data = try Data(contentsOf: Fixtures.url(name))
        let estimate = try WireEstimate.modelBytes(data)
        #expect(estimate >= data.count)
        #expect(estimate <= 2 * data.count + 1_000_000, "\(name): \(estimate) bytes estimated for a \(data.count)-byte file")
        #expect(throws: Never.self) { try ONNXModel(serialized: data, limits: ResourceLimits(maxBytes: 3 * data.count + 2_000_000)) }
    }

    @Test func constantFoldingBeyondTheWorkLimitIsRefusedBeforeComputing() throws {
        // MatMul of two constants [64×4096]·[4096×64]: a 16 KiB result, but 16.8 M multiply-adds to fold.
        var b = ModelBuilder()
        b.input("x", [64, 64])
        b.output("y", [64, 64])
        b.floatInit("a", [64, 4096], [Float](repeating: 0.5, count: 64 * 4096))
        b.floatInit("c", [4096, 64], [Float](repeating: 0.25, count: 4096 * 64))
        b.node("MatMul", ["a", "c"], ["m"], name: "fold_me")
        b.node("Add", ["x", "m"], ["y"])
        let m = try b.model()
        #expect {
            try m.graph.specialized(batch: 1, limits: ResourceLimits(maxBytes: 1 << 30, maxFoldingOperations: 1_000_000))
        } throws: { e in
            guard case .exceedsFoldingLimit(let node, let op, let operations, let limit)? = e as? ONNXError else { return false }
            return node == "fold_me" && op == "MatMul" && operations == 64 * 64 * 4096 && limit == 1_000_000
        }
        // Under the default limit the same graph folds, to the right values.
        let g = try m.graph.specialized(batch: 1)
        #expect(g.constants["m"]?.floats.allSatisfy { $0 == 512 } == true)
    }

    @Test func foldedOutputsCountAgainstTheWorkLimit() throws {
        // ConstantOfShape reads 2 values and writes 1 M; the Add after it reads 2 M. Under a 2.5 M cap the Add is
        // refused only because what ConstantOfShape wrote was counted.
        var b = ModelBuilder()
        b.input("x", [1000, 1000])
        b.output("y", [1000, 1000])
        var shape = Onnx_TensorProto(); shape.name = "shape"; shape.dataType = 7; shape.dims = [2]; shape.int64Data = [1000, 1000]
        b.initializer(shape)
        b.node("ConstantOfShape", ["shape"], ["c"])
        b.node("Add", ["c", "c"], ["cc"], name: "add_c")
        b.node("Add", ["x", "cc"], ["y"])
        let m = try b.model()
        #expect {
            try m.graph.specialized(batch: 1, limits: ResourceLimits(maxBytes: 1 << 30, maxFoldingOperations: 2_500_000))
        } throws: { e in
            guard case .exceedsFoldingLimit(let node, _, let operations, _)? = e as? ONNXError else { return false }
            return node == "add_c" && operations == 2_000_000
        }
        #expect(throws: Never.self) { try m.graph.specialized(batch: 1, limits: ResourceLimits(maxBytes: 1 << 30, maxFoldingOperations: 3_100_000)) }
    }

    @Test func overflowingShapesAreErrorsNotTraps() throws {
        // Expand to a shape whose element count overflows Int.
        var b = ModelBuilder()
        b.input("x", [1])
        b.output("y", [1])
        var shape = Onnx_TensorProto(); shape.name = "shape"; shape.dataType = 7; shape.dims = [4]
        shape.int64Data = [1 << 27, 1 << 27, 1 << 27, 1 << 27]
        b.initializer(shape)
        var one = Onnx_TensorProto(); one.name = "one"; one.dataType = 1; one.dims = [1]; one.floatData = [1]
        b.initializer(one)
        b.node("Expand", ["one", "shape"], ["e"])
        b.node("Add", ["x", "e"], ["y"])
        let m = try b.model()
        #expect(throws: ONNXError.self) { try m.graph.specialized(batch: 1) }
    }

    @Test func deeplyNestedSubgraphsAreRefusedWithoutStackOverflow() throws {
        // GraphProto → NodeProto → AttributeProto(g) → GraphProto … 20,000 levels deep, built at the wire level.
        func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [UInt8(number << 3 | 2)]
            var n = payload.count
            repeat { var byte = UInt8(n & 0x7F); n >>= 7; if n > 0 { byte |= 0x80 }; out.append(byte) } while n > 0
            return out + payload
        }
        var graph: [UInt8] = []
        for _ in 0..<20_000 {
            let attribute = field(1, Array("g".utf8)) + field(6, graph)   // AttributeProto.name = 1, .g = 6
            let node = field(5, attribute)                                  // NodeProto.attribute = 5
            graph = field(1, node)                                          // GraphProto.node = 1
        }
        let model = field(7, graph)                                         // ModelProto.graph = 7
        #expect {
            try ONNXModel(serialized: Data(model))
        } throws: { e in
            guard case .malformedProtobuf? = e as? ONNXError else { return false }
            return true
        }
    }

    @Test func externalDataOffsetsThatOverflowAreRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(count: 64).write(to: dir.appendingPathComponent("w.bin"))
        var b = linear()
        var t = Onnx_TensorProto(); t.name = "ext"; t.dataType = 1; t.dims = [4]; t.dataLocation = .external
        for (k, v) in [("location", "w.bin"), ("offset", String(Int.max - 2)), ("length", "16")] {
            var e = Onnx_StringStringEntryProto(); e.key = k; e.value = v; t.externalData.append(e)
        }
        b.initializer(t)
        #expect {
            try b.model(baseDirectory: dir.path)
        } throws: { e in
            guard case .externalData(let tensor, _, _)? = e as? ONNXError else { return false }
            return tensor == "ext"
        }
    }

    /// Fuzz finding (the conv_bn seed itself): BatchNorm folding looked nodes up by name, so in a model with unnamed
    /// nodes it took the Conv as its own BatchNorm and indexed past its inputs (a trap); two unnamed convs also shared
    /// one folded-bias constant. Folding must now give the same outputs as the unfolded graph.
    @Test func batchNormFoldingWithUnnamedNodes() throws {
        var b = ModelBuilder()
        b.input("x", [1, 2, 3, 3])
        b.output("y", [1, 2, 3, 3])
        for (k, src) in [(1, "x"), (2, "n1")] {
            b.floatInit("w\(k)", [2, 2, 1, 1], [0.5, -1, 2, 0.25].map { $0 * Float(k) })
            for (stat, v) in [("s", [1.5, 0.5]), ("b", [0.1, -0.2]), ("m", [0.3, 0.0]), ("v", [2.0, 0.5])] as [(String, [Float])] {
                b.floatInit("\(stat)\(k)", [2], v.map { $0 + Float(k) / 10 })
            }
            b.node("Conv", [src, "w\(k)"], ["c\(k)"])
            b.node("BatchNormalization", ["c\(k)", "s\(k)", "b\(k)", "m\(k)", "v\(k)"], [k == 2 ? "y" : "n\(k)"])
        }
        let g = try b.model().graph.specialized(batch: 1)
        let folded = try g.foldingBatchNorms()
        #expect(folded.nodes.map(\.opType) == ["Conv", "Conv"])
        let x = (0..<18).map { Float($0) / 7 - 1 }
        let ref = try FloatSession(staticGraph: g).run(x), got = try FloatSession(staticGraph: folded).run(x)
        #expect(maxAbsDiff(ref, got) < 1e-5)
        // The committed fuzz input: loads, specialises, folds.
        let seed = try ONNXModel(serialized: Data(contentsOf: Fixtures.url("hostile/unnamed-conv-bn.onnx")))
        #expect(try seed.graph.specialized(batch: 2).foldingBatchNorms().nodes.filter { $0.opType == "BatchNormalization" }.isEmpty)
    }

    /// Inputs the fuzzer found (fuzz/out/onnx/crash-*), each now a typed error or a valid model.
    @Test(arguments: HostileModelTests.fuzzFindings)
    func fuzzFinding(_ name: String) throws {
        let data = try Data(contentsOf: Fixtures.url("hostile/" + name))
        let limits = ResourceLimits(maxBytes: 64 << 20)
        guard let m = try? ONNXModel(serialized: data, limits: limits) else { return }
        for batch in [1, 2] {
            guard let s = try? m.graph.specialized(batch: batch, limits: limits) else { continue }
            _ = try? ModelPatterns(graph: s)
            _ = try? s.foldingBatchNorms()
        }
    }

    static var fuzzFindings: [String] {
        let dir = Fixtures.url("hostile")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".onnx") }.sorted()
    }
}
