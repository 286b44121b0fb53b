import Testing
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
@testable import Quant

@Suite struct PercentileAndGridTests {
    @Test func percentiles() throws {
        let q = try Percentile.quantiles([4, 1, 3, 2], [0.9, 0, 1])
        #expect(abs(q[0] - 3.7) < 1e-6 && q[1] == 1 && q[2] == 4)
        #expect(Percentile.positivePercentiles([-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0.9, 1]) == [9, 10])
        #expect(Percentile.positivePercentiles([-1, 0], [0.9]) == [0])
        // Mini-batches of 4: maxima 4 and 8 average to 6 (the whole tensor's max is 8).
        #expect(try Percentile.miniBatchedQuantiles([1, 2, 3, 4, 5, 6, 7, 8], [1], limit: 4) == [6])
        #expect(throws: QuantError.self) { try Percentile.quantiles([], [0.5]) }
    }

    @Test func zeroPointWindows() {
        #expect(UniformGrid.zeroPointWindow(role: .activation, bits: 3) == (8, 0))
        #expect(UniformGrid.zeroPointWindow(role: .activation, bits: 4) == (16, 0))
        #expect(UniformGrid.zeroPointWindow(role: .activation, bits: 6) == (16, 24))
        #expect(UniformGrid.zeroPointWindow(role: .weight, bits: 3) == (4, 2))
        #expect(UniformGrid.zeroPointWindow(role: .weight, bits: 4) == (8, 4))
        #expect(UniformGrid.zeroPointWindow(role: .weight, bits: 6) == (16, 24))
        #expect(UniformGrid.zeroPointWindow(role: .matmulOperand, bits: 4) == (8, 4))
        #expect(UniformGrid.zeroPointWindow(role: .convWeight, bits: 6) == (32, 16))
    }

    @Test func gridLayoutAndIndexMinusTwo() throws {
        // One group: P10 = −1, P90 = 1, min = −3, max = 5: ranges 2 … 8 over 16 scales, / 15.
        let g = try UniformGrid(role: .weight, bits: 4, p10: [-1], p90: [1], minimum: [-3], maximum: [5])
        #expect(g.numScale == 16 && g.numZeroPoint == 8 && g.candidates.count == 128)
        #expect(g.candidates.scale(0, 0) == 2.0 / 15 && g.candidates.zeroPoint(0, 0) == 4)
        #expect(abs(g.candidates.scale(15, 0) - 8.0 / 15) < 1e-6 && g.candidates.zeroPoint(16, 0) == 5)
        #expect(abs(g.delta0[0] - 0.4 / 15) < 1e-6)
        let c = g.candidate(-2)
        #expect(c.zeroPoints == [11] && abs(c.scales[0] - (2 + 6 * 14.0 / 15) / 15) < 1e-6)
        let a = try UniformGrid(role: .activation, bits: 4, p10: [0], p90: [0.0001], minimum: [0], maximum: [0.001])
        #expect(a.candidates.scales.allSatisfy { $0 >= 1e-4 })
    }
}

