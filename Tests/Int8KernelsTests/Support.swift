import Testing
import CInt8Kernels
@testable import Int8Kernels

/// Deterministic SplitMix64 so failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomU8(_ n: Int, _ g: inout SplitMix, _ r: ClosedRange<UInt8> = 0...255) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: r, using: &g) } }
func randomS8(_ n: Int, _ g: inout SplitMix, _ r: ClosedRange<Int8> = -128...127) -> [Int8] { (0..<n).map { _ in Int8.random(in: r, using: &g) } }

/// The ISAs under test: every path the running CPU supports (portable always).
let testISAs = KernelISA.supported

/// A representative set of output stages for N columns.
func stages(n: Int, _ g: inout SplitMix) -> [(String, OutputStage)] {
    let mults = (0..<n).map { _ in try! QuantizedMultiplier(Double.random(in: 0.00005...0.02, using: &g)) }
    let big = (0..<n).map { _ in try! QuantizedMultiplier(Double.random(in: 1.0...40.0, using: &g)) }
    let scales = (0..<n).map { _ in Float.random(in: 0.0001...0.01, using: &g) }
    let fbias = (0..<n).map { _ in Float.random(in: -1...1, using: &g) }
    return [
        ("int32", .int32),
        ("int8 double per-channel", .requantize(multipliers: mults, rounding: .doubleRounding, zeroPoint: -5, qmin: -128, qmax: 127, unsigned: false)),
        ("uint8 single per-channel", .requantize(multipliers: mults, rounding: .singleRounding, zeroPoint: 130, qmin: 0, qmax: 255, unsigned: true)),
        ("uint8 double relu6-like clamp, multiplier > 1", .requantize(multipliers: big, rounding: .doubleRounding, zeroPoint: 10, qmin: 10, qmax: 200, unsigned: true)),
        ("int8 single per-tensor", .requantize(multipliers: [mults[0]], rounding: .singleRounding, zeroPoint: 0, qmin: -127, qmax: 127, unsigned: false)),
        ("float per-channel + bias", .dequantize(scales: scales, floatBias: fbias)),
        ("float per-tensor", .dequantize(scales: [scales[0]], floatBias: nil)),
    ]
}

/// Builds the raw C output struct for a reference call; keeps the arrays alive.
func withRawOutput<R>(_ stage: OutputStage, n: Int, bias: [Int32]?, _ body: (UnsafePointer<i8k_output>) -> R) -> R {
    let p = try! OutputParams(stage: stage, n: n, bias: bias, aZero: 0, colsum: nil)
    return withUnsafePointer(to: &p.raw) { body($0) }
}

/// Output buffer compared as raw bytes.
func outputBytes(_ stage: OutputStage, count: Int) -> [UInt8] { [UInt8](repeating: 0xAB, count: count * stage.elementSize) }

/// nil when equal, else a short description of the first difference (cheap to render on failure).
func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> String? {
    if a.count != b.count { return "sizes \(a.count) vs \(b.count)" }
    var count = 0, first = -1
    for i in 0..<a.count where a[i] != b[i] {
        count += 1
        if first < 0 { first = i }
    }
    return count == 0 ? nil : "\(count) of \(a.count) differ; first at \(first): \(a[first]) vs \(b[first])"
}

/// The run signature the dense and the depthwise conv share, so one check serves both.
protocol ConvKernelUnderTest {
    var geometry: ConvGeometry { get }
    func run(input: UnsafePointer<UInt8>, activation: ActivationType, bias: [Int32]?, output: OutputStage,
             dst: UnsafeMutableRawPointer, isa: KernelISA, threads: Int) throws(Int8KernelError)
}
extension Conv2DInt8: ConvKernelUnderTest {}
extension DepthwiseConv2DInt8: ConvKernelUnderTest {}

/// Runs `conv` on `input` for every stage at 1 and 2 threads and expects the bytes of the naive 32-bit accumulators
/// `acc` through that stage.
func expectMatchesNaive(_ conv: some ConvKernelUnderTest, input: [UInt8], activation act: ActivationType, bias: [Int32],
                        acc: [Int32], stages: [(String, OutputStage)], isa: KernelISA, label: String) throws {
    let g = conv.geometry
    for (name, stage) in stages {
        let ref = applyStage(acc, rows: g.outH * g.outW, n: g.outC, bias: bias, stage: stage)
        for threads in [1, 2] {
            var got = outputBytes(stage, count: g.outH * g.outW * g.outC)
            try input.withUnsafeBufferPointer { ib in
                try got.withUnsafeMutableBytes { ob in
                    try conv.run(input: ib.baseAddress!, activation: act, bias: bias, output: stage, dst: ob.baseAddress!, isa: isa, threads: threads)
                }
            }
            #expect(firstDifference(got, ref) == nil, "isa \(isa) \(label) \(act) \(name) threads \(threads)")
        }
    }
}
