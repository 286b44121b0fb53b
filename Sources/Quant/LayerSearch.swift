import FloatEngine
import CQuantKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Cost record of one layer search.
public struct SearchStats: Sendable, Equatable, Codable {
    /// Candidate evaluations per phase name, in order (e.g. "W self", "A self", "W out r1", …).
    public var phases: [String] = []
    public var evaluations: [Int] = []
    public var seconds: [Double] = []
    public var totalEvaluations: Int { evaluations.reduce(0, +) }
    public var totalSeconds: Double { seconds.reduce(0, +) }

    mutating func add(_ name: String, _ evals: Int, since start: ContinuousClock.Instant) {
        let d = ContinuousClock.now - start
        phases.append(name); evaluations.append(evals)
        seconds.append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
    }
}

/// Result of a linear-layer search: per-row asymmetric weights, per-tensor asymmetric input.
public struct LinearSearchResult: Sendable {
    public var weight: UniformQuantizer
    public var input: UniformQuantizer
    public var stats: SearchStats
    /// The weight [o × k] on the chosen grid when it was not rounded to nearest (GPTQ), else nil.
    public var roundedWeight: [Float]? = nil
}

/// The RepQ-ViT/AdaLog scale reparameterization of a post-LayerNorm input (adalog.md §1.6).
public struct ScaleReparameterization: Sendable, Codable, Equatable {
    /// r_c = s_c / s̄.
    public var r: [Float]
    /// b_c = min_c / r_c − min̄ with min_c = −z_c s_c, min̄ = −z̄ s̄.
    public var b: [Float]
    public var targetScale: Float
    /// z̄ = round(mean z_c) (AdaLog rounds; RepQ-ViT does not).
    public var targetZeroPoint: Float
    /// The LayerNorm's new affine: γ' = γ/r, β' = β/r − b.
    public var gamma: [Float]
    public var beta: [Float]
    /// The linear layer's new weight W'[:, c] = r_c W[:, c] ([O × K]) and bias' = bias + W'·b.
    public var weight: [Float]
    public var bias: [Float]
}

public struct PostLayerNormSearchResult: Sendable {
    /// The per-channel input quantizer found before the fold.
    public var channelInput: UniformQuantizer
    public var reparameterization: ScaleReparameterization
    /// The uniform-linear search on the folded layer (quantizers of W' and of the transformed input).
    public var linear: LinearSearchResult
}

/// fc2 with a Shift-AdaLog input.
public struct GeluLinearSearchResult: Sendable {
    public var weight: UniformQuantizer
    /// The input quantizer with `biasReparameterized = true`.
    public var input: AdaLogQuantizer
    /// b − shift·Ŵ·1 with the final quantized weight.
    public var foldedBias: [Float]
    public var stats: SearchStats
    /// The weight [o × k] on the chosen grid when it was not rounded to nearest (GPTQ), else nil.
    public var roundedWeight: [Float]? = nil
}

public struct AttentionScoresSearchResult: Sendable {
    /// Per-head quantizers of Q and K, on the [B, H, T, d] layout (axis 1).
    public var query: UniformQuantizer
    public var key: UniformQuantizer
    public var stats: SearchStats
}

/// The quantizer chosen for the softmax output P.
public enum ProbabilityQuantizer: Sendable, Equatable {
    case adaLog(AdaLogQuantizer)
    case log2(Log2Quantizer)
    case logSqrt2(LogSqrt2Quantizer)
    case uniform(UniformQuantizer)

    public func fakeQuantize(_ p: [Float]) throws(QuantError) -> [Float] {
        switch self {
        case .adaLog(let q): return q.fakeQuantize(p)
        case .log2(let q): return q.fakeQuantize(p)
        case .logSqrt2(let q): return q.fakeQuantize(p)
        case .uniform(let q): return try q.fakeQuantize(p, shape: [p.count])
        }
    }
}

