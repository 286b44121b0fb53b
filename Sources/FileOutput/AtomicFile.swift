// Only FoundationEssentials (Data, URL), so the small-device runtime's model reader can use this too.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
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
/// the file is renamed over the destination (then the folder is flushed too). A reader, or a run that crashed or was
/// interrupted, sees the old file or the new one, never a half-written one; a failure removes the temporary file.
public enum AtomicFile {
    /// Prefix of temporary files (hidden, so image and report globs skip them).
    public static let temporaryPrefix = ".tmp-"

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws(AtomicWriteError) {
        let result = data.withUnsafeBytes { raw in Result { () throws(AtomicWriteError) in try write(raw, toPath: url.path) } }
        try result.get()
    }

    /// Writes `bytes` to the file at `path` atomically.
    public static func write(_ bytes: [UInt8], toPath path: String) throws(AtomicWriteError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(AtomicWriteError) in try write(raw, toPath: path) } }
        try result.get()
    }

    /// Produces the contents with `body` and writes them to `url` atomically. If `body` throws, nothing is written.
    public static func write(to url: URL, _ body: () throws -> Data) throws(AtomicWriteError) {
        let data: Data
        do { data = try body() } catch let e as AtomicWriteError { throw e } catch {
            throw .writeFailed(path: url.path, reason: "\(error)")
        }
        try write(data, to: url)
    }

    /// Writes the bytes of `raw` to `path` atomically.
    public static func write(_ raw: UnsafeRawBufferPointer, toPath path: String) throws(AtomicWriteError) {
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            let d = String(path[..<slash])
            dir = d.isEmpty ? "/" : d
        } else {
            dir = "."
        }
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var template = Array("\(dir)/\(temporaryPrefix)\(base).XXXXXX".utf8CString)
        // Created and registered under the registry's lock, so an interrupt either sees the temporary file (and
        // removes it) or happens before it exists.
        let (fd, tmp): (Int32, String) = InFlight.shared.create(&template)
        guard fd >= 0 else { throw .cannotCreateTemporary(path: path, reason: errnoText()) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
            InFlight.shared.remove(tmp)
        }
        // mkstemp creates 0600; outputs are ordinary files, so follow the umask like a plain create would.
        let mask = umask(0)
        umask(mask)
        _ = fchmod(fd, 0o666 & ~mask)
        var failure: String?
        var offset = 0
        while offset < raw.count {
            let n = systemWrite(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errnoText()
                break
            }
            offset += n
        }
        if failure == nil, fsync(fd) != 0 { failure = errnoText() }
        if close(fd) != 0, failure == nil { failure = errnoText() }
        if let failure { throw .writeFailed(path: path, reason: failure) }
        testPauseBeforeRename()
        guard rename(tmp, path) == 0 else { throw .renameFailed(from: tmp, to: path, reason: errnoText()) }
        ok = true
        // Flush the folder so the rename itself survives a power loss.
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }

    /// Makes SIGINT, SIGTERM and SIGHUP remove every temporary file an ``AtomicFile`` write has open, then exit
    /// with status 128 + signal, so an interrupted run leaves neither a partial output nor a temporary file (outputs
    /// already renamed into place are complete). Call once at start-up of a command-line tool; idempotent.
    public static func removeTemporariesOnInterrupt() {
        InFlight.shared.installSignalHandlers()
    }

    /// Paths of the temporary files being written right now (for tests and diagnostics).
    public static var temporariesInFlight: [String] { InFlight.shared.snapshot() }

    /// Test hook: with ADAQUANT_TEST_ATOMIC_PAUSE_MS set, every write sleeps that long with its temporary file
    /// complete but not yet renamed, so a test can interrupt a process inside the write window.
    private static func testPauseBeforeRename() {
        guard let v = getenv("ADAQUANT_TEST_ATOMIC_PAUSE_MS"), let ms = Int(String(cString: v)), ms > 0 else { return }
        usleep(UInt32(min(ms, 60_000)) * 1000)
    }
}

/// The registry of temporary files being written, and the signal handling that removes them.
final class InFlight: @unchecked Sendable {
    static let shared = InFlight()
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var paths = Set<String>()
    private var exiting = false
    private var sources: [DispatchSourceSignal] = []

    private init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// mkstemp under the lock; after an interrupt has started cleaning up, no new temporary file is created.
    func create(_ template: inout [CChar]) -> (Int32, String) {
        locked {
            if exiting { errno = EINTR; return (-1, "") }
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { return (fd, "") }
            let tmp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            paths.insert(tmp)
            return (fd, tmp)
        }
    }

    func remove(_ path: String) { locked { _ = paths.remove(path) } }

    func snapshot() -> [String] { locked { paths.sorted() } }

    func installSignalHandlers() {
        locked {
            guard sources.isEmpty else { return }
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig, SIG_IGN) // delivered to the dispatch source instead of killing the process
                let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                src.setEventHandler { [unowned self] in self.cleanUpAndExit(sig) }
                src.resume()
                sources.append(src)
            }
        }
    }

    private func cleanUpAndExit(_ sig: Int32) -> Never {
        pthread_mutex_lock(mutex) // held until exit: no writer can create or register another temporary file
        exiting = true
        for p in paths { unlink(p) }
        let message = "\ninterrupted (signal \(sig)); removed \(paths.count) unfinished output file(s)\n"
        _ = message.withCString { systemWriteStderr($0, strlen($0)) }
        _exit(128 + sig)
    }
}

@inline(__always)
private func systemWriteStderr(_ p: UnsafePointer<CChar>, _ n: Int) -> Int { systemWrite(2, p, n) }

@inline(__always)
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #elseif canImport(Musl)
    return Musl.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
