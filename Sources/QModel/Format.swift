// Reading and writing `.qmodel` files (docs/FORMAT.md).
import FileOutput
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors reading, validating or writing a `.qmodel`: what is wrong and where.
public enum QModelError: Error, CustomStringConvertible, Equatable, Sendable {
    case io(path: String, reason: String)
    case tooLarge(size: Int, limit: Int)
    case truncated(what: String, needed: Int, fileSize: Int)
    case badMagic
    case unsupportedVersion(Int)
    case badHeaderField(field: String, reason: String)
    case checksumMismatch(stored: UInt64, computed: UInt64)
    case badHeaderJSON(String)
    case badSection(name: String, reason: String)
    case invalidGraph(String)

    public var description: String {
        switch self {
        case let .io(path, reason): "qmodel: cannot access '\(path)': \(reason)"
        case let .tooLarge(size, limit): "qmodel: file is \(size) bytes, above the size limit \(limit) (raise maxFileSize if this is intended)"
        case let .truncated(what, needed, size): "qmodel: file truncated: \(what) needs \(needed) bytes but the file has \(size)"
        case .badMagic: "qmodel: not a .qmodel file (magic bytes 'QMODEL\\0\\1' missing)"
        case let .unsupportedVersion(v):
            "qmodel: format version \(v) is not supported (this reader supports versions \(QModelFile.supportedVersions.lowerBound)–\(QModelFile.supportedVersions.upperBound)); "
                + (v > QModelFile.version ? "the file was written by a newer version of the tool: update the runtime" : "the file is damaged or not a .qmodel")
        case let .badHeaderField(f, r): "qmodel: header field '\(f)' is invalid: \(r)"
        case let .checksumMismatch(s, c): "qmodel: checksum mismatch (stored FNV-1a 0x\(String(s, radix: 16)), computed 0x\(String(c, radix: 16))): the file is corrupted"
        case let .badHeaderJSON(m): "qmodel: graph header is not valid: \(m)"
        case let .badSection(n, r): "qmodel: section '\(n)': \(r)"
        case let .invalidGraph(m): "qmodel: invalid graph: \(m)"
        }
    }
}

/// FNV-1a 64-bit hash (the `.qmodel` checksum).
public func fnv1a64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

// JSON header structures (Codable, sorted keys → deterministic bytes).
struct SectionEntry: Codable, Equatable {
    var name: String
    var dtype: DType
    var shape: [Int]
    var offset: Int
    var length: Int
}

struct Header: Codable {
    var name: String
    var preprocessing: Preprocessing?
    var classNames: [String]
    var tensors: [TensorInfo]
    var ops: [Op]
    var inputs: [String]
    var outputs: [String]
    var sections: [SectionEntry]
}

/// Reader/writer of the `.qmodel` container.
public enum QModelFile {
    /// 8 magic bytes.
    public static let magic: [UInt8] = Array("QMODEL".utf8) + [0, 1]
    /// The newest format version this code reads and writes. Version 2 added one relaxation: an 8-bit raw-code weight
    /// row whose W − z leaves int8 may feed a quantized (non-float) output. Version 3 added class-token quantizers
    /// (`TensorInfo.prefix`). The byte layout is the same.
    public static let version = 3
    /// Versions this reader accepts.
    public static let supportedVersions = 1...3
    /// Alignment of the header start, the data area and every section.
    public static let alignment = 64
    /// Fixed binary preamble size.
    public static let preambleSize = 64
    /// Default refusal limit for files (1 GiB).
    public static let defaultMaxFileSize = 1 << 30

    // MARK: encode

