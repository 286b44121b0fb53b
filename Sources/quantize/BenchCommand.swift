import ArgumentParser
import Foundation
import ONNXGraph
import FloatEngine
import Int8Runtime
#if canImport(Glibc)
import Glibc
#endif

/// `quantize bench MODEL`: latency of one model on one input, float engine (.onnx) or integer runtime (.qmodel).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a model (.onnx on the float engine, .qmodel on the integer runtime).",
        discussion: """
            Example: quantize bench vit-w8a8.qmodel --threads 2 --batch 1 --iterations 50 --json
            Runs a fixed pseudo-random input (the timing does not depend on the values) after warm-up runs.
            JSON keys: model, threads, batch, median_ms, p90_ms, images_per_second, peak_rss_mb.
            """)

    @Argument(help: "Model file: .onnx (float engine) or .qmodel (integer runtime).") var model: String
    @Option(help: "Threads (the float engine and the integer runtime each use at most this many).") var threads: Int = 2
    @Option(help: "Images per run.") var batch: Int = 1
    @Option(help: "Timed runs.") var iterations: Int = 50
    @Option(help: "Untimed warm-up runs.") var warmup: Int = 5
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: ".qmodel: also print the time per op kind and of the slowest ops by name (best of 5 runs of each op).") var profile = false
    @Option(help: "With --profile: how many of the slowest ops to list by name.") var profileTop = 30
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        guard threads >= 1, batch >= 1, iterations >= 1, warmup >= 0 else {
            throw ValidationError("--threads, --batch and --iterations must be at least 1, --warmup at least 0")
        }
        var times: [Double] = []
        func clock(_ body: () throws -> Void) rethrows {
            var a = timespec(), b = timespec()
            clock_gettime(CLOCK_MONOTONIC, &a)
            try body()
            clock_gettime(CLOCK_MONOTONIC, &b)
            times.append(Double(b.tv_sec - a.tv_sec) * 1e3 + Double(b.tv_nsec - a.tv_nsec) / 1e6)
        }
        var seed: UInt64 = 12345
        func noise(_ n: Int) -> [Float] {
            (0..<n).map { _ in seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(seed >> 40) - (1 << 23)) / Float(1 << 23) }
        }
        if isQModel(model) {
            let m = try QModelFile.load(path: model, maxFileSize: resources.limits.maxBytes)
            let s = try Session(model: m, batch: batch, threads: threads, maxMemoryBytes: resources.limits.maxBytes)
            let x = noise(batch * s.inputShape.reduce(1, *))
            s.inputBuffer.update(from: x, count: x.count)
            for _ in 0..<warmup { try s.execute(samples: batch) }
            times = []
            for _ in 0..<iterations { try clock { try s.execute(samples: batch) } }
            if profile {
                let p = try s.profile(Array(UnsafeBufferPointer(start: s.inputBuffer, count: s.inputShape.reduce(1, *))), repeats: 5)
                for (kind, ms) in p.sorted(by: { $0.value > $1.value }) {
                    FileHandle.standardError.write("  \(padded(kind, 18)) \(String(format: "%8.3f", ms)) ms\n".data(using: .utf8)!)
                }
                let ops = try s.profileOps(Array(UnsafeBufferPointer(start: s.inputBuffer, count: s.inputShape.reduce(1, *))), repeats: 5)
                FileHandle.standardError.write("  slowest ops (of \(ops.count)):\n".data(using: .utf8)!)
                for o in ops.sorted(by: { $0.ms > $1.ms }).prefix(profileTop) {
                    FileHandle.standardError.write("  \(String(format: "%8.3f", o.ms)) ms  \(padded(o.kind, 12)) \(o.name)  \(o.detail)\n".data(using: .utf8)!)
                }
            }
        } else {
            FloatKernels.threadCount = threads
            let m = try ONNXModel(contentsOf: model, limits: resources.limits)
            let session = try FloatSession(graph: m.graph, batch: batch, limits: resources.limits)
            guard let inSpec = session.graph.inputs.first else { throw ValidationError("'\(model)' has no input") }
            let x = noise(inSpec.shape.reduce(1, *))
            for _ in 0..<warmup { _ = try session.run(x) }
            times = []
            for _ in 0..<iterations { try clock { _ = try session.run(x) } }
        }
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let p90 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let rss = Double(usage.ru_maxrss) / 1024   // Linux reports KiB
        #else
        getrusage(RUSAGE_SELF, &usage)
        let rss = Double(usage.ru_maxrss) / (1024 * 1024)   // macOS reports bytes
        #endif
        let ips = Double(batch) / (median / 1000)
        if json {
            let obj: [String: Any] = ["model": model, "threads": threads, "batch": batch, "median_ms": median, "p90_ms": p90,
                                      "images_per_second": ips, "peak_rss_mb": rss]
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print(String(format: "%@: batch %d, %d threads: median %.2f ms, p90 %.2f ms, %.1f images/s, peak RSS %.1f MB",
                         model as NSString, batch, threads, median, p90, ips, rss))
        }
    }
}
