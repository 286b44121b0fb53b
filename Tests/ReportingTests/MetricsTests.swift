import Testing
@testable import Reporting
import Quant

@Suite struct MetricsTests {
    @Test func sqnrMatchesTheDefinition() throws {
        // Signal power 4·1 = 4, noise power 4·0.01 = 0.04 → 10·log10(100) = 20 dB.
        let x: [Float] = [1, -1, 1, -1]
        let y: [Float] = [1.1, -1.1, 0.9, -0.9]
        let v = try #require(ReportMetrics.sqnrDB(reference: x, quantized: y))
        #expect(abs(v - 20) < 1e-5)
        #expect(ReportMetrics.sqnrDB(reference: x, quantized: x) == .infinity)
        #expect(ReportMetrics.sqnrDB(reference: [0, 0], quantized: [1, 1]) == nil)
        #expect(ReportMetrics.sqnrDB(reference: x, quantized: [1]) == nil)
    }

    @Test func agreementInPercent() {
        #expect(ReportMetrics.agreement(floatTop1: [1, 2, 3, 4], quantizedTop1: [1, 2, 0, 4]) == 75)
        #expect(ReportMetrics.agreement(floatTop1: [], quantizedTop1: []) == nil)
    }
}
