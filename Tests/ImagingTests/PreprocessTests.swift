import CImageCodecs
import Foundation
import Testing
@testable import Imaging

@Suite("Preprocessing parity with Pillow/timm")
struct PreprocessTests {
    static let specs: [String: PreprocessSpec] = [
        "vit": .vit,
        "effnet": .efficientnetLite0,
        "s64bicubic": PreprocessSpec(size: 64, cropPct: 0.875, interpolation: .bicubic, mean: PreprocessSpec.imagenetMean, std: PreprocessSpec.imagenetStd),
        "s64bilinear": PreprocessSpec(size: 64, cropPct: 0.875, interpolation: .bilinear, mean: PreprocessSpec.imagenetMean, std: PreprocessSpec.imagenetStd),
        "cifar10": .cifar10,
    ]

    @Test("resize+crop and the float tensor match Pillow+timm (bar: >= 99.9% within 1 level, max 3)", arguments: [
        ("photo.jpg", "vit"), ("photo.jpg", "effnet"), ("photo.jpg", "s64bicubic"), ("portrait.png", "s64bicubic"),
        ("portrait.png", "s64bilinear"), ("tiny32.jpg", "cifar10"), ("gray.jpg", "s64bicubic"),
    ])
    func parity(file: String, specName: String) throws {
        let spec = try #require(Self.specs[specName])
        let stem = String(file.split(separator: ".")[0])
        let img = try Fixtures.image(file)
        let crop = try Preprocessor.resizeAndCrop(img, spec: spec)
        let ref = try Fixtures.image("ref_\(stem)_\(specName).png")
        #expect(crop.width == ref.width && crop.height == ref.height)
        let d = DiffStats(crop.bytes, ref.bytes)
        #expect(d.fractionWithin1 >= 0.999, "\(file) \(specName): \(d.fractionWithin1) within 1 level")
        #expect(d.maxDiff <= 3, "\(file) \(specName): max diff \(d.maxDiff)")
        if file.hasSuffix(".png") {  // decoder-independent input: the resample itself must be bit-exact
            #expect(d.maxDiff == 0, "\(file) \(specName): expected bit-exact, max diff \(d.maxDiff)")
        }

        // float tensor: compare the committed 3x16x16 top-left patch of timm's tensor
        let tensor = try Preprocessor.tensor(for: img, spec: spec)
        let (patch, shape) = try NPY.read(Float.self, from: Fixtures.path("patch_\(stem)_\(specName).npy"))
        #expect(shape == [3, 16, 16])
        var within1 = 0, maxLevels: Float = 0
        let s = spec.size
        for c in 0..<3 { for y in 0..<16 { for x in 0..<16 {
            let ours = tensor[c * s * s + y * s + x], theirs = patch[c * 256 + y * 16 + x]
            let levels = abs(ours - theirs) * 255 * spec.std[c]
            if levels <= 1.001 { within1 += 1 }
            maxLevels = max(maxLevels, levels)
        } } }
        #expect(Double(within1) / 768 >= 0.999 && maxLevels <= 3, "\(file) \(specName): float max \(maxLevels) levels")
        if file.hasSuffix(".png") {
            #expect(maxLevels < 1e-3, "\(file) \(specName): float tensor differs by \(maxLevels) levels")
        }
    }

    @Test("a 32x32 image with the cifar10 preset is used as is (no resize)")
    func cifarIdentity() throws {
        let img = try Fixtures.image("tiny32.jpg")
        let crop = try Preprocessor.resizeAndCrop(img, spec: .cifar10)
        #expect(crop == img)
        let t = try Preprocessor.tensor(for: img, spec: .cifar10)
        let v = (Float(img.bytes[0]) / 255 - 0.4914) / 0.2470
        #expect(t[0] == v)
        #expect(t.count == 3 * 32 * 32)
    }

    @Test("resize and crop geometry follows torchvision (floor of the long side, round-half-even crop offset)")
    func geometry() {
        let p = ResizeCropPlan(width: 500, height: 375, spec: .vit)  // 248 short side
        #expect(p.resizedHeight == 248 && p.resizedWidth == 330)    // int(248*500/375) = 330
        #expect(p.cropX == 53 && p.cropY == 12)
        let q = ResizeCropPlan(width: 320, height: 685, spec: .vit)
        #expect(q.resizedWidth == 248 && q.resizedHeight == 530)
        #expect(q.cropY == 153)                                     // round(306/2) = 153
        let r = ResizeCropPlan(width: 249, height: 1000, spec: PreprocessSpec(size: 224, cropPct: 1, interpolation: .bilinear, mean: [0, 0, 0], std: [1, 1, 1]))
        #expect(r.resizedHeight == 899)                             // int(224*1000/249) = 899
        #expect(r.cropY == 338)                                     // round(337.5) = 338 (half to even)
        let u = ResizeCropPlan(width: 224, height: 451, spec: PreprocessSpec(size: 224, cropPct: 1, interpolation: .bilinear, mean: [0, 0, 0], std: [1, 1, 1]))
        #expect(u.cropY == 114)                                     // round(113.5) = 114
        let v = ResizeCropPlan(width: 224, height: 449, spec: PreprocessSpec(size: 224, cropPct: 1, interpolation: .bilinear, mean: [0, 0, 0], std: [1, 1, 1]))
        #expect(v.cropY == 112)                                     // round(112.5) = 112
        #expect(PreprocessSpec.vit.resizeSize == 248 && PreprocessSpec.imagenet.resizeSize == 256)
    }

