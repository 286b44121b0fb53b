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
    var int32Out = false
    var peak = (1024, 1024, 1024)
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
        case "--peak":
            if let v = args.next() {
                let p = v.split(separator: "x").compactMap { Int($0) }
                if p.count == 3 { o.peak = (p[0], p[1], p[2]) }
            }
        case "--int32":
            o.int32Out = true
        case "--only":
            o.only = args.next()
        case "-h", "--help":
            print("kernel-bench [--json] [--threads N] [--isa portable|avx2|avxvnni|avx512vnni|neondot] [--only gemm|conv|dwconv|attention|fc2] [--int32 (GEMM writes raw int32 like MatMulInteger)] [--quick]")
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

/// Fast deterministic bench data (SplitMix64); SystemRandomNumberGenerator costs a syscall per value.
struct FastRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
func randomBytes(_ n: Int) -> [UInt8] {
    var g = FastRandom(state: UInt64(n))
    return (0..<n).map { _ in UInt8(truncatingIfNeeded: g.next()) }
}
func randomInt8(_ n: Int, _ r: ClosedRange<Int8> = -128...127) -> [Int8] {
    var g = FastRandom(state: UInt64(n) &* 31)
    return (0..<n).map { _ in Int8.random(in: r, using: &g) }
}

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
    let stage = opts.int32Out ? OutputStage.int32
        : OutputStage.requantize(multipliers: mults, rounding: .doubleRounding, zeroPoint: 3, qmin: 0, qmax: 255, unsigned: true)
    var out = [UInt8](repeating: 0, count: m * n * stage.elementSize)
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
        // practical peak: the same microkernel on large GEMMs; the best of 1024x1024x1024 and 256x1024x1024
        // (the 1024-row case runs slower on this VM for a cache reason not yet understood; both are printed)
        let square = gemmGOPS(m: opts.peak.0, k: opts.peak.1, n: opts.peak.2, isa: isa, threads: threads)
        let wide = gemmGOPS(m: 256, k: 1024, n: 1024, isa: isa, threads: threads)
        let peak = max(square, wide)
        if want("gemm") || want("peak") {
            emit(kernel: "peak", shape: "\(opts.peak.0)x\(opts.peak.1)x\(opts.peak.2)", isa: isa, threads: threads, gops: square, peak: peak)
            emit(kernel: "peak", shape: "256x1024x1024", isa: isa, threads: threads, gops: wide, peak: peak)
        }
        if want("gemm") {
            for (name, k, n) in vitShapes {
                let g = gemmGOPS(m: 197, k: k, n: n, isa: isa, threads: threads)
                emit(kernel: opts.int32Out ? "gemm-i32" : "gemm", shape: "197x\(k)x\(n) \(name)", isa: isa, threads: threads, gops: g, peak: peak)
            }
        }
    }
}

// ---------------- convolution ----------------
struct ConvCase { let name: String; let g: ConvGeometry }
let convCases: [ConvCase] = [
    ConvCase(name: "r50 56x56x64->64 3x3", g: ConvGeometry(inH: 56, inW: 56, inC: 64, outC: 64, kernelH: 3, kernelW: 3, stride: 1, pad: 1)),
    ConvCase(name: "r50 56x56x64->256 1x1", g: ConvGeometry(inH: 56, inW: 56, inC: 64, outC: 256, kernelH: 1, kernelW: 1)),
    ConvCase(name: "r50 56x56x256->64 1x1", g: ConvGeometry(inH: 56, inW: 56, inC: 256, outC: 64, kernelH: 1, kernelW: 1)),
    ConvCase(name: "r50 28x28x128 3x3", g: ConvGeometry(inH: 28, inW: 28, inC: 128, outC: 128, kernelH: 3, kernelW: 3, stride: 1, pad: 1)),
    ConvCase(name: "r50 14x14x256 3x3", g: ConvGeometry(inH: 14, inW: 14, inC: 256, outC: 256, kernelH: 3, kernelW: 3, stride: 1, pad: 1)),
    ConvCase(name: "r50 7x7x512 3x3", g: ConvGeometry(inH: 7, inW: 7, inC: 512, outC: 512, kernelH: 3, kernelW: 3, stride: 1, pad: 1)),
    ConvCase(name: "r50 stem 224x224x3->64 7x7s2", g: ConvGeometry(inH: 224, inW: 224, inC: 3, outC: 64, kernelH: 7, kernelW: 7, stride: 2, pad: 3)),
]

func convGOPS(_ c: ConvGeometry, isa: KernelISA, threads: Int) -> Double {
    let w = randomInt8(c.outC * c.kernelH * c.kernelW * c.inC / c.groups)
    let conv = try! Conv2DInt8(geometry: c, weights: w)
    let input = randomBytes(c.inH * c.inW * c.inC)
    let mults = [try! QuantizedMultiplier(0.0005)]
    let stage = OutputStage.requantize(multipliers: mults, rounding: .doubleRounding, zeroPoint: 0, qmin: 0, qmax: 255, unsigned: true)
    var out = [UInt8](repeating: 0, count: c.outH * c.outW * c.outC)
    let bias = [Int32](repeating: 100, count: c.outC)
    let t = input.withUnsafeBufferPointer { ib in
        out.withUnsafeMutableBytes { ob in
            bestTime(minTime: minTime) {
                try! conv.run(input: ib.baseAddress!, activation: .uint8(zeroPoint: 128), bias: bias, output: stage, dst: ob.baseAddress!, isa: isa, threads: threads)
            }
        }
    }
    return 2.0 * Double(c.macs) / t / 1e9
}

