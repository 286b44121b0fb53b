/// Percentiles as the reference computes them (adalog.md §1.7).
public enum Percentile {
    /// torch.quantile's element count limit; larger tensors are split into mini-batches whose
    /// quantiles are averaged (the reference doubles the mini-batch count until each fits).
    public static let torchQuantileLimit = 16_777_216

    /// torch.quantile (linear interpolation, torch.lerp's two-sided formula) on sorted values.
    static func quantileSorted(_ s: UnsafeBufferPointer<Float>, _ p: Float) -> Float {
        let n = s.count
        if n == 1 { return s[0] }
        let rank = p * Float(n - 1)
        let lo = Int(rank.rounded(.down)), hi = Int(rank.rounded(.up))
        let a = s[max(0, min(lo, n - 1))], b = s[max(0, min(hi, n - 1))]
        let w = rank - Float(lo)
        return w < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)
    }

    /// Quantiles (p ∈ [0, 1]) of `values`, interpolated linearly as torch.quantile does.
    public static func quantiles(_ values: [Float], _ ps: [Float]) throws(QuantError) -> [Float] {
        guard !values.isEmpty else { throw .emptyData("percentile of an empty tensor") }
        let sorted = values.sorted()
        return sorted.withUnsafeBufferPointer { sp in ps.map { quantileSorted(sp, $0) } }
    }

    /// Quantiles averaged over mini-batches: the tensor is viewed as `m` equal rows, with m the
    /// smallest power of two keeping each row within `limit` elements.
    public static func miniBatchedQuantiles(_ values: [Float], _ ps: [Float],
                                            limit: Int = torchQuantileLimit) throws(QuantError) -> [Float] {
        guard !values.isEmpty else { throw .emptyData("percentile of an empty tensor") }
        var m = 1
        while (values.count + m - 1) / m > limit { m *= 2 }
        if m == 1 { return try quantiles(values, ps) }
        let chunk = (values.count + m - 1) / m
        var acc = [Float](repeating: 0, count: ps.count)
        var used = 0
        var start = 0
        while start < values.count {
            let end = min(start + chunk, values.count)
            let q = try quantiles(Array(values[start..<end]), ps)
            for i in 0..<ps.count { acc[i] += q[i] }
            used += 1
            start = end
        }
        return acc.map { $0 / Float(used) }
    }

    /// Nearest-rank percentiles of the strictly positive values (the reference's
    /// `positive_percentile`): rank = max(⌈count·p⌉ − 1, 0); 0 when there is no positive value.
    public static func positivePercentiles(_ values: [Float], _ ps: [Float]) -> [Float] {
        let pos = values.filter { $0 > 0 }.sorted()
        if pos.isEmpty { return ps.map { _ in 0 } }
        return ps.map { p in
            let r = Int((Float(pos.count) * p).rounded(.up)) - 1
            return pos[max(0, min(r, pos.count - 1))]
        }
    }
}

/// Values of each parameter set of a granularity (copies; for range statistics).
func groupedValues(_ x: [Float], shape: [Int], granularity: Granularity) throws(QuantError) -> [[Float]] {
    let l = try ParameterLayout(shape: shape, granularity: granularity)
    guard l.elements == x.count else {
        throw .shapeMismatch("\(x.count) values for shape \(shape)")
    }
    if l.count == 1 { return [x] }
    var groups = [[Float]](repeating: [], count: l.count)
    let per = x.count / l.count
    for g in 0..<l.count { groups[g].reserveCapacity(per) }
    for i in 0..<x.count { groups[l.index(i)].append(x[i]) }
    return groups
}

/// Range initialisations for a uniform quantizer.
public enum RangeInit: Codable, Equatable, Sendable {
    /// Full range [min, max] (extended to include 0 for asymmetric quantizers so 0 is exact).
    case minMax
    /// Clip at the `p` and 1−p quantiles (mini-batched as in the reference), e.g. 0.9999.
    case percentile(Float)
    /// The clipping ratio α ∈ {1, 1−1/steps·0.7, …} of the min-max range minimizing the quantizer's own
    /// squared error, per parameter set.
    case mse(steps: Int)
}

