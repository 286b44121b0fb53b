/// Fast Progressive Combining Search settings (adalog.md §1.7; the shipped configs' values).
public struct FPCSSettings: Codable, Equatable, Sendable {
    /// Candidates scored per step (eq_n).
    public var eqN: Int = 128
    /// Survivors per step for uniform quantizers (W).
    public var uniformWidth: Int = 16
    /// Survivors per step for AdaLog (q, s) searches.
    public var adaLogWidth: Int = 32
    /// q values kept by the AdaLog base pre-screen.
    public var adaLogBaseCount: Int = 8
    /// Scales of the AdaLog joint grid.
    public var adaLogScaleCount: Int = 16
    /// Steps including the initial grid.
    public var steps: Int = 6
    /// Search rounds of the layer schedules.
    public var rounds: Int = 3
    /// Optional cost knob (not in the reference): score activation candidates of linear layers
    /// (uniform per-tensor and AdaLog) on only the first this-many token rows. nil = all rows (exact).
    public var activationSearchTokens: Int? = nil
    /// Not in the reference: how weights are rounded onto the searched per-row grids of transformer linear
    /// layers and the patch embed (nil = nearest, the reference). See GPTQ.swift.
    public var weightRounding: WeightRounding? = nil
    /// GPTQ dampening λ / mean(diag H) (nil = the rounding's default: 0.01, gptq-seq 0.1).
    public var gptqDampening: Float? = nil
    /// Not in the reference: smallest AdaLog base numerator q searched (nil = 10, the reference's 10…137). The
    /// reference's smallest base 2^(10/37) has a 20 % relative step at any bit width; at 6–8 bits finer bases fit.
    public var adaLogQMin: Int? = nil
    /// Not in the reference: empirical bias correction of CNN layers (see BiasCorrection). nil = off.
    public var biasCorrection: Bool? = nil
    /// Where the zero-point candidates of the percentile grids sit. The default, data-centred, is not the
    /// reference's; `.midRange` reproduces it. nil (files written before this setting existed) means mid-range.
    public var zeroPoints: ZeroPointPlacement? = .dataCentred
    /// Not in the reference: bits of the class token's own min-max quantizer on the uniform token-major linear
    /// inputs (post-LayerNorm and projection inputs of a ViT); the shared quantizer is then searched on the
    /// other tokens. nil = off (the class token shares the tensor's quantizer).
    public var classTokenBits: Int? = nil
    /// Not in the reference: search each layer on its input as the quantized model computes it, the layers
    /// before it already quantized (one simulation run per layer), instead of on the float model's. nil = off.
    public var sequentialSearch: Bool? = nil
    /// adalog.md §1.9 in a reduced form (BlockReconstruction.swift): Adam steps per transformer block that tune the
    /// block's weight rounding, biases and activation scales towards the float model's block output. nil = off.
    public var blockReconstruction: Int? = nil
    /// The block loss of the reconstruction (nil = mse).
    public var blockReconstructionLoss: ReconstructionLoss? = nil
    /// The activation scales the reconstruction tunes (nil = per-tensor).
    public var blockReconstructionScales: ReconstructionScales? = nil
    /// What each block is tuned towards (nil = the float model's block output).
    public var blockReconstructionTarget: ReconstructionTarget? = nil
    var zeroPointPlacement: ZeroPointPlacement { zeroPoints ?? .midRange }

    public init() {}
}

/// Result of one search call: the winner of every group and how many candidates were scored.
public struct UniformSearchResult: Sendable, Equatable {
    public var scales: [Float]
    public var zeroPoints: [Float]
    /// Losses of the winners (objective units), per group.
    public var losses: [Double]
    /// Candidate evaluations (one evaluation scores one candidate for all groups at once).
    public var evaluations: Int
}

public struct AdaLogSearchResult: Sendable, Equatable {
    public var q: Int
    public var scale: Float
    public var loss: Double
    public var evaluations: Int
}

