import Foundation
@testable import Reporting
import Quant

/// A small report with every kind of value: two methods, a missing accuracy, a 0 % result, names needing escaping.
func sampleReport(model: String = "vit_tiny_patch16_224") -> QuantReport {
    let meta = ReportMetadata(
        toolVersion: "0.1.0", date: Date(timeIntervalSince1970: 1_790_000_000), modelPath: "models/vit tiny.onnx",
        preprocessing: ["size": 224, "crop_pct": 0.9, "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5]],
        calibrationImages: 32, calibrationSeed: 7, calibrationFolder: "calib-data", evaluationImages: 500,
        evaluationFolder: "imagenet-sample")
    let results = [
        ResultRow(bits: setting(8), method: "adalog", top1: 82.1, top5: 96.0, agreement: 97.5, sizeBytes: 5_900_000,
                  calibrationSeconds: 12.5),
        ResultRow(bits: setting(4), method: "adalog", top1: 71.4, top5: 90.2, agreement: 80.0, sizeBytes: 3_100_000,
                  calibrationSeconds: 40),
        ResultRow(bits: setting(8), method: "uniform-minmax", top1: 81.7, top5: 95.9, agreement: 96.0,
                  sizeBytes: 5_900_000, calibrationSeconds: 2),
        ResultRow(bits: setting(4), method: "uniform-minmax", top1: nil, top5: nil, agreement: nil, sizeBytes: nil,
                  calibrationSeconds: nil),
        ResultRow(bits: setting(3), method: "uniform-minmax", top1: 0, top5: 0.5, agreement: 0.2, sizeBytes: 2_500_000,
                  calibrationSeconds: 2),
    ]
    let layers = [
        LayerRow(name: "blocks.0.attn.qkv", bits: setting(8), method: "adalog", sqnrDB: 38.5, op: "MatMul"),
        LayerRow(name: "blocks.11.mlp.fc2", bits: setting(4), method: "adalog", sqnrDB: 9.25, op: "MatMul"),
        LayerRow(name: "head|weird,\"name\"", bits: setting(4), method: "adalog", sqnrDB: 15, op: "Gemm"),
        LayerRow(name: "blocks.0.attn.qkv", bits: setting(4), method: "adalog", sqnrDB: nil, op: "MatMul"),
        LayerRow(name: "patch_embed.proj", bits: setting(8), method: "adalog", sqnrDB: .infinity, op: "Conv"),
    ]
    return QuantReport(model: model, float: Accuracy(top1: 82.6, top5: 96.3), results: results, layers: layers,
                       metadata: meta)
}

/// A fresh empty folder under the system temporary directory.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ReportingTests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Splits RFC 4180 CSV text into records of fields (handles quotes, doubled quotes and embedded line breaks).
func parseCSV(_ text: String) -> [[String]] {
    var records: [[String]] = [], field = "", record: [String] = []
    var inQuotes = false
    var it = Array(text).makeIterator()
    var pending: Character? = nil
    while let c = pending ?? it.next() {
        pending = nil
        if inQuotes {
            if c == "\"" {
                if let d = it.next() {
                    if d == "\"" { field.append("\"") } else { inQuotes = false; pending = d }
                } else { inQuotes = false }
            } else { field.append(c) }
        } else if c == "\"" { inQuotes = true }
        else if c == "," { record.append(field); field = "" }
        else if c == "\n" { record.append(field); records.append(record); record = []; field = "" }
        else { field.append(c) }
    }
    if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
    return records
}

/// Collects what a progress bar writes.
final class Capture: @unchecked Sendable {
    private let lock = NSLock()
    private var parts: [String] = []
    func write(_ s: String) { lock.lock(); parts.append(s); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return parts.joined() }
    var writes: Int { lock.lock(); defer { lock.unlock() }; return parts.count }
}

/// A settable clock for progress tests.
final class FakeClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t = 1000.0
    func now() -> Double { lock.lock(); defer { lock.unlock() }; return t }
    func advance(_ s: Double) { lock.lock(); t += s; lock.unlock() }
}

/// A bit setting from constants the tests know are valid (2…8).
func setting(_ w: Int, _ a: Int? = nil) -> BitSetting {
    do { return try BitSetting(weightBits: w, activationBits: a ?? w) } catch { fatalError("test constant \(w): \(error)") }
}
