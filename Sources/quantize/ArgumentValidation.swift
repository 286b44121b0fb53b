import ArgumentParser
import Foundation
import Quant
import Reporting

// Exit codes of the tool:
//   0   success
//   1   the work failed (a typed error is printed: unreadable model, unsupported op, write failure, …)
//   64  bad command line (ArgumentParser's ValidationError: bad --bits, missing or empty folders, …), with usage

/// Command-line checks that turn ``ArgumentCheckError`` into ArgumentParser's `ValidationError`, so a bad value exits
/// with code 64 and the usage text. Call them from a command's `validate()`.
enum ArgumentValidation {
    /// Quantization methods the tool knows (the pipeline extends this list when it adds one).
    static let knownMethods = ["adalog", "uniform-minmax"]

    static func bits(_ text: String, option: String = "--bits") throws -> [BitSetting] {
        try wrap { () throws(ArgumentCheckError) in try BitSetting.parseList(text, option: option) }
    }

    static func methods(_ text: String, known: [String] = knownMethods, option: String = "--methods") throws -> [String] {
        try wrap { () throws(ArgumentCheckError) in try ArgumentChecks.parseMethods(text, known: known, option: option) }
    }

    /// Checks an input image folder and returns how many images it holds.
    @discardableResult
    static func imageFolder(_ path: String, option: String, minimumImages: Int = 1) throws -> Int {
        try wrap { () throws(ArgumentCheckError) in
            try ArgumentChecks.imageFolder(path, option: option, minimumImages: minimumImages)
        }
    }

    /// Creates the output folder if missing.
    @discardableResult
    static func outputDirectory(_ path: String, option: String = "--out") throws -> URL {
        try wrap { () throws(ArgumentCheckError) in try ArgumentChecks.outputDirectory(path, option: option) }
    }

    static func wrap<T>(_ body: () throws(ArgumentCheckError) -> T) throws -> T {
        do { return try body() } catch { throw ValidationError(error.description) }
    }
}
