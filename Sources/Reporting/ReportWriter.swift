import FileOutput
import Foundation
import Quant

/// Why a report could not be written.
public enum ReportWriteError: Error, CustomStringConvertible, Equatable, Sendable {
    case notADirectory(String)

    public var description: String {
        switch self {
        case let .notADirectory(p): return "\(p): not a folder; reports are written into a folder"
        }
    }
}

/// Renders a ``QuantReport`` as the files of a report folder and writes them atomically.
///
/// Files: `report.md`, `report.csv`, `report.json`, `layers.csv`, `accuracy_vs_bits.svg`. All contents are rendered in
/// memory first, so a rendering problem writes nothing; each file is then replaced atomically (see ``AtomicFile``).
public struct ReportWriter: Sendable {
    /// File names, in the order they are written.
    public enum File: String, CaseIterable, Sendable {
        case markdown = "report.md"
        case csv = "report.csv"
        case json = "report.json"
        case layersCSV = "layers.csv"
        case plot = "accuracy_vs_bits.svg"
    }

    /// At most this many layers in the Markdown SQNR table (all of them are in `layers.csv`); `nil` for all.
    public var markdownLayerLimit: Int?

    public init(markdownLayerLimit: Int? = 25) {
        self.markdownLayerLimit = markdownLayerLimit
    }

    /// Renders every file's contents (no disk access).
    public func render(_ report: QuantReport) throws -> [File: Data] {
        [
            .markdown: Data(markdown(report).utf8),
            .csv: Data(ReportCSV.results(report).utf8),
            .json: try ReportJSON.encode(report),
            .layersCSV: Data(ReportCSV.layers(report).utf8),
            .plot: Data(AccuracyPlot(report: report).svg().utf8),
        ]
    }

    /// Writes all report files into `directory` (which must exist) and returns their URLs in ``File`` order.
    @discardableResult
    public func write(_ report: QuantReport, to directory: URL) throws -> [URL] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ReportWriteError.notADirectory(directory.path)
        }
        let files = try render(report)
        var urls: [URL] = []
        for f in File.allCases {
            let url = directory.appendingPathComponent(f.rawValue)
            try AtomicFile.write(files[f] ?? Data(), to: url)
            urls.append(url)
        }
        return urls
    }

    // MARK: Markdown

    /// The Markdown report: header with provenance, the results table, the plot, and the per-layer SQNR table.
    public func markdown(_ r: QuantReport) -> String {
        let m = r.metadata
        var out = "# Quantization report: \(MarkdownTable.escape(r.model))\n\n"
        var facts: [String] = []
        if let p = m.modelPath { facts.append("Model: `\(p)`") }
        facts.append("Evaluated on \(m.evaluationImages) image\(m.evaluationImages == 1 ? "" : "s")"
                     + (m.evaluationFolder.map { " from `\($0)`" } ?? ""))
        facts.append("Calibrated on \(m.calibrationImages) image\(m.calibrationImages == 1 ? "" : "s")"
                     + (m.calibrationFolder.map { " from `\($0)`" } ?? "") + " (sampling seed \(m.calibrationSeed))")
        out += facts.joined(separator: ". ") + ".\n\n"
        if !m.preprocessing.isEmpty {
            let spec = m.preprocessing.keys.sorted().map { "\($0) \(m.preprocessing[$0]!)" }.joined(separator: ", ")
            out += "Preprocessing (same for calibration and evaluation): \(spec).\n\n"
        }
        for note in m.notes { out += note + "\n\n" }
        out += "Float model: top-1 \(pct(r.float.top1)) %, top-5 \(pct(r.float.top5)) %. "
        out += "Produced by quantize \(m.toolVersion) on \(ReportJSON.isoDate(m.date)).\n\n"

        var t = MarkdownTable(header: ["Bits", "Method", "Top-1 (%)", "Top-5 (%)", "Drop vs float (pp)",
                                       "Agreement with float (%)", "Model size", "Calibration time"],
                              rightAligned: [false, false, true, true, true, true, true, true])
        for row in r.results {
            t.add([row.bits.description, row.method, row.top1.map(pct) ?? "–", row.top5.map(pct) ?? "–",
                   row.top1.map { signed(r.float.top1 - $0) } ?? "–", row.agreement.map(pct) ?? "–",
                   row.sizeBytes.map(byteSize) ?? "–", row.calibrationSeconds.map(duration) ?? "–"])
        }
        out += t.render() + "\n"
        out += "Drop = float top-1 minus quantized top-1 in percentage points (negative: the quantized model scored higher). "
        out += "Agreement = share of images where the quantized model's top-1 class equals the float model's. "
        out += "MB = 10^6 bytes.\n\n"
        out += "![Top-1 accuracy versus bits](\(File.plot.rawValue))\n\n"

        out += "## Per-layer output SQNR\n\n"
        out += layerSection(r)
        return out
    }

    /// The layer table: one row per layer, one SQNR column per setting, worst layers (lowest SQNR in any setting)
    /// first.
    func layerSection(_ r: QuantReport) -> String {
        if r.layers.isEmpty { return "No per-layer measurements in this run.\n" }
        // Settings in results order, then any only present in layers.
        var settings: [SettingKey] = []
        for x in r.results.map({ SettingKey(bits: $0.bits, method: $0.method) })
            + r.layers.map({ SettingKey(bits: $0.bits, method: $0.method) }) where !settings.contains(x)
        {
            settings.append(x)
        }
        let worst = r.layersWorstFirst
        var names: [String] = []
        var seen = Set<String>()
        for l in worst where seen.insert(l.name).inserted { names.append(l.name) }
        var value: [String: [SettingKey: Double?]] = [:]
        var ops: [String: String] = [:]
        for l in r.layers {
            value[l.name, default: [:]][SettingKey(bits: l.bits, method: l.method)] = .some(l.sqnrDB)
            if let op = l.op { ops[l.name] = op }
        }
        let shown = markdownLayerLimit.map { Array(names.prefix($0)) } ?? names
        var out = "Output SQNR of each quantized layer against the float model, in dB (higher is better; each bit "
        out += "removed costs about 6 dB). Worst layers first"
        out += shown.count < names.count ? " (\(shown.count) of \(names.count); all are in `\(File.layersCSV.rawValue)`).\n\n"
                                          : ".\n\n"
        let hasOps = !ops.isEmpty
        var t = MarkdownTable(header: ["Layer"] + (hasOps ? ["Op"] : []) + settings.map { "\($0.bits) \($0.method)" },
                              rightAligned: [false] + (hasOps ? [false] : []) + settings.map { _ in true })
        for name in shown {
            let cells = settings.map { s -> String in
                guard let v = value[name]?[s] else { return "" }
                return v.map(decibels) ?? "–"
            }
            t.add(["`\(name)`"] + (hasOps ? [ops[name] ?? ""] : []) + cells)
        }
        out += t.render() + "\n"
        out += "If a few layers sit far below the rest, keep them in float: rerun with `--keep-float PATTERN` "
        if let first = shown.first {
            out += "(for example `--keep-float '\(first)'`) "
        }
        out += "and compare the accuracy.\n"
        return out
    }

    struct SettingKey: Hashable { var bits: BitSetting; var method: String }
}

