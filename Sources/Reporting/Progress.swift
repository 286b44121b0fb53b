import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The diagnostic stream (stderr) shared by progress bars and log lines.
///
/// On a terminal it keeps one status line (the active progress bar) at the bottom: ``printLine(_:)`` clears the
/// status, prints the line and redraws the status, so log messages and bars do not garble each other. Thread-safe.
public final class Terminal: @unchecked Sendable {
    /// stderr, a terminal when `isatty(STDERR_FILENO)` says so.
    public static let standardError: Terminal = {
        let fd = STDERR_FILENO
        return Terminal(isTTY: isatty(fd) == 1, width: nil) { s in
            s.utf8CString.withUnsafeBufferPointer { p in
                var off = 0
                let total = p.count - 1
                while off < total {
                    let k = Terminal.sysWrite(fd, UnsafeRawPointer(p.baseAddress! + off), total - off)
                    if k < 0 { if errno == EINTR { continue } else { return } }
                    off += k
                }
            }
        }
    }()

    /// Whether in-place redraws are possible.
    public let isTTY: Bool
    private let fixedWidth: Int?
    private let sink: @Sendable (String) -> Void
    private let lock = NSLock()
    private var status: String?

    /// A terminal writing through `write`; `width` nil asks the OS (TIOCGWINSZ on stderr, else 80 columns).
    public init(isTTY: Bool, width: Int? = 80, write: @escaping @Sendable (String) -> Void) {
        self.isTTY = isTTY
        self.fixedWidth = width
        self.sink = write
    }

    /// Columns available for a status line.
    public var width: Int {
        if let fixedWidth { return fixedWidth }
        var w = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &w) == 0, w.ws_col > 0 { return Int(w.ws_col) }
        return 80
    }

    /// Prints a whole line (a newline is added), keeping the status line below it on a terminal.
    public func printLine(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        if isTTY, status != nil { sink("\r\u{1B}[K") }
        sink(line + "\n")
        if isTTY, let status { sink(status) }
    }

    /// Replaces the status line in place (terminals only; ignored otherwise). `nil` clears it.
    public func setStatus(_ line: String?) {
        guard isTTY else { return }
        lock.lock()
        defer { lock.unlock() }
        sink("\r\u{1B}[K" + (line ?? ""))
        status = line
    }

    /// Ends the status line, leaving its last text on screen.
    public func commitStatus() {
        guard isTTY else { return }
        lock.lock()
        defer { lock.unlock() }
        if status != nil { sink("\n") }
        status = nil
    }

    static func sysWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, p, n)
        #elseif canImport(Musl)
        return Musl.write(fd, p, n)
        #else
        return Darwin.write(fd, p, n)
        #endif
    }
}

/// A progress bar for long work (calibration images, per-layer searches, evaluation), e.g.
/// `Calibrating  [##########..........]  120/500  24%  31.2 img/s  ETA 0:12`.
///
/// On a terminal it redraws in place at most every ``minimumInterval`` seconds; when stderr is not a terminal it
/// prints a plain line at most every ``plainInterval`` seconds (so short tasks print nothing and CI logs stay short);
/// in ``Mode/silent`` (`--quiet`) it prints nothing. All methods are thread-safe, so worker threads can call
/// ``advance(by:)`` directly.
public final class ProgressBar: @unchecked Sendable {
    public enum Mode: Sendable, Equatable {
        /// Redraw in place (needs a terminal).
        case interactive
        /// Occasional plain lines.
        case plain
        /// Print nothing.
        case silent
    }

    /// The mode a bar gets by default: silent when `quiet`, interactive on a terminal, otherwise plain.
    public static func defaultMode(quiet: Bool, terminal: Terminal = .standardError) -> Mode {
        quiet ? .silent : terminal.isTTY ? .interactive : .plain
    }

    public let total: Int
    public let unit: String
    public let mode: Mode
    /// Seconds between in-place redraws on a terminal.
    public let minimumInterval: Double
    /// Seconds between plain lines when stderr is not a terminal (none before this much time has passed).
    public let plainInterval: Double

    private let terminal: Terminal
    private let clock: @Sendable () -> Double
    private let lock = NSLock()
    private var label: String
    private var done = 0
    private let start: Double
    private var lastDraw = -Double.infinity
    private var finished = false
    private var printedPlain = false

