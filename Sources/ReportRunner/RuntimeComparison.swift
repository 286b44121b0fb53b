// Op-by-op comparison of the integer runtime with the fake-quant simulation a .qmodel was exported from
// (`quantize compare`): where the two depart, and by how much.
import Foundation
import FloatEngine
import Quant
import Int8Kernels
import Int8Runtime

/// Runs images through an int8 `Session` and the `QuantSimulator` of the same quantized model and compares every
/// runtime tensor whose ONNX name the simulation also produces (the runtime names tensors `onnx`, `onnx::q`,
/// `onnx::codes`, `onnx#2`, …). Float tensors are compared by value; quantized ones in codes, against the runtime's
/// own quantizer applied to the simulation's float tensor (so a code that differs is a decision that differs).
public final class RuntimeComparison {
    public struct Row: Sendable {
        public var op: String
        public var kind: String
        public var tensor: String
        public var dtype: String
        /// Whether the runtime tensor holds codes (uniform or AdaLog) rather than floats.
        public var quantized: Bool
        public var errorEnergy = 0.0, referenceEnergy = 0.0, maxAbsDifference = 0.0
        public var count = 0, codeMismatches = 0, codeAbsDifference = 0
        /// 10·log10(Σ ref² / Σ (runtime − ref)²), the simulation as reference; +∞ when identical.
        public var sqnrDB: Double { errorEnergy == 0 ? .infinity : 10 * log10(referenceEnergy / errorEnergy) }
        public var codeMismatchPercent: Double { 100 * Double(codeMismatches) / Double(max(count, 1)) }
        public var meanAbsCodeDifference: Double { Double(codeAbsDifference) / Double(max(count, 1)) }
    }

    public let simulation: QuantSimulator
    public let session: Session
    public private(set) var images = 0
    private var rows: [String: Row] = [:]
    private var order: [String] = []

    /// `simulation` should be built unfused (`SessionOptions(fuse: false)`) so that every ONNX tensor is observable;
    /// both run one sample at a time.
    public init(simulation: QuantSimulator, session: Session) {
        self.simulation = simulation
        self.session = session
    }

    /// The compared tensors in execution order.
    public var results: [Row] { order.map { rows[$0]! } }

    /// Runs one image (`nchw` for the simulation, the same values NHWC for the runtime) and accumulates.
    public func add(nchw: [Float], nhwc: [Float]) throws {
        var simValues: [String: (shape: [Int], values: [Float])] = [:]
        simulation.session.observer = { o in simValues[o.name] = (o.shape, Array(o.values)) }
        defer { simulation.session.observer = nil; session.observer = nil }
        _ = try simulation.session.run(nchw)
        let reference = simValues
        session.observer = { [self] op, t, data, _ in
            let base = String(t.name.split(separator: "#").first ?? "").components(separatedBy: "::").first ?? t.name
            guard let ref = reference[base], ref.values.count == t.elementCount else { return }
            if rows[t.name] == nil {
                order.append(t.name)
                rows[t.name] = Row(op: op.name, kind: op.kind, tensor: t.name, dtype: t.dtype.rawValue,
                                   quantized: t.quantizer != nil && t.dtype != .float32)
            }
            Self.accumulate(&rows[t.name]!, t, data, Self.runtimeLayout(ref.values, simShape: ref.shape, runtimeShape: t.shape))
        }
        _ = try session.run(nhwc, samples: 1)
        images += 1
    }

    /// NCHW simulation tensors → the runtime's NHWC when the runtime tensor is [H, W, C].
    static func runtimeLayout(_ v: [Float], simShape: [Int], runtimeShape: [Int]) -> [Float] {
        guard simShape.count == 4, runtimeShape.count == 3, simShape[1] == runtimeShape[2], simShape[2] == runtimeShape[0],
              simShape[3] == runtimeShape[1] else { return v }
        let ch = simShape[1], hw = simShape[2] * simShape[3]
        var out = [Float](repeating: 0, count: v.count)
        for cc in 0..<ch { for p in 0..<hw { out[p * ch + cc] = v[cc * hw + p] } }
        return out
    }

    static func accumulate(_ r: inout Row, _ t: TensorInfo, _ data: UnsafeRawPointer, _ ref: [Float]) {
        let count = t.elementCount
        var rt = [Float](repeating: 0, count: count), want = ref
        var rtCode = [Int](repeating: 0, count: count), wantCode = [Int](repeating: 0, count: count)
        switch (t.dtype, t.quantizer) {
        case (.float32, _):
            let p = data.assumingMemoryBound(to: Float.self)
            for i in 0..<count { rt[i] = p[i] }
        case let (.uint8, .uniform(u)?), let (.int8, .uniform(u)?):
            // int8 tensors store q − z (see QuantSpec in the runtime)
            let top = (1 << u.bits) - 1, z = Int(u.zeroPoint)
            for i in 0..<count {
                let stored = t.dtype == .uint8 ? Int(data.load(fromByteOffset: i, as: UInt8.self)) : Int(data.load(fromByteOffset: i, as: Int8.self)) + z
                let w = min(top, max(0, Int((ref[i] / u.scale).rounded(.toNearestOrEven)) + z))
                rtCode[i] = stored; wantCode[i] = w
                rt[i] = Float(stored - z) * u.scale; want[i] = Float(w - z) * u.scale
            }
        case let (.code, .adaLog(a)?):
            guard let table = try? AdaLogTable(q: a.q, bits: a.bits, r: a.r) else { return }
            let tau = table.thresholds(scale: Double(a.scale))
            for i in 0..<count {
                let code = Int(data.load(fromByteOffset: i, as: UInt8.self))
                let v = ref[i] + a.shift
                var k = 0
                while k < tau.count, v < tau[k] { k += 1 }
                let w = min(k, 255)  // 8 bits: byte 255 is also the zero state
                rtCode[i] = code; wantCode[i] = w
                rt[i] = Float(table.value(code: code, scale: Double(a.scale))); want[i] = Float(table.value(code: w, scale: Double(a.scale)))
            }
        default:
            return
        }
        for i in 0..<count {
            let d = Double(rt[i] - want[i])
            r.errorEnergy += d * d; r.referenceEnergy += Double(want[i]) * Double(want[i]); r.maxAbsDifference = max(r.maxAbsDifference, abs(d))
            if t.dtype != .float32 {
                if rtCode[i] != wantCode[i] { r.codeMismatches += 1 }
                r.codeAbsDifference += abs(rtCode[i] - wantCode[i])
            }
        }
        r.count += count
    }
}
