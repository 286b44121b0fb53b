// Interrupting the `quantize` tool while it writes an output leaves neither the output nor a temporary file.
// Runs the built `quantize` executable (it sits beside the test bundle after `swift build` / `swift test`); the
// ADAQUANT_TEST_ATOMIC_PAUSE_MS hook of AtomicFile holds the write open between "temporary file complete" and
// "rename", so the signal lands inside the write window every time instead of by luck.
import Foundation
import Testing
@testable import ReportRunner

private let quantizeTool: URL? = {
    var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
    if let b = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
        candidates.append(URL(fileURLWithPath: b.bundlePath).deletingLastPathComponent())
    }
    return candidates.map { $0.appendingPathComponent("quantize") }.first { FileManager.default.isExecutableFile(atPath: $0.path) }
}()

@Suite(.enabled(if: quantizeTool != nil, "the quantize executable is not built next to the tests"))
struct InterruptTests {
    /// A run-raw job on the tiny linear model, writing `out.f32` into a fresh folder.
    func job(_ tag: String) throws -> (Process, URL) {
        let dir = try temporaryFolder(tag)
        let model = try writeModel(linear: true)
        var input = Data()
        for i in 0..<3072 { var b = Float(i % 7).bitPattern.littleEndian; withUnsafeBytes(of: &b) { input.append(contentsOf: $0) } }
        try input.write(to: dir.appendingPathComponent("in.f32"))
        let p = Process()
        p.executableURL = quantizeTool!
        p.arguments = ["run-raw", model, "--input", dir.appendingPathComponent("in.f32").path,
                       "--output", dir.appendingPathComponent("out.f32").path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        return (p, dir)
    }

    func listing(_ dir: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() }

    @Test func sigintDuringTheWriteLeavesNoPartialOrTemporaryFile() throws {
        let (p, dir) = try job("interrupt")
        defer { try? FileManager.default.removeItem(at: dir) }
        var env = ProcessInfo.processInfo.environment
        env["ADAQUANT_TEST_ATOMIC_PAUSE_MS"] = "30000"
        p.environment = env
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while !listing(dir).contains(where: { $0.hasPrefix(".tmp-out.f32") }) {
            guard p.isRunning, Date() < deadline else {
                p.terminate()
                Issue.record("no temporary output appeared (still running: \(p.isRunning)): \(listing(dir))")
                return
            }
            usleep(20_000)
        }
        p.interrupt()   // SIGINT
        p.waitUntilExit()
        #expect(p.terminationStatus == 128 + SIGINT)
        #expect(listing(dir) == ["in.f32"], "left behind: \(listing(dir))")
    }

    @Test func sigtermBeforeAnyWriteLeavesNothingAndACompleteRunLeavesOnlyTheOutput() throws {
        let (p, dir) = try job("complete")
        defer { try? FileManager.default.removeItem(at: dir) }
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(listing(dir) == ["in.f32", "out.f32"])
        #expect((try Data(contentsOf: dir.appendingPathComponent("out.f32"))).count == 4 * 4)

        let (q, dir2) = try job("early")
        defer { try? FileManager.default.removeItem(at: dir2) }
        try q.run()
        q.terminate()   // SIGTERM, most likely while loading the model
        q.waitUntilExit()
        #expect(listing(dir2) == ["in.f32"] || (q.terminationStatus == 0 && listing(dir2) == ["in.f32", "out.f32"]),
                "left behind: \(listing(dir2))")
    }

    @Test func aFailedWriteLeavesNoTemporaryFile() throws {
        let (p, dir) = try job("fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        // The output path is an existing folder: the rename fails after the temporary file was written.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("out.f32"), withIntermediateDirectories: false)
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(listing(dir) == ["in.f32", "out.f32"])
        #expect(listing(dir.appendingPathComponent("out.f32")).isEmpty)
    }
}