public struct AttentionValuesSearchResult: Sendable {
    /// The AdaLog quantizer when `softmax == .adalog` (kept for convenience), else the chosen one in `probabilityQuantizer`.
    public var probabilities: AdaLogQuantizer?
    public var probabilityQuantizer: ProbabilityQuantizer
    public var value: UniformQuantizer
    public var stats: SearchStats
}

/// The published per-layer search schedules (adalog.md §1.7 table), on plain row-major arrays.
/// Every layer is calibrated against float inputs and its own float output (the "parallel" paradigm).
public enum LayerSearch {
    static func check(_ cond: Bool, _ msg: @autoclosure () -> String) throws(QuantError) {
        if !cond { throw .shapeMismatch(msg()) }
    }

    static func perRowQuantizer(_ r: UniformSearchResult, bits: Int) throws(QuantError) -> UniformQuantizer {
        try UniformQuantizer(bits: bits, granularity: .perChannel(axis: 0), scales: r.scales, zeroPoints: r.zeroPoints)
    }

    /// Uniform linear layer (proj, head, and qkv/fc1 after reparameterization): W FPCS (self) → A FPCS
    /// (self), then `rounds` × (W FPCS → A FPCS) on the layer's output error.
    /// - Parameters: x [n × k] float input; weight [o × k] (row = output channel).
    public static func uniformLinear(x: [Float], tokens n: Int, inFeatures k: Int, weight w: [Float], outFeatures o: Int,
                                     weightBits: Int, inputBits: Int,
                                     settings: FPCSSettings = FPCSSettings()) throws(QuantError) -> LinearSearchResult {
        try check(n > 0 && k > 0 && o > 0 && x.count == n * k && w.count == o * k,
                  "linear layer: x has \(x.count) values for \(n)×\(k), weight \(w.count) for \(o)×\(k)")
        var stats = SearchStats()
        let wGrid = try UniformGrid(role: .weight, bits: weightBits, values: w, shape: [o, k], granularity: .perChannel(axis: 0),
                                    settings: settings)
        let aGrid = try UniformGrid(role: .activation, bits: inputBits, values: x, shape: [n, k], granularity: .perTensor,
                                    settings: settings)
        var t = ContinuousClock.now
        let wr = FPCS.uniform(grid: wGrid.candidates, delta0: wGrid.delta0, settings: settings) { c in
            weightSelfLosses(w: w, rows: o, cols: k, bits: weightBits, c)
        }
        var wq = try perRowQuantizer(wr, bits: weightBits)
        stats.add("W self", wr.evaluations, since: t)
        t = .now
        let ar = FPCS.uniform(grid: aGrid.candidates, delta0: aGrid.delta0, minScale: 1e-4, settings: settings) { c in
            activationSelfLosses(x: x, rows: n, cols: k, bits: inputBits, c)
        }
        var aq = try UniformQuantizer(bits: inputBits, scales: ar.scales, zeroPoints: ar.zeroPoints)
        stats.add("A self", ar.evaluations, since: t)
        for round in 1...max(1, settings.rounds) where settings.rounds > 0 {
            t = .now
            let xh = try aq.fakeQuantize(x, shape: [n, k])
            let wobj = WeightOutputObjective(x: x, xHat: xh, tokens: n, inFeatures: k, weight: w, outFeatures: o)
            let wr2 = FPCS.uniform(grid: wGrid.candidates, delta0: wGrid.delta0, settings: settings) { c in
                wobj.losses(c, bits: weightBits)
            }
            let previousWeight = wq
            wq = try perRowQuantizer(wr2, bits: weightBits)
            stats.add("W out r\(round)", wr2.evaluations, since: t)
            // A round is a function of the input quantizer alone (W from A, then A from W). The same W as the
            // last round means the same A next: the schedule has reached its fixed point.
            if round > 1 && wq == previousWeight { break }
            t = .now
            let wh = try wq.fakeQuantize(w, shape: [o, k])
            let ns = min(n, max(1, settings.activationSearchTokens ?? n))
            let xs = ns == n ? x : Array(x[0..<(ns * k)])
            let aobj = ActivationOutputObjective(x: xs, tokens: ns, inFeatures: k, weight: w, quantizedWeight: wh, outFeatures: o)
            let qmax = Float((1 << inputBits) - 1)
            let ar2 = xs.withUnsafeBufferPointer { xp in
                FPCS.uniform(grid: aGrid.candidates, delta0: aGrid.delta0, minScale: 1e-4, settings: settings) { c in
                    (0..<c.count).map { ci in
                        aobj.loss { d, lo, hi in
                            qk_uniform_fq(xp.baseAddress! + lo, hi - lo, c.scales[ci], c.zeroPoints[ci], 0, qmax, d + lo, 1)
                        }
                    }
                }
            }
            let previousInput = aq
            aq = try UniformQuantizer(bits: inputBits, scales: ar2.scales, zeroPoints: ar2.zeroPoints)
            stats.add("A out r\(round)", ar2.evaluations, since: t)
            if aq == previousInput { break }   // the next round would repeat this one
        }
        var rounded: [Float]? = nil
        if let mode = settings.weightRounding, mode.roundsDuringSearch {
            t = .now
            let xh = try aq.fakeQuantize(x, shape: [n, k])
            let obj = WeightOutputObjective(x: x, xHat: xh, tokens: n, inFeatures: k, weight: w, outFeatures: o)
            rounded = try gptqRound(w, rows: o, cols: k, quantizer: wq, objective: obj, mode: mode, settings: settings)
            stats.add("W \(mode.rawValue)", 0, since: t)
        }
        return LinearSearchResult(weight: wq, input: aq, stats: stats, roundedWeight: rounded)
    }

