import Foundation
import Quant

/// Why a command-line value was rejected. Each message names the option, the value and what would be accepted, so
/// the user can fix the command without reading the source. The CLI turns these into ArgumentParser
/// `ValidationError`s (exit code 64, with usage).
public enum ArgumentCheckError: Error, CustomStringConvertible, Equatable, Sendable {
    case badBits(option: String, value: String, reason: String)
    case emptyList(option: String)
    case duplicate(option: String, value: String)
    case unknownMethod(option: String, value: String, known: [String], suggestion: String?)
    case missingFolder(option: String, path: String)
    case notAFolder(option: String, path: String)
    case unreadableFolder(option: String, path: String, reason: String)
    case noImages(option: String, path: String)
    case tooFewImages(option: String, path: String, found: Int, needed: Int)
    case outputIsAFile(option: String, path: String)
    case cannotCreateOutput(option: String, path: String, reason: String)

    public var description: String {
        switch self {
        case let .badBits(o, v, r):
            return "\(o) '\(v)': \(r). Use a comma-separated list like W8A8,W6A6,W4A4,W3A3 (weights W, activations A, 2 to 8 bits each)"
        case let .emptyList(o):
            return "\(o) is empty; give at least one value"
        case let .duplicate(o, v):
            return "\(o) lists '\(v)' twice"
        case let .unknownMethod(o, v, known, s):
            return "\(o): unknown method '\(v)'" + (s.map { "; did you mean '\($0)'?" } ?? ".")
                + " Known methods: \(known.joined(separator: ", "))"
        case let .missingFolder(o, p):
            return "\(o) \(p): no such folder"
        case let .notAFolder(o, p):
            return "\(o) \(p): is a file, not a folder; pass the folder that holds the images"
        case let .unreadableFolder(o, p, r):
            return "\(o) \(p): cannot read the folder: \(r)"
        case let .noImages(o, p):
            return "\(o) \(p): the folder has no .jpg, .jpeg or .png images (looked in it and its sub-folders)"
        case let .tooFewImages(o, p, f, n):
            return "\(o) \(p): found \(f) image\(f == 1 ? "" : "s"), need at least \(n)"
        case let .outputIsAFile(o, p):
            return "\(o) \(p): exists and is a file; give a folder for the outputs"
        case let .cannotCreateOutput(o, p, r):
            return "\(o) \(p): cannot create or write the output folder: \(r)"
        }
    }
}

extension BitSetting {
    /// Parses one setting: `W8A8`, `w4a8`, or a bare number `8` meaning `W8A8` (the parser is Quant's).
    public static func parse(_ text: String, option: String = "--bits") throws(ArgumentCheckError) -> BitSetting {
        let t = text.trimmingCharacters(in: .whitespaces)
        do { return try BitSetting(parsing: t) } catch {
            let reason: String
            switch error {
            case let .badBitSetting(_, r) where r.hasPrefix("expected"): reason = r
            case .badBitSetting, .unsupportedBits:
                reason = "bit widths must be between \(UniformQuantizer.supportedBits.lowerBound) and \(UniformQuantizer.supportedBits.upperBound)"
            default: reason = error.description
            }
            throw .badBits(option: option, value: t, reason: reason)
        }
    }

    /// Parses a comma-separated list (`W8A8,W6A6,W4A4`), keeping the user's order; empty items and duplicates are
    /// errors.
    public static func parseList(_ text: String, option: String = "--bits") throws(ArgumentCheckError) -> [BitSetting] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if items.allSatisfy(\.isEmpty) { throw .emptyList(option: option) }
        var out: [BitSetting] = []
        for item in items {
            if item.isEmpty { throw .badBits(option: option, value: text, reason: "empty item between commas") }
            let b = try parse(item, option: option)
            if out.contains(b) { throw .duplicate(option: option, value: b.description) }
            out.append(b)
        }
        return out
    }
}

/// Checks for command-line values, each throwing an ``ArgumentCheckError`` with a message a user can act on.
public enum ArgumentChecks {
    /// Image file extensions counted as images (case-insensitive), the same set the Imaging dataset reader opens.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Parses a comma-separated list of method names against the known ones (case-insensitive), keeping the
    /// user's order; a typo gets a "did you mean" suggestion.
    public static func parseMethods(_ text: String, known: [String], option: String = "--methods")
        throws(ArgumentCheckError) -> [String]
    {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if items.allSatisfy(\.isEmpty) { throw .emptyList(option: option) }
        var out: [String] = []
        for item in items {
            guard let match = known.first(where: { $0.lowercased() == item }) else {
                let best = known.map { ($0, editDistance(item, $0.lowercased())) }.min { $0.1 < $1.1 }
                let suggestion = best.flatMap { $0.1 <= max(2, item.count / 3) ? $0.0 : nil }
                throw .unknownMethod(option: option, value: item, known: known, suggestion: suggestion)
            }
            if out.contains(match) { throw .duplicate(option: option, value: match) }
            out.append(match)
        }
        return out
    }

    /// Checks that `path` is an existing folder holding at least `minimumImages` images (searched recursively,
    /// hidden files skipped) and returns how many it holds.
    @discardableResult
    public static func imageFolder(_ path: String, option: String, minimumImages: Int = 1)
        throws(ArgumentCheckError) -> Int
    {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw .missingFolder(option: option, path: path)
        }
        guard isDir.boolValue else { throw .notAFolder(option: option, path: path) }
        let count: Int
        do { count = try countImages(in: path, depthLimit: 8) } catch {
            throw .unreadableFolder(option: option, path: path, reason: error.localizedDescription)
        }
        if count == 0 { throw .noImages(option: option, path: path) }
        if count < minimumImages {
            throw .tooFewImages(option: option, path: path, found: count, needed: minimumImages)
        }
        return count
    }

    /// Makes sure `path` is a writable folder, creating it (and its parents) if missing. Returns its URL.
    @discardableResult
    public static func outputDirectory(_ path: String, option: String = "--out") throws(ArgumentCheckError) -> URL {
        var isDir: ObjCBool = false
        let fm = FileManager.default
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw .outputIsAFile(option: option, path: path) }
        } else {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw .cannotCreateOutput(option: option, path: path, reason: error.localizedDescription)
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw .cannotCreateOutput(option: option, path: path, reason: "permission denied")
        }
        return URL(fileURLWithPath: path, isDirectory: true)
    }

    static func isImageName(_ name: String) -> Bool {
        guard !name.hasPrefix("."), let dot = name.lastIndex(of: ".") else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    static func countImages(in path: String, depthLimit: Int) throws -> Int {
        let fm = FileManager.default
        var n = 0
        for name in try fm.contentsOfDirectory(atPath: path) where !name.hasPrefix(".") {
            let full = (path as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: full, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                if depthLimit > 0 { n += try countImages(in: full, depthLimit: depthLimit - 1) }
            } else if isImageName(name) {
                n += 1
            }
        }
        return n
    }

    /// Levenshtein distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty { return y.count }
        var prev = Array(0...y.count), cur = prev
        for i in 1...x.count {
            cur[0] = i
            for j in stride(from: 1, through: y.count, by: 1) {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[y.count]
    }
}