/// A GitHub-flavoured Markdown table with escaped cells.
public struct MarkdownTable: Sendable {
    public var header: [String]
    public var rightAligned: [Bool]
    public private(set) var rows: [[String]] = []

    public init(header: [String], rightAligned: [Bool]) {
        self.header = header
        self.rightAligned = rightAligned
    }

    public mutating func add(_ cells: [String]) { rows.append(cells) }

    /// Escapes `|`, backslashes and line breaks so a cell cannot break the table.
    public static func escape(_ s: String) -> String {
        var o = ""
        for ch in s {
            switch ch {
            case "|": o += "\\|"
            case "\\": o += "\\\\"
            case "\n", "\r", "\r\n": o += " "
            default: o.append(ch)
            }
        }
        return o
    }

    public func render() -> String {
        func line(_ cells: [String]) -> String {
            let padded = (0..<header.count).map { i in i < cells.count ? MarkdownTable.escape(cells[i]) : "" }
            return "| " + padded.joined(separator: " | ") + " |\n"
        }
        var s = line(header)
        s += "|" + (0..<header.count).map { i in (i < rightAligned.count && rightAligned[i]) ? "---:" : "---" }
            .joined(separator: "|") + "|\n"
        for r in rows { s += line(r) }
        return s
    }
}

// MARK: CSV

