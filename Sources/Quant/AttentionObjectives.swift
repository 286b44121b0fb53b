import FloatEngine
import CQuantKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Output error of matmul2 (O = P·V per image and head) candidates: AdaLog on P (scale 1) with V̂ fixed,
/// or per-head uniform V with P̂ fixed. Direct difference form: P·V − P̂·V̂ = (P − P̂)·V̂ + P·(V − V̂).
final class AttentionValuesObjective {
    let slices: Int, heads: Int, t: Int, d: Int, bits: Int
    let p: [Float]          // slices × T × T
    let logP: [Float]       // log2(P)
    let vT: [Float]         // per slice Vᵀ: slices × d × T

    init(p: [Float], v: [Float], slices: Int, heads: Int, tokens t: Int, headDim d: Int, bits: Int) {
        self.p = p; self.slices = slices; self.heads = heads; self.t = t; self.d = d; self.bits = bits
        logP = p.map { log2f(max($0, 0)) }   // u ≤ 0 → −∞ → the clamp at 1e−15
        var vt = [Float](repeating: 0, count: v.count)
        for sl in 0..<slices {
            let tr = LA.transpose(Array(v[(sl * t * d)..<((sl + 1) * t * d)]), rows: t, cols: d)
            vt.replaceSubrange((sl * t * d)..<((sl + 1) * t * d), with: tr)
        }
        vT = vt
    }

    /// Total loss (all images and heads) of each q with V̂ (`vHat`, [slices × T × d]) fixed.
    func qLosses(_ qs: [Int], vHat: [Float], v: [Float]) -> [Double] {
        var cache = AdaLogLevelCache(bits: bits)
        let tt = t * t, td = t * d, cc = qs.count
        var out = [Double](repeating: 0, count: cc)
        var dbuf = [Float](repeating: 0, count: cc * tt)
        var gbuf = [Float](repeating: 0, count: cc * td)
        let levels = qs.map { cache.levels($0) }
        p.withUnsafeBufferPointer { pp in
            logP.withUnsafeBufferPointer { lp in
                dbuf.withUnsafeMutableBufferPointer { dp in
                    gbuf.withUnsafeMutableBufferPointer { gp in
                        for sl in 0..<slices {
                            let vs = Array(v[(sl * td)..<((sl + 1) * td)])
                            let vh = Array(vHat[(sl * td)..<((sl + 1) * td)])
                            let e0 = LA.matmul(Array(p[(sl * tt)..<((sl + 1) * tt)]), vs.minus(vh), m: t, n: d, k: t, bT: false)
                            let db = dp.baseAddress!, lb = lp.baseAddress!, pb = pp.baseAddress!
                            parallelRanges(cc, minimum: 2) { lo, hi in
                                for c in lo..<hi {
                                    levels[c].withUnsafeBufferPointer { lv in
                                        qk_adalog_fq_log(lb + sl * tt, pb + sl * tt, tt, 0,
                                                         adaLogMaxLog, Float(AdaLogQuantizer.r), Float(qs[c]), Int32(1 << bits),
                                                         lv.baseAddress!, 1, 0, db + c * tt, 1)
                                    }
                                }
                            }
                            vh.withUnsafeBufferPointer { vp in
                                LA.matmul(dp.baseAddress!, vp.baseAddress!, m: cc * t, n: d, k: t, bT: false, gp.baseAddress!)
                            }
                            e0.withUnsafeBufferPointer { ep in
                                for c in 0..<cc { out[c] += qk_sum_sq_of_sum(gp.baseAddress! + c * td, ep.baseAddress!, td) }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Total loss of each per-tensor uniform candidate for P (groups = 1) with V̂ fixed.
    func uniformPLosses(_ cands: UniformCandidates, pBits: Int, vHat: [Float], v: [Float]) -> [Double] {
        let qmax = Float((1 << pBits) - 1)
        let tt = t * t, td = t * d, cc = cands.count
        var out = [Double](repeating: 0, count: cc)
        var dbuf = [Float](repeating: 0, count: cc * tt)
        var gbuf = [Float](repeating: 0, count: cc * td)
        p.withUnsafeBufferPointer { pp in
            logP.withUnsafeBufferPointer { lp in
                dbuf.withUnsafeMutableBufferPointer { dp in
                    gbuf.withUnsafeMutableBufferPointer { gp in
                        for sl in 0..<slices {
                            let vs = Array(v[(sl * td)..<((sl + 1) * td)])
                            let vh = Array(vHat[(sl * td)..<((sl + 1) * td)])
                            let e0 = LA.matmul(Array(p[(sl * tt)..<((sl + 1) * tt)]), vs.minus(vh), m: t, n: d, k: t, bT: false)
                            let db = dp.baseAddress!, lb = lp.baseAddress!, pb = pp.baseAddress!
                            parallelRanges(cc, minimum: 2) { lo, hi in
                                for c in lo..<hi {
                                    qk_uniform_fq(pb + sl * tt, tt, cands.scales[c], cands.zeroPoints[c], 0, qmax, db + c * tt, 1)
                                }
                                _ = lb
                            }
                            vh.withUnsafeBufferPointer { vp in
                                LA.matmul(dp.baseAddress!, vp.baseAddress!, m: cc * t, n: d, k: t, bT: false, gp.baseAddress!)
                            }
                            e0.withUnsafeBufferPointer { ep in
                                for c in 0..<cc { out[c] += qk_sum_sq_of_sum(gp.baseAddress! + c * td, ep.baseAddress!, td) }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Losses [candidate · heads + head] of per-head uniform V candidates with P̂ fixed.
    func vLosses(_ cands: UniformCandidates, pHat: [Float], v: [Float], vBits: Int) -> [Double] {
        let qmax = Float((1 << vBits) - 1)
        let tt = t * t, td = t * d, cc = cands.count
        var out = [Double](repeating: 0, count: cc * heads)
        var dbuf = [Float](repeating: 0, count: cc * td)
        var rbuf = dbuf
        vT.withUnsafeBufferPointer { vtp in
            dbuf.withUnsafeMutableBufferPointer { dp in
                rbuf.withUnsafeMutableBufferPointer { rp in
                    for sl in 0..<slices {
                        let h = sl % heads
                        let ps = Array(p[(sl * tt)..<((sl + 1) * tt)]), ph = Array(pHat[(sl * tt)..<((sl + 1) * tt)])
                        // E0ᵀ = ((P − P̂)·V)ᵀ, d × T.
                        let e0 = LA.matmul(ps.minus(ph), Array(v[(sl * td)..<((sl + 1) * td)]), m: t, n: d, k: t, bT: false)
                        let e0t = LA.transpose(e0, rows: t, cols: d)
                        let db = dp.baseAddress!, vb = vtp.baseAddress!
                        parallelRanges(cc, minimum: 2) { lo, hi in
                            for c in lo..<hi {
                                qk_uniform_fq(vb + sl * td, td, cands.scale(c, h), cands.zeroPoint(c, h), 0, qmax, db + c * td, 1)
                            }
                        }
                        // (P̂·D_c)ᵀ = D_cᵀ·P̂ᵀ for all candidates in one product.
                        ph.withUnsafeBufferPointer { php in
                            LA.matmul(dp.baseAddress!, php.baseAddress!, m: cc * d, n: t, k: t, bT: true, rp.baseAddress!)
                        }
                        e0t.withUnsafeBufferPointer { ep in
                            for c in 0..<cc {
                                out[c * heads + h] += qk_sum_sq_of_sum(rp.baseAddress! + c * td, ep.baseAddress!, td)
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