/// The FPCS beam searches, generic over the objective (lower is better).
public enum FPCS {
    /// Indices of the `k` smallest losses of group g (stable on ties).
    static func topK(_ losses: [Double], count: Int, groups: Int, group g: Int, k: Int) -> [Int] {
        var idx = Array(0..<count)
        idx.sort { a, b in
            let la = losses[a * groups + g], lb = losses[b * groups + g]
            if la != lb { return la.isNaN ? false : (lb.isNaN ? true : la < lb) }
            return a < b
        }
        return Array(idx.prefix(k))
    }

    /// linspace(0, 1, n) − 0.5 in Float, as the reference builds the children offsets.
    static func childOffsets(_ n: Int) -> [Float] {
        (0..<n).map { n == 1 ? -0.5 : Float($0) / Float(n - 1) - 0.5 }
    }

    /// Uniform FPCS: score the grid, keep the best `uniformWidth` per group; then `steps−1` times give
    /// each survivor `eqN/width` children s + δ (δ evenly over ±Δ/2, zero-point inherited), shrink
    /// Δ ← Δ/(E − ½) and keep the best (1 at the end). Each group picks its own winners, so a
    /// per-row/per-head objective gives per-row/per-head results; a per-tensor one has 1 group.
    /// - Parameters:
    ///   - minScale: lower clamp of children scales (the reference's 1e−4 for activations).
    ///   - objective: losses [candidate·groups + group] for a candidate set.
    public static func uniform(grid: UniformCandidates, delta0: [Float], minScale: Float? = nil,
                               settings: FPCSSettings = FPCSSettings(),
                               objective: (UniformCandidates) throws -> [Double]) rethrows -> UniformSearchResult {
        let g = grid.groups
        let width = settings.uniformWidth
        let e = max(1, settings.eqN / width)
        var cands = grid
        var losses = try objective(cands)
        var evals = cands.count
        let stepsLeftInitial = settings.steps - 1
        var keep = stepsLeftInitial == 0 ? 1 : width
        var survivors = (0..<g).map { topK(losses, count: cands.count, groups: g, group: $0, k: min(keep, cands.count)) }
        var delta = delta0
        let offsets = childOffsets(e)
        var remaining = stepsLeftInitial
        while remaining > 0 {
            let nSurv = survivors[0].count
            let count = nSurv * e
            var s = [Float](repeating: 0, count: count * g), z = [Float](repeating: 0, count: count * g)
            for gi in 0..<g {
                let d = offsets.map { $0 * delta[gi] }
                for (j, c) in survivors[gi].enumerated() {
                    let ps = cands.scale(c, gi), pz = cands.zeroPoint(c, gi)
                    for k in 0..<e {
                        var v = ps + d[k]
                        if let m = minScale { v = max(v, m) }
                        s[(j * e + k) * g + gi] = v
                        z[(j * e + k) * g + gi] = pz
                    }
                }
                delta[gi] = delta[gi] / (Float(e) - 0.5)
            }
            cands = UniformCandidates(count: count, groups: g, scales: s, zeroPoints: z)
            losses = try objective(cands)
            evals += count
            remaining -= 1
            keep = remaining == 0 ? 1 : width
            survivors = (0..<g).map { topK(losses, count: count, groups: g, group: $0, k: min(keep, count)) }
        }
        var rs = [Float](), rz = [Float](), rl = [Double]()
        for gi in 0..<g {
            let c = survivors[gi][0]
            rs.append(cands.scale(c, gi)); rz.append(cands.zeroPoint(c, gi)); rl.append(losses[c * g + gi])
        }
        return UniformSearchResult(scales: rs, zeroPoints: rz, losses: rl, evaluations: evals)
    }

