import CImageCodecs
import Foundation
@testable import Imaging

enum Fixtures {
    static let dir: String = Bundle.module.resourcePath! + "/Fixtures"
    static func path(_ name: String) -> String { dir + "/" + name }
    static func bytes(_ name: String) throws -> [UInt8] { try ImageDecoder.readFile(path(name)) }
    static func image(_ name: String, options: DecodeOptions = DecodeOptions()) throws -> RGBImage {
        try ImageDecoder.decode(fileAt: path(name), options: options)
    }
}

struct TestFailure: Error, CustomStringConvertible { let description: String }

/// A fresh temporary folder (removed by the caller with `cleanup`).
func makeTempDir(_ tag: String) throws -> String {
    let p = NSTemporaryDirectory() + "imaging-tests-\(tag)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Comparison statistics of two equal-length uint8 buffers.
struct DiffStats {
    var count = 0, within1 = 0, maxDiff = 0
    var fractionWithin1: Double { count == 0 ? 0 : Double(within1) / Double(count) }
    init(_ a: [UInt8], _ b: [UInt8]) {
        count = min(a.count, b.count)
        for i in 0..<count {
            let d = abs(Int(a[i]) - Int(b[i]))
            if d <= 1 { within1 += 1 }
            maxDiff = max(maxDiff, d)
        }
    }
}

/// CRC-32 (PNG's) for building damaged fixtures with valid checksums.
func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return c ^ 0xFFFF_FFFF
}

/// Offsets of PNG chunks: (type, start of length field, data length).
func pngChunks(_ png: [UInt8]) -> [(String, Int, Int)] {
    var out: [(String, Int, Int)] = []
    var p = 8
    while p + 12 <= png.count {
        let len = Int(png[p]) << 24 | Int(png[p + 1]) << 16 | Int(png[p + 2]) << 8 | Int(png[p + 3])
        let type = String(decoding: png[(p + 4)..<(p + 8)], as: UTF8.self)
        out.append((type, p, len))
        p += 12 + len
    }
    return out
}

/// Recomputes the CRC of the chunk starting at `start`.
func fixCRC(_ png: inout [UInt8], chunkAt start: Int, length: Int) {
    let c = crc32(png[(start + 4)..<(start + 8 + length)])
    let e = start + 8 + length
    png[e] = UInt8(c >> 24); png[e + 1] = UInt8((c >> 16) & 0xFF); png[e + 2] = UInt8((c >> 8) & 0xFF); png[e + 3] = UInt8(c & 0xFF)
}

/// Encodes with the shim's libpng writer (fixtures for every colour type / bit depth).
func encodePNG(samples: [UInt8], width: Int, height: Int, colorType: Int32, bitDepth: Int32,
               palette: [UInt8] = [], trns: [UInt8] = [], interlace: Bool) throws -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var len = 0
    var err = [CChar](repeating: 0, count: 256)
    let rc = samples.withUnsafeBufferPointer { s in
        palette.withUnsafeBufferPointer { p in
            trns.withUnsafeBufferPointer { t in
                cic_png_encode(s.baseAddress, UInt32(width), UInt32(height), colorType, bitDepth,
                               palette.isEmpty ? nil : p.baseAddress, Int32(palette.count / 3),
                               trns.isEmpty ? nil : t.baseAddress, Int32(trns.count), interlace ? 1 : 0, &out, &len,
                               &err, err.count)
            }
        }
    }
    guard rc == 0, let out else { throw TestFailure(description: "png encode failed: \(String(cString: err))") }
    defer { cic_free(out) }
    return Array(UnsafeBufferPointer(start: out, count: len))
}

func encodeJPEG(pixels: [UInt8], width: Int, height: Int, components: Int32, quality: Int32 = 95,
                progressive: Bool = false, ycck: Bool = false, orientation: Int32 = 0) throws -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var len = 0
    var err = [CChar](repeating: 0, count: 256)
    let rc = pixels.withUnsafeBufferPointer { p in
        cic_jpeg_encode(p.baseAddress, UInt32(width), UInt32(height), components, quality, progressive ? 1 : 0,
                        ycck ? 1 : 0, orientation, &out, &len, &err, err.count)
    }
    guard rc == 0, let out else { throw TestFailure(description: "jpeg encode failed: \(String(cString: err))") }
    defer { cic_free(out) }
    return Array(UnsafeBufferPointer(start: out, count: len))
}
