// swift-tools-version: 6.1
//
// Rooms (data flows one way, top to bottom):
//   Imaging        decode PNG/JPEG, preprocess like timm/Pillow, datasets
//   ONNXGraph      read ONNX (generated OnnxProto) into the suite's own graph; shape folding; patterns
//   FloatEngine    run a graph in float (C microkernels in CFloatKernels)
//   Calibration    run the float model over images, collect what the searches need
//   Quant          quantizers (uniform, log2, AdaLog), FPCS, plans, fake-quant simulation
//   Int8Kernels    integer GEMM/conv/attention (ISA inner loops in CInt8Kernels, runtime dispatch)
//   Reporting      accuracy-vs-bits reports (Markdown, CSV, JSON, SVG), progress bars, argument checks
//   quantize       the command-line tool
//
// No unsafe build flags: ISA-specific code uses per-function target attributes and runtime dispatch.
import PackageDescription

let package = Package(
    name: "AdaQuant",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "quantize", targets: ["quantize"]),
        .executable(name: "kernel-bench", targets: ["kernel-bench"]),
        .executable(name: "float-bench", targets: ["float-bench"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "ONNXGraph", targets: ["ONNXGraph"]),
        .library(name: "FloatEngine", targets: ["FloatEngine"]),
        .library(name: "Calibration", targets: ["Calibration"]),
        .library(name: "Quant", targets: ["Quant"]),
        .library(name: "Int8Kernels", targets: ["Int8Kernels"]),
        .library(name: "Reporting", targets: ["Reporting"]),
        .library(name: "QModel", targets: ["QModel"]),
        .library(name: "Int8Runtime", targets: ["Int8Runtime"]),
        .library(name: "QModelExport", targets: ["QModelExport"]),
        .executable(name: "qmodel-run", targets: ["qmodel-run"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.30.0"),
    ],
    targets: [
        // MARK: Imaging
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CLibJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .target(name: "CImageCodecs", dependencies: ["CLibPNG", "CLibJPEG"]),
        // Atomic file writes (temp file + fsync + rename), shared by every room that writes outputs.
        .target(name: "FileOutput"),
        .target(name: "Imaging", dependencies: ["CImageCodecs", "FileOutput"], resources: [.copy("Resources/imagenet-synsets.txt")]),

        // MARK: Model graph and float execution
        .target(name: "OnnxProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "ONNXGraph", dependencies: ["OnnxProto"]),
        .target(name: "CFloatKernels"),
        .target(name: "FloatEngine", dependencies: ["ONNXGraph", "CFloatKernels"]),

        // MARK: Calibration and quantization
        .target(name: "Calibration", dependencies: ["Imaging", "ONNXGraph", "FloatEngine"]),
        .target(name: "CQuantKernels"),
        .target(name: "Quant", dependencies: ["Calibration", "ONNXGraph", "FloatEngine", "CQuantKernels", "FileOutput"]),

        // MARK: Integer kernels
        .target(name: "CInt8Kernels"),
        .target(name: "Int8Kernels", dependencies: ["CInt8Kernels"]),

        // MARK: Model file and integer runtime (no protobuf, no argument parser, no image codecs)
        .target(name: "QModel", dependencies: ["FileOutput"]),
        .target(name: "Int8Runtime", dependencies: ["Int8Kernels", "QModel", "CFloatKernels"]),
        .executableTarget(name: "qmodel-run", dependencies: ["Int8Runtime"]),
        // The converter from the pipeline's QuantizedModel (+ the source graph) to a QModel; kept out of
        // Int8Runtime so the runtime stays free of protobuf, the argument parser and image codecs.
        .target(name: "QModelExport", dependencies: ["Quant", "ONNXGraph", "QModel", "Imaging"]),
        .executableTarget(name: "runtime-bench", dependencies: ["Int8Runtime"], path: "bench/runtime-bench"),

        // MARK: Reports and terminal output (Foundation only)
        .target(name: "Reporting", dependencies: ["Quant", "FileOutput"]),
        // `quantize report` / `quantize demo` as a library (testable; the commands stay thin).
        .target(name: "ReportRunner", dependencies: ["Reporting", "Quant", "Calibration", "Imaging", "ONNXGraph", "FloatEngine", "QModelExport", "Int8Runtime", "Int8Kernels"]),

        // MARK: Executables
        .executableTarget(
            name: "quantize",
            dependencies: [
                "Imaging", "ONNXGraph", "FloatEngine", "Calibration", "Quant", "Int8Kernels", "Reporting", "ReportRunner",
                "QModelExport", "Int8Runtime", "FileOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "kernel-bench", dependencies: ["Int8Kernels"]),
        .executableTarget(name: "imaging-bench", dependencies: ["Imaging"]),
        .executableTarget(name: "quant-bench", dependencies: ["Quant", "FloatEngine"], path: "bench/quant-bench"),
        .executableTarget(name: "float-bench", dependencies: ["FloatEngine", "CFloatKernels"]),

        // MARK: Tests (Swift Testing), one suite target per room
        // Test support: counts the heap allocations of one thread (glibc; the runtime's no-allocation checks).
        .target(name: "CAllocCounter", path: "Tests/Support/CAllocCounter"),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "CImageCodecs"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ONNXGraphTests", dependencies: ["ONNXGraph", "FloatEngine", "OnnxProto"], resources: [.copy("Fixtures")]),
        .testTarget(name: "QuantTests", dependencies: ["Quant", "CQuantKernels", "Calibration", "ONNXGraph", "FloatEngine", "Imaging"], resources: [.copy("Fixtures")]),
        .testTarget(name: "Int8KernelsTests", dependencies: ["Int8Kernels", "CInt8Kernels"]),
        .testTarget(name: "ReportRunnerTests", dependencies: ["ReportRunner", "Reporting", "Quant", "ONNXGraph", "OnnxProto", "CImageCodecs"]),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "Quant", "FileOutput"]),
        .testTarget(name: "Int8RuntimeTests", dependencies: ["Int8Runtime", "QModel", "Int8Kernels", "CAllocCounter"]),
        .testTarget(name: "QModelExportTests", dependencies: ["QModelExport", "Int8Runtime", "Quant", "Calibration", "ONNXGraph", "FloatEngine", "Imaging", "ReportRunner"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "FloatKernelsTests", dependencies: ["FloatEngine", "CFloatKernels"]),
    ]
)
