// imaging-bench: decode + preprocess every image of a folder (or a list of files) on one thread and print images/s.
// Not a test: bench/decode_vs_pillow.py runs this and Pillow on the same files and prints the ratio.
//
//   imaging-bench FOLDER|@LISTFILE [--preset vit] [--repeat 3] [--limit N] [--dump DIR] [--decode-only]
//
// --dump DIR writes, per image k (in input order), 00000k.u8.npy (HWC uint8 after resize+crop) and 00000k.f32.npy (CHW float32 tensor),
// used by tools/check_preprocess_parity.py.
import Foundation
import Imaging

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("imaging-bench: " + message + "\n").utf8))
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
var presetName = "vit"
var repeats = 3
var limit = Int.max
var dumpDir: String? = nil
var exif = false
var decodeOnly = false
var source: String? = nil
var i = 0
while i < args.count {
    let a = args[i]
    func value() -> String { i += 1; guard i < args.count else { fail("\(a) needs a value") }; return args[i] }
    switch a {
    case "--preset": presetName = value()
    case "--repeat": repeats = Int(value()) ?? 3
    case "--limit": limit = Int(value()) ?? Int.max
    case "--dump": dumpDir = value()
    case "--apply-exif-orientation": exif = true
    case "--decode-only": decodeOnly = true
    case "-h", "--help":
        print("usage: imaging-bench FOLDER|@LISTFILE [--preset vit|imagenet|cifar10|efficientnet-lite0] [--repeat N] [--limit N] [--dump DIR] [--apply-exif-orientation] [--decode-only]")
        exit(0)
    default:
        if a.hasPrefix("--") { fail("unknown option \(a)") }
        source = a
    }
    i += 1
}
guard let source else { fail("give a folder of images or @file-with-one-path-per-line") }
var spec: PreprocessSpec
do { spec = try PreprocessSpec.preset(named: presetName) } catch { fail("\(error)") }
spec.applyEXIFOrientation = exif

var files: [String] = []
if source.hasPrefix("@") {
    guard let text = try? String(contentsOfFile: String(source.dropFirst()), encoding: .utf8) else { fail("cannot read \(source)") }
    files = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
} else {
    do { files = try ImageDataset.open(source).items.map(\.path) } catch { fail("\(error)") }
}
files = Array(files.prefix(limit))

// Load the bytes once so the timing measures decode + preprocess, as the Pillow side does with cached files.
var blobs: [[UInt8]] = []
for f in files {
    do { blobs.append(try ImageDecoder.readFile(f)) } catch { fail("\(error)") }
}
let n = spec.size * spec.size * 3
var out = [Float](repeating: 0, count: n)
var options = DecodeOptions()
options.applyEXIFOrientation = spec.applyEXIFOrientation

@MainActor func runOnce(dump: String?) -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    for (k, blob) in blobs.enumerated() {
        do {
            let img = try ImageDecoder.decode(data: blob, name: files[k], options: options)
            if decodeOnly { continue }
            let crop = try Preprocessor.resizeAndCrop(img, spec: spec)
            out.withUnsafeMutableBufferPointer { Preprocessor.normalize(crop, mean: spec.mean, std: spec.std, into: $0.baseAddress!) }
            if let dump {
                let base = dump + "/" + String(format: "%06d", k)
                try NPY.write(crop.bytes, shape: [crop.height, crop.width, 3], to: base + ".u8.npy")
                try NPY.write(out, shape: [3, spec.size, spec.size], to: base + ".f32.npy")
            }
        } catch { fail("\(error)") }
    }
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

if let dumpDir {
    try? FileManager.default.createDirectory(atPath: dumpDir, withIntermediateDirectories: true)
    _ = runOnce(dump: dumpDir)
    print("dumped \(files.count) images to \(dumpDir)")
    exit(0)
}
var best = Double.infinity
for _ in 0..<max(1, repeats) { best = min(best, runOnce(dump: nil)) }
print(String(format: "imaging-bench%@: %d images, preset %@, best of %d: %.3f s, %.1f images/s", decodeOnly ? " (decode only)" : "", files.count, presetName, max(1, repeats), best, Double(files.count) / best))
