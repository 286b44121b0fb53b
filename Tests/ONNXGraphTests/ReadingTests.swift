import Foundation
import OnnxProto
import Testing
@testable import ONNXGraph
@testable import FloatEngine

/// Reading initializers, external data, and the errors bad input must give.
@Suite struct ReadingTests {
    /// y = x + c for an initializer c of a given storage, then read back through the executor.
    func addModel(_ c: Onnx_TensorProto) -> ModelBuilder {
        var b = ModelBuilder()
        b.input("x", [3])
        b.output("y", [3])
        b.initializer(c)
        b.node("Cast", ["c"], ["cf"], int: ["to": 1])
        b.node("Add", ["x", "cf"], ["y"])
        return b
    }

    static let typed: [(String, Int32)] = [
        ("float", 1), ("double", 11), ("float16", 10), ("int64", 7), ("int32", 6), ("int8", 3), ("uint8", 2), ("bool", 9),
    ]

    @Test(arguments: [false, true], ReadingTests.typed.map(\.0))
    func typedInitializers(raw: Bool, kind: String) throws {
        let code = Self.typed.first { $0.0 == kind }!.1
        var t = Onnx_TensorProto(); t.name = "c"; t.dims = [3]; t.dataType = code
        let values: [Double] = kind == "bool" ? [1, 0, 1] : (kind == "uint8" ? [1, 2, 250] : [1, -2, 3])
        if raw {
            var d = Data()
            func put<T>(_ v: T) { withUnsafeBytes(of: v) { d.append(contentsOf: $0) } }
            for v in values {
                switch kind {
                case "float": put(Float(v).bitPattern.littleEndian)
                case "double": put(v.bitPattern.littleEndian)
                case "float16": put(Float16(Float(v)).bitPattern.littleEndian)
                case "int64": put(Int64(v).littleEndian)
                case "int32": put(Int32(v).littleEndian)
                case "int8": put(Int8(v))
                default: put(UInt8(v))
                }
            }
            t.rawData = d
        } else {
            switch kind {
            case "float": t.floatData = values.map { Float($0) }
            case "double": t.doubleData = values
            case "float16": t.int32Data = values.map { Int32(Float16(Float($0)).bitPattern) }
            case "int64": t.int64Data = values.map { Int64($0) }
            default: t.int32Data = values.map { Int32($0) }
            }
        }
        let m = try addModel(t).model()
        #expect(m.graph.initializers["c"]?.floats == values.map { Float($0) })
        let s = try FloatSession(graph: m.graph, batch: 1)
        #expect(try s.run([10, 20, 30]) == zip([10, 20, 30], values).map { Float($0) + Float($1) })
    }

