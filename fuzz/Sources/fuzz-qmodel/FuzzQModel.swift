// libFuzzer target: .qmodel bytes → QModelFile.decode (layout, checksum, JSON header, sections, graph validation) →
// for models within a 64 MiB cap, an Int8Runtime session built and run once on zeros.
//
// The first input byte picks the mode: even = fix up the declared file length and the FNV-1a checksum before
// decoding (so mutations reach the JSON header, the sections and the validator instead of stopping at the checksum),
// odd = decode the bytes as they are. Seeds carry a 0 byte in front of a real file.
import Foundation
import Int8Runtime

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let dir = ProcessInfo.processInfo.environment["ADAQUANT_FUZZ_WRITE_SEEDS"] { writeSeeds(to: dir); exit(0) }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQModel(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    var bytes = [UInt8](UnsafeBufferPointer(start: data + 1, count: size - 1))
    if data[0] & 1 == 0, bytes.count >= QModelFile.preambleSize + 8 { fixUp(&bytes) }
    guard let model = try? QModelFile.decode(bytes) else { return 0 }
    // Re-encoding a valid model must give a file that decodes to the same model.
    guard let again = try? QModelFile.encode(model) else { fatalError("a decoded model does not re-encode") }
    guard let model2 = try? QModelFile.decode(again), model2 == model else { fatalError("encode/decode round trip differs") }
    guard let session = try? Session(model: model, batch: 1, threads: 1, maxMemoryBytes: 64 << 20) else { return 0 }
    let n = session.inputShape.reduce(1, *)
    _ = try? session.run([Float](repeating: 0.25, count: n))
    return 0
}

/// Sets the preamble's file length to the real size and recomputes the trailing checksum.
func fixUp(_ b: inout [UInt8]) {
    let n = b.count
    for i in 0..<8 { b[48 + i] = UInt8(truncatingIfNeeded: UInt64(n) >> (8 * UInt64(i))) }
    let sum = b.withUnsafeBytes { fnv1a64(UnsafeRawBufferPointer(rebasing: $0[0..<(n - 8)])) }
    for i in 0..<8 { b[n - 8 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
}

/// The seed corpus: the runtime tests' tiny ViT (AdaLog and uniform softmax, 8 and 4 bits) and CNN.
func writeSeeds(to dir: String) {
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var models: [(String, QModel)] = []
    for (w, a, uni) in [(8, 8, false), (4, 4, false), (4, 4, true)] {
        var vit = TinyViT(seed: 7, wBits: w, aBits: a, uniformSoftmax: uni)
        var rng = Rng(s: 1)
        _ = vit.simulate(randomFloats(&rng, 16 * 16 * 3), calibrate: true)
        models.append(("tiny-vit-w\(w)a\(a)\(uni ? "-uniform" : "")", try! vit.model()))
    }
    var cnn = TinyCNN(seed: 3)
    var rng = Rng(s: 2)
    _ = cnn.simulate(randomFloats(&rng, 8 * 8 * 3), calibrate: true)
    models.append(("tiny-cnn", try! cnn.model()))
    for (name, m) in models {
        let bytes = [0] + (try! QModelFile.encode(m))
        FileManager.default.createFile(atPath: "\(dir)/\(name).qmodel", contents: Data(bytes))
    }
}
