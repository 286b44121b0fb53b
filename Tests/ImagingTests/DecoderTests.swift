import CImageCodecs
import Foundation
import Testing
@testable import Imaging

@Suite("Decoding JPEG and PNG")
struct DecoderTests {
    @Test("JPEG baseline, progressive, gray and CMYK decode exactly as Pillow", arguments: [
        ("photo.jpg", "ref_decode_photo.png"), ("photo_progressive.jpg", "ref_decode_photo.png"),
        ("gray.jpg", "ref_decode_gray.png"), ("cmyk.jpg", "ref_decode_cmyk.png"),
    ])
    func jpegMatchesPillow(file: String, reference: String) throws {
        let img = try Fixtures.image(file)
        let ref = try Fixtures.image(reference)
        #expect(img.width == ref.width && img.height == ref.height)
        let d = DiffStats(img.bytes, ref.bytes)
        #expect(d.maxDiff == 0, "\(file): max diff \(d.maxDiff) against Pillow")
    }

    @Test("CMYK and YCCK JPEGs written by libjpeg decode to Pillow's CMYK->RGB within JPEG loss")
    func cmykAndYcck() throws {
        let w = 24, h = 16
        var cmyk = [UInt8](repeating: 0, count: w * h * 4)
        for y in 0..<h { for x in 0..<w {
            let i = (y * w + x) * 4
            cmyk[i] = UInt8(x * 10); cmyk[i + 1] = UInt8(y * 15); cmyk[i + 2] = 60; cmyk[i + 3] = UInt8((x + y) * 4)
        } }
        var expected = [UInt8](repeating: 0, count: w * h * 3)
        for p in 0..<(w * h) {
            let nk = 255 - Int(cmyk[4 * p + 3])
            for c in 0..<3 {
                let tmp = Int(cmyk[4 * p + c]) * nk + 128
                expected[3 * p + c] = UInt8(nk - (((tmp >> 8) + tmp) >> 8))
            }
        }
        for ycck in [false, true] {
            let data = try encodeJPEG(pixels: cmyk, width: w, height: h, components: 4, quality: 100, ycck: ycck)
            let img = try ImageDecoder.decode(data: data, name: ycck ? "ycck" : "cmyk")
            let d = DiffStats(img.bytes, expected)
            #expect(d.maxDiff <= 8, "ycck=\(ycck): max diff \(d.maxDiff)")
            #expect(d.fractionWithin1 > 0.6, "ycck=\(ycck): only \(d.fractionWithin1) within 1")
        }
    }

    @Test("EXIF orientation 1...8 is read, ignored by default and applied like ImageOps.exif_transpose", arguments: 1...8)
    func exifOrientation(orientation: Int) throws {
        let name = "exif\(orientation).jpg"
        let (stored, info) = try ImageDecoder.decodeWithInfo(fileAt: Fixtures.path(name))
        #expect(info.exifOrientation == orientation)
        #expect(info.orientationApplied == false)
        #expect(stored.width == 24 && stored.height == 16)
        var opt = DecodeOptions()
        opt.applyEXIFOrientation = true
        let upright = try Fixtures.image(name, options: opt)
        let ref = try Fixtures.image("ref_exif\(orientation).png")
        #expect(upright.width == ref.width && upright.height == ref.height)
        #expect(upright.bytes == ref.bytes)
    }

    @Test("EXIF orientation written by the shim's encoder round-trips")
    func exifFromEncoder() throws {
        let px = [UInt8](repeating: 100, count: 8 * 4 * 3)
        let data = try encodeJPEG(pixels: px, width: 8, height: 4, components: 3, orientation: 6)
        var opt = DecodeOptions()
        opt.applyEXIFOrientation = true
        let (img, info) = try ImageDecoder.decodeWithInfo(data: data, name: "e6", options: opt)
        #expect(info.exifOrientation == 6)
        #expect(img.width == 4 && img.height == 8)
    }

    @Test("Pillow-written palette PNG with tRNS decodes like convert('RGB') (alpha dropped)")
    func paletteTRNS() throws {
        let img = try Fixtures.image("palette_trns.png")
        let ref = try Fixtures.image("ref_decode_palette_trns.png")
        #expect(img.bytes == ref.bytes)
    }

    struct PNGCase: CustomStringConvertible, Sendable {
        var colorType: Int32, bitDepth: Int32, interlace: Bool, trns: Bool
        var description: String { "ct\(colorType) bd\(bitDepth)\(interlace ? " adam7" : "")\(trns ? " tRNS" : "")" }
    }

