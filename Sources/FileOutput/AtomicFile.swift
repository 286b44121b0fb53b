import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be written atomically.
public enum AtomicWriteError: Error, CustomStringConvertible, Equatable, Sendable {
    case cannotCreateTemporary(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case renameFailed(from: String, to: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotCreateTemporary(p, r): return "\(p): cannot create a temporary file next to it: \(r)"
        case let .writeFailed(p, r): return "\(p): write failed: \(r)"
        case let .renameFailed(f, t, r): return "cannot move \(f) to \(t): \(r) (the previous \(t), if any, is unchanged)"
        }
    }
}

/// Writes files atomically: the bytes go to a temporary file in the destination's folder, are flushed to disk, and
/// the file is renamed over the destination. A reader (or a crashed run) sees the old file or the new one, never a
/// half-written one, and a failure removes the temporary file.
public enum AtomicFile {
    /// Prefix of temporary files (hidden, so image and report globs skip them).
    public static let temporaryPrefix = ".tmp-"

    /// Writes `bytes` to the file at `path` atomically.
    public static func write(_ bytes: [UInt8], toPath path: String) throws(AtomicWriteError) {
        try write(Data(bytes), to: URL(fileURLWithPath: path))
    }

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws(AtomicWriteError) {
        try write(to: url) { data }
    }

    /// Produces the contents with `body` and writes them to `url` atomically. If `body` throws, nothing is written
    /// and the error is rethrown as is.
    public static func write(to url: URL, _ body: () throws -> Data) throws(AtomicWriteError) {
        let data: Data
        do { data = try body() } catch let e as AtomicWriteError { throw e } catch {
            throw .writeFailed(path: url.path, reason: "\(error)")
        }
        let dir = url.deletingLastPathComponent().path
        let template = (dir as NSString).appendingPathComponent("\(temporaryPrefix)\(url.lastPathComponent).XXXXXX")
        var buf = Array(template.utf8CString)
        let fd = buf.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw .cannotCreateTemporary(path: url.path, reason: errnoText()) }
        let tmp = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        // mkstemp creates 0600; outputs are ordinary files, so follow the umask like a plain create would.
        let mask = umask(0)
        umask(mask)
        _ = fchmod(fd, 0o666 & ~mask)
        var failure: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc_write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errnoText()
                    return
                }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = errnoText() }
        if close(fd) != 0, failure == nil { failure = errnoText() }
        if let failure { throw .writeFailed(path: url.path, reason: failure) }
        guard rename(tmp, url.path) == 0 else {
            throw .renameFailed(from: tmp, to: url.path, reason: errnoText())
        }
        ok = true
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

@inline(__always)
private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #elseif canImport(Musl)
    return Musl.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
