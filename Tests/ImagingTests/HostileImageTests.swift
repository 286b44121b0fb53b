// Hostile image files, including the inputs fuzzing found (Fixtures/hostile/, from tools/fuzz.sh png|jpeg|image):
// each gives a typed ImageError (or decodes), never a crash or an allocation the file cannot justify.
import Foundation
import Testing
@testable import Imaging

@Suite("Hostile images")
struct HostileImageTests {
    func decodeError(_ data: [UInt8], strict: Bool = true) -> ImageError? {
        do { _ = try ImageDecoder.decode(data: data, name: "hostile", options: DecodeOptions(strict: strict)); return nil } catch { return error }
    }

    /// Fuzz finding (libFuzzer, PNG target): a 500-byte PNG whose iTXt chunk declares 1.8 GB. libpng only warns about
    /// an oversized ancillary chunk and then allocated its declared length; the shim now refuses it as truncated.
    @Test(arguments: [true, false])
    func ancillaryChunkLongerThanTheFile(strict: Bool) throws {
        let data = try Fixtures.bytes("hostile/png-itxt-claims-1.8gb.png")
        #expect(data.count < 1024)
        guard case let .truncated(_, format, detail)? = decodeError(data, strict: strict) else {
            Issue.record("got \(String(describing: decodeError(data, strict: strict)))"); return
        }
        #expect(format == "PNG" && detail.contains("declares") && detail.contains("remain"))
    }

    @Test func chunkLengthAboveThePNGMaximumIsCorrupt() throws {
        var data = try Fixtures.bytes("palette_trns.png")
        // The first chunk after IHDR (offset 8 + 25): length 0xFFFFFFF0.
        data.replaceSubrange(33..<37, with: [0xFF, 0xFF, 0xFF, 0xF0])
        guard case .corrupt(_, "PNG", let detail)? = decodeError(data) else { Issue.record("got \(String(describing: decodeError(data)))"); return }
        #expect(detail.contains("2^31-1"))
    }

    @Test func textChunksAreSkippedUnparsed() throws {
        // A valid image with a 64 KiB zTXt chunk of garbage "compressed" text still decodes: the chunk is never inflated.
        let good = try Fixtures.bytes("palette_trns.png")
        let payload = [UInt8](Array("Comment".utf8)) + [0, 0] + [UInt8](repeating: 0xAB, count: 65536)
        var chunk = be32(payload.count) + Array("zTXt".utf8) + payload
        chunk += be32(Int(crc32(Array(chunk[4...]))))
        let withText = Array(good[0..<33]) + chunk + Array(good[33...])
        let a = try ImageDecoder.decode(data: good, name: "a"), b = try ImageDecoder.decode(data: withText, name: "b")
        #expect(a == b)
    }

    @Test(arguments: HostileImageTests.fuzzFindings)
    func fuzzFinding(_ name: String) throws {
        let data = try Fixtures.bytes("hostile/" + name)
        for strict in [true, false] {
            do { _ = try ImageDecoder.decode(data: data, name: name, options: DecodeOptions(maxPixels: 1 << 22, strict: strict)) }
            catch { #expect(!error.description.isEmpty) }
        }
    }

    static var fuzzFindings: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: Fixtures.dir + "/hostile")) ?? []).sorted()
    }
}

private func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}