/// RFC 4180 CSV for the results and the layers.
public enum ReportCSV {
    /// Quotes a field when it holds a comma, quote, line break or leading/trailing space; doubles inner quotes.
    public static func field(_ s: String) -> String {
        let needs = s.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
            || s.first == " " || s.last == " "
        return needs ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func line(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") + "\n" }

    static func num(_ d: Double?) -> String {
        guard let d else { return "" }
        return d.isFinite ? formatShortest(d) : (d > 0 ? "inf" : d < 0 ? "-inf" : "nan")
    }

    /// `report.csv`: one row per method × bits with the float accuracy repeated, so a spreadsheet needs no lookups.
    public static func results(_ r: QuantReport) -> String {
        var s = line(["model", "bits", "weight_bits", "activation_bits", "method", "top1", "top5", "float_top1",
                      "float_top5", "drop_top1", "agreement", "size_bytes", "calibration_seconds"])
        for x in r.results {
            s += line([r.model, x.bits.description, String(x.bits.weightBits), String(x.bits.activationBits), x.method,
                       num(x.top1), num(x.top5), num(r.float.top1), num(r.float.top5),
                       num(x.top1.map { ((r.float.top1 - $0) * 1e6).rounded() / 1e6 }), num(x.agreement), x.sizeBytes.map(String.init) ?? "",
                       num(x.calibrationSeconds)])
        }
        return s
    }

    /// `layers.csv`: one row per layer × setting, worst SQNR first.
    public static func layers(_ r: QuantReport) -> String {
        var s = line(["name", "op", "bits", "method", "sqnr_db"])
        for l in r.layersWorstFirst {
            s += line([l.name, l.op ?? "", l.bits.description, l.method, num(l.sqnrDB)])
        }
        return s
    }
}

// MARK: JSON

/// `report.json`: the keys `model`, `float` {`top1`, `top5`}, `results` [{`bits`, `method`, `top1`, `top5`,
/// `agreement`, `size_bytes`, `calibration_seconds`}] and `layers` [{`name`, `bits`, `method`, `sqnr_db`}] are stable;
/// metadata sits beside them (`accuracy_unit`, `tool_version`, `date`, `model_path`, `preprocessing`, `calibration`
/// {`images`, `seed`, `folder`}, `evaluation` {`images`, `folder`}). Missing values are `null`, never absent.
public enum ReportJSON {
    public static func encode(_ r: QuantReport) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var d = try e.encode(Document(r))
        d.append(0x0A)
        return d
    }

    /// Reads a `report.json` back (for re-rendering or comparing runs). Unknown keys are ignored; metadata keys that
    /// are absent get neutral defaults.
    public static func decode(_ data: Data) throws -> QuantReport {
        try JSONDecoder().decode(Document.self, from: data).r
    }

    static func isoDate(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d)
    }

    static func finite(_ d: Double?) -> Double? { d.flatMap { $0.isFinite ? $0 : nil } }

    struct Document: Codable {
        let r: QuantReport
        init(_ r: QuantReport) { self.r = r }