    @Test("Pillow 13's pass order: vertical first only when the height shrinks much more than the width")
    func passOrder() throws {
        // 320x685 -> 248x530 (a real ImageNet case) runs vertical first in Pillow 13; the two orders differ here
        var bytes = [UInt8](repeating: 0, count: 40 * 90 * 3)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: (i &* 2654435761) >> 13) }
        let img = try #require(RGBImage(width: 40, height: 90, bytes: bytes))
        let a = try Preprocessor.resample(img, to: 31, 60, crop: (0, 0, 31, 60), filter: .bicubic, passOrder: .pillow13)
        let b = try Preprocessor.resample(img, to: 31, 60, crop: (0, 0, 31, 60), filter: .bicubic, passOrder: .horizontalFirst)
        #expect(a.bytes != b.bytes)
        // a crop window computes the same pixels as the full resize
        let part = try Preprocessor.resample(img, to: 31, 60, crop: (5, 7, 20, 30), filter: .bicubic)
        var expected: [UInt8] = []
        for y in 7..<37 { expected += a.bytes[((y * 31 + 5) * 3)..<((y * 31 + 25) * 3)] }
        #expect(part.bytes == expected)
    }

    @Test("a crop larger than the resized image is zero-padded like torchvision")
    func padding() throws {
        let img = try #require(RGBImage(width: 4, height: 2, bytes: [UInt8](repeating: 200, count: 24)))
        let spec = PreprocessSpec(size: 6, cropPct: 3, interpolation: .bilinear, mean: [0, 0, 0], std: [1, 1, 1])
        // resize shorter side to floor(6/3) = 2 (no change), pad to 6x6: left 1, top 2
        let out = try Preprocessor.resizeAndCrop(img, spec: spec)
        #expect(out.width == 6 && out.height == 6)
        #expect(out[0, 0] == (0, 0, 0))
        #expect(out[1, 2] == (200, 200, 200))
        #expect(out[4, 3] == (200, 200, 200))
        #expect(out[5, 3] == (0, 0, 0))
        #expect(out[1, 4] == (0, 0, 0))
    }
}

@Suite("PreprocessSpec")
struct SpecTests {
    @Test("presets by name")
    func presets() throws {
        #expect(try PreprocessSpec.preset(named: "vit") == .vit)
        #expect(try PreprocessSpec.preset(named: "EfficientNet_Lite0").interpolation == .bilinear)
        #expect(try PreprocessSpec.preset(named: "cifar10").size == 32)
        #expect(throws: ImageError.self) { try PreprocessSpec.preset(named: "resnet9000") }
    }

    @Test("timm config.json with pretrained_cfg")
    func timmConfig() throws {
        let json = #"{"architecture": "vit_tiny_patch16_224", "num_classes": 1000, "pretrained_cfg": {"tag": "augreg_in21k_ft_in1k", "input_size": [3, 224, 224], "fixed_input_size": true, "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 1000}}"#
        let spec = try PreprocessSpec.parse(json: Array(json.utf8))
        #expect(spec == .vit)
    }

    @Test("top-level timm fields and our own JSON round-trip")
    func ownJSON() throws {
        let top = #"{"input_size": [3, 256, 256], "crop_pct": 0.95, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}"#
        let s = try PreprocessSpec.parse(json: Array(top.utf8))
        #expect(s.size == 256 && s.cropPct == 0.95 && s.interpolation == .bilinear && s.resizeSize == 269)
        var e = PreprocessSpec.efficientnetLite0
        e.applyEXIFOrientation = true
        let back = try PreprocessSpec.parse(json: Array(e.jsonData()))
        #expect(back == e)
        let decoded = try JSONDecoder().decode(PreprocessSpec.self, from: e.jsonData())
        #expect(decoded == e)
    }

    @Test("invalid specs are reported with the reason", arguments: [
        #"{"input_size": [3, 224, 192], "mean": [0.5], "std": [0.5]}"#,
        #"{"size": 224, "interpolation": "lanczos", "mean": [0.5], "std": [0.5]}"#,
        #"{"size": 224, "mean": [0.5, 0.5], "std": [0.5]}"#,
        #"{"size": 224, "mean": [0.5], "std": [0]}"#,
        #"{"size": 224}"#,
        #"not json"#,
    ])
    func invalid(json: String) {
        do { _ = try PreprocessSpec.parse(json: Array(json.utf8), name: "cfg.json"); Issue.record("accepted \(json)") } catch {
            guard case let .invalidSpec(msg) = error else { Issue.record("wrong error \(error)"); return }
            #expect(!msg.isEmpty)
        }
    }
}

@Suite("Resample ISA paths")
struct ISATests {
    @Test("the portable and the AVX2 loops give identical bytes")
    func portableEqualsDispatched() throws {
        var bytes = [UInt8](repeating: 0, count: 97 * 61 * 3)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: (i &* 2654435761) >> 11) }
        let img = try #require(RGBImage(width: 97, height: 61, bytes: bytes))
        for (ow, oh) in [(40, 30), (130, 20), (50, 90), (97, 20)] {
            for f in Interpolation.allCases {
                let auto = try Preprocessor.resample(img, to: ow, oh, crop: (0, 0, ow, oh), filter: f)
                cic_resample_set_portable(1)
                let portable = try Preprocessor.resample(img, to: ow, oh, crop: (0, 0, ow, oh), filter: f)
                cic_resample_set_portable(0)
                #expect(auto.bytes == portable.bytes, "\(ow)x\(oh) \(f)")
            }
        }
    }
}
