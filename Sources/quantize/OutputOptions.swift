import ArgumentParser
import Foundation
import Logging
import Reporting

/// `--quiet` / `--verbose`, shared by every subcommand with `@OptionGroup var output: OutputOptions`.
///
/// Diagnostics (swift-log) and progress bars go to stderr; results and the paths of written files go to stdout, so
/// `quantize report … > paths.txt` and `2> log.txt` both work.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only errors: no progress bars, no notices.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "More diagnostics on stderr (-v info, -vv debug, -vvv trace).")
    var verbose: Int

    func validate() throws {
        if quiet && verbose > 0 { throw ValidationError("give --quiet or --verbose, not both") }
    }

    /// The swift-log level these flags select: error with `--quiet`, notice by default, then info, debug, trace.
    var logLevel: Logger.Level {
        if quiet { return .error }
        switch verbose {
        case 0: return .notice
        case 1: return .info
        case 2: return .debug
        default: return .trace
        }
    }

    /// Progress bar mode: silent with `--quiet`, in-place on a terminal, occasional lines otherwise.
    var progressMode: ProgressBar.Mode { ProgressBar.defaultMode(quiet: quiet) }

    /// A progress bar honouring these flags (see ``ProgressBar``).
    func progress(_ label: String, total: Int, unit: String = "it") -> ProgressBar {
        ProgressBar(label: label, total: total, unit: unit, mode: progressMode)
    }

    /// Bootstraps swift-log once per process (later calls do nothing) and returns the tool's logger.
    @discardableResult
    func bootstrapLogging() -> Logger {
        let level = logLevel
        LoggingBootstrap.once(level: level)
        var logger = Logger(label: "quantize")
        logger.logLevel = level
        return logger
    }
}

/// Guards `LoggingSystem.bootstrap`, which may run only once per process.
enum LoggingBootstrap {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var done = false

    static func once(level: Logger.Level) {
        lock.lock()
        defer { lock.unlock() }
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var h = StderrLogHandler(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// Writes log lines to stderr through ``Terminal/standardError`` so they do not garble a progress bar:
/// `warning: [Quant] layer blocks.11.mlp.fc2: SQNR 9.2 dB (bits=W4A4)`.
struct StderrLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .notice
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let m = event.metadata { all.merge(m) { $1 } }
        var line = "\(event.level): "
        if logLevel <= .debug { line += "[\(event.source)] " }
        line += event.message.description
        if !all.isEmpty {
            line += " (" + all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: ", ") + ")"
        }
        if let error = event.error { line += ": \(error)" }
        Terminal.standardError.printLine(line)
    }
}

/// `text` padded with spaces to `width` characters (longer text is kept whole). Foundation's `%-N@` does not pad on
/// Linux, so tables are padded here.
func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