extension PercentileAndGridTests {
    /// Data-centred zero-points: at 8 bits a one-sided tensor gets a window near 0, which the mid-range window
    /// (120…135) cannot reach; where the window covers every code (4-bit activations) the grids are the same.
    @Test func dataCentredZeroPoints() throws {
        // Values in [−0.2, 30], P10 = 0, P90 = 5: the centred zero-point of the widest range is round(255·0.2/30.2) = 2,
        // of the narrowest round(127.5 − 2.5·255/5) = 0.
        let mid = try UniformGrid(role: .activation, bits: 8, p10: [0], p90: [5], minimum: [-0.2], maximum: [30])
        let dc = try UniformGrid(role: .activation, bits: 8, p10: [0], p90: [5], minimum: [-0.2], maximum: [30],
                                 zeroPoints: .dataCentred)
        #expect(mid.candidates.zeroPoints.allSatisfy { (120...135).contains($0) })
        #expect(dc.candidates.scales == mid.candidates.scales, "only the zero-points move")
        #expect(dc.candidates.zeroPoints.allSatisfy { (0...255).contains($0) && $0 == $0.rounded() })
        // Index −2: the widest-but-one range at offset 0 (the centred zero-point itself).
        let s = dc.candidate(-2).scales[0], t: Float = 6.0 / 7  // 16 zero-points × 8 scales
        let centre = (1 - t) * 2.5 + t * 14.9
        #expect(dc.candidate(-2).zeroPoints[0] == (127.5 - centre / s).rounded(.toNearestOrEven))
        #expect(dc.candidate(-1).zeroPoints[0] == 2)
        // The window covers 16 distinct offsets around the centre for the widest range.
        let widest = Set((0..<16).map { dc.candidates.zeroPoint($0 * 8 + 7, 0) })
        #expect(widest == Set((0...9).map(Float.init)), "offsets −8…7 around 2, clamped at 0")
        // On such data the best candidate of the self objective is far better with the centred window.
        var rng = SplitMix(seed: 3)
        let x: [Float] = (0..<4000).map { _ in let u = rng.uniform(); return u < 0.02 ? 30 * rng.uniform() : 5 * u - 0.2 }
        func best(_ g: UniformGrid) -> Double {
            activationSelfLosses(x: x, rows: x.count, cols: 1, bits: 8, g.candidates).min() ?? .infinity
        }
        let gm = try UniformGrid(role: .activation, bits: 8, values: x, shape: [x.count, 1], granularity: .perTensor)
        let gd = try UniformGrid(role: .activation, bits: 8, values: x, shape: [x.count, 1], granularity: .perTensor,
                                 zeroPoints: .dataCentred)
        #expect(best(gd) < 0.5 * best(gm))
        // 4-bit activations: the mid-range window already spans 0…15, so the placement changes nothing.
        let a4 = try UniformGrid(role: .activation, bits: 4, values: x, shape: [x.count, 1], granularity: .perTensor)
        let d4 = try UniformGrid(role: .activation, bits: 4, values: x, shape: [x.count, 1], granularity: .perTensor,
                                 zeroPoints: .dataCentred)
        #expect(a4.candidates == d4.candidates)
        #expect(throws: QuantError.self) { try ZeroPointPlacement.parse("middle") }
        #expect(try ZeroPointPlacement.parse("Data-Centred") == .dataCentred)
    }
}

@Suite struct FPCSTests {
    @Test func uniformFindsKnownMinimiser() throws {
        // Loss (s − s*)² + 1e−3 (z − z*)² per group, two groups with different optima.
        let g = try UniformGrid(role: .weight, bits: 4, p10: [-1, -2], p90: [1, 2], minimum: [-3, -6], maximum: [5, 10])
        let target: [(Float, Float)] = [(0.31371, 6), (0.6123, 9)]
        var calls = 0
        let r = FPCS.uniform(grid: g.candidates, delta0: g.delta0) { c in
            calls += 1
            var out = [Double](repeating: 0, count: c.count * 2)
            for ci in 0..<c.count {
                for gi in 0..<2 {
                    let ds = Double(c.scale(ci, gi) - target[gi].0), dz = Double(c.zeroPoint(ci, gi) - target[gi].1)
                    out[ci * 2 + gi] = ds * ds + 1e-3 * dz * dz
                }
            }
            return out
        }
        #expect(calls == 6 && r.evaluations == 768)
        #expect(r.zeroPoints == [6, 9])
        #expect(abs(r.scales[0] - target[0].0) < 1e-4 && abs(r.scales[1] - target[1].0) < 1e-4)
    }

    @Test func adaLogFindsKnownMinimiser() throws {
        var evalCounts: [Int] = []
        let r = FPCS.adaLog(currentScale: 2, low: 1, high: 4) { cands in
            evalCounts.append(cands.count)
            return cands.map { c in Double((c.q - 55) * (c.q - 55)) + 100 * Double((c.s - 2.7182) * (c.s - 2.7182)) }
        }
        #expect(evalCounts == [128, 128, 128, 128, 128, 128, 128])
        #expect(r.evaluations == 896)
        #expect(r.q == 55 && abs(r.scale - 2.7182) < 1e-3)
        let b = FPCS.adaLogBase(scale: 1) { cands in cands.map { Double(abs($0.q - 137)) } }
        #expect(b.q == 137 && b.evaluations == 128)
    }
}

@Suite struct ObjectiveTests {
    static func data(_ n: Int, _ k: Int, _ o: Int, seed: UInt64) -> ([Float], [Float]) {
        var rng = SplitMix(seed: seed)
        return ((0..<(n * k)).map { _ in rng.normal() }, (0..<(o * k)).map { _ in rng.normal() * 0.3 })
    }

    static func directOutputError(x: [Float], xh: [Float], w: [Float], wh: [Float], n: Int, k: Int, o: Int, row: Int?) -> Double {
        var e = 0.0
        for i in 0..<n {
            for r in 0..<o where row == nil || row == r {
                var a = 0.0, b = 0.0
                for c in 0..<k {
                    a += Double(x[i * k + c]) * Double(w[r * k + c])
                    b += Double(xh[i * k + c]) * Double(wh[r * k + c])
                }
                e += (a - b) * (a - b)
            }
        }
        return e
    }

