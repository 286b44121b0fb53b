import ArgumentParser
import Foundation
import ONNXGraph
import FloatEngine
import FileOutput

/// `quantize run-raw`: runs a model in float on raw little-endian float32 input, writing raw float32
/// output. A plumbing command for parity scripts (tools/parity_real_models.py) and benchmarks.
struct RunRaw: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-raw",
        abstract: "Run an ONNX model in float on raw float32 input (for parity checks and benchmarks).")

    @Argument(help: "ONNX model file.") var model: String
    @Option(help: "Raw float32 input file (batch × the input's shape).") var input: String
    @Option(help: "Batch size bound to the symbolic batch dimension.") var batch: Int = 1
    @Option(help: "Where to write the first output as raw float32.") var output: String
    @Option(help: "Time this many extra runs and print the best latency (ms).") var repeats: Int = 0
    @Flag(help: "Disable fusion of bias/activation/GELU.") var noFuse = false
    @Flag(help: "Print per-op time of the timed runs.") var profile = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        let m = try ONNXModel(contentsOf: model, limits: resources.limits)
        let session = try FloatSession(graph: m.graph, batch: batch, options: SessionOptions(fuse: !noFuse), limits: resources.limits)
        let data = try Data(contentsOf: URL(fileURLWithPath: input))
        let values: [Float] = data.withUnsafeBytes { p in (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
        let t0 = Date()
        let out = try session.run(values)
        let first = Date().timeIntervalSince(t0)
        var best = first
        let prof = OpProfile()
        if profile { session.profile = prof }
        for _ in 0..<repeats {
            let t = Date()
            _ = try session.run(values)
            best = min(best, Date().timeIntervalSince(t))
        }
        var bytes = Data(capacity: out.count * 4)
        for v in out { var le = v.bitPattern.littleEndian; withUnsafeBytes(of: &le) { bytes.append(contentsOf: $0) } }
        try AtomicFile.write(bytes, to: URL(fileURLWithPath: output))
        if profile { print(prof.report) }
        print(String(format: "first_ms %.3f best_ms %.3f outputs %d", first * 1000, best * 1000, out.count))
    }
}