    /// Scores each candidate set once and keeps the best per group (the non-FPCS "one grid" search).
    public static func best(of cands: UniformCandidates,
                            objective: (UniformCandidates) throws -> [Double]) rethrows -> UniformSearchResult {
        let losses = try objective(cands)
        let g = cands.groups
        var rs = [Float](), rz = [Float](), rl = [Double]()
        for gi in 0..<g {
            let c = topK(losses, count: cands.count, groups: g, group: gi, k: 1)[0]
            rs.append(cands.scale(c, gi)); rz.append(cands.zeroPoint(c, gi)); rl.append(losses[c * g + gi])
        }
        return UniformSearchResult(scales: rs, zeroPoints: rz, losses: rl, evaluations: cands.count)
    }

    /// The q candidates 10…137 (eq_n of them).
    public static func adaLogQCandidates(_ settings: FPCSSettings = FPCSSettings()) -> [Int] {
        Array(min(settings.adaLogQMin ?? 10, 10)..<(10 + settings.eqN))
    }

    /// AdaLog (q, s) FPCS for the post-GELU quantizer: (1) score all q at `currentScale`, keep
    /// `adaLogBaseCount`; (2) `adaLogScaleCount` scales evenly over [low, high] × kept q's, keep
    /// `adaLogWidth`; (3) `steps−1` refinements with eqN/width children over ±Δ/2, Δ ← Δ/(E − ½), q inherited.
    /// - Parameter objective: losses for a list of (q, s) candidates.
    public static func adaLog(currentScale: Float, low: Float, high: Float,
                              settings: FPCSSettings = FPCSSettings(),
                              objective: ([(q: Int, s: Float)]) throws -> [Double]) rethrows -> AdaLogSearchResult {
        let qs = adaLogQCandidates(settings)
        var evals = 0
        let base = try objective(qs.map { (q: $0, s: currentScale) })
        evals += qs.count
        let keptQ = topK(base, count: qs.count, groups: 1, group: 0, k: min(settings.adaLogBaseCount, qs.count)).map { qs[$0] }
        let ns = settings.adaLogScaleCount
        let grid: [Float] = (0..<ns).map { low + (high - low) * Float(ns == 1 ? 0 : Double($0) / Double(ns - 1)) }
        var delta: Float = ns > 1 ? grid[1] - grid[0] : 0
        var cands: [(q: Int, s: Float)] = []
        for q in keptQ { for s in grid { cands.append((q: q, s: s)) } }
        var losses = try objective(cands)
        evals += cands.count
        var remaining = settings.steps - 1
        var survivors = topK(losses, count: cands.count, groups: 1, group: 0,
                             k: min(remaining == 0 ? 1 : settings.adaLogWidth, cands.count))
        let e = max(1, settings.eqN / settings.adaLogWidth)
        let offsets = childOffsets(e)
        while remaining > 0 {
            var next: [(q: Int, s: Float)] = []
            let d = offsets.map { $0 * delta }
            for c in survivors { for k in 0..<e { next.append((q: cands[c].q, s: cands[c].s + d[k])) } }
            delta = delta / (Float(e) - 0.5)
            cands = next
            losses = try objective(cands)
            evals += cands.count
            remaining -= 1
            survivors = topK(losses, count: cands.count, groups: 1, group: 0,
                             k: min(remaining == 0 ? 1 : settings.adaLogWidth, cands.count))
        }
        let w = survivors[0]
        return AdaLogSearchResult(q: cands[w].q, scale: cands[w].s, loss: losses[w], evaluations: evals)
    }

    /// Exhaustive q search at a fixed scale (post-softmax AdaLog, scale 1).
    public static func adaLogBase(scale: Float, settings: FPCSSettings = FPCSSettings(),
                                  objective: ([(q: Int, s: Float)]) throws -> [Double]) rethrows -> AdaLogSearchResult {
        let qs = adaLogQCandidates(settings)
        let losses = try objective(qs.map { (q: $0, s: scale) })
        let w = topK(losses, count: qs.count, groups: 1, group: 0, k: 1)[0]
        return AdaLogSearchResult(q: qs[w], scale: scale, loss: losses[w], evaluations: qs.count)
    }
}