    /// GPTQ rounding of w onto wq's per-row grid with the Hessian (and, for `gptq-ia`, G·w) of `objective`.
    static func gptqRound(_ w: [Float], rows o: Int, cols k: Int, quantizer wq: UniformQuantizer,
                          objective: WeightOutputObjective, mode: WeightRounding,
                          settings: FPCSSettings) throws(QuantError) -> [Float] {
        try GPTQ.round(weight: w, rows: o, cols: k, hessian: objective.hessian, scales: wq.scales, zeroPoints: wq.zeroPoints,
                       bits: wq.bits, gw: mode == .gptqInputAware ? objective.gw : nil,
                       dampening: settings.gptqDampening ?? mode.defaultDampening)
    }

    /// The fold of adalog.md §1.6 for per-channel input parameters (s_c, z_c) of a LayerNorm → Linear pair.
    public static func scaleReparameterization(channelScales s: [Float], channelZeroPoints z: [Float],
                                               gamma: [Float], beta: [Float], weight w: [Float], bias: [Float]?,
                                               outFeatures o: Int) throws(QuantError) -> ScaleReparameterization {
        let k = s.count
        try check(k > 0 && z.count == k && gamma.count == k && beta.count == k && w.count == o * k && (bias?.count ?? o) == o,
                  "reparameterization: \(k) channel scales, \(z.count) zero-points, γ \(gamma.count), β \(beta.count), weight \(w.count) for \(o)×\(k)")
        var sumS: Float = 0, sumZ: Float = 0
        for c in 0..<k { sumS += s[c]; sumZ += z[c] }
        let ts = sumS / Float(k)
        let tz = (sumZ / Float(k)).rounded(.toNearestOrEven)
        let targetMin = -tz * ts
        var r = [Float](repeating: 0, count: k), b = r, g2 = r, b2 = r
        for c in 0..<k {
            r[c] = s[c] / ts
            let cmin = -z[c] * s[c]
            b[c] = cmin / r[c] - targetMin
            g2[c] = gamma[c] / r[c]
            b2[c] = beta[c] / r[c] - b[c]
        }
        var w2 = w
        for row in 0..<o { for c in 0..<k { w2[row * k + c] *= r[c] } }
        var bias2 = bias ?? [Float](repeating: 0, count: o)
        for row in 0..<o {
            var acc: Float = 0
            for c in 0..<k { acc += w2[row * k + c] * b[c] }
            bias2[row] += acc
        }
        return ScaleReparameterization(r: r, b: b, targetScale: ts, targetZeroPoint: tz, gamma: g2, beta: b2,
                                       weight: w2, bias: bias2)
    }