    @Test func selfLossesEqualDirect() throws {
        let rows = 600, cols = 5
        let (x, w) = Self.data(rows, cols, 3, seed: 7)
        let cands = UniformCandidates(count: 2, groups: cols, scales: (0..<(2 * cols)).map { 0.1 + Float($0) * 0.03 },
                                      zeroPoints: (0..<(2 * cols)).map { Float($0 % 8) })
        let per = activationSelfLosses(x: x, rows: rows, cols: cols, bits: 3, cands)
        let tensor = activationSelfLosses(x: x, rows: rows, cols: cols, bits: 3,
                                          UniformCandidates(count: 1, groups: 1, scales: [0.2], zeroPoints: [3]))
        var tot = 0.0
        for c in 0..<2 {
            for j in 0..<cols {
                var e = 0.0
                for r in 0..<rows {
                    let v = x[r * cols + j], s = cands.scale(c, j), z = cands.zeroPoint(c, j)
                    let q = min(max((v / s).rounded(.toNearestOrEven) + z, 0), 7)
                    e += Double((v - (q - z) * s) * (v - (q - z) * s))
                    if c == 0 && j == 0 { _ = w }
                }
                #expect(abs(per[c * cols + j] - e) <= 1e-6 * max(1, e))
            }
        }
        for v in x { let q = min(max((v / 0.2).rounded(.toNearestOrEven) + 3, 0), 7); tot += Double((v - (q - 3) * 0.2) * (v - (q - 3) * 0.2)) }
        #expect(abs(tensor[0] - tot) <= 1e-6 * max(1, tot))
    }

    @Test func weightShortcutEqualsDirect() throws {
        let n = 40, k = 8, o = 5
        let (x, w) = Self.data(n, k, o, seed: 1)
        let aq = try UniformQuantizer(bits: 3, scales: [0.6], zeroPoints: [4])
        let xh = try aq.fakeQuantize(x, shape: [n, k])
        let obj = WeightOutputObjective(x: x, xHat: xh, tokens: n, inFeatures: k, weight: w, outFeatures: o)
        let grid = try UniformGrid(role: .weight, bits: 3, values: w, shape: [o, k], granularity: .perChannel(axis: 0), eqN: 8)
        let losses = obj.losses(grid.candidates, bits: 3)
        for c in 0..<grid.candidates.count {
            let wq = try UniformQuantizer(bits: 3, granularity: .perChannel(axis: 0),
                                          scales: (0..<o).map { grid.candidates.scale(c, $0) },
                                          zeroPoints: (0..<o).map { grid.candidates.zeroPoint(c, $0) })
            let wh = try wq.fakeQuantize(w, shape: [o, k])
            for r in 0..<o {
                let d = Self.directOutputError(x: x, xh: xh, w: w, wh: wh, n: n, k: k, o: o, row: r)
                #expect(abs(losses[c * o + r] - d) <= 1e-4 * max(1, d))
            }
        }
    }

    @Test(arguments: [3, 12]) func activationObjectiveEqualsDirect(o: Int) throws {
        let n = 30, k = 6
        let (x, w) = Self.data(n, k, o, seed: 2)
        let wq = try UniformQuantizer.initialized(from: w, shape: [o, k], bits: 3, granularity: .perChannel(axis: 0))
        let wh = try wq.fakeQuantize(w, shape: [o, k])
        let obj = ActivationOutputObjective(x: x, tokens: n, inFeatures: k, weight: w, quantizedWeight: wh, outFeatures: o)
        for (s, z) in [(Float(0.3), Float(4)), (0.7, 2), (0.05, 7)] {
            let aq = try UniformQuantizer(bits: 3, scales: [s], zeroPoints: [z])
            let xh = try aq.fakeQuantize(x, shape: [n, k])
            let res = x.minus(xh)
            let l = obj.loss { d, lo, hi in for i in lo..<hi { d[i] = res[i] } }
            let direct = Self.directOutputError(x: x, xh: xh, w: w, wh: wh, n: n, k: k, o: o, row: nil)
            #expect(abs(l - direct) <= 1e-4 * max(1, direct))
        }
    }