extension UniformQuantizer {
    /// A quantizer whose range comes from `method` on `x` (row-major, `shape`). Zero-points are rounded
    /// half-to-even so that the integer engine can use them directly.
    public static func initialized(from x: [Float], shape: [Int], bits: Int, symmetric: Bool = false,
                                   granularity: Granularity = .perTensor,
                                   method: RangeInit = .minMax) throws(QuantError) -> UniformQuantizer {
        guard supportedBits.contains(bits) else {
            throw .unsupportedBits(bits, context: "uniform quantizer", allowed: supportedBits)
        }
        let groups = try groupedValues(x, shape: shape, granularity: granularity)
        var scales = [Float](), zps = [Float]()
        for g in groups {
            guard !g.isEmpty else { throw .emptyData("a parameter set of shape \(shape) has no values") }
            var lo: Float, hi: Float
            switch method {
            case .minMax, .mse:
                lo = g.min() ?? 0; hi = g.max() ?? 0
            case .percentile(let p):
                guard p > 0.5, p <= 1 else { throw .invalidParameters("percentile must be in (0.5, 1], got \(p)") }
                let qs = try Percentile.miniBatchedQuantiles(g, [1 - p, p])
                lo = qs[0]; hi = qs[1]
            }
            let (s0, z0) = rangeToParameters(lo: lo, hi: hi, bits: bits, symmetric: symmetric)
            var best = (s0, z0)
            if case .mse(let steps) = method {
                guard steps >= 1 else { throw .invalidParameters("MSE init needs ≥ 1 step") }
                var bestErr = Double.infinity
                for i in 0..<steps {
                    let a = 1 - Float(i) * 0.7 / Float(steps)
                    let (s, z) = rangeToParameters(lo: lo * a, hi: hi * a, bits: bits, symmetric: symmetric)
                    let qmin: Float = symmetric ? -Float(1 << (bits - 1)) : 0
                    let qmax: Float = symmetric ? Float((1 << (bits - 1)) - 1) : Float((1 << bits) - 1)
                    var err = 0.0
                    for v in g {
                        let c = min(max((v / s).rounded(.toNearestOrEven) + z, qmin), qmax)
                        let d = Double(v - (c - z) * s)
                        err += d * d
                    }
                    if err < bestErr { bestErr = err; best = (s, z) }
                }
            }
            scales.append(best.0); zps.append(best.1)
        }
        return try UniformQuantizer(bits: bits, symmetric: symmetric, granularity: granularity,
                                    scales: scales, zeroPoints: zps)
    }

    static func rangeToParameters(lo: Float, hi: Float, bits: Int, symmetric: Bool) -> (Float, Float) {
        if symmetric {
            let m = max(abs(lo), abs(hi))
            let s = m > 0 ? m / Float((1 << (bits - 1)) - 1 == 0 ? 1 : (1 << (bits - 1)) - 1) : 1
            return (max(s, Float.leastNormalMagnitude), 0)
        }
        let l = min(lo, 0), h = max(hi, 0)
        let s = h > l ? (h - l) / Float((1 << bits) - 1) : 1
        let z = (-l / s).rounded(.toNearestOrEven)
        return (max(s, Float.leastNormalMagnitude), z)
    }
}

/// Which zero-point window a percentile grid uses (adalog.md §1.7).
public enum TensorRole: String, Codable, Sendable {
    /// Linear weights (per row): num_zp = min(16, 2^(b−1)).
    case weight
    /// Linear inputs: num_zp = min(16, 2^b), scales clamped to ≥ 1e−4.
    case activation
    /// Matmul operands Q, K, V (per head): num_zp = min(16, 2^(b−1)).
    case matmulOperand
    /// Patch-embed conv weights: num_zp = 2^(b−1).
    case convWeight
}