    /// Post-LayerNorm linear (qkv, fc1, Swin reduction): per-channel A FPCS (self), the scale
    /// reparameterization into the LayerNorm (γ, β) and the linear layer, the cached input transformed
    /// (x/r − b), then the uniform-linear schedule on the folded layer.
    public static func postLayerNormLinear(x: [Float], tokens n: Int, inFeatures k: Int, weight w: [Float],
                                           outFeatures o: Int, bias: [Float]?, gamma: [Float], beta: [Float],
                                           weightBits: Int, inputBits: Int,
                                           settings: FPCSSettings = FPCSSettings()) throws(QuantError) -> PostLayerNormSearchResult {
        try check(n > 0 && k > 0 && o > 0 && x.count == n * k && w.count == o * k,
                  "post-LN linear: x has \(x.count) values for \(n)×\(k), weight \(w.count) for \(o)×\(k)")
        let t = ContinuousClock.now
        let grid = try UniformGrid(role: .activation, bits: inputBits, values: x, shape: [n, k], granularity: .perChannel(axis: 1),
                                   settings: settings)
        let cr = FPCS.uniform(grid: grid.candidates, delta0: grid.delta0, minScale: 1e-4, settings: settings) { c in
            activationSelfLosses(x: x, rows: n, cols: k, bits: inputBits, c)
        }
        let channel = try UniformQuantizer(bits: inputBits, granularity: .perChannel(axis: 1), scales: cr.scales,
                                           zeroPoints: cr.zeroPoints)
        let rep = try scaleReparameterization(channelScales: cr.scales, channelZeroPoints: cr.zeroPoints, gamma: gamma,
                                              beta: beta, weight: w, bias: bias, outFeatures: o)
        var x2 = x
        for i in 0..<n { for c in 0..<k { x2[i * k + c] = x[i * k + c] / rep.r[c] - rep.b[c] } }
        var lin = try uniformLinear(x: x2, tokens: n, inFeatures: k, weight: rep.weight, outFeatures: o,
                                    weightBits: weightBits, inputBits: inputBits, settings: settings)
        var st = SearchStats()
        st.add("A channel self + fold", cr.evaluations, since: t)
        st.seconds[0] -= lin.stats.totalSeconds
        lin.stats.phases.insert(contentsOf: st.phases, at: 0)
        lin.stats.evaluations.insert(contentsOf: st.evaluations, at: 0)
        lin.stats.seconds.insert(contentsOf: st.seconds, at: 0)
        return PostLayerNormSearchResult(channelInput: channel, reparameterization: rep, linear: lin)
    }

