import Foundation
import Testing
import QModel
import Int8Runtime

/// Preamble field offsets (docs/FORMAT.md).
enum Field: Int, CaseIterable { case version = 8, flags = 12, headerOffset = 16, headerLength = 24, dataOffset = 32, dataLength = 40, fileLength = 48, sectionCount = 56 }

func get64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) { for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) { for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
/// Recomputes the trailing FNV-1a checksum so a test reaches the field checks behind it.
func resum(_ b: [UInt8]) -> [UInt8] {
    var b = b
    let s = b.withUnsafeBytes { fnv1a64(UnsafeRawBufferPointer(rebasing: $0[0..<(b.count - 8)])) }
    put64(&b, b.count - 8, s)
    return b
}
/// A hand-edited file: header JSON mutated, preamble and checksum made consistent again.
func edit(_ bytes: [UInt8], _ mutate: (inout [String: Any]) -> Void) throws -> [UInt8] {
    let ho = Int(get64(bytes, 16)), hl = Int(get64(bytes, 24)), d0 = Int(get64(bytes, 32)), dl = Int(get64(bytes, 40))
    var json = try JSONSerialization.jsonObject(with: Data(bytes[ho..<(ho + hl)])) as! [String: Any]
    mutate(&json)
    return rebuild(bytes, header: Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])), data: Array(bytes[d0..<(d0 + dl)]))
}
func rebuild(_ bytes: [UInt8], header: [UInt8], data: [UInt8]) -> [UInt8] {
    let d0 = (64 + header.count + 63) / 64 * 64
    var out = [UInt8](repeating: 0, count: d0 + data.count + 8)
    out.replaceSubrange(0..<64, with: bytes[0..<64])
    out.replaceSubrange(64..<(64 + header.count), with: header)
    out.replaceSubrange(d0..<(d0 + data.count), with: data)
    put64(&out, 24, UInt64(header.count)); put64(&out, 32, UInt64(d0)); put64(&out, 48, UInt64(out.count))
    return resum(out)
}

func vitModel() throws -> QModel {
    var v = TinyViT(seed: 7, wBits: 4, aBits: 4)
    var r = Rng(s: 1)
    _ = v.simulate(randomFloats(&r, 16 * 16 * 3), calibrate: true)
    return try v.model()
}

/// Runs decode and returns the thrown QModelError (nil when it loaded).
func decodeError(_ b: [UInt8], max: Int = QModelFile.defaultMaxFileSize) -> QModelError? {
    do { _ = try QModelFile.decode(b, maxFileSize: max); return nil } catch { return error }
}

@Suite struct FormatTests {
    @Test func roundTripIsIdenticalAndDeterministic() throws {
        let m = try vitModel()
        let bytes = try QModelFile.encode(m)
        #expect(try QModelFile.decode(bytes) == m)
        #expect(try QModelFile.encode(try QModelFile.decode(bytes)) == bytes)
        #expect(try QModelFile.encode(m) == bytes)
        #expect(Array(bytes[0..<8]) == QModelFile.magic)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qmodel-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.qmodel").path
        try QModelFile.write(m, to: path)
        try QModelFile.write(m, to: path)   // overwrite atomically
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
        #expect(try QModelFile.load(path: path) == m)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.qmodel"])   // no temp file left
        // int4 weights really are packed and sections 64-byte aligned
        let d0 = Int(get64(bytes, 32))
        #expect(d0 % 64 == 0)
        #expect(m.constant("qkv.w")?.dtype == .int4 && m.constant("qkv.w")?.bytes.count == 48 * 16 / 2)
        #expect(m.preprocessing?.size == 16 && m.classNames.count == 10)
        #expect(m.constant("fc1.w")?.dtype == .uint4 && m.constant("fc1.z")?.dtype == .int32)
        // Optional: leave the tiny models on disk for trying `qmodel-run` by hand.
        if let out = ProcessInfo.processInfo.environment["QMODEL_EXPORT_DIR"] {
            var cnn = TinyCNN(seed: 3)
            var r = Rng(s: 5)
            _ = cnn.simulate(randomFloats(&r, 8 * 8 * 3), calibrate: true)
            try QModelFile.write(m, to: out + "/tiny-vit-w4a4.qmodel")
            try QModelFile.write(try cnn.model(), to: out + "/tiny-cnn.qmodel")
        }
    }

