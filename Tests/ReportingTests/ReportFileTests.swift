import FileOutput
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Reporting
import Quant

@Suite struct ReportFileTests {
    @Test func jsonHasTheStableKeys() throws {
        let data = try ReportJSON.encode(sampleReport())
        let root = try #require(try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any])
        for key in ["model", "float", "results", "layers"] { #expect(root[key] != nil, "missing \(key)") }
        for key in ["tool_version", "date", "preprocessing", "calibration", "evaluation", "accuracy_unit"] {
            #expect(root[key] != nil, "missing metadata \(key)")
        }
        let float = try #require(root["float"] as? [String: Any])
        #expect(Set(float.keys) == ["top1", "top5"])
        #expect(float["top1"] as? Double == 82.6)
        let results = try #require(root["results"] as? [[String: Any]])
        #expect(results.count == 5)
        let required: Set = ["bits", "method", "top1", "top5", "agreement", "size_bytes", "calibration_seconds"]
        for r in results { #expect(required.isSubset(of: Set(r.keys)), "result keys \(r.keys.sorted())") }
        #expect(results[0]["bits"] as? String == "W8A8")
        #expect(results[0]["size_bytes"] as? Int == 5_900_000)
        #expect(results[3]["top1"] is NSNull, "a missing value is null, not absent")
        let layers = try #require(root["layers"] as? [[String: Any]])
        for l in layers { #expect(Set(["name", "bits", "method", "sqnr_db"]).isSubset(of: Set(l.keys))) }
        #expect(layers.first?["name"] as? String == "blocks.11.mlp.fc2", "worst layer first")
        #expect(layers.contains { $0["sqnr_db"] is NSNull }, "infinite and missing SQNR are null")
        let cal = try #require(root["calibration"] as? [String: Any])
        #expect(cal["images"] as? Int == 32 && cal["seed"] as? Int == 7)
        let pre = try #require(root["preprocessing"] as? [String: Any])
        #expect(pre["interpolation"] as? String == "bicubic")
        #expect(root["date"] as? String == "2026-09-21T14:13:20Z")
    }

    @Test func csvEscapesFields() {
        #expect(ReportCSV.field("plain") == "plain")
        #expect(ReportCSV.field("a,b") == "\"a,b\"")
        #expect(ReportCSV.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(ReportCSV.field("two\nlines") == "\"two\nlines\"")
        #expect(ReportCSV.field(" padded") == "\" padded\"")
    }

    @Test func layersCSVRoundTripsAndSortsWorstFirst() throws {
        let rows = parseCSV(ReportCSV.layers(sampleReport()))
        #expect(rows.first == ["name", "op", "bits", "method", "sqnr_db"])
        #expect(rows.count == 6)
        #expect(rows[1] == ["blocks.11.mlp.fc2", "MatMul", "W4A4", "adalog", "9.25"])
        #expect(rows[2][0] == "head|weird,\"name\"", "quoted name survives the round trip")
        #expect(rows[3][4] == "38.5")
        #expect(rows[4][4] == "inf")
        #expect(rows[5][4] == "", "unmeasured last and empty")
    }

    @Test func resultsCSVHasOneRowPerResult() throws {
        let rows = parseCSV(ReportCSV.results(sampleReport()))
        let header = try #require(rows.first)
        #expect(rows.count == 6)
        #expect(rows.allSatisfy { $0.count == header.count })
        let drop = try #require(header.firstIndex(of: "drop_top1"))
        #expect(Double(rows[1][drop]).map { abs($0 - 0.5) < 1e-9 } == true)
        #expect(rows[4][drop] == "")
    }

    @Test func markdownTablesHaveConsistentShape() throws {
        let md = ReportWriter().markdown(sampleReport())
        let lines = md.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Group consecutive table lines.
        var tables: [[String]] = [], cur: [String] = []
        for l in lines + [""] {
            if l.hasPrefix("|") { cur.append(l) } else if !cur.isEmpty { tables.append(cur); cur = [] }
        }
        #expect(tables.count == 2)
        func cells(_ l: String) -> Int {
            // Count unescaped pipes.
            var n = 0, prev: Character = " "
            for c in l { if c == "|" && prev != "\\" { n += 1 }; prev = c }
            return n - 1
        }
        for t in tables {
            let width = cells(t[0])
            #expect(t.count >= 3)
            #expect(t.allSatisfy { cells($0) == width }, "ragged table:\n\(t.joined(separator: "\n"))")
            #expect(t[1].allSatisfy { "|-: ".contains($0) })
        }
        let results = tables[0]
        #expect(results[0].contains("Drop vs float") && results[0].contains("Agreement with float"))
        #expect(results.count == 2 + 5)
        #expect(results[2].hasPrefix("| W8A8 | adalog | 82.10 | 96.00 | 0.50 | 97.50 | 5.90 MB | 13 s |"))
        #expect(results[5].contains("| – |"), "missing values show a dash")
        #expect(tables[1][2].contains("blocks.11.mlp.fc2"), "worst layer first")
        #expect(md.contains("--keep-float"))
        #expect(md.contains("accuracy_vs_bits.svg"))
        #expect(md.contains("seed 7"))
    }

    @Test func markdownLayerLimitPointsToCSV() {
        let md = ReportWriter(markdownLayerLimit: 1).markdown(sampleReport())
        #expect(md.contains("1 of 4"))
        #expect(md.contains("layers.csv"))
    }

    @Test func markdownEscapesPipes() {
        #expect(MarkdownTable.escape("a|b\nc") == "a\\|b c")
    }

    @Test func writesAllFilesAndNoTemporaries() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let urls = try ReportWriter().write(sampleReport(), to: dir)
        #expect(urls.map(\.lastPathComponent) == ["report.md", "report.csv", "report.json", "layers.csv", "accuracy_vs_bits.svg"])
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == ["accuracy_vs_bits.svg", "layers.csv", "report.csv", "report.json", "report.md"])
        let json = try Data(contentsOf: dir.appendingPathComponent("report.json"))
        #expect(try JSONSerialization.jsonObject(with: json) is [String: Any])
    }

    @Test func writeIntoMissingFolderFails() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: ReportWriteError.notADirectory(dir.appendingPathComponent("nope").path)) {
            try ReportWriter().write(sampleReport(), to: dir.appendingPathComponent("nope"))
        }
    }
}

