import Foundation

/// The two comparisons the report is built on, defined once so every producer computes them the same way.
public enum ReportMetrics {
    /// Output SQNR in dB: `10·log10(Σx² / Σ(x−x̂)²)` of the float output `x` against the quantized output `x̂`
    /// (as PyTorch's `compute_sqnr` and ONNX Runtime's `qdq_loss_debug`). `+infinity` when the outputs are equal,
    /// `nil` when the lengths differ, the input is empty or the reference is all zero.
    public static func sqnrDB(reference x: [Float], quantized y: [Float]) -> Double? {
        guard x.count == y.count, !x.isEmpty else { return nil }
        var signal = 0.0, noise = 0.0
        for i in x.indices {
            let a = Double(x[i]), d = a - Double(y[i])
            signal += a * a
            noise += d * d
        }
        guard signal > 0, signal.isFinite, noise.isFinite else { return nil }
        if noise == 0 { return .infinity }
        return 10 * log10(signal / noise)
    }

    /// Agreement with float in percent: the share of images whose quantized top-1 class equals the float model's.
    /// `nil` when the lists are empty or of different lengths.
    public static func agreement(floatTop1: [Int], quantizedTop1: [Int]) -> Double? {
        guard floatTop1.count == quantizedTop1.count, !floatTop1.isEmpty else { return nil }
        let same = zip(floatTop1, quantizedTop1).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
        return 100 * Double(same) / Double(floatTop1.count)
    }
}