func dwGOPS(_ c: ConvGeometry, isa: KernelISA, threads: Int) -> Double {
    let dw = try! DepthwiseConv2DInt8(geometry: c, weights: randomInt8(c.kernelH * c.kernelW * c.inC))
    let input = randomBytes(c.inH * c.inW * c.inC)
    let stage = OutputStage.requantize(multipliers: [try! QuantizedMultiplier(0.001)], rounding: .doubleRounding, zeroPoint: 0, qmin: 0, qmax: 255, unsigned: true)
    var out = [UInt8](repeating: 0, count: c.outH * c.outW * c.outC)
    let t = input.withUnsafeBufferPointer { ib in
        out.withUnsafeMutableBytes { ob in
            bestTime(minTime: minTime) {
                try! dw.run(input: ib.baseAddress!, activation: .uint8(zeroPoint: 128), output: stage, dst: ob.baseAddress!, isa: isa, threads: threads)
            }
        }
    }
    return 2.0 * Double(c.macs) / t / 1e9
}

func attentionGOPS(tokens t: Int, heads h: Int, headDim d: Int, isa: KernelISA, threads: Int) -> Double {
    let qkv = randomInt8(t * 3 * h * d, -20...20)
    let table = try! AdaLogTable(q: 20, bits: 4)
    var out = [Int8](repeating: 0, count: t * h * d)
    let stage = OutputStage.requantize(multipliers: [try! QuantizedMultiplier(0.0001)], rounding: .doubleRounding, zeroPoint: 0, qmin: -128, qmax: 127, unsigned: false)
    let tm = qkv.withUnsafeBufferPointer { qb in
        out.withUnsafeMutableBytes { ob in
            bestTime(minTime: minTime) {
                try! AttentionInt8.multiHead(qkv: qb.baseAddress!, tokens: t, heads: h, headDim: d, logitScales: Array(repeating: 0.01, count: h),
                                             table: table, outputs: Array(repeating: stage, count: h), dst: ob.baseAddress!, isa: isa, threads: threads)
            }
        }
    }
    return 2.0 * Double(2 * t * t * d * h) / tm / 1e9
}

func fc2GOPS(m: Int, k: Int, n: Int, isa: KernelISA, threads: Int) -> Double {
    let table = try! AdaLogTable(q: 20, bits: 4)
    let layer = try! AdaLogLinear(weights: randomInt8(n * k, -7...7), inFeatures: k, outFeatures: n, table: table)
    let codes = randomBytes(m * k).map { $0 % 17 }
    var out = [Float](repeating: 0, count: m * n)
    let stage = OutputStage.dequantize(scales: [1e-6], floatBias: nil)
    let t = codes.withUnsafeBufferPointer { cb in
        out.withUnsafeMutableBytes { ob in
            bestTime(minTime: minTime) {
                try! layer.run(codes: cb.baseAddress!, ldc: k, m: m, output: stage, dst: ob.baseAddress!, ldd: n, isa: isa, threads: threads)
            }
        }
    }
    return 2.0 * Double(m * n * k) / t / 1e9
}

for isa in opts.isas {
    for threads in opts.threads {
        let peak = (want("conv") || want("dwconv") || want("attention") || want("fc2"))
            ? gemmGOPS(m: opts.peak.0, k: opts.peak.1, n: opts.peak.2, isa: isa, threads: threads) : 0
        if want("conv") {
            for c in convCases {
                emit(kernel: "conv", shape: "\(c.name)", isa: isa, threads: threads, gops: convGOPS(c.g, isa: isa, threads: threads), peak: peak)
            }
        }
        if want("dwconv") {
            for (name, g) in [("mbv2 112x112x32 dw3x3", ConvGeometry(inH: 112, inW: 112, inC: 32, outC: 32, kernelH: 3, kernelW: 3, stride: 1, pad: 1, groups: 32)),
                              ("mbv2 56x56x144 dw3x3s2", ConvGeometry(inH: 56, inW: 56, inC: 144, outC: 144, kernelH: 3, kernelW: 3, stride: 2, pad: 1, groups: 144)),
                              ("effnet 14x14x480 dw5x5", ConvGeometry(inH: 14, inW: 14, inC: 480, outC: 480, kernelH: 5, kernelW: 5, stride: 1, pad: 2, groups: 480))] {
                emit(kernel: "dwconv", shape: name, isa: isa, threads: threads, gops: dwGOPS(g, isa: isa, threads: threads), peak: peak)
            }
        }
        if want("attention") {
            for (name, h) in [("vit-t", 3), ("deit-s", 6), ("vit-b", 12)] {
                emit(kernel: "attention", shape: "197 tok \(h)x64 \(name)", isa: isa, threads: threads,
                     gops: attentionGOPS(tokens: 197, heads: h, headDim: 64, isa: isa, threads: threads), peak: peak)
            }
        }
        if want("fc2") {
            for (name, k, n) in [("vit-t fc2", 768, 192), ("deit-s fc2", 1536, 384), ("vit-b fc2", 3072, 768)] {
                emit(kernel: "adalog-fc2", shape: "197x\(k)x\(n) \(name)", isa: isa, threads: threads,
                     gops: fc2GOPS(m: 197, k: k, n: n, isa: isa, threads: threads), peak: peak)
            }
        }
    }
}
