// swift-tools-version: 6.1
//
// libFuzzer harnesses for AdaQuant's readers. A separate package so the main package stays free of sanitizer and
// fuzzer flags: build and run with `tools/fuzz.sh TARGET SECONDS` (it passes `--sanitize fuzzer --sanitize address`
// and `-parse-as-library`; libFuzzer supplies `main`). The PNG/JPEG C shim is fuzzed by clang-built harnesses in
// `c/` (ASan + UBSan), see tools/fuzz.sh.
import Foundation
import PackageDescription

// A path dependency's identity is its folder name (the clone's name), so look it up rather than hard-coding it.
let mainPackage = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let mainIdentity = mainPackage.lastPathComponent

let package = Package(
    name: "AdaQuantFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        // ONNX bytes → ModelProto → Graph → static graph for batch 1 and 2 → pattern recognition.
        .executableTarget(name: "fuzz-onnx", dependencies: [.product(name: "ONNXGraph", package: mainIdentity)]),
        // .qmodel bytes → decode + validate → (when small) an Int8Runtime session run on zeros.
        .executableTarget(name: "fuzz-qmodel", dependencies: [.product(name: "Int8Runtime", package: mainIdentity)]),
        // The Swift decoder entry point (sniffing, options, error mapping) over PNG and JPEG.
        .executableTarget(name: "fuzz-image", dependencies: [.product(name: "Imaging", package: mainIdentity)]),
    ]
)
