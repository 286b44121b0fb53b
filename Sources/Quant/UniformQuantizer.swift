import CQuantKernels

/// How many parameter sets a quantizer has and which elements share one.
public enum Granularity: Codable, Equatable, Sendable {
    /// One (scale, zero-point) for the whole tensor.
    case perTensor
    /// One per index along `axis` (e.g. axis 0 of a [O, K] weight: per output row).
    case perChannel(axis: Int)
    /// One per group of `groupSize` consecutive indices along `axis` (e.g. per head: axis = last,
    /// groupSize = head dimension of a [N, H·d] tensor).
    case perGroup(axis: Int, groupSize: Int)
}

/// Where each element's parameter index comes from, for a given shape.
struct ParameterLayout {
    let inner: Int, channels: Int, groupSize: Int, count: Int, elements: Int

    init(shape: [Int], granularity: Granularity) throws(QuantError) {
        guard let n = elementCount(shape) else { throw .shapeMismatch("invalid shape \(shape)") }
        elements = n
        switch granularity {
        case .perTensor:
            inner = max(n, 1); channels = 1; groupSize = 1; count = 1
        case .perChannel(let axis), .perGroup(let axis, _):
            guard axis >= 0, axis < shape.count else {
                throw .invalidParameters("axis \(axis) is out of range for shape \(shape)")
            }
            var g = 1
            if case .perGroup(_, let gs) = granularity { g = gs }
            guard g >= 1, shape[axis] % g == 0 else {
                throw .invalidParameters("group size \(g) does not divide dimension \(shape[axis]) of shape \(shape)")
            }
            channels = shape[axis]; groupSize = g
            inner = shape[(axis + 1)...].reduce(1, *)
            count = channels / g
        }
    }

    @inline(__always) func index(_ i: Int) -> Int { ((i / inner) % channels) / groupSize }
}

/// A uniform (affine) quantizer: code = clamp(round(x/s) + z, qmin, qmax), x̂ = (code − z)·s.
/// Asymmetric: codes 0…2^b−1 (adalog.md §1.2); symmetric: codes −2^(b−1)…2^(b−1)−1 with z = 0.
public struct UniformQuantizer: Codable, Equatable, Sendable {
    public var bits: Int
    public var symmetric: Bool
    public var granularity: Granularity
    /// One scale per parameter set (see `granularity`).
    public var scales: [Float]
    /// Integer zero-points stored as Float (as the reference does); all 0 when symmetric.
    public var zeroPoints: [Float]
    public var rounding: RoundingMode

    public static let supportedBits = 2...8

    public init(bits: Int, symmetric: Bool = false, granularity: Granularity = .perTensor,
                scales: [Float], zeroPoints: [Float]? = nil,
                rounding: RoundingMode = .toNearestOrEven) throws(QuantError) {
        guard Self.supportedBits.contains(bits) else {
            throw .unsupportedBits(bits, context: "uniform quantizer", allowed: Self.supportedBits)
        }
        let zps = zeroPoints ?? [Float](repeating: 0, count: scales.count)
        guard !scales.isEmpty, zps.count == scales.count else {
            throw .invalidParameters("\(scales.count) scales but \(zps.count) zero-points")
        }
        guard scales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw .invalidParameters("scales must be finite and > 0")
        }
        if symmetric, zps.contains(where: { $0 != 0 }) {
            throw .invalidParameters("a symmetric quantizer has zero-point 0")
        }
        self.bits = bits; self.symmetric = symmetric; self.granularity = granularity
        self.scales = scales; self.zeroPoints = zps; self.rounding = rounding
    }

    public var qmin: Float { symmetric ? -Float(1 << (bits - 1)) : 0 }
    public var qmax: Float { symmetric ? Float((1 << (bits - 1)) - 1) : Float((1 << bits) - 1) }

    func layout(_ shape: [Int], count: Int) throws(QuantError) -> ParameterLayout {
        let l = try ParameterLayout(shape: shape, granularity: granularity)
        guard l.elements == count else {
            throw .shapeMismatch("\(count) values for shape \(shape) (\(l.elements) elements)")
        }
        guard l.count == scales.count else {
            throw .invalidParameters("\(scales.count) scales for \(granularity) on shape \(shape) (needs \(l.count))")
        }
        return l
    }

    @inline(__always) func code(_ x: Float, _ p: Int) -> Float {
        let q = (x / scales[p]).rounded(rounding.rule) + zeroPoints[p]
        return min(max(q, qmin), qmax)
    }

    /// Integer codes (row-major, same shape as `x`).
    public func quantize(_ x: [Float], shape: [Int]) throws(QuantError) -> [Int32] {
        let l = try layout(shape, count: x.count)
        var out = [Int32](repeating: 0, count: x.count)
        for i in 0..<x.count { out[i] = Int32(code(x[i], l.index(i))) }
        return out
    }

    /// Real values of codes: (code − z)·s.
    public func dequantize(_ codes: [Int32], shape: [Int]) throws(QuantError) -> [Float] {
        let l = try layout(shape, count: codes.count)
        var out = [Float](repeating: 0, count: codes.count)
        for i in 0..<codes.count {
            let p = l.index(i)
            out[i] = (Float(codes[i]) - zeroPoints[p]) * scales[p]
        }
        return out
    }

    /// Quantize then dequantize ("fake quantization", what the simulation and searches use).
    public func fakeQuantize(_ x: [Float], shape: [Int]) throws(QuantError) -> [Float] {
        let l = try layout(shape, count: x.count)
        var out = [Float](repeating: 0, count: x.count)
        if rounding == .toNearestOrEven {
            // Fast path (C kernel, same arithmetic): contiguous runs share one parameter set.
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { op in
                    guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                    var i = 0
                    while i < x.count {
                        let p = l.index(i)
                        let run = l.count == 1 ? x.count - i : min(l.inner, x.count - i)
                        qk_uniform_fq(xb + i, run, scales[p], zeroPoints[p], qmin, qmax, ob + i, 0)
                        i += run
                    }
                }
            }
        } else {
            for i in 0..<x.count {
                let p = l.index(i)
                out[i] = (code(x[i], p) - zeroPoints[p]) * scales[p]
            }
        }
        return out
    }
}
