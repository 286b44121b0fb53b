import Foundation
import Testing
@testable import Imaging

/// Every kind of bad input is a thrown ImageError naming the file; nothing crashes.
@Suite("Bad input")
struct BadInputTests {
    func decodeError(_ data: [UInt8], name: String, options: DecodeOptions = DecodeOptions()) -> ImageError? {
        do { _ = try ImageDecoder.decode(data: data, name: name, options: options); return nil } catch { return error }
    }

    @Test("empty file")
    func empty() throws {
        let dir = try makeTempDir("empty")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = dir + "/empty.jpg"
        try writeFile(p, [])
        #expect(throws: ImageError.empty(path: p)) { try ImageDecoder.decode(fileAt: p) }
        #expect(ImageError.empty(path: p).description.contains("empty.jpg"))
    }

    @Test("wrong magic bytes")
    func wrongMagic() {
        let err = decodeError(Array("hello, not an image".utf8), name: "notes.jpg")
        guard case let .unknownFormat(path, first)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(path == "notes.jpg")
        #expect(first == Array("hello, n".utf8))
        #expect(err!.description.contains("68 65 6C"))
    }

    @Test("truncated JPEG", arguments: [0.2, 0.5, 0.9])
    func truncatedJPEG(fraction: Double) throws {
        let data = try Fixtures.bytes("photo.jpg")
        let cut = Array(data.prefix(Int(Double(data.count) * fraction)))
        let err = decodeError(cut, name: "cut.jpg")
        guard case let .truncated(path, format, detail)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(path == "cut.jpg" && format == "JPEG")
        #expect(detail.contains("Premature end"))
    }

    @Test("truncated progressive JPEG")
    func truncatedProgressive() throws {
        let data = try Fixtures.bytes("photo_progressive.jpg")
        let err = decodeError(Array(data.prefix(data.count / 2)), name: "cut.jpg")
        guard case .truncated? = err else { Issue.record("got \(String(describing: err))"); return }
    }

    @Test("truncated PNG", arguments: [20, 40, 200, 1000])
    func truncatedPNG(length: Int) throws {
        let data = try Fixtures.bytes("portrait.png")
        let err = decodeError(Array(data.prefix(length)), name: "cut.png")
        guard case let .truncated(path, format, _)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(path == "cut.png" && format == "PNG")
    }

    @Test("PNG with a bad CRC (header and image data)")
    func badCRC() throws {
        let good = try Fixtures.bytes("portrait.png")
        let chunks = pngChunks(good)
        for type in ["IHDR", "IDAT"] {
            var bad = good
            guard let (_, start, len) = chunks.first(where: { $0.0 == type }) else { Issue.record("no \(type)"); continue }
            if type == "IHDR" { bad[start + 8 + 2] ^= 0x01 }  // flip a data bit, keep the stored CRC
            else { bad[start + 8 + len + 3] ^= 0x01 }  // keep the data (zlib would notice), damage the stored CRC
            let err = decodeError(bad, name: "crc.png")
            guard case let .badCRC(path, detail)? = err else { Issue.record("\(type): got \(String(describing: err))"); continue }
            #expect(path == "crc.png")
            #expect(detail.contains("CRC"))
        }
    }

    @Test("corrupt PNG image data with a valid CRC")
    func corruptPNG() throws {
        var png = try Fixtures.bytes("portrait.png")
        guard let (_, start, len) = pngChunks(png).first(where: { $0.0 == "IDAT" }) else { Issue.record("no IDAT"); return }
        for i in 0..<min(len, 64) { png[start + 8 + i] = UInt8(truncatingIfNeeded: i &* 97 &+ 13) }
        fixCRC(&png, chunkAt: start, length: len)
        let err = decodeError(png, name: "garbled.png")
        guard case let .corrupt(path, format, _)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(path == "garbled.png" && format == "PNG")
    }

    @Test("corrupt JPEG entropy data")
    func corruptJPEG() throws {
        var data = try Fixtures.bytes("photo.jpg")
        // find the start of scan and garble the bytes after its header
        var sos = 0
        for i in 2..<(data.count - 1) where data[i] == 0xFF && data[i + 1] == 0xDA { sos = i; break }
        #expect(sos > 0)
        for i in (sos + 40)..<(sos + 240) { data[i] = data[i] == 0xFF ? 0x00 : UInt8(truncatingIfNeeded: i &* 31) }
        let err = decodeError(data, name: "garbled.jpg")
        switch err {
        case .corrupt(let path, "JPEG", _)?: #expect(path == "garbled.jpg")
        default: Issue.record("got \(String(describing: err))")
        }
    }

