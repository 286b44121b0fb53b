import ArgumentParser
import Foundation
import Quant
import Reporting
import ReportRunner

/// `quantize demo`: the bundled CIFAR-10 ViT, quantized and reported with nothing to find.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Quantize the bundled CIFAR-10 ViT at W8A8, W6A6 and W4A4 (adalog and uniform-minmax) and write a report.",
        discussion: """
            Run it from the repository root: it reads models/vit_cifar10.onnx, calibrates on 32 images drawn \
            from calib-data/ (CIFAR-10 training images) and evaluates on demo-data/ (500 CIFAR-10 test images). \
            The report (report.md, report.csv, report.json, layers.csv, accuracy_vs_bits.svg) goes to --out, \
            with the W8A8 AdaLog setting as an int8 model (vit_cifar10-w8a8.qmodel, evaluated on the integer runtime). \
            Try it: quantize infer OUT/vit_cifar10-w8a8.qmodel demo-data/cat/<image>.

            Examples:
              swift run -c release quantize demo
              swift run -c release quantize demo --out /tmp/demo --quiet
            """)

    @Option(help: "Output folder.") var out: String = "quantize-out/demo"
    @OptionGroup var output: OutputOptions
    @OptionGroup var resources: ResourceOptions

    static let modelPath = "models/vit_cifar10.onnx"
    static let calibFolder = "calib-data"
    static let dataFolder = "demo-data"

    func validate() throws {
        let fm = FileManager.default
        for p in [Self.modelPath, Self.calibFolder, Self.dataFolder] where !fm.fileExists(atPath: p) {
            throw ValidationError(ReportRunError.bundledFileMissing(path: p).description)
        }
    }

    func run() throws {
        output.bootstrapLogging()
        let bits = try ArgumentValidation.bits("W8A8,W6A6,W4A4")
        var c = ReportConfiguration(modelPath: Self.modelPath, calibrationFolder: Self.calibFolder, dataFolder: Self.dataFolder,
                                    bits: bits, methods: [.adalog, .uniformMinMax], preset: "cifar10")
        c.calibrationCount = 32
        c.limits = resources.limits
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let int8Path = URL(fileURLWithPath: out).appendingPathComponent("vit_cifar10-w8a8.qmodel").path
        c.int8Export = Int8Export(bits: try BitSetting(parsing: "W8A8"), method: .adalog, path: int8Path)
        try runReport(c, out: out, output: output)
        print("int8 model (W8A8 adalog): \(int8Path) — run it with `quantize infer \(int8Path) IMAGE` or `quantize bench \(int8Path)`")
    }
}

/// The short table printed after a report run.
enum ReportSummary {
    static func table(_ r: QuantReport) -> String {
        var t = MarkdownTable(header: ["Bits", "Method", "Top-1 %", "Top-5 %", "Agree %", "Size (bytes)", "Calib s"],
                              rightAligned: [false, false, true, true, true, true, true])
        t.add(["float", "–", f2(r.float.top1), f2(r.float.top5), "100.00", "–", "–"])
        for row in r.results {
            t.add([row.bits.description, row.method, row.top1.map(f2) ?? "–", row.top5.map(f2) ?? "–",
                   row.agreement.map(f2) ?? "–", row.sizeBytes.map(String.init) ?? "–",
                   row.calibrationSeconds.map { String(format: "%.1f", $0) } ?? "–"])
        }
        return "\(r.model) on \(r.metadata.evaluationImages) images (calibrated on \(r.metadata.calibrationImages)):\n" + t.render()
    }
    static func f2(_ d: Double) -> String { String(format: "%.2f", d) }
}
