// float-bench: GFLOPS of FloatEngine's SGEMM / matmul / conv on the ViT-Tiny and ResNet-50 shapes at
// 1 and 2 threads, plus throughput and max error of the vectorised math. Peers (numpy, onnxruntime)
// run from bench/float_kernels_vs_numpy.py, which calls this with --json.
//
// usage: float-bench [--json] [--threads 1,2] [--reps N] [--only gemm|conv|math] [--isa portable|avx2|avx512]

import CFloatKernels
import FloatEngine
import Foundation

struct Options {
    var json = false
    var threads = [1, 2]
    var reps = 30
    var only: String? = nil
    var isa: FloatISA? = nil
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--json": o.json = true
        case "--threads": o.threads = (args.next() ?? "1,2").split(separator: ",").compactMap { Int($0) }
        case "--reps": o.reps = Int(args.next() ?? "") ?? o.reps
        case "--only": o.only = args.next()
        case "--isa":
            let name = args.next() ?? ""
            o.isa = FloatISA.allCases.first { $0.description == name }
        default:
            FileHandle.standardError.write("unknown option \(a)\n".data(using: .utf8)!)
            exit(2)
        }
    }
    return o
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// Best-of-`reps` seconds for `body` (after one warm-up call).
func best(_ reps: Int, _ body: () -> Void) -> Double {
    body()
    var b = Double.infinity
    for _ in 0..<reps { let t = now(); body(); b = min(b, now() - t) }
    return b
}

func randomArray(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed | 1
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 40) % 1000) / 1000
    }
}

struct Row: Codable {
    var kind: String
    var name: String
    var m: Int, n: Int, k: Int
    var count: Int
    var flops: Double
    var threads: Int
    var seconds: Double
    var gflops: Double
    // conv geometry (kind == "conv")
    var conv: [Int]?
}

nonisolated(unsafe) var rows: [Row] = []
let opt = parseOptions()

func record(_ r: Row) {
    rows.append(r)
    if !opt.json {
        let ms = String(format: "%8.3f", r.seconds * 1e3), gf = String(format: "%7.1f", r.gflops)
        print("\(r.kind.padding(toLength: 7, withPad: " ", startingAt: 0)) \(r.name.padding(toLength: 34, withPad: " ", startingAt: 0)) t=\(r.threads)  \(ms) ms  \(gf) GFLOPS")
    }
}