    /// fc2 with a Shift-AdaLog input (adalog.md §1.5): W FPCS (self); s = 2nd-largest point of the
    /// 128-point grid over [P90⁺ + c, max⁺ + c], q = 37; then `rounds` × (AdaLog (q, s) FPCS → W FPCS),
    /// both on the output error; finally the bias fold with the quantized weight.
    public static func geluLinear(x: [Float], tokens n: Int, inFeatures k: Int, weight w: [Float], outFeatures o: Int,
                                  bias: [Float]?, weightBits: Int, inputBits: Int, shift: Float = geluShift,
                                  settings: FPCSSettings = FPCSSettings()) throws(QuantError) -> GeluLinearSearchResult {
        try check(n > 0 && k > 0 && o > 0 && x.count == n * k && w.count == o * k,
                  "GELU linear: x has \(x.count) values for \(n)×\(k), weight \(w.count) for \(o)×\(k)")
        var stats = SearchStats()
        let wGrid = try UniformGrid(role: .weight, bits: weightBits, values: w, shape: [o, k], granularity: .perChannel(axis: 0),
                                    settings: settings)
        var t = ContinuousClock.now
        let wr = FPCS.uniform(grid: wGrid.candidates, delta0: wGrid.delta0, settings: settings) { c in
            weightSelfLosses(w: w, rows: o, cols: k, bits: weightBits, c)
        }
        var wq = try perRowQuantizer(wr, bits: weightBits)
        stats.add("W self", wr.evaluations, since: t)
        let pp = Percentile.positivePercentiles(x, [0.9, 1.0])
        let lo = pp[0] + shift, hi = pp[1] + shift
        let eq = settings.eqN
        let initScale = lo + (hi - lo) * Float(Double(eq - 2) / Double(eq - 1))
        var aq = try AdaLogQuantizer(bits: inputBits, q: AdaLogQuantizer.r, scale: max(initScale, 1e-8), shift: shift)
        // log2(x + shift), computed once for every AdaLog candidate.
        let logU = x.map { log2f(max($0 + shift, 0)) }   // u ≤ 0 → −∞ → the clamp at 1e−15
        var cache = AdaLogLevelCache(bits: inputBits)
        var lastWeightObjective: WeightOutputObjective? = nil
        for round in 1...max(1, settings.rounds) where settings.rounds > 0 {
            t = .now
            let wh = try wq.fakeQuantize(w, shape: [o, k])
            let ns = min(n, max(1, settings.activationSearchTokens ?? n))
            let xs = ns == n ? x : Array(x[0..<(ns * k)])
            let aobj = ActivationOutputObjective(x: xs, tokens: ns, inFeatures: k, weight: w, quantizedWeight: wh, outFeatures: o)
            let ar = logU.withUnsafeBufferPointer { lp in
                xs.withUnsafeBufferPointer { xp in
                    FPCS.adaLog(currentScale: aq.scale, low: lo, high: hi, settings: settings) { cands in
                        cands.map { cand in
                            let lv = cache.levels(cand.q)
                            return lv.withUnsafeBufferPointer { lvp in
                                aobj.loss { d, lo, hi in
                                    qk_adalog_fq_log(lp.baseAddress! + lo, xp.baseAddress! + lo, hi - lo, log2f(cand.s),
                                                     adaLogMaxLog, Float(AdaLogQuantizer.r), Float(cand.q), Int32(1 << inputBits),
                                                     lvp.baseAddress!, cand.s, shift, d + lo, 1)
                                }
                            }
                        }
                    }
                }
            }
            let previousInput = aq
            aq.q = ar.q
            aq.scale = ar.scale
            stats.add("AdaLog out r\(round)", ar.evaluations, since: t)
            // A round maps (W, A) to (W', A'), W' from A' alone: an unchanged A after the first round gives the
            // last round's W again, so the schedule is at its fixed point.
            if round > 1 && aq == previousInput { break }
            t = .now
            let xh = fastAdaLog(aq, logU: logU, x: x)
            let wobj = WeightOutputObjective(x: x, xHat: xh, tokens: n, inFeatures: k, weight: w, outFeatures: o)
            let wr2 = FPCS.uniform(grid: wGrid.candidates, delta0: wGrid.delta0, settings: settings) { c in
                wobj.losses(c, bits: weightBits)
            }
            let previousWeight = wq
            wq = try perRowQuantizer(wr2, bits: weightBits)
            stats.add("W out r\(round)", wr2.evaluations, since: t)
            lastWeightObjective = wobj
            if aq == previousInput && wq == previousWeight { break }
        }
        var rounded: [Float]? = nil
        if let mode = settings.weightRounding, mode.roundsDuringSearch {
            t = .now
            let obj = lastWeightObjective ?? WeightOutputObjective(x: x, xHat: fastAdaLog(aq, logU: logU, x: x), tokens: n,
                                                                       inFeatures: k, weight: w, outFeatures: o)
            rounded = try gptqRound(w, rows: o, cols: k, quantizer: wq, objective: obj, mode: mode, settings: settings)
            stats.add("W \(mode.rawValue)", 0, since: t)
        }
        let wh: [Float]
        if let rounded { wh = rounded } else { wh = try wq.fakeQuantize(w, shape: [o, k]) }
        let folded = try AdaLogQuantizer.foldShift(shift, intoBias: bias, quantizedWeight: wh, outFeatures: o, inFeatures: k)
        aq.biasReparameterized = true
        return GeluLinearSearchResult(weight: wq, input: aq, foldedBias: folded, stats: stats, roundedWeight: rounded)
    }