@Suite struct AtomicFileTests {
    struct Boom: Error {}

    @Test func failedProducerKeepsPreviousFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("report.json")
        try AtomicFile.write(Data("old".utf8), to: url)
        #expect(throws: AtomicWriteError.self) {
            try AtomicFile.write(to: url) { throw Boom() }
        }
        #expect(try String(contentsOf: url, encoding: .utf8) == "old")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report.json"])
    }

    @Test func failedRenameRemovesTemporary() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The destination is a non-empty folder, so rename(2) fails after the temporary file was written.
        let target = dir.appendingPathComponent("report.md")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: target.appendingPathComponent("inside.txt"))
        #expect(throws: AtomicWriteError.self) { try AtomicFile.write(Data("new".utf8), to: target) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report.md"])
        #expect(try String(contentsOf: target.appendingPathComponent("inside.txt"), encoding: .utf8) == "keep")
    }

    @Test func replacesContents() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("a.csv")
        try AtomicFile.write(Data("one".utf8), to: url)
        try AtomicFile.write(Data("two".utf8), to: url)
        #expect(try String(contentsOf: url, encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["a.csv"])
    }
}

/// Collects element names and text of an SVG with XMLParser, failing on malformed XML.
final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []
    private var buffer = ""
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append((name, attributes))
        buffer = ""
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) { buffer += string }
    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        let t = buffer.trimmingCharacters(in: .whitespacesAndNewlines)
        if !t.isEmpty { texts.append(t) }
        buffer = ""
    }

    static func parse(_ svg: String) throws -> SVGCollector {
        let c = SVGCollector()
        let p = XMLParser(data: Data(svg.utf8))
        p.delegate = c
        let ok = p.parse()
        try #require(ok, "SVG is not well-formed XML: \(p.parserError.map { "\($0)" } ?? "?")")
        return c
    }
}

