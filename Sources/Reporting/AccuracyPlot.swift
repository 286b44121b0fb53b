import Foundation
import Quant

/// The `accuracy_vs_bits.svg` figure: top-1 accuracy (%) against bit width, one line with markers per method, the
/// float model as a dashed reference line, written as plain SVG 1.1 with no dependencies.
///
/// Layout rules: the x axis places the bit widths present at their numeric positions (3, 4, 6, 8); the y axis uses
/// 1-2-5 tick steps covering the data and the float level (clamped to 0...100); missing values leave a gap in the
/// line; colours are the Okabe–Ito colour-blind-safe palette and each method also gets its own marker shape (and,
/// past eight methods, its own dash pattern), so the figure also reads in greyscale. The legend goes into the first
/// plot corner it does not cover data in, otherwise to the right of the plot.
public struct AccuracyPlot: Sendable {
    public var report: QuantReport
    /// Overall size in CSS pixels (the legend may widen it).
    public var width: Double = 720
    public var height: Double = 450

    public init(report: QuantReport) { self.report = report }

    /// Okabe & Ito (2008) colours minus yellow (too light on white).
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
    static let dashes = ["", "6 3", "2 3", "8 3 2 3"]
    static let font = "DejaVu Sans, Helvetica, Arial, sans-serif"

    /// One plotted method: its points in x order, `nil` y for a missing value.
    struct Series {
        var method: String
        var points: [(x: Double, y: Double?, label: String)]
    }

    /// Where a bit setting sits on the x axis: the bit width when weights and activations match, else the weight bits.
    static func xPosition(_ b: BitSetting) -> Double { Double(b.weightBits) }

    func series() -> [Series] {
        report.methods.map { m in
            let rows = report.results.filter { $0.method == m }.sorted { $0.bits < $1.bits }
            return Series(method: m, points: rows.map { r in
                (AccuracyPlot.xPosition(r.bits), r.top1.flatMap { $0.isFinite ? $0 : nil }, r.bits.description)
            })
        }
    }

    /// 1-2-5 "nice" step for about `target` intervals over `span`.
    static func niceStep(_ span: Double, target: Double = 5) -> Double {
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / target
        let mag = pow(10, floor(log10(raw)))
        let f = raw / mag
        let nice: Double = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10
        return nice * mag
    }

    /// The y range and tick step for the values (percent).
    static func yAxis(values: [Double]) -> (lo: Double, hi: Double, step: Double) {
        let finite = values.filter(\.isFinite)
        var lo = finite.min() ?? 0, hi = finite.max() ?? 100
        if hi - lo < 2 { let c = (hi + lo) / 2; lo = c - 1; hi = c + 1 }
        let step = niceStep(hi - lo)
        lo = max(0, floor(lo / step) * step)
        hi = min(100, ceil(hi / step) * step)
        if hi <= lo { hi = lo + step }
        return (lo, hi, step)
    }

    static func decimals(for step: Double) -> Int { max(0, Int(-floor(log10(step) + 1e-9))) }

