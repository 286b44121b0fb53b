import ArgumentParser
import Foundation
import Quant
import Reporting
import ReportRunner

/// Progress through the `--quiet`/`--verbose` flags: bars on stderr, notes as log lines.
final class CLIProgress: ReportProgressSink {
    let output: OutputOptions
    init(_ output: OutputOptions) { self.output = output }
    func bar(_ label: String, total: Int, unit: String) -> ProgressBar { output.progress(label, total: total, unit: unit) }
    func note(_ text: String) { if !output.quiet { Terminal.standardError.printLine(text) } }
}

/// `quantize report MODEL.onnx --calib DIR --data DIR`: accuracy versus bits for several methods, written as
/// report.md/csv/json, layers.csv and accuracy_vs_bits.svg.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Quantize a model at several bit widths and methods, evaluate each, and write an accuracy-versus-bits report.",
        discussion: """
            For every method × bit setting: calibrate on --calib-count images drawn from --calib, search the \
            quantization parameters, simulate the quantized model (fake-quant on the float engine) and evaluate it \
            on --data next to the float model. Writes into --out: report.md, report.csv, report.json, layers.csv \
            (per-layer output SQNR in dB, worst first) and accuracy_vs_bits.svg.

            When --calib and --data are the same folder, the calibration images are left out of the evaluation. \
            Model size counts quantized weights at their bit width plus their scales and zero points, and all \
            other constants as float32.

            Examples:
              quantize report models/vit_cifar10.onnx \\
                --calib calib-data --data demo-data --bits W8A8,W4A4
              quantize report vit_tiny_patch16_224.onnx \\
                --calib imagenet-sample --data imagenet-sample \\
                --labels imagenet-synsets.txt --preset vit \\
                --methods adalog --bits W6A6,W4A4 --out vit-report

            Exit codes: 0 success, 64 bad command line, 1 the work failed.
            """)

    @Argument(help: "ONNX model file.") var model: String
    @Option(help: "Calibration image folder.") var calib: String
    @Option(help: "Evaluation image folder (ImageFolder layout, or flat ImageNet-named files with --labels).") var data: String
    @Option(help: "Labels file (synset list or class names), as the dataset reader accepts.") var labels: String?
    @Option(help: "Comma-separated bit settings.") var bits: String = "W8A8,W6A6,W4A4,W3A3"
    @Option(help: "Comma-separated methods: \(ArgumentValidation.knownMethods.joined(separator: ", ")).")
    var methods: String = "adalog,uniform-minmax"
    @Option(help: "Preprocessing preset (vit, imagenet, cifar10, efficientnet-lite0). Default: by input size.") var preset: String?
    @Option(help: "Calibration images drawn from --calib.") var calibCount: Int = 32
    @Option(help: "Seed of the calibration draw.") var seed: UInt64 = 5
    @Option(help: "Evaluate only the first N images.") var limit: Int?
    @Option(help: "Images per model run.") var batch: Int = 8
    @Option(help: "Per-layer SQNR on the first N evaluation images.") var sqnrImages: Int = 16
    @Option(help: "Score activation candidates of linear layers on this many sampled token rows (default: all rows, exact).")
    var searchTokens: Int?
    @Option(help: "Score the attention searches (Q, K, V, softmax) on only this many calibration images (default: all, exact).")
    var searchImages: Int?
    @Option(help: "Zero-point candidates of the uniform searches: data-centred or mid-range (the AdaLog reference).")
    var zeroPoints: String = "data-centred"
    @Option(help: "Output folder.") var out: String = "quantize-out/report"
    @OptionGroup var output: OutputOptions
    @OptionGroup var resources: ResourceOptions

    func validate() throws {
        try checkReportConfiguration(try configuration())
    }

    func configuration() throws -> ReportConfiguration {
        let b = try ArgumentValidation.bits(bits)
        let ms = try ArgumentValidation.methods(methods).map { try QuantMethod.parse($0) }
        var c = ReportConfiguration(modelPath: model, calibrationFolder: calib, dataFolder: data, labels: labels,
                                    bits: b, methods: ms, preset: preset)
        c.calibrationCount = calibCount
        c.seed = seed
        c.limit = limit
        c.batch = batch
        c.sqnrImages = sqnrImages
        if let t = searchTokens, t < 1 { throw ValidationError("--search-tokens must be at least 1") }
        if let i = searchImages, i < 1 { throw ValidationError("--search-images must be at least 1") }
        c.searchTokens = searchTokens
        c.searchImages = searchImages
        c.zeroPoints = try ZeroPointPlacement.parse(zeroPoints)
        c.limits = resources.limits
        return c
    }

    func run() throws {
        output.bootstrapLogging()
        let c = try configuration()
        try runReport(c, out: out, output: output)
    }
}

/// Folder, model and value checks before any work, as ArgumentParser validation errors (exit code 64, with usage).
func checkReportConfiguration(_ c: ReportConfiguration) throws {
    do { try ReportRunner.validate(c) } catch { throw ValidationError(error.description) }
}

/// Validates, runs and writes a report; prints the written paths and a short table. Shared by `report` and `demo`.
@discardableResult
func runReport(_ c: ReportConfiguration, out: String, output: OutputOptions) throws -> QuantReport {
    let dir = try ArgumentValidation.outputDirectory(out)
    let start = Date()
    let report = try ReportRunner.run(c, progress: CLIProgress(output))
    let urls = try ReportWriter().write(report, to: dir)
    let secs = Date().timeIntervalSince(start)
    print(ReportSummary.table(report))
    print(String(format: "Wrote (%.1f s):", secs))
    for u in urls { print("  \(u.path)") }
    return report
}
