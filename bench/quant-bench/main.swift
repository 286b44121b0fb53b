// quant-bench: times each layer search of the Quant room on ViT-Tiny-sized random data.
// usage: quant-bench [--tokens N] [--images B] [--bits b] [--only NAME] [--count-products-only]
//                    [--activation-search-images M]
// Defaults: 32 images × 197 tokens = 6304 tokens, W4A4, ViT-Tiny shapes (D = 192, MLP 768, 3 heads × 64).
import Quant
import FloatEngine
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

let args = Array(CommandLine.arguments.dropFirst())
@MainActor func opt(_ name: String, _ def: Int) -> Int {
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
    return def
}
let images = opt("--images", 32), tokensPerImage = opt("--tokens", 197), bits = opt("--bits", 4)
let only: String? = args.firstIndex(of: "--only").flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
let n = images * tokensPerImage
let dry = args.contains("--count-products-only")
var settings = FPCSSettings()
let sub = opt("--activation-search-images", 0)
if sub > 0 { settings.activationSearchTokens = sub * tokensPerImage }
QuantCost.countProductsOnly = dry

let d = 192, mlp = 768, heads = 3, hd = 64

struct Rng {
    var s: UInt64
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15; var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func normal() -> Float {
        let u1 = max(Float(next() >> 40) / Float(1 << 24), 1e-7), u2 = Float(next() >> 40) / Float(1 << 24)
        return sqrtf(-2 * logf(u1)) * cosf(2 * Float.pi * u2)
    }
}
nonisolated(unsafe) var rng = Rng(s: 42)
func randn(_ c: Int, _ sd: Float = 1) -> [Float] { (0..<c).map { _ in rng.normal() * sd } }

func report(_ name: String, _ stats: SearchStats) {
    let gmac = Double(QuantCost.multiplyAccumulates) / 1e9
    print("\(name.padding(28)) evals \(stats.totalEvaluations)  time \(f2(stats.totalSeconds)) s  GEMM \(f2(gmac)) GMAC")
    for i in 0..<stats.phases.count {
        print("    \(stats.phases[i].padding(22)) \(stats.evaluations[i]) evals  \(f2(stats.seconds[i])) s")
    }
    QuantCost.reset()
    fflush(nil)
}
extension String { func padding(_ w: Int) -> String { count >= w ? self : self + String(repeating: " ", count: w - count) } }
func f2(_ v: Double) -> String { let r = (v * 100).rounded() / 100; return "\(r)" }

print("quant-bench: N = \(n) tokens (\(images) × \(tokensPerImage)), W\(bits)A\(bits)" +
      (dry ? "  [products counted, not computed: times exclude GEMM]" : ""))
func run(_ name: String, _ body: () throws -> SearchStats) rethrows {
    if let o = only, o != name { return }
    QuantCost.reset()
    let s = try body()
    report(name, s)
}

do {
    try run("qkv (post-LN, 192x576)") {
        let x = randn(n * d), w = randn(3 * d * d, 0.05)
        let g = [Float](repeating: 1, count: d), b = [Float](repeating: 0, count: d)
        return try LayerSearch.postLayerNormLinear(x: x, tokens: n, inFeatures: d, weight: w, outFeatures: 3 * d, bias: nil,
                                                   gamma: g, beta: b, weightBits: bits, inputBits: bits, settings: settings).linear.stats
    }
    try run("proj (192x192)") {
        try LayerSearch.uniformLinear(x: randn(n * d), tokens: n, inFeatures: d, weight: randn(d * d, 0.05), outFeatures: d,
                                      weightBits: bits, inputBits: bits, settings: settings).stats
    }
    try run("fc1 (post-LN, 192x768)") {
        let g = [Float](repeating: 1, count: d), b = [Float](repeating: 0, count: d)
        return try LayerSearch.postLayerNormLinear(x: randn(n * d), tokens: n, inFeatures: d, weight: randn(mlp * d, 0.05),
                                                   outFeatures: mlp, bias: nil, gamma: g, beta: b, weightBits: bits,
                                                   inputBits: bits, settings: settings).linear.stats
    }
    try run("fc2 (AdaLog in, 768x192)") {
        let x = randn(n * mlp).map { v in 0.5 * v * (1 + erff(v / 1.4142135)) }
        return try LayerSearch.geluLinear(x: x, tokens: n, inFeatures: mlp, weight: randn(d * mlp, 0.05), outFeatures: d,
                                          bias: randn(d), weightBits: bits, inputBits: bits, settings: settings).stats
    }
    try run("matmul1 (QK^T, 3 heads)") {
        try LayerSearch.attentionScores(query: randn(n * d), key: randn(n * d), batch: images, heads: heads,
                                        tokens: tokensPerImage, headDim: hd, bits: bits).stats
    }
    try run("matmul2 (PV, 3 heads)") {
        var p = [Float](repeating: 0, count: images * heads * tokensPerImage * tokensPerImage)
        for r in 0..<(images * heads * tokensPerImage) {
            var s: Float = 0
            for j in 0..<tokensPerImage { let e = expf(rng.normal() * 2); p[r * tokensPerImage + j] = e; s += e }
            for j in 0..<tokensPerImage { p[r * tokensPerImage + j] /= s }
        }
        return try LayerSearch.attentionValues(probabilities: p, value: randn(n * d), batch: images, heads: heads,
                                               tokens: tokensPerImage, headDim: hd, probabilityBits: bits, valueBits: bits).stats
    }
    try run("patch embed (768x192)") {
        let np = images * 196
        return try LayerSearch.patchEmbed(columns: randn(np * 768), rows: np, inFeatures: 768, weight: randn(d * 768, 0.02),
                                          outChannels: d, weightBits: bits).stats
    }
} catch {
    print("error: \(error)")
    exit(1)
}