    @Test func truncatedAtEverySectionBoundaryIsRefused() throws {
        let bytes = try QModelFile.encode(try vitModel())
        let ho = Int(get64(bytes, 16)), hl = Int(get64(bytes, 24)), d0 = Int(get64(bytes, 32))
        let json = try JSONSerialization.jsonObject(with: Data(bytes[ho..<(ho + hl)])) as! [String: Any]
        var cuts = [0, 1, 7, 8, 12, 16, 63, 64, ho + hl / 2, ho + hl, d0, bytes.count - 8, bytes.count - 1]
        for s in json["sections"] as! [[String: Any]] {
            let o = d0 + (s["offset"] as! Int), l = s["length"] as! Int
            cuts += [o, o + l / 2, o + l]
        }
        var n = 0
        for cut in Set(cuts) where cut < bytes.count {
            let e = decodeError(Array(bytes[0..<cut]))
            #expect(e != nil, "cut at \(cut) loaded")
            if cut >= 72 { #expect(e.map { if case .truncated = $0 { true } else { false } } == true, "cut at \(cut): \(String(describing: e))") }
            n += 1
        }
        #expect(n > 20)
    }

    @Test func flippedBytesAnywhereAreRefused() throws {
        let bytes = try QModelFile.encode(try vitModel())
        var positions = Array(stride(from: 0, to: bytes.count, by: 13)) + Array((bytes.count - 8)..<bytes.count)
        positions += Array(0..<64)
        for p in positions {
            var b = bytes
            b[p] ^= 0x5A
            let e = decodeError(b)
            #expect(e != nil, "flip at \(p) loaded")
            if p >= 64 { #expect(e.map { if case .checksumMismatch = $0 { true } else { false } } == true, "flip at \(p): \(String(describing: e))") }
        }
    }

    @Test func wrongVersionAndMagic() throws {
        let bytes = try QModelFile.encode(try vitModel())
        var b = bytes
        put32(&b, 8, 4)
        #expect(decodeError(resum(b)) == .unsupportedVersion(4))
        #expect(QModelError.unsupportedVersion(4).description.contains("newer version"))
        put32(&b, 8, 0)
        #expect(decodeError(resum(b)) == .unsupportedVersion(0))
        // Every supported version loads (the byte layout is the same).
        for v: UInt32 in [1, 2, 3] {
            put32(&b, 8, v)
            #expect(decodeError(resum(b)) == nil, "version \(v)")
        }
        b = bytes
        b[0] = UInt8(ascii: "X")
        #expect(decodeError(resum(b)) == .badMagic)
        #expect(decodeError([]) != nil)
        #expect(decodeError([UInt8](repeating: 0, count: 4096)) == .badMagic)
    }

    @Test(arguments: Field.allCases)
    func corruptedPreambleFieldsAreRefused(field: Field) throws {
        let bytes = try QModelFile.encode(try vitModel())
        for v: UInt64 in [0, 1, 63, 65, UInt64(bytes.count), UInt64(bytes.count) + 64, 1 << 40, UInt64.max] {
            var b = bytes
            if field == .version || field == .flags { put32(&b, field.rawValue, UInt32(truncatingIfNeeded: v)) } else { put64(&b, field.rawValue, v) }
            if b == bytes { continue }
            let e = decodeError(resum(b))
            #expect(e != nil, "\(field) = \(v) loaded")
        }
    }

    @Test func handEditedHeadersAreRefused() throws {
        let bytes = try QModelFile.encode(try vitModel())
        func sections(_ j: inout [String: Any], _ f: (inout [String: Any]) -> Void) {
            var s = j["sections"] as! [[String: Any]]; f(&s[1]); j["sections"] = s
        }
        let edits: [(String, (inout [String: Any]) -> Void)] = [
            ("offset out of range", { j in sections(&j) { $0["offset"] = 1 << 40 } }),
            ("offset misaligned", { j in sections(&j) { $0["offset"] = ($0["offset"] as! Int) + 1 } }),
            ("negative offset", { j in sections(&j) { $0["offset"] = -64 } }),
            ("huge length", { j in sections(&j) { $0["length"] = Int.max } }),
            ("huge shape", { j in sections(&j) { $0["shape"] = [1 << 40, 1 << 40] } }),
            ("dtype changed", { j in var s = j["sections"] as! [[String: Any]]; s[0]["dtype"] = "float32"; j["sections"] = s }),
            ("unknown dtype", { j in sections(&j) { $0["dtype"] = "bfloat16" } }),
            ("section dropped", { j in var s = j["sections"] as! [[String: Any]]; s.removeLast(); j["sections"] = s }),
            ("tensor shape", { j in var t = j["tensors"] as! [[String: Any]]; t[5]["shape"] = [17, 47]; j["tensors"] = t }),
            ("tensor huge shape", { j in var t = j["tensors"] as! [[String: Any]]; t[5]["shape"] = [1 << 40, 1 << 40]; j["tensors"] = t }),
            ("op input unknown", { j in var o = j["ops"] as! [[String: Any]]; var l = o[4]["linear"] as! [String: Any]; var p = l["_0"] as! [String: Any]
                p["input"] = "nope"; l["_0"] = p; o[4]["linear"] = l; j["ops"] = o }),
            ("attention heads", { j in var o = j["ops"] as! [[String: Any]]; var l = o[5]["attention"] as! [String: Any]; var p = l["_0"] as! [String: Any]
                p["heads"] = 3; l["_0"] = p; o[5]["attention"] = l; j["ops"] = o }),
            ("unknown op kind", { j in var o = j["ops"] as! [[String: Any]]; o[0] = ["softshrink": ["_0": [:]]]; j["ops"] = o }),
            ("ops reordered", { j in var o = j["ops"] as! [[String: Any]]; o.swapAt(3, 4); j["ops"] = o }),
            ("output never produced", { j in j["outputs"] = ["ghost"] }),
            ("quantizer bits", { j in var t = j["tensors"] as! [[String: Any]]; t[4]["quantizer"] = ["uniform": ["_0": ["scale": 0.1, "zeroPoint": 3, "bits": 40]]]; j["tensors"] = t }),
        ]
        for (what, f) in edits {
            let e = decodeError(try edit(bytes, f))
            #expect(e != nil, "\(what): loaded")
            print("\(what): \(e.map(String.init(describing:)) ?? "nil")")
        }
        // header that is not JSON at all
        let d0 = Int(get64(bytes, 32)), dl = Int(get64(bytes, 40))
        let e = decodeError(rebuild(bytes, header: Array("{not json".utf8), data: Array(bytes[d0..<(d0 + dl)])))
        #expect(e.map { if case .badHeaderJSON = $0 { true } else { false } } == true)
    }

    /// Random byte edits with a recomputed checksum (a hand-edited file that passes the checksum): the loader
    /// either throws a QModelError or returns a model that validates, and a Session on it either throws or runs.
    @Test func checksummedRandomEditsNeverCrash() throws {
        let bytes = try QModelFile.encode(try vitModel())
        let d0 = Int(get64(bytes, 32))
        var r = Rng(s: 2024)
        var refused = 0, loaded = 0
        for i in 0..<300 {
            var b = bytes
            // half the edits in the JSON header, half in the data sections
            let lo = i % 2 == 0 ? 64 : d0, hi = i % 2 == 0 ? d0 : bytes.count - 8
            for _ in 0..<(1 + Int(r.next() * 3)) { b[lo + Int(r.next() * Double(hi - lo))] = UInt8(Int(r.next() * 256)) }
            do {
                let m = try QModelFile.decode(resum(b))
                loaded += 1
                if let s = try? Session(model: m, batch: 1, threads: 1) {
                    let out = try? s.run([Float](repeating: 0.5, count: s.inputShape.reduce(1, *)))
                    _ = out
                }
            } catch {
                refused += 1
            }
        }
        print("random checksummed edits: \(refused) refused, \(loaded) loaded (edits to weights/ints are valid models)")
        #expect(refused + loaded == 300)
        #expect(refused > 0)
    }

    @Test func sizeCapIsEnforced() throws {
        let bytes = try QModelFile.encode(try vitModel())
        #expect(decodeError(bytes, max: 1000) == .tooLarge(size: bytes.count, limit: 1000))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cap-\(UInt32.random(in: 0...UInt32.max)).qmodel").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: QModelError.tooLarge(size: bytes.count, limit: 1000)) { try QModelFile.load(path: path, maxFileSize: 1000) }
        #expect(throws: QModelError.self) { try QModelFile.load(path: path + ".missing") }
    }
}