/// Where the zero-point candidates of a percentile grid sit.
public enum ZeroPointPlacement: String, Codable, Sendable, CaseIterable {
    /// num_zp integers centred on 2^(b−1), the same for every scale (the reference, adalog.md §1.11 item 4). At 6
    /// and 8 bits that window (24…39, 120…135) cannot place a one-sided range: a tensor in [−0.2, 30] keeps half
    /// of its codes below zero, unused.
    case midRange = "mid-range"
    /// num_zp consecutive integers around, per scale candidate and group, the zero-point that centres the
    /// quantization range on the data: on the P10–P90 midpoint for the narrowest range, moving linearly to the
    /// min–max midpoint for the widest. Where the window already covers every code (activations at ≤ 4 bits) the
    /// two placements are the same grid.
    case dataCentred = "data-centred"

    public static func parse(_ s: String) throws(QuantError) -> ZeroPointPlacement {
        guard let p = ZeroPointPlacement(rawValue: s.lowercased()) else {
            throw .badPlanOption(s, reason: "zero-point placement must be mid-range or data-centred")
        }
        return p
    }
}

/// Candidate (scale, zero-point) pairs for several independent parameter sets ("groups": rows,
/// channels, heads): `scales[c·groups + g]` is candidate c of group g.
public struct UniformCandidates: Sendable, Equatable {
    public var count: Int
    public var groups: Int
    public var scales: [Float]
    public var zeroPoints: [Float]

    public init(count: Int, groups: Int, scales: [Float], zeroPoints: [Float]) {
        self.count = count; self.groups = groups; self.scales = scales; self.zeroPoints = zeroPoints
    }

    public func scale(_ c: Int, _ g: Int) -> Float { scales[c * groups + g] }
    public func zeroPoint(_ c: Int, _ g: Int) -> Float { zeroPoints[c * groups + g] }
}

/// The percentile candidate grid of adalog.md §1.7: num_scale ranges linspace'd between
/// P90−P10 and max−min, divided by 2^b−1, times num_zp zero-points centred on 2^(b−1);
/// num_scale·num_zp = eqN (128). Candidate index = zpIndex·num_scale + scaleIndex.
public struct UniformGrid: Sendable {
    public let role: TensorRole
    public let bits: Int
    public let numScale: Int
    public let numZeroPoint: Int
    public let candidates: UniformCandidates
    /// Spacing between the first two candidates' scales (FPCS's Δ0), per group.
    public let delta0: [Float]

    public static func zeroPointWindow(role: TensorRole, bits: Int) -> (count: Int, first: Int) {
        let nLevels = 1 << (bits - 1)
        let num: Int
        switch role {
        case .weight, .matmulOperand: num = min(16, nLevels)
        case .activation: num = min(16, 2 * nLevels)
        case .convWeight: num = nLevels
        }
        return (num, Int(Double(nLevels) - Double(num) / 2))
    }