    @Test func attentionObjectivesEqualDirect() throws {
        let b = 2, h = 2, t = 5, d = 3
        var rng = SplitMix(seed: 5)
        let q = (0..<(b * h * t * d)).map { _ in rng.normal() }
        let kk = (0..<(b * h * t * d)).map { _ in rng.normal() }
        let shape = [b, h, t, d]
        let kq = try UniformQuantizer(bits: 3, granularity: .perChannel(axis: 1), scales: [0.4, 0.5], zeroPoints: [3, 4])
        let kh = try kq.fakeQuantize(kk, shape: shape)
        let obj = ScoresOperandObjective(searched: q, other: kk, otherHat: kh, slices: b * h, heads: h, tokens: t, headDim: d)
        let cands = UniformCandidates(count: 2, groups: 2, scales: [0.3, 0.6, 0.5, 0.2], zeroPoints: [3, 4, 2, 5])
        let losses = obj.losses(cands, bits: 3)
        for c in 0..<2 {
            let qq = try UniformQuantizer(bits: 3, granularity: .perChannel(axis: 1), scales: [cands.scale(c, 0), cands.scale(c, 1)],
                                          zeroPoints: [cands.zeroPoint(c, 0), cands.zeroPoint(c, 1)])
            let qh = try qq.fakeQuantize(q, shape: shape)
            var perHead = [0.0, 0.0]
            for sl in 0..<(b * h) {
                for i in 0..<t { for j in 0..<t {
                    var a = 0.0, e = 0.0
                    for x in 0..<d {
                        a += Double(q[(sl * t + i) * d + x]) * Double(kk[(sl * t + j) * d + x])
                        e += Double(qh[(sl * t + i) * d + x]) * Double(kh[(sl * t + j) * d + x])
                    }
                    perHead[sl % h] += (a - e) * (a - e)
                } }
            }
            for hh in 0..<h { #expect(abs(losses[c * h + hh] - perHead[hh]) <= 1e-4 * max(1, perHead[hh])) }
        }

        // matmul2: P (softmax rows) · V.
        var p = [Float](repeating: 0, count: b * h * t * t)
        for r in 0..<(b * h * t) {
            let e = (0..<t).map { _ in expf(rng.normal() * 2) }
            let s = e.reduce(0, +)
            for j in 0..<t { p[r * t + j] = e[j] / s }
        }
        let v = (0..<(b * h * t * d)).map { _ in rng.normal() }
        let vq = try UniformQuantizer(bits: 3, granularity: .perChannel(axis: 1), scales: [0.5, 0.4], zeroPoints: [4, 3])
        let vh = try vq.fakeQuantize(v, shape: shape)
        let av = AttentionValuesObjective(p: p, v: v, slices: b * h, heads: h, tokens: t, headDim: d, bits: 3)
        func direct(_ ph: [Float], _ vh: [Float]) -> [Double] {
            var perHead = [0.0, 0.0]
            for sl in 0..<(b * h) { for i in 0..<t { for x in 0..<d {
                var a = 0.0, e = 0.0
                for j in 0..<t {
                    a += Double(p[(sl * t + i) * t + j]) * Double(v[(sl * t + j) * d + x])
                    e += Double(ph[(sl * t + i) * t + j]) * Double(vh[(sl * t + j) * d + x])
                }
                perHead[sl % h] += (a - e) * (a - e)
            } } }
            return perHead
        }
        let qLoss = av.qLosses([18, 37], vHat: vh, v: v)
        for (i, qv) in [18, 37].enumerated() {
            let ph = try AdaLogQuantizer(bits: 3, q: qv).fakeQuantize(p)
            let dd = direct(ph, vh)
            #expect(abs(qLoss[i] - (dd[0] + dd[1])) <= 1e-4 * max(1, dd[0] + dd[1]))
        }
        let pc = UniformCandidates(count: 2, groups: 1, scales: [0.05, 0.1], zeroPoints: [0, 1])
        let upl = av.uniformPLosses(pc, pBits: 3, vHat: vh, v: v)
        for c in 0..<2 {
            let uq = try UniformQuantizer(bits: 3, scales: [pc.scales[c]], zeroPoints: [pc.zeroPoints[c]])
            let dd = direct(try uq.fakeQuantize(p, shape: [p.count]), vh)
            #expect(abs(upl[c] - (dd[0] + dd[1])) <= 1e-4 * max(1, dd[0] + dd[1]))
        }
        let ph = try AdaLogQuantizer(bits: 3, q: 25).fakeQuantize(p)
        let vl = av.vLosses(cands, pHat: ph, v: v, vBits: 3)
        for c in 0..<2 {
            let q2 = try UniformQuantizer(bits: 3, granularity: .perChannel(axis: 1), scales: [cands.scale(c, 0), cands.scale(c, 1)],
                                          zeroPoints: [cands.zeroPoint(c, 0), cands.zeroPoint(c, 1)])
            let dd = direct(ph, try q2.fakeQuantize(v, shape: shape))
            for hh in 0..<h { #expect(abs(vl[c * h + hh] - dd[hh]) <= 1e-4 * max(1, dd[hh])) }
        }
    }
}