    /// The file bytes of `model` (validated first). Same model → same bytes.
    public static func encode(_ model: QModel) throws(QModelError) -> [UInt8] {
        try model.validate()
        var sections: [SectionEntry] = []
        var off = 0
        for c in model.constants {
            sections.append(SectionEntry(name: c.name, dtype: c.dtype, shape: c.shape, offset: off, length: c.bytes.count))
            off = align(off + c.bytes.count)
        }
        let dataLength = off
        let header = Header(name: model.name, preprocessing: model.preprocessing, classNames: model.classNames, tensors: model.tensors,
                            ops: model.ops, inputs: model.inputs, outputs: model.outputs, sections: sections)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json: [UInt8]
        do { json = Array(try enc.encode(header)) } catch { throw .badHeaderJSON("cannot encode header: \(error)") }
        let headerOffset = preambleSize
        let dataOffset = align(headerOffset + json.count)
        let fileLength = dataOffset + dataLength + 8
        var out = [UInt8](repeating: 0, count: fileLength)
        out.replaceSubrange(0..<8, with: magic)
        put32(&out, 8, UInt32(model.requiredFormatVersion))
        put32(&out, 12, 0) // flags
        put64(&out, 16, UInt64(headerOffset))
        put64(&out, 24, UInt64(json.count))
        put64(&out, 32, UInt64(dataOffset))
        put64(&out, 40, UInt64(dataLength))
        put64(&out, 48, UInt64(fileLength))
        put64(&out, 56, UInt64(model.constants.count))
        out.replaceSubrange(headerOffset..<(headerOffset + json.count), with: json)
        for (s, c) in zip(sections, model.constants) {
            out.replaceSubrange((dataOffset + s.offset)..<(dataOffset + s.offset + s.length), with: c.bytes)
        }
        let sum = out.withUnsafeBytes { fnv1a64(UnsafeRawBufferPointer(rebasing: $0[0..<(fileLength - 8)])) }
        put64(&out, fileLength - 8, sum)
        return out
    }

    /// Writes atomically: temporary file in the same directory, fsync, rename over `path`.
    public static func write(_ model: QModel, to path: String) throws(QModelError) {
        let bytes = try encode(model)
        do { try AtomicFile.write(bytes, toPath: path) } catch { throw .io(path: path, reason: error.description) }
    }

    // MARK: decode

    /// Reads and validates a file; refuses files above `maxFileSize` bytes before reading them.
    public static func load(path: String, maxFileSize: Int = defaultMaxFileSize) throws(QModelError) -> QModel {
        try loadWithVersion(path: path, maxFileSize: maxFileSize).model
    }