    /// - Parameters: per group, the 10th/90th percentiles and min/max of the values.
    public init(role: TensorRole, bits: Int, p10: [Float], p90: [Float], minimum: [Float], maximum: [Float],
                eqN: Int = 128, zeroPoints placement: ZeroPointPlacement = .midRange) throws(QuantError) {
        guard UniformQuantizer.supportedBits.contains(bits) else {
            throw .unsupportedBits(bits, context: "percentile grid", allowed: UniformQuantizer.supportedBits)
        }
        let g = p10.count
        guard g > 0, p90.count == g, minimum.count == g, maximum.count == g else {
            throw .shapeMismatch("percentile grid needs equal per-group statistics")
        }
        let (nzp, zp0) = Self.zeroPointWindow(role: role, bits: bits)
        let ns = eqN / nzp
        guard ns >= 1 else { throw .invalidParameters("eqN \(eqN) is smaller than the zero-point window \(nzp)") }
        self.role = role; self.bits = bits; numScale = ns; numZeroPoint = nzp
        let levels = Float((1 << bits) - 1)
        let count = ns * nzp
        let centred = placement == .dataCentred && nzp < (1 << bits)
        // Data-centred offsets run over [−nzp/2, nzp/2) with the last window index at offset 0, so the
        // reference's "grid index −2" initialisation starts on the centred zero-point.
        func offset(_ zi: Int) -> Float { Float((zi + 1 + nzp / 2) % nzp - nzp / 2) }
        var scales = [Float](repeating: 0, count: count * g), zps = [Float](repeating: 0, count: count * g)
        for zi in 0..<nzp {
            for si in 0..<ns {
                let t: Float = ns == 1 ? 0 : Float(si) / Float(ns - 1)
                let c = zi * ns + si
                for gi in 0..<g {
                    let dmin = p90[gi] - p10[gi], dmax = maximum[gi] - minimum[gi]
                    var s = (dmin + t * (dmax - dmin)) / levels
                    if role == .activation { s = max(s, 1e-4) }
                    scales[c * g + gi] = s
                    if centred, s > 0 {
                        let mid = (1 - t) * (p10[gi] + p90[gi]) / 2 + t * (minimum[gi] + maximum[gi]) / 2
                        let z = (levels / 2 - mid / s).rounded(.toNearestOrEven) + offset(zi)
                        zps[c * g + gi] = min(max(z.isFinite ? z : levels / 2, 0), levels)
                    } else {
                        zps[c * g + gi] = Float(zp0 + zi)
                    }
                }
            }
        }
        candidates = UniformCandidates(count: count, groups: g, scales: scales, zeroPoints: zps)
        delta0 = (0..<g).map { scales[(count > 1 ? 1 : 0) * g + $0] - scales[$0] }
    }

    /// The grid from data: statistics per parameter set of `granularity`. Per-tensor and per-head
    /// percentiles are mini-batched as in the reference; per-channel/per-row ones are not.
    public init(role: TensorRole, bits: Int, values x: [Float], shape: [Int], granularity: Granularity,
                eqN: Int = 128, zeroPoints placement: ZeroPointPlacement = .midRange) throws(QuantError) {
        let groups = try groupedValues(x, shape: shape, granularity: granularity)
        var p10 = [Float](), p90 = [Float](), mn = [Float](), mx = [Float]()
        let pu: Float = 0.9, pl: Float = 1 - pu
        for gv in groups {
            let q: [Float]
            switch granularity {
            case .perTensor: q = try Percentile.miniBatchedQuantiles(gv, [pu, 1, pl, 0])
            case .perGroup, .perChannel:
                q = role == .matmulOperand ? try Percentile.miniBatchedQuantiles(gv, [pu, 1, pl, 0])
                                           : try Percentile.quantiles(gv, [pu, 1, pl, 0])
            }
            p90.append(q[0]); mx.append(q[1]); p10.append(q[2]); mn.append(q[3])
        }
        try self.init(role: role, bits: bits, p10: p10, p90: p90, minimum: mn, maximum: mx, eqN: eqN, zeroPoints: placement)
    }

    /// The grid from data with the search settings' candidate count (eqN) and zero-point placement.
    init(role: TensorRole, bits: Int, values x: [Float], shape: [Int], granularity: Granularity,
         settings: FPCSSettings) throws(QuantError) {
        try self.init(role: role, bits: bits, values: x, shape: shape, granularity: granularity, eqN: settings.eqN,
                      zeroPoints: settings.zeroPointPlacement)
    }

    /// Candidate `index` (negative counts from the end, so −2 is the reference's "grid index −2").
    public func candidate(_ index: Int) -> (scales: [Float], zeroPoints: [Float]) {
        let c = index < 0 ? candidates.count + index : index
        let g = candidates.groups
        return (Array(candidates.scales[(c * g)..<((c + 1) * g)]), Array(candidates.zeroPoints[(c * g)..<((c + 1) * g)]))
    }
}