    /// The SVG document.
    public func svg() -> String {
        let all = series()
        let settings = Set(report.results.map(\.bits))
        let mixed = settings.contains { $0.weightBits != $0.activationBits }
        var xs = Array(Set(settings.map(AccuracyPlot.xPosition))).sorted()
        if xs.isEmpty { xs = [8] }
        var tickLabel: [Double: String] = [:]
        for x in xs {
            let here = settings.filter { AccuracyPlot.xPosition($0) == x }.sorted()
            tickLabel[x] = mixed ? here.map(\.description).joined(separator: "/") : formatShortest(x)
        }

        let floatTop1 = report.float.top1.isFinite ? report.float.top1 : nil
        let values = all.flatMap { $0.points.compactMap(\.y) } + (floatTop1.map { [$0] } ?? [])
        var (lo, hi, step) = AccuracyPlot.yAxis(values: values)

        // Frame.
        let left = 72.0, top = 58.0, bottom = 62.0
        var right = 24.0
        var W = width
        let H = height
        let legendEntries = all.count
        let legendRow = 20.0, legendFont = 13.0
        let legendText = all.map { ser -> String in
            let missing = ser.points.filter { $0.y == nil }.map(\.label)
            return missing.isEmpty ? ser.method : "\(ser.method) (no value: \(missing.joined(separator: ", ")))"
        }
        let legendTextW = (legendText.map { Double($0.count) }.max() ?? 0) * legendFont * 0.62
        let legendW = 16 + 30 + 8 + legendTextW + 12
        let legendH = Double(legendEntries) * legendRow + 12

        func layout() -> (pl: Double, pr: Double, pt: Double, pb: Double) {
            (left, W - right, top, H - bottom)
        }
        var (pl, pr, pt, pb) = layout()
        let inset = 10.0
        let xmin = (xs.first ?? 8) - (xs.count == 1 ? 1 : 0.5)
        let xmax = (xs.last ?? 8) + (xs.count == 1 ? 1 : 0.5)
        func px(_ x: Double) -> Double { pl + (x - xmin) / (xmax - xmin) * (pr - pl) }
        func py(_ y: Double) -> Double { (pb - inset) - (y - lo) / (hi - lo) * ((pb - inset) - (pt + inset)) }

        // Leave room above the float line for its label.
        if let f = floatTop1 {
            while py(f) - pt < 22, hi < 100 { hi = min(100, hi + step) }
            if (hi - lo) / step > 8 { step = AccuracyPlot.niceStep(hi - lo); lo = floor(lo / step) * step; hi = ceil(hi / step) * step }
        }

        // Legend placement: first free corner inside the plot, else outside on the right.
        func obstacles() -> [(Double, Double)] {
            var pts: [(Double, Double)] = []
            for s in all {
                var prev: (Double, Double)?
                for p in s.points {
                    guard let y = p.y else { prev = nil; continue }
                    let cur = (px(p.x), py(y))
                    if let a = prev {
                        let n = max(1, Int(hypot(cur.0 - a.0, cur.1 - a.1) / 4))
                        for i in 0...n {
                            let t = Double(i) / Double(n)
                            pts.append((a.0 + (cur.0 - a.0) * t, a.1 + (cur.1 - a.1) * t))
                        }
                    } else {
                        pts.append(cur)
                    }
                    prev = cur
                }
            }
            if let f = floatTop1 {
                for x in stride(from: pl, through: pr, by: 4) { pts.append((x, py(f))) }
                // The float label above the line at the left.
                let ly = py(f) - pt >= 20 ? py(f) - 10 : py(f) + 12
                for x in stride(from: pl, through: pl + 110, by: 4) { pts.append((x, ly)) }
            }
            return pts
        }
        var legendOrigin: (Double, Double)?
        if legendEntries > 0 {
            let pad = 8.0, margin = 8.0
            let candidates = [
                (pr - legendW - pad, pb - legendH - pad), (pl + pad, pb - legendH - pad),
                (pr - legendW - pad, pt + pad), (pl + pad, pt + pad),
                (pr - legendW - pad, (pt + pb - legendH) / 2), (pl + pad, (pt + pb - legendH) / 2),
            ]
            let obs = obstacles()
            let fits = legendW + 2 * pad < pr - pl && legendH + 2 * pad < pb - pt
            if fits {
                legendOrigin = candidates.first { c in
                    !obs.contains { o in
                        o.0 > c.0 - margin && o.0 < c.0 + legendW + margin && o.1 > c.1 - margin && o.1 < c.1 + legendH + margin
                    }
                }
            }
            if legendOrigin == nil {
                W = width + legendW + 16
                right = legendW + 32
                (pl, pr, pt, pb) = layout()
                legendOrigin = (pr + 16, pt)
            }
        }

        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(n(W))" height="\(n(H))" viewBox="0 0 \(n(W)) \(n(H))" \
        font-family="\(AccuracyPlot.font)" font-size="13">

        """
        s += "<title>\(esc("Top-1 accuracy versus bit width: \(report.model)"))</title>\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(n(W))\" height=\"\(n(H))\" fill=\"#ffffff\"/>\n"

        // Title and subtitle.
        s += text(x: W / 2, y: 24, "Top-1 accuracy vs. bit width: \(report.model)", size: 17, anchor: "middle", weight: "bold")
        let m = report.metadata
        s += text(x: W / 2, y: 43,
                  "\(m.evaluationImages) evaluation images, \(m.calibrationImages) calibration images (seed \(m.calibrationSeed))",
                  size: 12, anchor: "middle", fill: "#555555")

        // Grid and y ticks.
        let dec = AccuracyPlot.decimals(for: step)
        s += "<g class=\"y-axis\">\n"
        var v = lo
        while v <= hi + step * 1e-6 {
            let y = py(v)
            s += "<line x1=\"\(n(pl))\" y1=\"\(n(y))\" x2=\"\(n(pr))\" y2=\"\(n(y))\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n"
            s += "<line x1=\"\(n(pl - 5))\" y1=\"\(n(y))\" x2=\"\(n(pl))\" y2=\"\(n(y))\" stroke=\"#333333\" stroke-width=\"1\"/>\n"
            s += text(x: pl - 8, y: y + 4.5, formatFixed(v, dec), size: 13, anchor: "end")
            v += step
        }
        s += "</g>\n"
        // x ticks.
        s += "<g class=\"x-axis\">\n"
        for x in xs where !settings.isEmpty {
            let X = px(x)
            s += "<line x1=\"\(n(X))\" y1=\"\(n(pb))\" x2=\"\(n(X))\" y2=\"\(n(pb + 5))\" stroke=\"#333333\" stroke-width=\"1\"/>\n"
            s += text(x: X, y: pb + 20, tickLabel[x] ?? formatShortest(x), size: 13, anchor: "middle")
        }
        s += "</g>\n"
        // Axes frame (left and bottom spines).
        s += "<path d=\"M\(n(pl)) \(n(pt)) V\(n(pb)) H\(n(pr))\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1.2\"/>\n"
        // Axis titles.
        let xTitle = mixed ? "Weight bit width (labels: W weight bits, A activation bits)" : "Bits per weight and per activation"
        s += text(x: (pl + pr) / 2, y: H - 16, xTitle, size: 14, anchor: "middle")
        let cy = (pt + pb) / 2
        s += "<text x=\"20\" y=\"\(n(cy))\" font-size=\"14\" text-anchor=\"middle\" fill=\"#222222\" "
            + "transform=\"rotate(-90 20 \(n(cy)))\">Top-1 accuracy (%)</text>\n"

        // Float reference.
        if let f = floatTop1 {
            let y = py(f)
            s += "<g class=\"float-reference\">\n"
            s += "<line x1=\"\(n(pl))\" y1=\"\(n(y))\" x2=\"\(n(pr))\" y2=\"\(n(y))\" stroke=\"#444444\" stroke-width=\"1.5\" stroke-dasharray=\"7 4\"/>\n"
            // Above the line when there is room, else just below it.
            let labelY = y - pt >= 20 ? y - 6 : y + 17
            s += text(x: pl + 6, y: labelY, "float \(formatFixed(f, 1)) %", size: 13, anchor: "start", fill: "#333333")
            s += "</g>\n"
        }

        // Markers that would sit on top of each other at the same bit width are spread sideways.
        var dodge: [Int: [Int: Double]] = [:]  // series -> point index -> pixel offset
        for x in xs {
            var here: [(s: Int, p: Int, y: Double)] = []
            for (si, ser) in all.enumerated() {
                for (pi, p) in ser.points.enumerated() where p.x == x { if let y = p.y { here.append((si, pi, py(y))) } }
            }
            here.sort { $0.y < $1.y }
            var i = 0
            while i < here.count {
                var j = i
                while j + 1 < here.count, here[j + 1].y - here[j].y < 7 { j += 1 }
                let k = j - i + 1
                if k > 1 {
                    for (o, e) in here[i...j].enumerated() { dodge[e.s, default: [:]][e.p] = (Double(o) - Double(k - 1) / 2) * 9 }
                }
                i = j + 1
            }
        }

        // Series.
        let pal = AccuracyPlot.palette
        for (i, ser) in all.enumerated() {
            let colour = pal[i % pal.count]
            let dash = AccuracyPlot.dashes[(i / pal.count) % AccuracyPlot.dashes.count]
            let shape = i % Marker.allCases.count
            s += "<g class=\"series\" data-method=\"\(esc(ser.method))\">\n"
            // Polylines, broken at missing values.
            var run: [(Double, Double)] = []
            func flush() {
                if run.count >= 2 {
                    s += "<polyline points=\"" + run.map { "\(n($0.0)),\(n($0.1))" }.joined(separator: " ")
                        + "\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2.2\" stroke-linejoin=\"round\""
                        + (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + "/>\n"
                }
                run = []
            }
            for (pi, p) in ser.points.enumerated() {
                if let y = p.y { run.append((px(p.x) + (dodge[i]?[pi] ?? 0), py(y))) } else { flush() }
            }
            flush()
            for (pi, p) in ser.points.enumerated() {
                guard let y = p.y else { continue }
                s += Marker.allCases[shape].svg(x: px(p.x) + (dodge[i]?[pi] ?? 0), y: py(y), colour: colour,
                                                title: "\(ser.method) \(p.label): top-1 \(formatFixed(y, 2)) %")
            }
            s += "</g>\n"
        }

        if all.allSatisfy({ $0.points.allSatisfy { $0.y == nil } }) {
            s += text(x: (pl + pr) / 2, y: pt + (pb - pt) * 0.75, all.isEmpty ? "no quantized results" : "no accuracy values (all runs failed)",
                      size: 14, anchor: "middle", fill: "#777777")
        }

        // Legend.
        if let (lx, ly) = legendOrigin, !all.isEmpty {
            s += "<g class=\"legend\">\n"
            s += "<rect x=\"\(n(lx))\" y=\"\(n(ly))\" width=\"\(n(legendW))\" height=\"\(n(legendH))\" fill=\"#ffffff\" "
                + "fill-opacity=\"0.9\" stroke=\"#cccccc\" rx=\"3\"/>\n"
            for i in all.indices {
                let colour = pal[i % pal.count]
                let dash = AccuracyPlot.dashes[(i / pal.count) % AccuracyPlot.dashes.count]
                let y = ly + 6 + legendRow * (Double(i) + 0.5)
                let x0 = lx + 12
                s += "<line x1=\"\(n(x0))\" y1=\"\(n(y))\" x2=\"\(n(x0 + 30))\" y2=\"\(n(y))\" stroke=\"\(colour)\" stroke-width=\"2.2\""
                    + (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + "/>\n"
                s += Marker.allCases[i % Marker.allCases.count].svg(x: x0 + 15, y: y, colour: colour, title: nil)
                s += text(x: x0 + 38, y: y + 4.5, legendText[i], size: legendFont, anchor: "start")
            }
            s += "</g>\n"
        }
        s += "</svg>\n"
        return s
    }

    // MARK: Helpers

    enum Marker: CaseIterable {
        case circle, square, triangle, diamond, triangleDown, cross, plus

        func svg(x: Double, y: Double, colour: String, title: String?) -> String {
            let r = 4.5
            let t = title.map { "<title>\(esc($0))</title>" } ?? ""
            let style = "fill=\"\(colour)\" stroke=\"#ffffff\" stroke-width=\"1\""
            let body: String
            switch self {
            case .circle:
                body = "<circle cx=\"\(n(x))\" cy=\"\(n(y))\" r=\"\(n(r))\" \(style)"
            case .square:
                body = "<rect x=\"\(n(x - r * 0.9))\" y=\"\(n(y - r * 0.9))\" width=\"\(n(r * 1.8))\" height=\"\(n(r * 1.8))\" \(style)"
            case .triangle:
                body = "<polygon points=\"\(n(x)),\(n(y - r * 1.15)) \(n(x + r * 1.1)),\(n(y + r * 0.8)) \(n(x - r * 1.1)),\(n(y + r * 0.8))\" \(style)"
            case .diamond:
                body = "<polygon points=\"\(n(x)),\(n(y - r * 1.25)) \(n(x + r)),\(n(y)) \(n(x)),\(n(y + r * 1.25)) \(n(x - r)),\(n(y))\" \(style)"
            case .triangleDown:
                body = "<polygon points=\"\(n(x)),\(n(y + r * 1.15)) \(n(x + r * 1.1)),\(n(y - r * 0.8)) \(n(x - r * 1.1)),\(n(y - r * 0.8))\" \(style)"
            case .cross:
                let d = r * 0.95
                body = "<path d=\"M\(n(x - d)) \(n(y - d)) L\(n(x + d)) \(n(y + d)) M\(n(x - d)) \(n(y + d)) L\(n(x + d)) \(n(y - d))\" "
                    + "fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2.4\""
            case .plus:
                let d = r * 1.15
                body = "<path d=\"M\(n(x - d)) \(n(y)) H\(n(x + d)) M\(n(x)) \(n(y - d)) V\(n(y + d))\" "
                    + "fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2.4\""
            }
            return title == nil ? body + "/>\n" : body + ">" + t + "</" + body.dropFirst().prefix { $0 != " " } + ">\n"
        }
    }
}

/// SVG number: at most two decimals, no trailing zeros.
func n(_ d: Double) -> String {
    let r = (d * 100).rounded() / 100
    return formatShortest(r == 0 ? 0 : r)
}

/// XML text/attribute escaping.
func esc(_ s: String) -> String {
    var o = ""
    for ch in s.unicodeScalars {
        switch ch {
        case "&": o += "&amp;"
        case "<": o += "&lt;"
        case ">": o += "&gt;"
        case "\"": o += "&quot;"
        case "'": o += "&apos;"
        default:
            // XML 1.0 forbids most control characters even as references.
            if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { o += " " } else { o.unicodeScalars.append(ch) }
        }
    }
    return o
}

func text(x: Double, y: Double, _ s: String, size: Double, anchor: String, fill: String = "#222222",
          weight: String? = nil) -> String
{
    "<text x=\"\(n(x))\" y=\"\(n(y))\" font-size=\"\(n(size))\" text-anchor=\"\(anchor)\" fill=\"\(fill)\""
        + (weight.map { " font-weight=\"\($0)\"" } ?? "") + ">\(esc(s))</text>\n"
}
