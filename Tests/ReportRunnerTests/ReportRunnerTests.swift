import Foundation
import Testing
import CImageCodecs
import OnnxProto
import SwiftProtobuf
import Quant
import Reporting
@testable import ReportRunner

// MARK: Helpers (synthetic images and tiny ONNX models built in-test; nothing read from outside the test)

struct TestFailure: Error, CustomStringConvertible { var description: String }

/// A fresh temporary folder.
func temporaryFolder(_ tag: String) throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("reportrunner-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// Writes a 32×32 RGB PNG whose colour depends on `seed` (deterministic).
func writePNG(_ url: URL, seed: Int) throws {
    let w = 32, h = 32
    var px = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h {
        for x in 0..<w {
            let i = (y * w + x) * 3
            px[i] = UInt8((x * 7 + seed * 53) & 0xFF)
            px[i + 1] = UInt8((y * 5 + seed * 29) & 0xFF)
            px[i + 2] = UInt8(((x + y) * 3 + seed * 91) & 0xFF)
        }
    }
    var out: UnsafeMutablePointer<UInt8>? = nil
    var len = 0
    var err = [CChar](repeating: 0, count: 256)
    let rc = px.withUnsafeBufferPointer { p in
        cic_png_encode(p.baseAddress, UInt32(w), UInt32(h), 2, 8, nil, 0, nil, 0, 0, &out, &len, &err, err.count)
    }
    guard rc == 0, let out else { throw TestFailure(description: "png encode failed") }
    defer { cic_free(out) }
    try Data(UnsafeBufferPointer(start: out, count: len)).write(to: url)
}

/// An ImageFolder with classes `a` and `b`, `perClass` images each.
func imageFolder(_ tag: String, perClass: Int) throws -> URL {
    let root = try temporaryFolder(tag)
    for (c, name) in ["a", "b"].enumerated() {
        let d = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for i in 0..<perClass { try writePNG(d.appendingPathComponent("img\(i).png"), seed: c * 100 + i) }
    }
    return root
}

func valueInfo(_ name: String, _ dims: [Any]) -> Onnx_ValueInfoProto {
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

func floatInit(_ name: String, _ dims: [Int], _ v: [Float]) -> Onnx_TensorProto {
    var t = Onnx_TensorProto(); t.name = name; t.dims = dims.map { Int64($0) }; t.dataType = 1
    var d = Data()
    for f in v { var b = f.bitPattern.littleEndian; withUnsafeBytes(of: &b) { d.append(contentsOf: $0) } }
    t.rawData = d
    return t
}

func node(_ op: String, _ ins: [String], _ outs: [String], name: String, int: [String: Int] = [:]) -> Onnx_NodeProto {
    var n = Onnx_NodeProto(); n.opType = op; n.input = ins; n.output = outs; n.name = name
    for (k, v) in int { var a = Onnx_AttributeProto(); a.name = k; a.type = .int; a.i = Int64(v); n.attribute.append(a) }
    return n
}

/// Writes an ONNX model `x[N,3,32,32] → …` to a temporary file. `linear`: Flatten → MatMul(3072×4) → Add → logits;
/// otherwise a single Relu (nothing to quantize).
func writeModel(linear: Bool) throws -> String {
    var m = Onnx_ModelProto()
    m.irVersion = 8
    var o = Onnx_OperatorSetIdProto(); o.version = 17
    m.opsetImport = [o]
    var g = Onnx_GraphProto()
    g.name = "tiny"
    g.input = [valueInfo("x", ["N", 3, 32, 32])]
    if linear {
        var rng = SplitMix(0x5eed)
        let w = (0..<(3072 * 4)).map { _ in Float(rng.uniform() - 0.5) * 0.05 }
        g.initializer = [floatInit("fc.weight", [3072, 4], w), floatInit("fc.bias", [4], [0.1, -0.1, 0.05, 0])]
        g.node = [node("Flatten", ["x"], ["flat"], name: "flatten", int: ["axis": 1]),
                  node("MatMul", ["flat", "fc.weight"], ["mm"], name: "fc"),
                  node("Add", ["mm", "fc.bias"], ["logits"], name: "fc_bias")]
        g.output = [valueInfo("logits", ["N", 4])]
    } else {
        g.node = [node("Relu", ["x"], ["y"], name: "relu")]
        g.output = [valueInfo("y", ["N", 3, 32, 32])]
    }
    m.graph = g
    let url = try temporaryFolder("model").appendingPathComponent(linear ? "tiny_linear.onnx" : "relu_only.onnx")
    try m.serializedData().write(to: url)
    return url.path
}

struct SplitMix {
    var s: UInt64
    init(_ seed: UInt64) { s = seed }
    mutating func next() -> UInt64 {
        s &+= 0x9E3779B97F4A7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

func config(model: String, calib: String, data: String, bits: String = "W8A8") throws -> ReportConfiguration {
    var c = ReportConfiguration(modelPath: model, calibrationFolder: calib, dataFolder: data,
                                bits: try BitSetting.parseList(bits), methods: [.adalog], preset: "cifar10")
    c.calibrationCount = 4
    c.batch = 2
    return c
}

// MARK: Argument validation

@Suite struct ReportValidationTests {
    @Test func badBitsStringNamesTheOptionAndTheFormat() {
        let e = #expect(throws: ArgumentCheckError.self) { try BitSetting.parseList("W8A8,W9Q") }
        let text = e?.description ?? ""
        #expect(text.contains("--bits"))
        #expect(text.contains("W9Q"))
        #expect(text.contains("W8A8,W6A6,W4A4,W3A3"))
        let high = #expect(throws: ArgumentCheckError.self) { try BitSetting.parseList("W8A8,W12A12") }
        #expect(high?.description.contains("between 2 and 8") == true)
    }

    @Test func missingCalibrationFolder() throws {
        let data = try imageFolder("data", perClass: 1)
        let model = try writeModel(linear: true)
        let c = try config(model: model, calib: "/nonexistent/calib-\(UUID().uuidString)", data: data.path)
        let error = #expect(throws: ReportRunError.self) { _ = try ReportRunner.validate(c) }
        guard let e = error, case .argument(.missingFolder(let o, _)) = e else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(o == "--calib" && e.description.contains("no such folder"))
    }

    @Test func missingDataFolder() throws {
        let calib = try imageFolder("calib", perClass: 1)
        let model = try writeModel(linear: true)
        let c = try config(model: model, calib: calib.path, data: "/nonexistent/data-\(UUID().uuidString)")
        let error = #expect(throws: ReportRunError.self) { _ = try ReportRunner.validate(c) }
        guard let e = error, case .argument(.missingFolder(let o, _)) = e else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(o == "--data")
    }

    @Test func emptyCalibrationFolder() throws {
        let empty = try temporaryFolder("empty")
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("a"), withIntermediateDirectories: true)
        try Data("not an image".utf8).write(to: empty.appendingPathComponent("a/readme.txt"))
        let data = try imageFolder("data", perClass: 1)
        let c = try config(model: try writeModel(linear: true), calib: empty.path, data: data.path)
        let error = #expect(throws: ReportRunError.self) { _ = try ReportRunner.validate(c) }
        guard let e = error, case .argument(.noImages(let o, _)) = e else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(o == "--calib" && e.description.contains("no .jpg, .jpeg or .png images"))
    }

    @Test func missingModelFile() throws {
        let data = try imageFolder("data", perClass: 1)
        let c = try config(model: "/nonexistent/model.onnx", calib: data.path, data: data.path)
        #expect(throws: ReportRunError.missingModel(path: "/nonexistent/model.onnx")) { try ReportRunner.validate(c) }
    }

    @Test func modelWithNoQuantizableLayers() throws {
        let calib = try imageFolder("calib", perClass: 2)
        let data = try imageFolder("data", perClass: 1)
        let model = try writeModel(linear: false)
        let c = try config(model: model, calib: calib.path, data: data.path)
        let error = #expect(throws: ReportRunError.self) { _ = try ReportRunner.run(c) }
        guard let e = error, case .noQuantizableLayers(let m) = e else {
            Issue.record("unexpected error \(String(describing: error))")
            return
        }
        #expect(m == model && e.description.contains("no quantizable layers"))
    }
}

// MARK: End to end

@Suite struct ReportEndToEndTests {
    @Test func tinyModelWritesAllFiveFilesWithStableJSONKeys() throws {
        let calib = try imageFolder("calib", perClass: 3)
        let data = try imageFolder("data", perClass: 3)
        var c = try config(model: try writeModel(linear: true), calib: calib.path, data: data.path, bits: "W8A8,W4A4")
        c.methods = [.adalog, .uniformMinMax]
        let report = try ReportRunner.run(c)
        #expect(report.results.count == 4)
        #expect(report.metadata.evaluationImages == 6)
        #expect(report.metadata.calibrationImages == 4)
        #expect(report.layers.count == 4)  // one linear layer × 4 settings
        #expect(report.layers.allSatisfy { $0.name == "fc" && $0.sqnrDB != nil })
        // W8A8 tracks float closely on this linear model.
        let w8 = report.results.filter { $0.bits.weightBits == 8 }
        #expect(w8.allSatisfy { ($0.agreement ?? 0) >= 50 })
        // Size: 3072×4 weights at the bit width plus 4 bytes per scale (and zero point when asymmetric) plus the bias.
        for r in report.results {
            let size = try #require(r.sizeBytes)
            #expect(size >= 3072 * 4 * r.bits.weightBits / 8 + 16)
            #expect(size < 3072 * 4 * 4)
        }

        let out = try temporaryFolder("out")
        let urls = try ReportWriter().write(report, to: out)
        let names = Set(urls.map(\.lastPathComponent))
        #expect(names == ["report.md", "report.csv", "report.json", "layers.csv", "accuracy_vs_bits.svg"])
        for u in urls { #expect(FileManager.default.fileExists(atPath: u.path)) }

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any]
        let obj = try #require(json)
        #expect(obj["model"] as? String == "tiny_linear")
        let float = try #require(obj["float"] as? [String: Any])
        #expect(float["top1"] is Double || float["top1"] is Int)
        #expect(float["top5"] != nil)
        let results = try #require(obj["results"] as? [[String: Any]])
        #expect(results.count == 4)
        for r in results {
            for k in ["bits", "method", "top1", "top5", "agreement", "size_bytes", "calibration_seconds"] {
                #expect(r[k] != nil, "results entry lacks \(k)")
            }
        }
        let layers = try #require(obj["layers"] as? [[String: Any]])
        #expect(layers.count == 4)
        for l in layers { for k in ["name", "bits", "method", "sqnr_db"] { #expect(l[k] != nil, "layers entry lacks \(k)") } }
    }

    @Test func sameFolderLeavesCalibrationImagesOut() throws {
        let folder = try imageFolder("both", perClass: 3)
        let c = try config(model: try writeModel(linear: true), calib: folder.path, data: folder.path)
        let report = try ReportRunner.run(c)
        #expect(report.metadata.calibrationImages == 4)
        #expect(report.metadata.evaluationImages == 2)
        #expect(report.metadata.notes.contains { $0.contains("4 calibration images") && $0.contains("left out") })
        #expect(report.metadata.notes.contains { $0.contains("data-centred") }, "the report says which zero-point grid it used")
    }
}