func runAll() {
    if !opt.json { print("ISA \(FloatKernels.activeISA), threads \(opt.threads), best of \(opt.reps)") }
    // ViT-Tiny linear layers (M = 197 tokens) and the classifier head.
    let gemms: [(String, Int, Int, Int, Int)] = [
        ("vit qkv 197x192x576", 197, 192, 576, 12), ("vit proj 197x192x192", 197, 192, 192, 12),
        ("vit fc1 197x192x768", 197, 192, 768, 12), ("vit fc2 197x768x192", 197, 768, 192, 12),
        ("vit head 1x192x1000", 1, 192, 1000, 1), ("r50 fc 1x2048x1000", 1, 2048, 1000, 1),
        ("square 256x768x768", 256, 768, 768, 0),
    ]
    if opt.only == nil || opt.only == "gemm" {
        for t in opt.threads {
            FloatKernels.threadCount = t
            for (name, m, k, n, count) in gemms {
                let a = randomArray(m * k, seed: 1), b = randomArray(k * n, seed: 2), bias = randomArray(n, seed: 3)
                var c = [Float](repeating: 0, count: m * n)
                let packed = b.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: n) }
                let s = best(opt.reps) { FloatKernels.gemm(m: m, a: a, lda: k, b: packed, bias: bias, c: &c, ldc: n) }
                let f = 2.0 * Double(m * n * k)
                record(Row(kind: "gemm", name: name, m: m, n: n, k: k, count: count, flops: f, threads: t, seconds: s, gflops: f / s / 1e9))
            }
            // Attention, 3 heads of 64: Q·Kᵀ and P·V in one batched call each.
            let heads = 3, tok = 197, d = 64, width = heads * d
            let q = randomArray(tok * width, seed: 4), kk = randomArray(tok * width, seed: 5)
            var sc = [Float](repeating: 0, count: heads * tok * tok)
            let s1 = best(opt.reps) {
                FloatKernels.batchedMatmul(batch: heads, m: tok, n: tok, k: d, a: q, lda: width, strideA: d,
                                           b: kk, ldb: width, strideB: d, bTransposed: true, c: &sc, ldc: tok, strideC: tok * tok)
            }
            let f1 = 2.0 * Double(heads * tok * tok * d)
            record(Row(kind: "attn", name: "vit q.kT 3x197x64x197", m: tok, n: tok, k: d, count: 12, flops: f1, threads: t, seconds: s1, gflops: f1 / s1 / 1e9))
            var out = [Float](repeating: 0, count: tok * width)
            let s2 = best(opt.reps) {
                FloatKernels.batchedMatmul(batch: heads, m: tok, n: d, k: tok, a: sc, lda: tok, strideA: tok * tok,
                                           b: kk, ldb: width, strideB: d, bTransposed: false, c: &out, ldc: width, strideC: d)
            }
            var pooled = 0, inl = 0
            cfk_pool_stats(&pooled, &inl)
            if !opt.json { print("pool jobs so far: \(pooled) pooled, \(inl) inline, worker joined \(cfk_pool_worker_joins())") }
            record(Row(kind: "attn", name: "vit p.v 3x197x197x64", m: tok, n: d, k: tok, count: 12, flops: f1, threads: t, seconds: s2, gflops: f1 / s2 / 1e9))
        }
    }
    if opt.only == nil || opt.only == "conv" {
        // ResNet-50 (torchvision v1.5, 224×224) convolutions: (name, C, O, H, k, stride, pad, count).
        let convs: [(String, Int, Int, Int, Int, Int, Int, Int)] = [
            ("conv1 3-64 7x7 s2 @224", 3, 64, 224, 7, 2, 3, 1),
            ("l1 1x1 64-64 @56", 64, 64, 56, 1, 1, 0, 1),
            ("l1 3x3 64-64 @56", 64, 64, 56, 3, 1, 1, 3),
            ("l1 1x1 64-256 @56", 64, 256, 56, 1, 1, 0, 4),
            ("l1 1x1 256-64 @56", 256, 64, 56, 1, 1, 0, 2),
            ("l2 1x1 256-128 @56", 256, 128, 56, 1, 1, 0, 1),
            ("l2 3x3 128-128 s2 @56", 128, 128, 56, 3, 2, 1, 1),
            ("l2 1x1 256-512 s2 @56", 256, 512, 56, 1, 2, 0, 1),
            ("l2 1x1 128-512 @28", 128, 512, 28, 1, 1, 0, 4),
            ("l2 1x1 512-128 @28", 512, 128, 28, 1, 1, 0, 3),
            ("l2 3x3 128-128 @28", 128, 128, 28, 3, 1, 1, 3),
            ("l3 1x1 512-256 @28", 512, 256, 28, 1, 1, 0, 1),
            ("l3 3x3 256-256 s2 @28", 256, 256, 28, 3, 2, 1, 1),
            ("l3 1x1 512-1024 s2 @28", 512, 1024, 28, 1, 2, 0, 1),
            ("l3 1x1 256-1024 @14", 256, 1024, 14, 1, 1, 0, 6),
            ("l3 1x1 1024-256 @14", 1024, 256, 14, 1, 1, 0, 5),
            ("l3 3x3 256-256 @14", 256, 256, 14, 3, 1, 1, 5),
            ("l4 1x1 1024-512 @14", 1024, 512, 14, 1, 1, 0, 1),
            ("l4 3x3 512-512 s2 @14", 512, 512, 14, 3, 2, 1, 1),
            ("l4 1x1 1024-2048 s2 @14", 1024, 2048, 14, 1, 2, 0, 1),
            ("l4 1x1 512-2048 @7", 512, 2048, 7, 1, 1, 0, 3),
            ("l4 1x1 2048-512 @7", 2048, 512, 7, 1, 1, 0, 2),
            ("l4 3x3 512-512 @7", 512, 512, 7, 3, 1, 1, 2),
            // depthwise (MobileNet/EfficientNet kin), for reference
            ("dw 3x3 144 @56", 144, 144, 56, 3, 1, 1, 0),
            ("dw 5x5 s2 240 @28", 240, 240, 28, 5, 2, 2, 0),
        ]
        for t in opt.threads {
            FloatKernels.threadCount = t
            for (name, c, o, h, kk, s, pd, count) in convs {
                let groups = name.hasPrefix("dw") ? c : 1
                let p = Conv2DParams(inChannels: c, outChannels: o, inHeight: h, inWidth: h, kernelH: kk, kernelW: kk,
                                     strideH: s, strideW: s, padTop: pd, padLeft: pd, padBottom: pd, padRight: pd, groups: groups)
                let input = randomArray(c * h * h, seed: 6)
                let w = randomArray(o * (c / groups) * kk * kk, seed: 7), bias = randomArray(o, seed: 8)
                let packed = w.withUnsafeBufferPointer { PackedConvWeights($0.baseAddress!, params: p) }
                var out = [Float](repeating: 0, count: o * p.outHeight * p.outWidth)
                let sec = best(opt.reps) { FloatKernels.conv2d(input: input, weights: packed, bias: bias, activation: .relu, output: &out) }
                let f = 2.0 * Double(o * p.outHeight * p.outWidth * (c / groups) * kk * kk)
                record(Row(kind: "conv", name: name, m: o, n: p.outHeight * p.outWidth, k: (c / groups) * kk * kk, count: count,
                           flops: f, threads: t, seconds: sec, gflops: f / sec / 1e9, conv: [c, o, h, kk, s, pd, groups]))
            }
        }
    }
    if opt.only == nil || opt.only == "math" {
        let n = 197 * 768
        for t in opt.threads {
            FloatKernels.threadCount = t
            for f in [FloatKernels.Unary.exp, .erf, .tanh, .sigmoid, .gelu] {
                let x0 = randomArray(n, seed: 9).map { $0 * 8 - 4 }
                var x = x0
                let sec = best(opt.reps) { x = x0; FloatKernels.apply(f, &x, count: n) }
                record(Row(kind: "math", name: "\(f) 197x768", m: 1, n: n, k: 0, count: 0, flops: Double(n), threads: t,
                           seconds: sec, gflops: Double(n) / sec / 1e9))
            }
            var sm = randomArray(3 * 197 * 197, seed: 10)
            let sec = best(opt.reps) { FloatKernels.softmaxRows(&sm, rows: 3 * 197, cols: 197) }
            record(Row(kind: "math", name: "softmax 591x197", m: 591, n: 197, k: 0, count: 0, flops: Double(591 * 197), threads: t,
                       seconds: sec, gflops: Double(591 * 197) / sec / 1e9))
            let xl = randomArray(197 * 192, seed: 11), g = randomArray(192, seed: 12), bta = randomArray(192, seed: 13)
            var yl = xl
            let sec2 = best(opt.reps) { FloatKernels.layerNormRows(xl, rows: 197, cols: 192, gamma: g, beta: bta, epsilon: 1e-6, output: &yl) }
            record(Row(kind: "math", name: "layernorm 197x192", m: 197, n: 192, k: 0, count: 0, flops: Double(197 * 192), threads: t,
                       seconds: sec2, gflops: Double(197 * 192) / sec2 / 1e9))
        }
        // Accuracy of the vectorised math against libm (double), dense sweep.
        if !opt.json {
            for f in [FloatKernels.Unary.exp, .erf, .tanh, .sigmoid, .gelu] {
                var xs: [Float] = []
                var v: Float = -30
                while v <= 30 { xs.append(v); v += 1.0 / 4096 }
                if f == .exp { xs += stride(from: Float(-104), to: 89, by: 1.0 / 256) }
                let want = xs.map { FloatReference.unary(f, $0) }
                var got = xs
                FloatKernels.apply(f, &got, count: got.count)
                var worst = 0.0, at: Float = 0, worstAbs = 0.0
                for i in 0..<xs.count {
                    let w = Double(want[i]), g = Double(got[i])
                    worstAbs = max(worstAbs, abs(g - w))
                    if abs(w) >= 1e-30 { let e = abs(g - w) / abs(w); if e > worst { worst = e; at = xs[i] } }
                }
                print("accuracy \(f): max rel err \(String(format: "%.3g", worst)) at x=\(at), max abs err \(String(format: "%.3g", worstAbs)) over \(xs.count) points")
            }
        }
    }
}

func poolSummary() {
    var pooled = 0, inl = 0
    cfk_pool_stats(&pooled, &inl)
    if !opt.json { print("thread pool: \(pooled) jobs on the pool, \(inl) run inline, worker joined \(cfk_pool_worker_joins()) times") }
}

if let isa = opt.isa {
    FloatKernels.$isaOverride.withValue(isa) { runAll() }
} else {
    runAll()
}
if opt.json {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    let data = (try? enc.encode(rows)) ?? Data()
    print(String(data: data, encoding: .utf8) ?? "[]")
}
poolSummary()
