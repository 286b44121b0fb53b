import Foundation
import OnnxProto
import SwiftProtobuf
@testable import ONNXGraph

/// Locates committed fixtures (copied as a resource folder).
enum Fixtures {
    static var directory: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }
    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
    static func floats(_ name: String) throws -> [Float] {
        let d = try Data(contentsOf: url(name))
        return d.withUnsafeBytes { p in (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }
    struct Entry: Decodable { let model: String; let input_shape: [Int]; let output_shape: [Int]; let opset: Int }
    static func manifest() throws -> [String: Entry] {
        try JSONDecoder().decode([String: Entry].self, from: Data(contentsOf: url("manifest.json")))
    }
    static var names: [String] { ((try? manifest()) ?? [:]).keys.sorted() }
}

/// Builds small ONNX models in code.
struct ModelBuilder {
    var proto = Onnx_ModelProto()
    init(opset: Int64 = 17) {
        proto.irVersion = 8
        var o = Onnx_OperatorSetIdProto(); o.version = opset
        proto.opsetImport = [o]
        proto.graph = Onnx_GraphProto()
        proto.graph.name = "test"
    }
    static func valueInfo(_ name: String, _ dims: [Any]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto(); v.name = name
        var tt = Onnx_TypeProto.Tensor(); tt.elemType = 1
        var sh = Onnx_TensorShapeProto()
        sh.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let i = d as? Int { dim.dimValue = Int64(i) } else { dim.dimParam = "\(d)" }
            return dim
        }
        tt.shape = sh
        var t = Onnx_TypeProto(); t.tensorType = tt
        v.type = t
        return v
    }
    mutating func input(_ name: String, _ dims: [Any]) { proto.graph.input.append(Self.valueInfo(name, dims)) }
    mutating func output(_ name: String, _ dims: [Any]) { proto.graph.output.append(Self.valueInfo(name, dims)) }
    mutating func floatInit(_ name: String, _ dims: [Int], _ v: [Float], raw: Bool = true) {
        var t = Onnx_TensorProto(); t.name = name; t.dims = dims.map { Int64($0) }; t.dataType = 1
        if raw { var d = Data(); for f in v { var b = f.bitPattern.littleEndian; withUnsafeBytes(of: &b) { d.append(contentsOf: $0) } }; t.rawData = d }
        else { t.floatData = v }
        proto.graph.initializer.append(t)
    }
    mutating func initializer(_ t: Onnx_TensorProto) { proto.graph.initializer.append(t) }
    mutating func node(_ op: String, _ ins: [String], _ outs: [String], name: String = "", domain: String = "",
                       ints: [String: [Int]] = [:], int: [String: Int] = [:], float: [String: Float] = [:],
                       string: [String: String] = [:]) {
        var n = Onnx_NodeProto(); n.opType = op; n.input = ins; n.output = outs; n.name = name; n.domain = domain
        for (k, v) in ints { var a = Onnx_AttributeProto(); a.name = k; a.type = .ints; a.ints = v.map { Int64($0) }; n.attribute.append(a) }
        for (k, v) in int { var a = Onnx_AttributeProto(); a.name = k; a.type = .int; a.i = Int64(v); n.attribute.append(a) }
        for (k, v) in float { var a = Onnx_AttributeProto(); a.name = k; a.type = .float; a.f = v; n.attribute.append(a) }
        for (k, v) in string { var a = Onnx_AttributeProto(); a.name = k; a.type = .string; a.s = Data(v.utf8); n.attribute.append(a) }
        proto.graph.node.append(n)
    }
    func data() throws -> Data { try proto.serializedData() }
    func model(baseDirectory: String? = nil) throws -> ONNXModel {
        try ONNXModel(serialized: try data(), path: "<test>", baseDirectory: baseDirectory)
    }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

func argmaxRows(_ v: [Float], rows: Int) -> [Int] {
    let n = v.count / rows
    return (0..<rows).map { r in (0..<n).max { v[r * n + $0] < v[r * n + $1] }! }
}

func temporaryDirectory() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("onnxgraph-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}