    /// AdaLog fake-quant (x̂ = û − shift) through the precomputed log2(x + shift) (the search path).
    static func fastAdaLog(_ aq: AdaLogQuantizer, logU: [Float], x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        let lv = aq.unitLevels
        logU.withUnsafeBufferPointer { lp in
            x.withUnsafeBufferPointer { xp in
                lv.withUnsafeBufferPointer { lvp in
                    out.withUnsafeMutableBufferPointer { op in
                        qk_adalog_fq_log(lp.baseAddress!, xp.baseAddress!, x.count, log2f(aq.scale), adaLogMaxLog,
                                         Float(AdaLogQuantizer.r), Float(aq.q), Int32(1 << aq.bits), lvp.baseAddress!,
                                         aq.scale, aq.shift, op.baseAddress!, 0)
                    }
                }
            }
        }
        return out
    }

    static func perHead(_ scales: [Float], _ zps: [Float], bits: Int) throws(QuantError) -> UniformQuantizer {
        try UniformQuantizer(bits: bits, granularity: .perChannel(axis: 1), scales: scales, zeroPoints: zps)
    }

    /// matmul1 (Q·Kᵀ), Q and K as [batch, heads, tokens, headDim]: per-head uniform quantizers initialised
    /// at grid index −2, then `rounds` × (Q FPCS → K FPCS), each head picking its own winner on its output error.
    public static func attentionScores(query qv: [Float], key kv: [Float], batch: Int, heads: Int, tokens t: Int,
                                       headDim d: Int, bits: Int,
                                       settings: FPCSSettings = FPCSSettings()) throws(QuantError) -> AttentionScoresSearchResult {
        let shape = [batch, heads, t, d]
        try check(batch > 0 && heads > 0 && t > 0 && d > 0 && qv.count == batch * heads * t * d && kv.count == qv.count,
                  "matmul1: Q has \(qv.count) and K \(kv.count) values for [\(batch), \(heads), \(t), \(d)]")
        var stats = SearchStats()
        let g = Granularity.perChannel(axis: 1)
        let qGrid = try UniformGrid(role: .matmulOperand, bits: bits, values: qv, shape: shape, granularity: g, settings: settings)
        let kGrid = try UniformGrid(role: .matmulOperand, bits: bits, values: kv, shape: shape, granularity: g, settings: settings)
        let qi = qGrid.candidate(-2), ki = kGrid.candidate(-2)
        var qq = try perHead(qi.scales, qi.zeroPoints, bits: bits)
        var kq = try perHead(ki.scales, ki.zeroPoints, bits: bits)
        let slices = batch * heads
        for round in 1...max(1, settings.rounds) where settings.rounds > 0 {
            var t0 = ContinuousClock.now
            let kh = try kq.fakeQuantize(kv, shape: shape)
            let qobj = ScoresOperandObjective(searched: qv, other: kv, otherHat: kh, slices: slices, heads: heads, tokens: t, headDim: d)
            let qr = FPCS.uniform(grid: qGrid.candidates, delta0: qGrid.delta0, settings: settings) { c in qobj.losses(c, bits: bits) }
            let previousQuery = qq
            qq = try perHead(qr.scales, qr.zeroPoints, bits: bits)
            stats.add("Q out r\(round)", qr.evaluations, since: t0)
            // Q from K, then K from Q: the same Q as the last round gives the same K (fixed point).
            if round > 1 && qq == previousQuery { break }
            t0 = .now
            let qh = try qq.fakeQuantize(qv, shape: shape)
            let kobj = ScoresOperandObjective(searched: kv, other: qv, otherHat: qh, slices: slices, heads: heads, tokens: t, headDim: d)
            let kr = FPCS.uniform(grid: kGrid.candidates, delta0: kGrid.delta0, settings: settings) { c in kobj.losses(c, bits: bits) }
            let previousKey = kq
            kq = try perHead(kr.scales, kr.zeroPoints, bits: bits)
            stats.add("K out r\(round)", kr.evaluations, since: t0)
            if kq == previousKey { break }
        }
        return AttentionScoresSearchResult(query: qq, key: kq, stats: stats)
    }

