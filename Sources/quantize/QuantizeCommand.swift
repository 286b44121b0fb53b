import ArgumentParser
import Foundation
import Imaging
import ONNXGraph
import FloatEngine
import Calibration
import Quant

/// `quantize MODEL.onnx --calib DIR --bits W4A4 -o OUT.json`: calibrate and search the quantization parameters.
struct QuantizeModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Calibrate a model and search its quantization parameters (written as JSON, or as an int8 .qmodel).",
        discussion: """
            Example: quantize vit_tiny_patch16_224.onnx --calib imagenet-sample --bits W4A4 --preset vit -o vit-w4a4.json
            Methods: adalog (AdaLog paper's full method), uniform-minmax (per-row min-max weights, per-tensor
            min-max activations). The JSON holds the plan, every quantizer, the folds, the source model path and
            SHA-256, the preprocessing and the calibration file list; `quantize eval OUT.json --data DIR` simulates it.
            With -o OUT.qmodel the integer model is written instead (run it with quantize infer/eval/bench or
            qmodel-run); `quantize export OUT.json -o OUT.qmodel` converts a saved JSON.
            """)

    @Argument(help: "ONNX model file.") var model: String
    @Option(help: "Calibration image folder.") var calib: String
    @Option(help: "Labels file for a flat ImageNet-named folder (optional; labels are not used for calibration).") var labels: String?
    @Option(help: "Bit widths, e.g. W4A4, W6A6, W8A8.") var bits: String
    @Option(help: "adalog or uniform-minmax.") var method: String = "adalog"
    @Option(help: "Preprocessing preset (vit, imagenet, cifar10, efficientnet-lite0). Default: by input size.") var preset: String?
    @Option(help: "Calibration images drawn from the folder.") var calibCount: Int = 32
    @Option(help: "Seed of the calibration draw.") var seed: UInt64 = 5
    @Option(help: "Keep layers whose node or weight name matches this glob in float (repeatable).") var keepFloat: [String] = []
    @Option(help: "Per-layer bits PATTERN=W<b>A<b> (repeatable; first match wins).") var layerBits: [String] = []
    @Option(help: "Softmax-output quantizer: adalog, log2, logsqrt2, uniform.") var softmax: String = "adalog"
    @Option(help: "GELU-output quantizer: adalog, uniform.") var gelu: String = "adalog"
    @Option(help: "Score activation candidates of linear layers on this many sampled token rows (default: all rows, exact).")
    var searchTokens: Int?
    @Option(help: "Score the attention searches (Q, K, V, softmax) on only this many of the calibration images (default: all, exact).")
    var searchImages: Int?
    @Option(help: "Weight rounding onto the searched grids: nearest (the AdaLog reference), gptq (GPTQ error compensation with the quantized input's Hessian) gptq-ia (GPTQ on the input-aware target), both inside each layer's search of transformer layers, or gptq-seq (after the search, every linear and conv layer in graph order, on its input in the quantized model: GPTQ towards what the float weight makes of that input, then the bias refit).")
    var weightRounding: String = "nearest"
    @Option(help: "Smallest AdaLog base numerator q searched (base 2^(q/37)); the reference searches 10…137. Smaller q gives finer bases for 6–8 bits.")
    var adalogQMin: Int?
    @Option(help: "Zero-point candidates of the uniform searches: data-centred (16 values around the zero-point that centres each candidate range on the data) or mid-range (the AdaLog reference: 16 values around 2^(b-1), so at 6 and 8 bits a one-sided tensor wastes half its codes).")
    var zeroPoints: String = "data-centred"
    @Flag(help: "Search each layer on its input as the quantized model computes it (the layers before it already quantized; one simulation run per layer, slower) instead of on the float model's. With gptq-seq each layer is refit right after its search.")
    var sequentialSearch = false
    @Option(help: "Transformers: after the search and weight rounding, tune each block's weight rounding (AdaRound), biases and activation scales (--reconstruction-scales) for this many Adam steps towards the float model's block output, block by block on the quantized model's inputs (adalog.md §1.9, reduced). Off by default; 200 steps take under a minute per ViT-Tiny block on 2 cores.")
    var blockReconstruction: Int?
    @Option(help: "The block loss of --block-reconstruction: mse (the reference's squared error) or layernorm (each element's squared error weighted by (γ/σ)² of the LayerNorms after the block, so the residual stream's outlier channels do not dominate).")
    var reconstructionLoss: String = "mse"
    @Option(help: "The activation scales --block-reconstruction tunes: per-tensor (the post-LayerNorm and projection inputs' uniform grids), all (also the per-head Q/K/V grids and the post-GELU AdaLog scale, as the reference does) or none.")
    var reconstructionScales: String = "per-tensor"
    @Option(help: "What --block-reconstruction tunes each block towards: float (the float model's block output, the reference) or local (the float block applied to the block's input in the quantized model, so only the block's own error is fitted).")
    var reconstructionTarget: String = "float"
    @Option(help: ArgumentHelp("Start from a quantized model (.json) written by an earlier run on the same model and calibration images instead of searching again; only --block-reconstruction runs on it.", valueName: "json"))
    var resume: String?
    @Flag(help: "CNN layers: empirical bias correction (mean output of each layer matched to float on the calibration inputs).")
    var biasCorrection = false
    @Option(help: "GPTQ dampening (fraction of the mean Hessian diagonal). Default: 0.01, and 0.1 for gptq-seq.") var gptqDampening: Float?
    @Option(help: "Transformers: quantize the class token of the post-LayerNorm and projection inputs on its own min-max grid of this many bits (2–8), and search the shared grid on the patch tokens only.")
    var classTokenBits: Int?
    @Option(help: "Images per float run during calibration.") var batch: Int = 8
    @Option(name: [.short, .customLong("output")], help: "Output file: .json (quantization parameters) or .qmodel (int8 model).") var output: String
    @Flag(help: "No progress line on stderr.") var quiet = false
    @Flag(help: "Print each layer's search time and candidate count.") var verbose = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        let b = try BitSetting(parsing: bits)
        var po = PlanOptions(bits: b)
        po.softmax = try PlanOptions.parseSoftmax(softmax)
        po.gelu = try PlanOptions.parseGelu(gelu)
        po.keepFloat = keepFloat
        for lb in layerBits { try po.addLayerBits(lb) }
        var opts = PipelineOptions(plan: po)
        opts.method = try QuantMethod.parse(method)
        if let t = searchTokens {
            guard t >= 1 else { throw ValidationError("--search-tokens must be at least 1") }
            opts.settings.activationSearchTokens = t
        }
        if biasCorrection { opts.settings.biasCorrection = true }
        if sequentialSearch { opts.settings.sequentialSearch = true }
        if let n = blockReconstruction {
            guard n >= 1 else { throw ValidationError("--block-reconstruction must be at least 1 (steps per block)") }
            guard let l = ReconstructionLoss(rawValue: reconstructionLoss.lowercased()) else {
                throw ValidationError("--reconstruction-loss must be mse or layernorm")
            }
            guard let sc = ReconstructionScales(rawValue: reconstructionScales.lowercased()) else {
                throw ValidationError("--reconstruction-scales must be per-tensor, all or none")
            }
            guard let tg = ReconstructionTarget(rawValue: reconstructionTarget.lowercased()) else {
                throw ValidationError("--reconstruction-target must be float or local")
            }
            ReconstructionOptions(iterations: n, loss: l, scales: sc, target: tg).record(in: &opts.settings)
        }
        if let cb = classTokenBits {
            guard UniformQuantizer.supportedBits.contains(cb) else { throw ValidationError("--class-token-bits must be in \(UniformQuantizer.supportedBits)") }
            opts.settings.classTokenBits = cb
        }
        if let qm = adalogQMin {
            guard (1...10).contains(qm) else { throw ValidationError("--adalog-q-min must be in 1…10") }
            opts.settings.adaLogQMin = qm
        }
        opts.settings.zeroPoints = try ZeroPointPlacement.parse(zeroPoints)
        let wr = try WeightRounding.parse(weightRounding)
        if wr != .nearest {
            opts.settings.weightRounding = wr
            if let d = gptqDampening {
                guard d > 0, d.isFinite else { throw ValidationError("--gptq-dampening must be > 0") }
                opts.settings.gptqDampening = d
            }
        }
        if let i = searchImages {
            guard i >= 1 else { throw ValidationError("--search-images must be at least 1") }
            opts.attentionSearchImages = i
        }
        guard calibCount >= 1 else { throw ValidationError("--calib-count must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: calib, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("calibration folder '\(calib)' does not exist or is not a folder")
        }
        let start = Date()
        let m = try ONNXModel(contentsOf: model, limits: resources.limits)
        let spec = try preprocessSpec(preset: preset, graph: m.graph)
        let ds = try ImageDataset.open(calib, labels: labels)
        guard ds.count > 0 else { throw ValidationError("calibration folder '\(calib)' has no images") }
        let progress = ProgressLine(enabled: !quiet)
        let cal = try CalibrationSet.draw(from: ds, count: min(calibCount, ds.count), seed: seed, spec: spec) { d, n in
            progress.show("preprocess \(d)/\(n)")
        }
        if calibCount > ds.count {
            FileHandle.standardError.write("note: '\(calib)' has only \(ds.count) images; calibrating on all of them\n".data(using: .utf8)!)
        }
        let bt = min(batch, cal.count)
        let (g, folded) = try QuantizationPipeline.prepare(try m.graph.specialized(batch: bt, limits: resources.limits))
        let hash = try sha256Hex(ofFileAt: model)
        let q: QuantizedModel
        if let resume {
            let start = try QuantizedModel.load(from: resume)
            guard start.sourceSHA256 == hash else { throw ValidationError("--resume: '\(resume)' was made from another model file than '\(model)'") }
            guard start.calibrationFiles == cal.files else {
                throw ValidationError("--resume: '\(resume)' was calibrated on other images (check --calib, --calib-count and --seed)")
            }
            guard let r = ReconstructionOptions(opts.settings) else {
                throw ValidationError("--resume needs --block-reconstruction (the search is not rerun)")
            }
            guard start.plan.options == opts.plan else {
                throw ValidationError("--resume: '\(resume)' was searched with other plan options (--bits, --layer-bits, --keep-float, --softmax, --gelu) than given here")
            }
            q = try QuantizationPipeline.reconstructBlocks(start, graph: g, calibration: cal, options: r) { p in
                progress.show("\(p.phase) \(p.done)/\(p.total) \(p.layer)")
            }
        } else {
            q = try QuantizationPipeline.run(graph: g, calibration: cal, options: opts, source: (model, hash),
                                             foldedBatchNorms: folded) { p in
                progress.show("\(p.phase) \(p.done)/\(p.total) \(p.layer)")
            }
        }
        progress.finish()
        if isQModel(output) {
            let outputs = g.outputs.first.map { $0.shape.reduce(1, *) / max(g.batch, 1) } ?? 0
            _ = try writeInt8Model(q, onnx: m, to: output, classNames: exportClassNames(outputs: outputs, calibrationFolder: calib))
        } else {
            try q.write(to: output)
        }
        if verbose {
            for l in q.layers {
                print("  \(padded(l.layer, 45)) \(padded(l.kind, 34)) \(String(format: "%6d candidates %7.2f s", l.evaluations, l.seconds))")
                print("      " + zip(l.phases, l.phaseSeconds).map { String(format: "%@ %.2f", $0.0 as NSString, $0.1) }.joined(separator: ", "))
            }
        }
        let total = Date().timeIntervalSince(start)
        print(String(format: "%@ %@ (%@): %d weights, %d activations quantized; calibration runs %.1f s, search %.1f s, total %.1f s → %@",
                     model as NSString, b.description as NSString, opts.method.rawValue as NSString, q.weights.count,
                     q.activations.count, q.calibrationSeconds, q.searchSeconds, total, output as NSString))
    }
}