    @Test func externalDataBesideTheModel() throws {
        let dir = try temporaryDirectory()
        var t = Onnx_TensorProto(); t.name = "c"; t.dims = [3]; t.dataType = 1
        t.dataLocation = .external
        var loc = Onnx_StringStringEntryProto(); loc.key = "location"; loc.value = "weights.bin"
        var off = Onnx_StringStringEntryProto(); off.key = "offset"; off.value = "4"
        t.externalData = [loc, off]
        var bytes = Data([0, 0, 0, 0])
        for f: Float in [0.5, 1.5, 2.5] { var b = f.bitPattern.littleEndian; withUnsafeBytes(of: &b) { bytes.append(contentsOf: $0) } }
        try bytes.write(to: dir.appendingPathComponent("weights.bin"))
        let path = dir.appendingPathComponent("m.onnx")
        try addModel(t).data().write(to: path)
        let m = try ONNXModel(contentsOf: path.path)
        #expect(m.graph.initializers["c"]?.floats == [0.5, 1.5, 2.5])

        // missing file
        try FileManager.default.removeItem(at: dir.appendingPathComponent("weights.bin"))
        #expect { _ = try ONNXModel(contentsOf: path.path) } throws: { e in
            guard case .externalData(let tensor, _, let reason)? = e as? ONNXError else { return false }
            return tensor == "c" && reason.contains("not found")
        }
        // a path leaving the model's folder is refused
        loc.value = "../escape.bin"; t.externalData = [loc]
        try addModel(t).data().write(to: path)
        #expect { _ = try ONNXModel(contentsOf: path.path) } throws: { e in
            guard case .externalData(_, _, let reason)? = e as? ONNXError else { return false }
            return reason.contains("leaves the model's folder")
        }
    }

    @Test func malformedAndTruncatedFiles() throws {
        #expect { _ = try ONNXModel(serialized: Data([0xFF, 0xFF, 0xFF, 0x07, 0x01])) } throws: { e in
            if case .malformedProtobuf? = e as? ONNXError { return true }; return false
        }
        let whole = try Data(contentsOf: Fixtures.url("vit_ts17.onnx"))
        let cut = whole.prefix(whole.count / 2)
        #expect { _ = try ONNXModel(serialized: cut) } throws: { e in
            guard let o = e as? ONNXError else { return false }
            switch o { case .malformedProtobuf, .badTensor, .emptyModel: return true; default: return false }
        }
        #expect { _ = try ONNXModel(serialized: Data()) } throws: { e in
            if case .malformedProtobuf? = e as? ONNXError { return true }; return false
        }
        #expect { _ = try ONNXModel(contentsOf: "/nonexistent/model.onnx") } throws: { e in
            if case .cannotRead? = e as? ONNXError { return true }; return false
        }
        // a tensor whose raw data does not fit its shape
        var t = Onnx_TensorProto(); t.name = "c"; t.dims = [3]; t.dataType = 1; t.rawData = Data([1, 2, 3])
        #expect { _ = try addModel(t).model() } throws: { e in
            if case .badTensor(let n, _)? = e as? ONNXError { return n == "c" }; return false
        }
    }

    @Test func unsupportedOpIsNamed() throws {
        var b = ModelBuilder(opset: 17)
        b.input("x", [2]); b.output("y", [2])
        b.node("FancyOp", ["x"], ["y"], name: "my_node", domain: "com.example")
        let m = try b.model()
        #expect(m.graph.unsupportedNodes.map(\.name) == ["my_node"])
        #expect { _ = try FloatSession(graph: m.graph) } throws: { e in
            guard let o = e as? ONNXError, case .unsupportedOp(let node, let op, let domain, let opset, let supported) = o else { return false }
            let msg = o.description
            return node == "my_node" && op == "FancyOp" && domain == "com.example" && opset == 17
                && supported.contains("Conv") && msg.contains("Supported ops:") && msg.contains("MatMul")
        }
    }

    @Test func inputShapeTheModelCannotTake() throws {
        let m = try ONNXModel(contentsOf: Fixtures.url("vit_ts17.onnx").path)
        // fixed dims must match
        #expect { _ = try m.graph.specialized(inputShapes: ["input": [1, 3, 64, 64]]) } throws: { e in
            if case .inputShape(let name, _, let got)? = e as? ONNXError { return name == "input" && got == [1, 3, 64, 64] }; return false
        }
        // a session refuses wrongly sized data
        let s = try FloatSession(graph: m.graph, batch: 1)
        #expect { _ = try s.run([Float](repeating: 0, count: 5)) } throws: { e in
            if case .inputShape? = e as? ONNXError { return true }; return false
        }
        // a model whose declared input is symbolic but whose Reshape needs a fixed size
        var b = ModelBuilder()
        b.input("x", ["n", "c"]); b.output("y", ["n", 4])
        var shape = Onnx_TensorProto(); shape.name = "s"; shape.dims = [2]; shape.dataType = 7; shape.int64Data = [-1, 4]
        b.initializer(shape)
        b.node("Reshape", ["x", "s"], ["y"], name: "reshape")
        let rm = try b.model()
        #expect(try rm.graph.specialized(inputShapes: ["x": [2, 8]]).shapes["y"] == [4, 4])
        #expect { _ = try rm.graph.specialized(inputShapes: ["x": [1, 3]]) } throws: { e in
            guard let o = e as? ONNXError, case .shapeMismatch(let node, let op, _) = o else { return false }
            return node == "reshape" && op == "Reshape" && o.description.contains("cannot take this input shape")
        }
    }
}