    @Test("absurd PNG dimensions are refused before allocating")
    func hugePNG() throws {
        var png = try Fixtures.bytes("portrait.png")
        guard let (_, start, len) = pngChunks(png).first(where: { $0.0 == "IHDR" }) else { Issue.record("no IHDR"); return }
        for (o, v) in [(0, 100_000), (4, 100_000)] {  // 100000 x 100000 = 10^10 pixels (30 GB of RGB)
            png[start + 8 + o] = UInt8(v >> 24); png[start + 9 + o] = UInt8((v >> 16) & 255)
            png[start + 10 + o] = UInt8((v >> 8) & 255); png[start + 11 + o] = UInt8(v & 255)
        }
        fixCRC(&png, chunkAt: start, length: len)
        let err = decodeError(png, name: "huge.png")
        guard case let .tooLarge(path, detail)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(path == "huge.png")
        #expect(detail.contains("100000x100000"))
    }

    @Test("absurd JPEG dimensions are refused before allocating, and the limit is configurable")
    func hugeJPEG() throws {
        var data = try Fixtures.bytes("photo.jpg")
        var sof = 0
        for i in 2..<(data.count - 1) where data[i] == 0xFF && (data[i + 1] == 0xC0 || data[i + 1] == 0xC2) { sof = i; break }
        #expect(sof > 0)
        // SOF: FF C0 len(2) precision(1) height(2) width(2)
        data[sof + 5] = 0xEA; data[sof + 6] = 0x60; data[sof + 7] = 0xEA; data[sof + 8] = 0x60  // 60000 x 60000
        let err = decodeError(data, name: "huge.jpg")
        guard case .tooLarge(let path, _)? = err else { Issue.record("got \(String(describing: err))"); return }
        #expect(path == "huge.jpg")
        var small = DecodeOptions()
        small.maxPixels = 1000
        let err2 = decodeError(try Fixtures.bytes("photo.jpg"), name: "photo.jpg", options: small)
        guard case .tooLarge? = err2 else { Issue.record("limit 1000: got \(String(describing: err2))"); return }
    }

    @Test("unreadable paths: missing file and a directory")
    func unreadable() throws {
        let missing = "/nonexistent/dir/cat.jpg"
        do { _ = try ImageDecoder.decode(fileAt: missing); Issue.record("no error") } catch {
            guard case let .unreadable(path, reason) = error else { Issue.record("got \(error)"); return }
            #expect(path == missing)
            #expect(reason.contains("No such file"))
        }
        let dir = try makeTempDir("dir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do { _ = try ImageDecoder.decode(fileAt: dir); Issue.record("no error") } catch {
            guard case let .unreadable(_, reason) = error else { Issue.record("got \(error)"); return }
            #expect(reason.contains("directory"))
        }
    }
}

@Suite("Damaged files never crash")
struct FuzzTests {
    @Test("random byte damage to JPEG and PNG files: every outcome is a decoded image or a thrown ImageError",
          arguments: ["photo.jpg", "photo_progressive.jpg", "portrait.png", "palette_trns.png"])
    func randomDamage(file: String) throws {
        let good = try Fixtures.bytes(file)
        var rng = SplitMix64(seed: 42)
        var thrown = 0, decoded = 0
        for round in 0..<60 {
            var bad = good
            let flips = 1 + Int(rng.next() % 8)
            for _ in 0..<flips {
                let at = Int(rng.next() % UInt64(bad.count))
                bad[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            if round % 3 == 0 { bad = Array(bad.prefix(Int(rng.next() % UInt64(bad.count)))) }
            do {
                let img = try ImageDecoder.decode(data: bad, name: "\(file)#\(round)")
                #expect(img.bytes.count == img.width * img.height * 3)
                decoded += 1
            } catch {
                #expect(error.description.contains("\(file)#\(round)"))
                thrown += 1
            }
        }
        #expect(thrown > 0, "no damaged variant of \(file) was rejected")
        #expect(thrown + decoded == 60)
    }
}