    /// matmul2 (P·V), P as [batch, heads, tokens, tokens] (softmax output), V as [batch, heads, tokens, headDim].
    /// `.adalog` (default): AdaLog on P with scale 1 (one q for all heads), V per-head uniform from grid index −2;
    /// then `rounds` × (exhaustive q → V FPCS) on the output error. `.log2`/`.logsqrt2`: P at scale 1, not
    /// searched, one V FPCS (the reference stops after one round). `.uniform` (not in the reference): per-tensor
    /// P from its activation grid index −2, then `rounds` × (P FPCS → V FPCS).
    public static func attentionValues(probabilities pv: [Float], value vv: [Float], batch: Int, heads: Int, tokens t: Int,
                                       headDim d: Int, probabilityBits: Int, valueBits: Int,
                                       softmax: SoftmaxQuantizerKind = .adalog,
                                       settings: FPCSSettings = FPCSSettings()) throws(QuantError) -> AttentionValuesSearchResult {
        let vShape = [batch, heads, t, d]
        try check(batch > 0 && heads > 0 && t > 0 && d > 0 && pv.count == batch * heads * t * t && vv.count == batch * heads * t * d,
                  "matmul2: P has \(pv.count) and V \(vv.count) values for B=\(batch) H=\(heads) T=\(t) d=\(d)")
        var stats = SearchStats()
        let vGrid = try UniformGrid(role: .matmulOperand, bits: valueBits, values: vv, shape: vShape,
                                    granularity: .perChannel(axis: 1), settings: settings)
        let vi = vGrid.candidate(-2)
        var vq = try perHead(vi.scales, vi.zeroPoints, bits: valueBits)
        var pq: ProbabilityQuantizer
        var pGrid: UniformGrid? = nil
        switch softmax {
        case .adalog: pq = .adaLog(try AdaLogQuantizer(bits: probabilityBits, q: AdaLogQuantizer.r, scale: 1))
        case .log2: pq = .log2(try Log2Quantizer(bits: probabilityBits, scale: 1))
        case .logsqrt2: pq = .logSqrt2(try LogSqrt2Quantizer(bits: probabilityBits, scale: 1))
        case .uniform:
            let g = try UniformGrid(role: .activation, bits: probabilityBits, values: pv, shape: [pv.count],
                                    granularity: .perTensor, settings: settings)
            let c = g.candidate(-2)
            pq = .uniform(try UniformQuantizer(bits: probabilityBits, scales: c.scales, zeroPoints: c.zeroPoints))
            pGrid = g
        }
        let obj = AttentionValuesObjective(p: pv, v: vv, slices: batch * heads, heads: heads, tokens: t, headDim: d, bits: probabilityBits)
        let rounds = (softmax == .log2 || softmax == .logsqrt2) ? min(1, settings.rounds) : settings.rounds
        for round in 1...max(1, rounds) where rounds > 0 {
            var t0 = ContinuousClock.now
            let vh = try vq.fakeQuantize(vv, shape: vShape)
            let previousProbability = pq
            switch pq {
            case .adaLog(var a):
                let qr = FPCS.adaLogBase(scale: 1, settings: settings) { cands in obj.qLosses(cands.map { $0.q }, vHat: vh, v: vv) }
                a.q = qr.q
                pq = .adaLog(a)
                stats.add("q out r\(round)", qr.evaluations, since: t0)
            case .uniform:
                if let g = pGrid {
                    let pr = FPCS.uniform(grid: g.candidates, delta0: g.delta0, minScale: 1e-4, settings: settings) { c in
                        obj.uniformPLosses(c, pBits: probabilityBits, vHat: vh, v: vv)
                    }
                    pq = .uniform(try UniformQuantizer(bits: probabilityBits, scales: pr.scales, zeroPoints: pr.zeroPoints))
                    stats.add("P out r\(round)", pr.evaluations, since: t0)
                }
            case .log2, .logSqrt2: break
            }
            // P from V, then V from P: the same P as the last round gives the same V (fixed point).
            if round > 1 && pq == previousProbability { break }
            t0 = .now
            let ph = try pq.fakeQuantize(pv)
            let vr = FPCS.uniform(grid: vGrid.candidates, delta0: vGrid.delta0, settings: settings) { c in
                obj.vLosses(c, pHat: ph, v: vv, vBits: valueBits)
            }
            let previousValue = vq
            vq = try perHead(vr.scales, vr.zeroPoints, bits: valueBits)
            stats.add("V out r\(round)", vr.evaluations, since: t0)
            if vq == previousValue { break }
        }
        var ada: AdaLogQuantizer? = nil
        if case .adaLog(let a) = pq { ada = a }
        return AttentionValuesSearchResult(probabilities: ada, probabilityQuantizer: pq, value: vq, stats: stats)
    }

