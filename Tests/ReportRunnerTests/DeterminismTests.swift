// Same inputs → identical report files, run to run and for 1 vs 2 kernel threads. The report's date and the
// per-setting calibration wall time are the only fields allowed to differ; they are pinned before rendering.
import Foundation
import Testing
import FloatEngine
import Quant
import Reporting
@testable import ReportRunner

@Suite(.serialized) struct ReportDeterminismTests {
    func renderedReport(threads: Int, model: String, calib: URL, data: URL) throws -> [String: Data] {
        let saved = FloatKernels.threadCount
        FloatKernels.threadCount = threads
        defer { FloatKernels.threadCount = saved }
        var c = try config(model: model, calib: calib.path, data: data.path, bits: "W8A8,W4A4")
        c.methods = [.adalog, .uniformMinMax]
        var report = try ReportRunner.run(c)
        report.metadata.date = Date(timeIntervalSince1970: 1_800_000_000)
        for i in report.results.indices { report.results[i].calibrationSeconds = 1 }
        let out = try temporaryFolder("det")
        defer { try? FileManager.default.removeItem(at: out) }
        var files: [String: Data] = [:]
        for u in try ReportWriter().write(report, to: out) { files[u.lastPathComponent] = try Data(contentsOf: u) }
        return files
    }

    @Test func identicalFilesForOneAndTwoThreadsAndRunToRun() throws {
        let calib = try imageFolder("dcalib", perClass: 3)
        let data = try imageFolder("ddata", perClass: 3)
        let model = try writeModel(linear: true)
        let one = try renderedReport(threads: 1, model: model, calib: calib, data: data)
        let two = try renderedReport(threads: 2, model: model, calib: calib, data: data)
        let again = try renderedReport(threads: 2, model: model, calib: calib, data: data)
        #expect(one.count == 5)
        for (name, bytes) in one {
            #expect(two[name] == bytes, "\(name): 1 vs 2 threads differ")
            #expect(again[name] == bytes, "\(name): run to run differs")
        }
    }
}