/// A one-line progress display on stderr (at most 4 updates a second).
final class ProgressLine: @unchecked Sendable {
    let enabled: Bool
    var last = Date.distantPast
    let start = Date()
    init(enabled: Bool) { self.enabled = enabled }
    func show(_ s: String) {
        guard enabled, Date().timeIntervalSince(last) > 0.25 else { return }
        last = Date()
        let line = "\r" + padded(String("[\(Int(Date().timeIntervalSince(start)))s] \(s)".prefix(90)), 90)
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }
    func finish() { if enabled { FileHandle.standardError.write("\n".data(using: .utf8)!) } }
}

/// SHA-256 of a file, hex (FIPS 180-4).
func sha256Hex(ofFileAt path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return sha256Hex([UInt8](data))
}

func sha256Hex(_ message: [UInt8]) -> String {
    let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]
    var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    var m = message
    let bitLen = UInt64(message.count) * 8
    m.append(0x80)
    while m.count % 64 != 56 { m.append(0) }
    for i in (0..<8).reversed() { m.append(UInt8((bitLen >> (UInt64(i) * 8)) & 0xff)) }
    @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    var w = [UInt32](repeating: 0, count: 64)
    m.withUnsafeBufferPointer { p in
        for chunk in stride(from: 0, to: p.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(p[j]) << 24 | UInt32(p[j + 1]) << 16 | UInt32(p[j + 2]) << 8 | UInt32(p[j + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
            for i in 0..<64 {
                let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
    }
    return h.map { String(format: "%08x", $0) }.joined()
}
