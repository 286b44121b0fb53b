import ArgumentParser
import Foundation
import Imaging

/// `quantize preprocess`: writes the exact model input for one image as a NumPy `.npy` file.
struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Decode an image and write the model-ready NCHW Float32 tensor as a NumPy .npy file.",
        discussion: """
        The tensor is what the quantizer and the evaluator feed to the model: the shorter side is resized to \
        floor(size / crop-pct) with Pillow-exact antialiased bicubic or bilinear resampling, the center size x size \
        is cropped, values are scaled to [0,1] and normalised by mean and std. Compare it with your training \
        pipeline when accuracy is off and you suspect preprocessing:
            python3 -c "import numpy as np; print(np.load('x.npy').shape)"

        Presets: vit (224, bicubic, crop 0.9, mean=std=0.5), imagenet (224, bicubic, crop 0.875, ImageNet \
        mean/std), cifar10 (32, no resize on 32x32 input), efficientnet-lite0 (224, bilinear, crop 0.875, \
        mean 0.498, std 0.502). A spec file is a timm config.json (pretrained_cfg: input_size, crop_pct, \
        interpolation, mean, std) or {"size":224,"crop_pct":0.9,"interpolation":"bicubic","mean":[..],"std":[..]}. \
        Individual options override the preset or spec.

        Examples:
          quantize preprocess photo.jpg --preset vit --out photo.npy
          quantize preprocess photo.jpg --spec config.json \\
              --apply-exif-orientation --out photo.npy
          quantize preprocess cat.png --size 224 --crop-pct 0.875 \\
              --interpolation bilinear --mean 0.485,0.456,0.406 \\
              --std 0.229,0.224,0.225 --out cat.npy
        """
    )

    enum EXIFChoice: String, EnumerableFlag {
        case applyExifOrientation, ignoreExifOrientation
        static func help(for value: EXIFChoice) -> ArgumentHelp? {
            value == .applyExifOrientation
                ? "Rotate/mirror JPEGs by their EXIF orientation tag before resizing."
                : "Use the stored pixel order, as Pillow/timm do (the default)."
        }
    }

    @Argument(help: "The image to preprocess (JPEG or PNG).")
    var image: String

    @Option(help: "Named preset: vit, imagenet, cifar10, efficientnet-lite0.")
    var preset: String?

    @Option(help: "A timm config.json or our own spec JSON.")
    var spec: String?

    @Option(help: "Side of the square model input (e.g. 224).")
    var size: Int?

    @Option(name: .customLong("crop-pct"), help: "Crop fraction; the shorter side is resized to floor(size / crop-pct).")
    var cropPct: Double?

    @Option(help: "bicubic or bilinear (both Pillow-antialiased).")
    var interpolation: String?

    @Option(help: "Per-channel mean as r,g,b (or one value for all).")
    var mean: String?

    @Option(help: "Per-channel std as r,g,b (or one value for all).")
    var std: String?

    @Flag(help: "EXIF orientation handling (default: ignore, as the reference pipelines).")
    var exif: EXIFChoice?

    @Flag(help: "Decode damaged JPEGs (premature end, corrupt data) with grey padding instead of failing.")
    var lenient = false

    @Option(help: "Where to write the [1,3,size,size] Float32 tensor (.npy).")
    var out: String

    func parseList(_ s: String, _ name: String) throws -> [Float] {
        let v = s.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { throw ValidationError("--\(name) expects numbers like 0.5,0.5,0.5, got '\(s)'") }
        let f = v.compactMap { $0 }
        if f.count == 1 { return [f[0], f[0], f[0]] }
        guard f.count == 3 else { throw ValidationError("--\(name) needs 1 or 3 values, got \(f.count)") }
        return f
    }

    func resolvedSpec() throws -> PreprocessSpec {
        if preset != nil && spec != nil { throw ValidationError("give --preset or --spec, not both") }
        var s: PreprocessSpec
        if let preset { s = try PreprocessSpec.preset(named: preset) }
        else if let spec { s = try PreprocessSpec.load(fileAt: spec) }
        else {
            guard size != nil, mean != nil, std != nil else {
                throw ValidationError("give --preset NAME, --spec FILE, or at least --size, --mean and --std")
            }
            s = PreprocessSpec(size: 224, cropPct: 0.875, interpolation: .bicubic, mean: [0, 0, 0], std: [1, 1, 1])
        }
        if let size { s.size = size }
        if let cropPct { s.cropPct = cropPct }
        if let interpolation {
            guard let i = Interpolation(rawValue: interpolation.lowercased()) else {
                throw ValidationError("--interpolation must be bicubic or bilinear, got '\(interpolation)'")
            }
            s.interpolation = i
        }
        if let mean { s.mean = try parseList(mean, "mean") }
        if let std { s.std = try parseList(std, "std") }
        if let exif { s.applyEXIFOrientation = exif == .applyExifOrientation }
        try s.validate()
        return s
    }

    func run() throws {
        let s = try resolvedSpec()
        var options = DecodeOptions()
        options.strict = !lenient
        options.applyEXIFOrientation = s.applyEXIFOrientation
        let (img, info) = try ImageDecoder.decodeWithInfo(fileAt: image, options: options)
        let tensor = try Preprocessor.tensor(for: img, spec: s)
        try NPY.write(tensor, shape: [1, 3, s.size, s.size], to: out)
        let plan = ResizeCropPlan(width: img.width, height: img.height, spec: s)
        let interp = s.interpolation.rawValue
        print("\(image): \(info.format.rawValue) \(img.width)x\(img.height)"
              + (info.exifOrientation != 1 ? ", EXIF orientation \(info.exifOrientation) (\(info.orientationApplied ? "applied" : "ignored"))" : "")
              + (info.warnings > 0 ? ", \(info.warnings) decoder warning(s): \(info.firstWarning ?? "")" : ""))
        print("resize \(interp) to \(plan.resizedWidth)x\(plan.resizedHeight) (shorter side floor(\(s.size)/\(s.cropPct)) = \(s.resizeSize)), "
              + "center crop \(s.size)x\(s.size) at (\(plan.cropX), \(plan.cropY)), mean \(s.mean), std \(s.std)")
        let plane = s.size * s.size
        for c in 0..<3 {
            let ch = tensor[(c * plane)..<((c + 1) * plane)]
            let mn = ch.min() ?? 0, mx = ch.max() ?? 0, avg = ch.reduce(0, +) / Float(plane)
            print(String(format: "channel %d: min %.4f max %.4f mean %.4f", c, mn, mx, avg))
        }
        print("wrote \(out): float32 [1, 3, \(s.size), \(s.size)]")
    }
}