    /// Patch-embed conv weights per output channel: grid index −2 (conv zero-point window), then one
    /// W FPCS on the output error with the float input (the image is not quantized at ≥ 8 bits).
    /// - Parameters: columns [n × k] im2col rows of the input (k = C·kh·kw); weight [o × k].
    public static func patchEmbed(columns x: [Float], rows n: Int, inFeatures k: Int, weight w: [Float], outChannels o: Int,
                                  weightBits: Int, settings: FPCSSettings = FPCSSettings()) throws(QuantError) -> (weight: UniformQuantizer, stats: SearchStats, roundedWeight: [Float]?) {
        try check(n > 0 && k > 0 && o > 0 && x.count == n * k && w.count == o * k,
                  "patch embed: columns \(x.count) for \(n)×\(k), weight \(w.count) for \(o)×\(k)")
        var stats = SearchStats()
        let t = ContinuousClock.now
        let grid = try UniformGrid(role: UniformGrid.convWeightRole(bits: weightBits, eqN: settings.eqN), bits: weightBits, values: w, shape: [o, k],
                                   granularity: .perChannel(axis: 0), settings: settings)
        let obj = WeightOutputObjective(x: x, xHat: nil, tokens: n, inFeatures: k, weight: w, outFeatures: o)
        let r = FPCS.uniform(grid: grid.candidates, delta0: grid.delta0, settings: settings) { c in obj.losses(c, bits: weightBits) }
        stats.add("W out r1", r.evaluations, since: t)
        let wq = try perRowQuantizer(r, bits: weightBits)
        var rounded: [Float]? = nil
        if let mode = settings.weightRounding, mode.roundsDuringSearch {
            let t2 = ContinuousClock.now
            rounded = try gptqRound(w, rows: o, cols: k, quantizer: wq, objective: obj, mode: .gptq, settings: settings)
            stats.add("W \(mode.rawValue)", 0, since: t2)
        }
        return (wq, stats, rounded)
    }
}

/// Counters for cost reports.
public enum QuantCost {
    /// Multiply-accumulates issued to FloatKernels by the searches since the last reset.
    public static var multiplyAccumulates: Int { LA.macs }
    public static func reset() { LA.macCounter.store(0, ordering: .relaxed) }
    /// Benchmark aid only: when true, matrix products are counted but not computed, so a run times
    /// everything except the GEMMs (search results are then meaningless). Not thread-safe.
    public static var countProductsOnly: Bool {
        get { LA.dryRun }
        set { LA.dryRun = newValue }
    }
}