@Suite struct AccuracyPlotTests {
    @Test func svgIsWellFormedWithSeriesLegendAndFloatLine() throws {
        let svg = AccuracyPlot(report: sampleReport(model: "vit <tiny> & co")).svg()
        let c = try SVGCollector.parse(svg)
        #expect(c.elements.first?.name == "svg")
        let series = c.elements.filter { $0.name == "g" && $0.attributes["class"] == "series" }
        #expect(series.map { $0.attributes["data-method"] } == ["adalog", "uniform-minmax"])
        #expect(c.texts.contains("float 82.6 %"))
        #expect(c.texts.contains("Top-1 accuracy (%)"))
        #expect(c.texts.contains { $0.contains("vit <tiny> & co") }, "title with the escaped model name")
        #expect(c.texts.contains("adalog"))
        #expect(c.texts.contains("uniform-minmax (no value: W4A4)"), "legend names the missing value")
        // x ticks: the bit widths present, numerically ordered.
        let ticks = c.texts.filter { ["3", "4", "8"].contains($0) }
        #expect(ticks == ["3", "4", "8"])
        #expect(c.elements.contains { $0.attributes["stroke-dasharray"] == "7 4" }, "dashed float reference")
        // The missing W4A4 breaks uniform-minmax's line: two points on each side would be one polyline otherwise.
        #expect(c.elements.filter { $0.name == "polyline" }.count == 1, "adalog line only; uniform has isolated points")
    }

    @Test func handlesOnePointNoResultsAndManyMethods() throws {
        var r = sampleReport()
        r.results = [r.results[0]]
        _ = try SVGCollector.parse(AccuracyPlot(report: r).svg())
        r.results = []
        let empty = try SVGCollector.parse(AccuracyPlot(report: r).svg())
        #expect(empty.texts.contains("no quantized results"))
        r.results = (0..<12).flatMap { i in
            [8, 4].map { b in
                ResultRow(bits: setting(b), method: "m\(i)", top1: Double(50 + i + b), top5: nil, agreement: nil,
                          sizeBytes: nil, calibrationSeconds: nil)
            }
        }
        let many = try SVGCollector.parse(AccuracyPlot(report: r).svg())
        #expect(many.elements.filter { $0.attributes["class"] == "series" }.count == 12)
        let strokes = Set(many.elements.filter { $0.name == "polyline" }.map {
            ($0.attributes["stroke"] ?? "") + ($0.attributes["stroke-dasharray"] ?? "")
        })
        #expect(strokes.count == 12, "every method has its own colour/dash combination")
    }

    @Test func niceTicks() {
        #expect(AccuracyPlot.niceStep(100) == 20)
        #expect(AccuracyPlot.niceStep(3) == 1)
        #expect(AccuracyPlot.niceStep(2) == 0.5)
        let y = AccuracyPlot.yAxis(values: [0, 82.6])
        #expect(y.lo == 0 && y.hi == 100 && y.step == 20)
        let z = AccuracyPlot.yAxis(values: [79.4, 79.9])
        #expect(z.lo <= 79.4 && z.hi >= 79.9 && z.hi - z.lo <= 3)
    }
}

@Suite struct JSONRoundTripTests {
    @Test func decodeGivesBackTheReport() throws {
        let original = sampleReport()
        let back = try ReportJSON.decode(try ReportJSON.encode(original))
        #expect(back.model == original.model)
        #expect(back.float == original.float)
        #expect(back.results == original.results)
        #expect(back.metadata == original.metadata)
        // Layers come back worst first; the infinite SQNR is stored as null.
        #expect(back.layers.map(\.name) == original.layersWorstFirst.map(\.name))
        #expect(back.layers.first { $0.name == "patch_embed.proj" }?.sqnrDB == nil)
    }

    @Test func badBitsInJSONIsADecodingError() {
        let json = #"{"model":"m","float":{"top1":1,"top5":2},"results":[{"bits":"W9A9","method":"x"}],"layers":[]}"#
        #expect(throws: DecodingError.self) { try ReportJSON.decode(Data(json.utf8)) }
    }
}
