import Foundation
import Testing
@testable import Reporting
import Quant

@Suite struct ProgressTests {
    @Test func notATerminalShortTaskPrintsNothing() {
        let out = Capture(), clock = FakeClock()
        let term = Terminal(isTTY: false) { out.write($0) }
        let bar = ProgressBar(label: "Calibrating", total: 10, unit: "img", terminal: term, clock: clock.now)
        #expect(bar.mode == .plain)
        for _ in 0..<10 { clock.advance(0.5); bar.advance() }
        bar.finish()
        #expect(out.text == "")
    }

    @Test func notATerminalLongTaskPrintsOccasionalPlainLines() {
        let out = Capture(), clock = FakeClock()
        let term = Terminal(isTTY: false) { out.write($0) }
        let bar = ProgressBar(label: "Evaluating", total: 100, unit: "img", terminal: term, clock: clock.now)
        for _ in 0..<100 { clock.advance(1); bar.advance() }  // 100 s, one line every 30 s at most
        bar.finish()
        let lines = out.text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(lines)")
        #expect(lines[0] == "Evaluating: 30/100 (30%), 1.0 img/s, ETA 1:10")
        #expect(lines.last == "Evaluating: 100/100 (100%), 1.0 img/s, done in 1:40")
        #expect(!out.text.contains("\r") && !out.text.contains("\u{1B}"), "no terminal control codes in logs")
    }

    @Test func quietPrintsNothingEvenOnATerminal() {
        let out = Capture(), clock = FakeClock()
        let term = Terminal(isTTY: true) { out.write($0) }
        let bar = ProgressBar(label: "x", total: 5, mode: ProgressBar.defaultMode(quiet: true, terminal: term),
                              terminal: term, clock: clock.now)
        for _ in 0..<5 { clock.advance(100); bar.advance() }
        bar.finish()
        #expect(out.text == "")
    }

    @Test func interactiveRedrawsInPlaceAndThrottles() {
        let out = Capture(), clock = FakeClock()
        let term = Terminal(isTTY: true, width: 100) { out.write($0) }
        let bar = ProgressBar(label: "Calibrating", total: 1000, unit: "img", terminal: term, clock: clock.now)
        #expect(bar.mode == .interactive)
        for _ in 0..<1000 { clock.advance(0.001); bar.advance() }  // 1 s of work, redraw at most every 0.1 s
        bar.finish()
        #expect(out.writes <= 15, "throttled: \(out.writes) writes")
        #expect(out.text.hasPrefix("\r\u{1B}[K"))
        #expect(out.text.hasSuffix("\n"))
        let last = out.text.components(separatedBy: "\r\u{1B}[K").last ?? ""
        #expect(last.contains("Calibrating  [##############################]  1000/1000  100%"), "\(last)")
    }

    @Test func renderFitsWidthAndShowsETA() {
        let clock = FakeClock()
        let term = Terminal(isTTY: true, width: 60) { _ in }
        let bar = ProgressBar(label: "A very long label naming a layer blocks.11.mlp.fc2", total: 200, unit: "img",
                              terminal: term, clock: clock.now)
        clock.advance(10)
        bar.update(completed: 50)
        let line = bar.render(now: clock.now(), width: 60)
        #expect(line.count < 60)
        #expect(line.contains("50/200  25%  5.0 img/s  ETA 0:30"), "\(line)")
        #expect(line.hasPrefix("A very long label n…  50/200"), "label truncated, bar dropped when narrow")
    }

    @Test func logLinesKeepTheStatusLine() {
        let out = Capture()
        let term = Terminal(isTTY: true, width: 80) { out.write($0) }
        term.setStatus("bar 1/2")
        term.printLine("warning: something")
        #expect(out.text == "\r\u{1B}[Kbar 1/2\r\u{1B}[Kwarning: something\nbar 1/2")
    }

    @Test func concurrentAdvancesAreCounted() async {
        let term = Terminal(isTTY: true, width: 80) { _ in }
        let bar = ProgressBar(label: "x", total: 8000, terminal: term)
        await withTaskGroup(of: Void.self) { g in
            for _ in 0..<8 { g.addTask { for _ in 0..<1000 { bar.advance() } } }
        }
        bar.finish()
        #expect(bar.completed == 8000)
    }
}