    static let pngCases: [PNGCase] = {
        var c: [PNGCase] = []
        for il in [false, true] {
            for bd: Int32 in [1, 2, 4, 8, 16] { c.append(PNGCase(colorType: 0, bitDepth: bd, interlace: il, trns: false)) }
            c.append(PNGCase(colorType: 0, bitDepth: 8, interlace: il, trns: true))
            for bd: Int32 in [8, 16] {
                c.append(PNGCase(colorType: 2, bitDepth: bd, interlace: il, trns: false))
                c.append(PNGCase(colorType: 4, bitDepth: bd, interlace: il, trns: false))
                c.append(PNGCase(colorType: 6, bitDepth: bd, interlace: il, trns: false))
            }
            c.append(PNGCase(colorType: 2, bitDepth: 8, interlace: il, trns: true))
            for bd: Int32 in [1, 2, 4, 8] {
                c.append(PNGCase(colorType: 3, bitDepth: bd, interlace: il, trns: false))
                c.append(PNGCase(colorType: 3, bitDepth: bd, interlace: il, trns: true))
            }
        }
        return c
    }()

    @Test("PNG of every colour type and bit depth, with and without Adam7 and tRNS", arguments: pngCases)
    func pngMatrix(_ c: PNGCase) throws {
        let w = 37, h = 23  // odd sizes exercise partial Adam7 blocks and bit packing
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(c.colorType)]!
        let maxv = (1 << Int(c.bitDepth)) - 1
        let paletteSize = min(256, maxv + 1)
        var palette: [UInt8] = []
        for i in 0..<paletteSize { palette += [UInt8((i * 37) & 255), UInt8((i * 91) & 255), UInt8(255 - (i * 13) & 255)] }
        var samples: [UInt8] = []
        var expected: [UInt8] = []
        for y in 0..<h {
            for x in 0..<w {
                var vals: [Int] = []
                for ch in 0..<channels { vals.append((x * 7 + y * 13 + ch * 29) * (maxv / 60 + 1) % (maxv + 1)) }
                if c.colorType == 3 { vals = [(x + y * 3) % paletteSize] }
                for v in vals {
                    if c.bitDepth == 16 { samples += [UInt8(v >> 8), UInt8(v & 255)] } else { samples.append(UInt8(v)) }
                }
                func to8(_ v: Int) -> UInt8 {
                    c.bitDepth == 16 ? UInt8((Double(v) * 255 / 65535).rounded()) : UInt8(v * 255 / maxv)
                }
                switch c.colorType {
                case 0, 4: let g = to8(vals[0]); expected += [g, g, g]
                case 3: let i = vals[0]; expected += [palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]]
                default: expected += [to8(vals[0]), to8(vals[1]), to8(vals[2])]
                }
            }
        }
        var trns: [UInt8] = []
        if c.trns {
            switch c.colorType {
            case 3: trns = (0..<min(paletteSize, 5)).map { UInt8($0 * 50) }
            case 0: trns = [0, UInt8(samples[0])]
            default: trns = [0, samples[0], 0, samples[1], 0, samples[2]]
            }
        }
        let png = try encodePNG(samples: samples, width: w, height: h, colorType: c.colorType, bitDepth: c.bitDepth,
                                palette: c.colorType == 3 ? palette : [], trns: trns, interlace: c.interlace)
        let img = try ImageDecoder.decode(data: png, name: c.description)
        #expect(img.width == w && img.height == h)
        let d = DiffStats(img.bytes, expected)
        // 16-bit is scaled with png_set_scale_16 (rounding), which may differ from round(v*255/65535) by 1.
        #expect(d.maxDiff <= (c.bitDepth == 16 ? 1 : 0), "\(c): max diff \(d.maxDiff)")
    }

    @Test("Non-strict mode decodes a truncated JPEG and reports the warning")
    func lenientTruncated() throws {
        let data = try Fixtures.bytes("photo.jpg")
        var opt = DecodeOptions()
        opt.strict = false
        let (img, info) = try ImageDecoder.decodeWithInfo(data: Array(data.prefix(data.count * 2 / 3)), name: "t.jpg", options: opt)
        #expect(img.width == 300 && img.height == 260)
        #expect(info.warnings >= 1)
        #expect(info.firstWarning?.contains("Premature end") == true)
    }
}