    /// - Parameters:
    ///   - label: what is being done ("Calibrating", "Evaluating W4A4 adalog").
    ///   - total: number of items; 0 or less shows a counter without percentage or ETA.
    ///   - unit: item unit for the rate ("img", "layer").
    ///   - mode: defaults to ``defaultMode(quiet:terminal:)`` with `quiet` false.
    ///   - minimumInterval: seconds between redraws on a terminal.
    ///   - plainInterval: seconds between plain lines in logs.
    ///   - clock: seconds from any fixed origin (injectable for tests).
    public init(label: String, total: Int, unit: String = "it", mode: Mode? = nil, terminal: Terminal = .standardError,
                minimumInterval: Double = 0.1, plainInterval: Double = 30,
                clock: @escaping @Sendable () -> Double = { ProcessInfo.processInfo.systemUptime })
    {
        self.minimumInterval = minimumInterval
        self.plainInterval = plainInterval
        self.label = label
        self.total = total
        self.unit = unit
        self.terminal = terminal
        self.mode = mode.map { $0 == .interactive && !terminal.isTTY ? .plain : $0 } ?? ProgressBar.defaultMode(quiet: false, terminal: terminal)
        self.clock = clock
        self.start = clock()
    }

    /// Items done so far.
    public var completed: Int { lock.withLock { done } }

    /// Marks `count` more items done.
    public func advance(by count: Int = 1) {
        lock.withLock {
            done += count
            maybeDraw(force: false)
        }
    }

    /// Sets the number of items done.
    public func update(completed: Int) {
        lock.withLock {
            done = completed
            maybeDraw(force: false)
        }
    }

    /// Changes the label (e.g. to name the current layer) without counting an item.
    public func setLabel(_ text: String) {
        lock.withLock {
            label = text
            maybeDraw(force: false)
        }
    }

    /// Draws the final state and ends the bar's line. On a non-terminal, prints a summary line only if the work ran
    /// long enough to print progress lines. Later calls do nothing.
    public func finish() {
        lock.withLock {
            guard !finished else { return }
            finished = true
            switch mode {
            case .silent: return
            case .interactive:
                terminal.setStatus(render(now: clock(), width: terminal.width))
                terminal.commitStatus()
            case .plain:
                if printedPlain { terminal.printLine(plainLine(now: clock(), final: true)) }
            }
        }
    }

    private func maybeDraw(force: Bool) {
        guard !finished, mode != .silent else { return }
        let now = clock()
        switch mode {
        case .interactive:
            guard force || now - lastDraw >= minimumInterval || (total > 0 && done >= total) else { return }
            lastDraw = now
            terminal.setStatus(render(now: now, width: terminal.width))
        case .plain:
            guard now - start >= plainInterval, now - lastDraw >= plainInterval else { return }
            lastDraw = now
            printedPlain = true
            terminal.printLine(plainLine(now: now, final: false))
        case .silent:
            return
        }
    }

    /// Rate and ETA text: `31.2 img/s  ETA 0:12`.
    private func stats(now: Double) -> (rate: String, eta: String?) {
        let elapsed = max(now - start, 1e-9)
        let r = Double(done) / elapsed
        let rate = done == 0 ? "– \(unit)/s"
            : r >= 1 ? "\(formatFixed(r, r >= 100 ? 0 : 1)) \(unit)/s" : "\(formatFixed(1 / r, 1)) s/\(unit)"
        guard total > 0, done > 0, done < total else { return (rate, nil) }
        return (rate, ProgressBar.clockText(Double(total - done) / r))
    }

    /// `m:ss` or `h:mm:ss`.
    static func clockText(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let t = Int(seconds.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, (t % 3600) / 60, t % 60)
                         : String(format: "%d:%02d", t / 60, t % 60)
    }

    /// The in-place line for a terminal `width` columns wide.
    func render(now: Double, width: Int) -> String {
        let (rate, eta) = stats(now: now)
        let count = total > 0 ? "\(done)/\(total)" : "\(done)"
        var tail = "  \(count)"
        if total > 0 { tail += "  \(Int((Double(min(done, total)) / Double(total) * 100).rounded(.down)))%" }
        tail += "  \(rate)"
        if let eta { tail += "  ETA \(eta)" } else if total > 0, done >= total {
            tail += "  in \(ProgressBar.clockText(now - start))"
        }
        var name = label
        let maxLabel = max(8, width / 3)
        if name.count > maxLabel { name = String(name.prefix(maxLabel - 1)) + "…" }
        let barWidth = min(30, width - name.count - tail.count - 5)
        var line = name
        if total > 0, barWidth >= 8 {
            let filled = Int(Double(barWidth) * Double(min(done, total)) / Double(total))
            line += "  [" + String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled) + "]"
        }
        line += tail
        return line.count >= width ? String(line.prefix(max(1, width - 1))) : line
    }

    /// A line for logs: `Calibrating: 120/500 (24%), 31.2 img/s, ETA 0:12`.
    func plainLine(now: Double, final: Bool) -> String {
        let (rate, eta) = stats(now: now)
        var s = "\(label): \(done)" + (total > 0 ? "/\(total) (\(Int((Double(min(done, total)) / Double(total) * 100).rounded(.down)))%)" : "")
        s += ", \(rate)"
        if final { s += ", done in \(ProgressBar.clockText(now - start))" } else if let eta { s += ", ETA \(eta)" }
        return s
    }
}
