// qmodel-run MODEL.qmodel [INPUT.f32] [--threads N] [--repeat N] [--max-memory-mb N]
// Loads a .qmodel, runs one sample (raw little-endian float32 NHWC file, or zeros) and prints the output.
import Int8Runtime
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func fail(_ m: String) -> Never {
    let line = Array("qmodel-run: \(m)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
    exit(1)
}

var args = Array(CommandLine.arguments.dropFirst())
var threads = 2, repeats = 1, maxMemoryMB = 16384
var positional: [String] = []
var i = 0
while i < args.count {
    switch args[i] {
    case "--threads", "--repeat", "--max-memory-mb":
        guard i + 1 < args.count, let v = Int(args[i + 1]), v >= 1, v <= 1 << 30 else { fail("\(args[i]) needs a positive integer") }
        if args[i] == "--threads" { threads = v } else if args[i] == "--repeat" { repeats = v } else { maxMemoryMB = v }
        i += 2
    case "-h", "--help":
        print("usage: qmodel-run MODEL.qmodel [INPUT.f32] [--threads N] [--repeat N] [--max-memory-mb N]"); exit(0)
    default:
        positional.append(args[i]); i += 1
    }
}
guard let path = positional.first, positional.count <= 2 else { fail("usage: qmodel-run MODEL.qmodel [INPUT.f32] [--threads N] [--repeat N]") }

do {
    // The file is read whole and its sections copied once: the file may use at most half the memory cap.
    let model = try QModelFile.load(path: path, maxFileSize: (maxMemoryMB << 20) / 2)
    let session = try Session(model: model, batch: 1, threads: threads, maxMemoryBytes: maxMemoryMB << 20)
    let count = session.inputShape.reduce(1, *)
    var input = [Float](repeating: 0, count: count)
    if positional.count == 2 {
        guard let fp = fopen(positional[1], "rb") else { fail("cannot open input '\(positional[1])'") }
        defer { fclose(fp) }
        let got = input.withUnsafeMutableBytes { fread($0.baseAddress!, 4, count, fp) }
        guard got == count else { fail("input '\(positional[1])' has \(got) floats, the model needs \(count) (shape \(session.inputShape), NHWC)") }
    }
    var best = Double.infinity
    var outputs: [[Float]] = []
    for _ in 0..<repeats {
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        outputs = try session.run(input, samples: 1)
        clock_gettime(CLOCK_MONOTONIC, &t1)
        best = min(best, Double(t1.tv_sec - t0.tv_sec) * 1e3 + Double(t1.tv_nsec - t0.tv_nsec) / 1e6)
    }
    for (k, out) in outputs.enumerated() {
        print("output \(model.outputs[k]) shape \(session.outputShapes[k]):")
        print(out.map { String($0) }.joined(separator: " "))
        if let top = out.indices.max(by: { out[$0] < out[$1] }) {
            let label = top < model.classNames.count ? " (\(model.classNames[top]))" : ""
            print("argmax \(top)\(label)")
        }
    }
    print("time best of \(repeats): \(best) ms, threads \(threads)")
} catch {
    fail("\(error)")
}