    /// `load`, plus the format version the file declares (what `quantize inspect` shows).
    public static func loadWithVersion(path: String, maxFileSize: Int = defaultMaxFileSize) throws(QModelError) -> (model: QModel, version: Int) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(path: path, reason: errnoString()) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, reason: "stat failed: \(errnoString())") }
        let size = Int(st.st_size)
        guard size <= maxFileSize else { throw .tooLarge(size: size, limit: maxFileSize) }
        var bytes = [UInt8](repeating: 0, count: size)
        var got = 0
        while got < size {
            let n = bytes.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress! + got, size - got) }
            if n < 0 { if errno == EINTR { continue }; throw .io(path: path, reason: "read failed: \(errnoString())") }
            if n == 0 { break }
            got += n
        }
        guard got == size else { throw .io(path: path, reason: "short read (\(got) of \(size) bytes)") }
        return (try decode(bytes, maxFileSize: maxFileSize), Int(get32(bytes, 8)))   // decode checked the preamble
    }

    /// Decodes and validates file bytes. Every offset is checked against the buffer before use.
    public static func decode(_ bytes: [UInt8], maxFileSize: Int = defaultMaxFileSize) throws(QModelError) -> QModel {
        let size = bytes.count
        guard size <= maxFileSize else { throw .tooLarge(size: size, limit: maxFileSize) }
        guard size >= preambleSize + 8 else { throw .truncated(what: "preamble and checksum", needed: preambleSize + 8, fileSize: size) }
        guard Array(bytes[0..<8]) == magic else { throw .badMagic }
        let ver = Int(get32(bytes, 8))
        guard supportedVersions.contains(ver) else { throw .unsupportedVersion(ver) }
        guard get32(bytes, 12) == 0 else { throw .badHeaderField(field: "flags", reason: "must be 0, got \(get32(bytes, 12))") }
        let fileLength = get64(bytes, 48)
        guard fileLength == UInt64(size) else {
            if fileLength > UInt64(size) { throw .truncated(what: "declared file length", needed: Int(clamping: fileLength), fileSize: size) }
            throw .badHeaderField(field: "fileLength", reason: "declares \(fileLength) bytes but the file has \(size)")
        }
        let stored = get64(bytes, size - 8)
        let computed = bytes.withUnsafeBytes { fnv1a64(UnsafeRawBufferPointer(rebasing: $0[0..<(size - 8)])) }
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        let headerOffset = get64(bytes, 16), headerLength = get64(bytes, 24)
        let dataOffset = get64(bytes, 32), dataLength = get64(bytes, 40), sectionCount = get64(bytes, 56)
        let limit = UInt64(size - 8)
        guard headerOffset == UInt64(preambleSize) else { throw .badHeaderField(field: "headerOffset", reason: "must be \(preambleSize), got \(headerOffset)") }
        guard headerLength <= limit, headerOffset + headerLength <= limit else { throw .badHeaderField(field: "headerLength", reason: "\(headerLength) runs past the end of the file") }
        guard dataOffset % UInt64(alignment) == 0 else { throw .badHeaderField(field: "dataOffset", reason: "\(dataOffset) is not \(alignment)-byte aligned") }
        guard dataOffset >= headerOffset + headerLength, dataOffset <= limit else { throw .badHeaderField(field: "dataOffset", reason: "\(dataOffset) overlaps the header or runs past the file") }
        guard dataLength <= limit, dataOffset + dataLength == limit else { throw .badHeaderField(field: "dataLength", reason: "\(dataLength) does not end at the checksum") }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes[Int(headerOffset)..<Int(headerOffset + headerLength)]))
        } catch { throw .badHeaderJSON("\(error)") }
        guard UInt64(header.sections.count) == sectionCount else {
            throw .badHeaderField(field: "sectionCount", reason: "preamble says \(sectionCount), header lists \(header.sections.count)")
        }
        var constants: [Constant] = []
        var end = 0
        let dl = Int(dataLength), d0 = Int(dataOffset)
        for s in header.sections {
            guard s.offset >= 0, s.length >= 0, s.offset % alignment == 0 else { throw .badSection(name: s.name, reason: "offset \(s.offset) is negative or not \(alignment)-byte aligned") }
            guard s.offset >= end else { throw .badSection(name: s.name, reason: "offset \(s.offset) overlaps the previous section (ends at \(end))") }
            guard s.offset <= dl, s.length <= dl - s.offset else { throw .badSection(name: s.name, reason: "offset \(s.offset) + length \(s.length) lies outside the data area (\(dl) bytes)") }
            guard s.shape.allSatisfy({ $0 >= 0 && $0 <= 1 << 31 }) else { throw .badSection(name: s.name, reason: "shape \(s.shape) has a negative or huge dimension") }
            let (count, overflow) = s.shape.reduce((1, false)) { acc, d in let m = acc.0.multipliedReportingOverflow(by: d); return (m.partialValue, acc.1 || m.overflow) }
            guard !overflow, count <= dl * 2 + 2 else { throw .badSection(name: s.name, reason: "shape \(s.shape) is larger than the file") }
            guard s.dtype.byteCount(count) == s.length else { throw .badSection(name: s.name, reason: "length \(s.length) does not match \(s.dtype.rawValue) shape \(s.shape) (\(s.dtype.byteCount(count)) bytes)") }
            constants.append(Constant(name: s.name, dtype: s.dtype, shape: s.shape, bytes: Array(bytes[(d0 + s.offset)..<(d0 + s.offset + s.length)])))
            end = s.offset + s.length
        }
        let model = QModel(name: header.name, preprocessing: header.preprocessing, classNames: header.classNames, tensors: header.tensors,
                           ops: header.ops, inputs: header.inputs, outputs: header.outputs, constants: constants)
        try model.validate()
        return model
    }

    static func align(_ x: Int) -> Int { (x + alignment - 1) / alignment * alignment }
    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) { for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
    static func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) { for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
    static func get32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
    static func get64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
}

func errnoString() -> String { String(cString: strerror(errno)) }

private func sysRead(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) -> Int { read(fd, p, n) }

extension QModel {
    /// The lowest format version that can hold this model, which the writer puts in the preamble: 2 when an 8-bit
    /// raw-code weight row leaves int8 after W − z and its layer has a quantized output (a version-1 runtime cannot
    /// run that and now says so through `unsupportedVersion`), else 1, so older runtimes keep reading what they can run.
    public var requiredFormatVersion: Int {
        // 3: class-token quantizers (`TensorInfo.prefix`), which an older runtime would silently ignore
        if tensors.contains(where: { $0.prefix != nil }) { return 3 }
        for op in ops {
            let w: WeightRef, out: String
            switch op {
            case let .conv2d(o): w = o.weight; out = o.output
            case let .linear(o): w = o.weight; out = o.output
            default: continue
            }
            guard w.zeroPoints != nil, w.bits == 8, constant(w.weights)?.dtype == .uint8, tensor(out)?.dtype != .float32 else { continue }
            if foldedWeights(w) == nil { return 2 }
        }
        return 1
    }
}
