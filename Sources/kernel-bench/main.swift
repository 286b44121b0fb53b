// kernel-bench: GOPS of the integer kernels on ViT/DeiT and ResNet-50 shapes, per ISA and thread count.
// Usage: swift run -c release kernel-bench [--json] [--threads N] [--isa NAME] [--quick]
import Dispatch
import Foundation
import Int8Kernels

struct Options {
    var json = false
    var threads: [Int] = [1, 2]
    var isas: [KernelISA] = KernelISA.supported.filter { $0 != .portable }
    var quick = false
    var only: String? = nil
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--json": o.json = true
        case "--quick": o.quick = true
        case "--threads":
            if let v = args.next(), let n = Int(v), n > 0 { o.threads = [n] }
        case "--isa":
            if let v = args.next() {
                o.isas = KernelISA.allCases.filter { $0.description == v && $0.isSupported }
            }
        case "--only":
            o.only = args.next()
        case "-h", "--help":
            print("kernel-bench [--json] [--threads N] [--isa portable|avx2|avxvnni|avx512vnni|neondot] [--only gemm|conv|dwconv|attention|fc2] [--quick]")
            exit(0)
        default:
            FileHandle.standardError.write("unknown argument \(a)\n".data(using: .utf8)!)
            exit(2)
        }
    }
    return o
}

let opts = parseOptions()

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// Best-of time: runs `body` repeatedly for at least `minTime` (and at least 3 times).
func bestTime(minTime: Double, _ body: () -> Void) -> Double {
    body()  // warm-up
    var best = Double.infinity
    let start = now()
    var runs = 0
    while runs < 3 || now() - start < minTime {
        let t0 = now()
        body()
        best = min(best, now() - t0)
        runs += 1
        if runs > 2000 { break }
    }
    return best
}

func randomBytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255) } }
func randomInt8(_ n: Int, _ r: ClosedRange<Int8> = -128...127) -> [Int8] { (0..<n).map { _ in Int8.random(in: r) } }

func emit(kernel: String, shape: String, isa: KernelISA, threads: Int, gops: Double, peak: Double) {
    if opts.json {
        print("{\"kernel\":\"\(kernel)\",\"shape\":\"\(shape)\",\"isa\":\"\(isa)\",\"threads\":\(threads),\"gops\":\(String(format: "%.1f", gops)),\"peak_gops\":\(String(format: "%.1f", peak))}")
    } else {
        print(String(format: "%-10@ %-26@ %-11@ t=%d %9.1f GOPS  peak %7.1f  (%5.1f %%)", kernel as NSString, shape as NSString,
                     isa.description as NSString, threads, gops, peak, 100 * gops / peak))
    }
}

let minTime = opts.quick ? 0.05 : 0.3

/// u8 × s8 GEMM requantized to uint8, per-channel multipliers, bias fused.
func gemmGOPS(m: Int, k: Int, n: Int, isa: KernelISA, threads: Int) -> Double {
    let a = randomBytes(m * k)
    let w = try! PackedInt8Weights(weights: randomInt8(k * n), k: k, n: n, layout: .outputMajor)
    let bias = (0..<n).map { _ in Int32.random(in: -5000...5000) }
    let mults = (0..<n).map { _ in try! QuantizedMultiplier(Double.random(in: 0.0001...0.001)) }
    let stage = OutputStage.requantize(multipliers: mults, rounding: .doubleRounding, zeroPoint: 3, qmin: 0, qmax: 255, unsigned: true)
    var out = [UInt8](repeating: 0, count: m * n)
    let t = a.withUnsafeBufferPointer { ab in
        out.withUnsafeMutableBytes { ob in
            bestTime(minTime: minTime) {
                try! Int8GEMM.run(a: ab.baseAddress!, lda: k, m: m, activation: .uint8(zeroPoint: 128), weights: w, bias: bias,
                                  output: stage, dst: ob.baseAddress!, ldd: n, isa: isa, threads: threads)
            }
        }
    }
    return 2.0 * Double(m * n * k) / t / 1e9
}

let vitShapes: [(String, Int, Int)] = [
    ("vit-t qkv", 192, 576), ("vit-t fc1", 192, 768), ("vit-t fc2", 768, 192),
    ("deit-s qkv", 384, 1152), ("deit-s fc1", 384, 1536), ("deit-s fc2", 1536, 384),
    ("vit-b qkv", 768, 2304), ("vit-b fc1", 768, 3072), ("vit-b fc2", 3072, 768),
]

func want(_ s: String) -> Bool { opts.only == nil || opts.only == s }

for isa in opts.isas {
    for threads in opts.threads {
        let peak = gemmGOPS(m: 1024, k: 1024, n: 1024, isa: isa, threads: threads)
        if want("gemm") || want("peak") {
            emit(kernel: "gemm", shape: "1024x1024x1024", isa: isa, threads: threads, gops: peak, peak: peak)
        }
        if want("gemm") {
            for (name, k, n) in vitShapes {
                let g = gemmGOPS(m: 197, k: k, n: n, isa: isa, threads: threads)
                emit(kernel: "gemm", shape: "197x\(k)x\(n) \(name)", isa: isa, threads: threads, gops: g, peak: peak)
            }
        }
    }
}