        enum K: String, CodingKey {
            case model, float, results, layers
            case accuracyUnit = "accuracy_unit", toolVersion = "tool_version", date, modelPath = "model_path"
            case preprocessing, calibration, evaluation, notes
        }
        enum RK: String, CodingKey {
            case bits, method, top1, top5, agreement, sizeBytes = "size_bytes", calibrationSeconds = "calibration_seconds"
            case weightBits = "weight_bits", activationBits = "activation_bits"
        }
        enum LK: String, CodingKey { case name, bits, method, sqnrDB = "sqnr_db", op }
        enum CK: String, CodingKey { case images, seed, folder }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: K.self)
            var results: [ResultRow] = []
            var rs = try c.nestedUnkeyedContainer(forKey: .results)
            while !rs.isAtEnd {
                let o = try rs.nestedContainer(keyedBy: RK.self)
                results.append(ResultRow(
                    bits: try o.decode(BitSetting.self, forKey: .bits), method: try o.decode(String.self, forKey: .method),
                    top1: try o.decodeIfPresent(Double.self, forKey: .top1),
                    top5: try o.decodeIfPresent(Double.self, forKey: .top5),
                    agreement: try o.decodeIfPresent(Double.self, forKey: .agreement),
                    sizeBytes: try o.decodeIfPresent(Int.self, forKey: .sizeBytes),
                    calibrationSeconds: try o.decodeIfPresent(Double.self, forKey: .calibrationSeconds)))
            }
            var layers: [LayerRow] = []
            var ls = try c.nestedUnkeyedContainer(forKey: .layers)
            while !ls.isAtEnd {
                let o = try ls.nestedContainer(keyedBy: LK.self)
                layers.append(LayerRow(
                    name: try o.decode(String.self, forKey: .name), bits: try o.decode(BitSetting.self, forKey: .bits),
                    method: try o.decode(String.self, forKey: .method),
                    sqnrDB: try o.decodeIfPresent(Double.self, forKey: .sqnrDB),
                    op: try o.decodeIfPresent(String.self, forKey: .op)))
            }
            let cal = try? c.nestedContainer(keyedBy: CK.self, forKey: .calibration)
            let ev = try? c.nestedContainer(keyedBy: CK.self, forKey: .evaluation)
            let date = try c.decodeIfPresent(String.self, forKey: .date).flatMap { ISO8601DateFormatter().date(from: $0) }
            let meta = ReportMetadata(
                toolVersion: try c.decodeIfPresent(String.self, forKey: .toolVersion) ?? "unknown",
                date: date ?? Date(timeIntervalSince1970: 0),
                modelPath: try c.decodeIfPresent(String.self, forKey: .modelPath),
                preprocessing: try c.decodeIfPresent([String: ReportValue].self, forKey: .preprocessing) ?? [:],
                calibrationImages: try cal?.decodeIfPresent(Int.self, forKey: .images) ?? 0,
                calibrationSeed: try cal?.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0,
                calibrationFolder: try cal?.decodeIfPresent(String.self, forKey: .folder),
                evaluationImages: try ev?.decodeIfPresent(Int.self, forKey: .images) ?? 0,
                evaluationFolder: try ev?.decodeIfPresent(String.self, forKey: .folder),
                notes: try c.decodeIfPresent([String].self, forKey: .notes) ?? [])
            r = QuantReport(model: try c.decode(String.self, forKey: .model), float: try c.decode(Accuracy.self, forKey: .float),
                            results: results, layers: layers, metadata: meta)
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: K.self)
            let m = r.metadata
            try c.encode(r.model, forKey: .model)
            try c.encode(r.float, forKey: .float)
            var rs = c.nestedUnkeyedContainer(forKey: .results)
            for x in r.results {
                var o = rs.nestedContainer(keyedBy: RK.self)
                try o.encode(x.bits, forKey: .bits)
                try o.encode(x.method, forKey: .method)
                try o.encode(finite(x.top1), forKey: .top1)
                try o.encode(finite(x.top5), forKey: .top5)
                try o.encode(finite(x.agreement), forKey: .agreement)
                try o.encode(x.sizeBytes, forKey: .sizeBytes)
                try o.encode(finite(x.calibrationSeconds), forKey: .calibrationSeconds)
                try o.encode(x.bits.weightBits, forKey: .weightBits)
                try o.encode(x.bits.activationBits, forKey: .activationBits)
            }
            var ls = c.nestedUnkeyedContainer(forKey: .layers)
            for l in r.layersWorstFirst {
                var o = ls.nestedContainer(keyedBy: LK.self)
                try o.encode(l.name, forKey: .name)
                try o.encode(l.bits, forKey: .bits)
                try o.encode(l.method, forKey: .method)
                try o.encode(finite(l.sqnrDB), forKey: .sqnrDB)
                try o.encode(l.op, forKey: .op)
            }
            try c.encode("percent", forKey: .accuracyUnit)
            try c.encode(m.toolVersion, forKey: .toolVersion)
            try c.encode(isoDate(m.date), forKey: .date)
            try c.encode(m.modelPath, forKey: .modelPath)
            try c.encode(m.preprocessing, forKey: .preprocessing)
            var cal = c.nestedContainer(keyedBy: CK.self, forKey: .calibration)
            try cal.encode(m.calibrationImages, forKey: .images)
            try cal.encode(m.calibrationSeed, forKey: .seed)
            try cal.encode(m.calibrationFolder, forKey: .folder)
            var ev = c.nestedContainer(keyedBy: CK.self, forKey: .evaluation)
            try ev.encode(m.evaluationImages, forKey: .images)
            try ev.encode(m.evaluationFolder, forKey: .folder)
            if !m.notes.isEmpty { try c.encode(m.notes, forKey: .notes) }
        }
    }
}

// MARK: Number formatting for tables

func pct(_ d: Double) -> String { d.isFinite ? formatFixed(d, 2) : "–" }

func signed(_ d: Double) -> String {
    guard d.isFinite else { return "–" }
    let s = formatFixed(d, 2)
    return s == "-0.00" ? "0.00" : s
}

func decibels(_ d: Double) -> String {
    d.isFinite ? formatFixed(d, 1) : (d > 0 ? "inf" : "–")
}

/// `5.71 MB`, `812 kB`, `900 B` (decimal units).
func byteSize(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return formatFixed(d / 1e9, 2) + " GB" }
    if d >= 1e6 { return formatFixed(d / 1e6, 2) + " MB" }
    if d >= 1e3 { return formatFixed(d / 1e3, 1) + " kB" }
    return "\(n) B"
}

/// `0.8 s`, `42 s`, `3 min 05 s`, `1 h 02 min`.
func duration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "–" }
    if s < 10 { return formatFixed(s, 1) + " s" }
    let t = Int(s.rounded())
    if t < 60 { return "\(t) s" }
    if t < 3600 { return "\(t / 60) min \(String(format: "%02d", t % 60)) s" }
    return "\(t / 3600) h \(String(format: "%02d", (t % 3600) / 60)) min"
}
