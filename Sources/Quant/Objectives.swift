import FloatEngine
import CQuantKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// −log2(1e−15) in Float: the largest −log2(u/s) after the reference's clamp.
let adaLogMaxLog: Float = -log2f(1e-15)

/// Candidate losses of per-row weight quantizers by their own squared error (self-MSE).
func weightSelfLosses(w: [Float], rows: Int, cols: Int, bits: Int, _ cands: UniformCandidates) -> [Double] {
    let qmax = Float((1 << bits) - 1)
    var out = [Double](repeating: 0, count: cands.count * rows)
    w.withUnsafeBufferPointer { wp in
        for c in 0..<cands.count {
            for r in 0..<rows {
                out[c * rows + r] = qk_uniform_sse(wp.baseAddress! + r * cols, cols, cands.scale(c, r),
                                                   cands.zeroPoint(c, r), 0, qmax)
            }
        }
    }
    return out
}

/// Candidate losses of a per-tensor (groups = 1) or per-column (groups = cols) activation quantizer
/// by its own squared error.
func activationSelfLosses(x: [Float], rows: Int, cols: Int, bits: Int, _ cands: UniformCandidates) -> [Double] {
    let qmax = Float((1 << bits) - 1)
    var out = [Double](repeating: 0, count: cands.count * cands.groups)
    x.withUnsafeBufferPointer { xp in
        let xb = xp.baseAddress!
        if cands.groups == 1 {
            for c in 0..<cands.count {
                var parts = [0.0, 0.0]
                parts.withUnsafeMutableBufferPointer { pp in
                    let p = pp.baseAddress!
                    parallelRanges(rows * cols) { lo, hi in
                        p[lo == 0 ? 0 : 1] = qk_uniform_sse(xb + lo, hi - lo, cands.scales[c], cands.zeroPoints[c], 0, qmax)
                    }
                }
                out[c] = parts[0] + parts[1]
            }
        } else {
            // Two threads over row halves, each with its own per-column accumulator.
            var acc = [Double](repeating: 0, count: 2 * cols)
            for c in 0..<cands.count {
                for i in 0..<(2 * cols) { acc[i] = 0 }
                cands.scales.withUnsafeBufferPointer { sp in
                    cands.zeroPoints.withUnsafeBufferPointer { zp in
                        acc.withUnsafeMutableBufferPointer { ap in
                            let a = ap.baseAddress!, s0 = sp.baseAddress! + c * cols, z0 = zp.baseAddress! + c * cols
                            parallelRanges(rows, minimum: 256) { lo, hi in
                                qk_uniform_sse_cols(xb + lo * cols, hi - lo, cols, s0, z0, 0, qmax, a + (lo == 0 ? 0 : cols))
                            }
                        }
                    }
                }
                for i in 0..<cols { out[c * cols + i] = acc[i] + acc[cols + i] }
            }
        }
    }
    return out
}

/// Output error of per-row weight candidates, through the exact shortcut of adalog.md §1.11.7:
/// ‖X w_o − X̂ ŵ_o‖² = c_o + 2 δ_oᵀ(G w_o) + δ_oᵀ H δ_o with H = X̂ᵀX̂, G = X̂ᵀ(X − X̂), c_o = ‖(X − X̂) w_o‖²,
/// δ_o = w_o − ŵ_o. Built once per activation quantizer (O(N·K²)); each candidate costs O(O·K²) as one
/// large GEMM over all rows and a chunk of candidates.
public final class WeightOutputObjective {
    public let rows: Int, cols: Int
    let w: [Float]
    let hPacked: PackedMatrix
    /// H = X̂ᵀX̂ (or XᵀX when the input is not quantized), [cols × cols] (kept for GPTQ rounding).
    public let hessian: [Float]
    /// G·w_o per row, [rows × cols].
    public let gw: [Float]
    /// ‖(X − X̂) w_o‖² per row.
    let constant: [Double]
    /// Candidate (row-sets) per GEMM call; bounds the scratch memory to ~16 MB.
    let chunk: Int

    /// - Parameters: x [n × k] float input, xHat its quantized version (nil: the input is not quantized),
    ///   w [o × k].
    public init(x: [Float], xHat: [Float]?, tokens n: Int, inFeatures k: Int, weight w: [Float], outFeatures o: Int) {
        rows = o; cols = k; self.w = w
        if let xh = xHat {
            // Gram of [X̂ D]: one product (2K × N)·(2K × N)ᵀ gives H, G and DᵀD together.
            var mt = [Float](repeating: 0, count: 2 * k * n)
            let xht = LA.transpose(xh, rows: n, cols: k)
            let dt = LA.transpose(x.minus(xh), rows: n, cols: k)
            mt.replaceSubrange(0..<(k * n), with: xht)
            mt.replaceSubrange((k * n)..<(2 * k * n), with: dt)
            let gram = LA.matmul(mt, mt, m: 2 * k, n: 2 * k, k: n, bT: true)
            var h = [Float](repeating: 0, count: k * k), g = h, dd = h
            for i in 0..<k {
                for j in 0..<k {
                    h[i * k + j] = gram[i * 2 * k + j]
                    g[i * k + j] = gram[i * 2 * k + k + j]
                    dd[i * k + j] = gram[(k + i) * 2 * k + k + j]
                }
            }
            hPacked = h.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: k) }
            hessian = h
            gw = LA.matmul(w, g, m: o, n: k, k: k, bT: true)
            let t = LA.matmul(w, dd, m: o, n: k, k: k, bT: false)
            var c = [Double](repeating: 0, count: o)
            t.withUnsafeBufferPointer { tp in
                w.withUnsafeBufferPointer { wp in
                    for r in 0..<o { c[r] = qk_dot(tp.baseAddress! + r * k, wp.baseAddress! + r * k, k) }
                }
            }
            constant = c
        } else {
            let h = LA.atb(x, x, n: n, k: k, m: k)
            hPacked = h.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: k) }
            hessian = h
            gw = [Float](repeating: 0, count: o * k)
            constant = [Double](repeating: 0, count: o)
        }
        chunk = max(1, 4_000_000 / max(1, o * k))
    }

    /// Losses [candidate · rows + row] of asymmetric `bits`-bit per-row candidates.
    public func losses(_ cands: UniformCandidates, bits: Int) -> [Double] {
        let qmax = Float((1 << bits) - 1)
        let o = rows, k = cols
        var out = [Double](repeating: 0, count: cands.count * o)
        var delta = [Float](repeating: 0, count: min(chunk, cands.count) * o * k)
        var z = delta
        w.withUnsafeBufferPointer { wp in
            gw.withUnsafeBufferPointer { gp in
                delta.withUnsafeMutableBufferPointer { dp in
                    z.withUnsafeMutableBufferPointer { zp in
                        var c0 = 0
                        while c0 < cands.count {
                            let cc = min(chunk, cands.count - c0)
                            for ci in 0..<cc {
                                for r in 0..<o {
                                    qk_uniform_fq(wp.baseAddress! + r * k, k, cands.scale(c0 + ci, r),
                                                  cands.zeroPoint(c0 + ci, r), 0, qmax,
                                                  dp.baseAddress! + (ci * o + r) * k, 1)
                                }
                            }
                            LA.gemm(dp.baseAddress!, m: cc * o, hPacked, zp.baseAddress!)
                            for ci in 0..<cc {
                                for r in 0..<o {
                                    let d = dp.baseAddress! + (ci * o + r) * k
                                    let lin = qk_dot(d, gp.baseAddress! + r * k, k)
                                    let quad = qk_dot(d, zp.baseAddress! + (ci * o + r) * k, k)
                                    out[(c0 + ci) * o + r] = constant[r] + 2 * lin + quad
                                }
                            }
                            c0 += cc
                        }
                    }
                }
            }
        }
        return out
    }
}

/// Output error ‖X Wᵀ − X̂ Ŵᵀ‖² of per-tensor activation candidates with the weight quantizer fixed.
/// With D = X − X̂ and E0 = X (W − Ŵ)ᵀ: the error is ‖D Ŵᵀ + E0‖² (one N×K×O GEMM per candidate), or,
/// when O > K, ⟨D·ŴᵀŴ, D⟩ + 2⟨D, E0 Ŵ⟩ + ‖E0‖² (N×K×K). Both are exact; the difference form keeps float
/// cancellation small.
public final class ActivationOutputObjective {
    let n: Int, k: Int, o: Int
    let useGram: Bool
    let packed: PackedMatrix          // Ŵᵀ (K × O) or ŴᵀŴ (K × K)
    let e0: [Float]                   // N × O (direct form)
    let v: [Float]                    // N × K (Gram form)
    let c0: Double
    var d: [Float]
    var g: [Float]

    public init(x: [Float], tokens n: Int, inFeatures k: Int, weight w: [Float], quantizedWeight wh: [Float],
                outFeatures o: Int) {
        self.n = n; self.k = k; self.o = o
        useGram = o > k
        let dw = w.minus(wh)
        let dwPacked = dw.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: o, transposed: true) }
        let e = LA.gemm(x, m: n, dwPacked)
        if useGram {
            let p = LA.atb(wh, wh, n: o, k: k, m: k)
            packed = p.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: k) }
            v = LA.matmul(e, wh, m: n, n: k, k: o, bT: false)
            c0 = e.withUnsafeBufferPointer { qk_dot($0.baseAddress!, $0.baseAddress!, e.count) }
            e0 = []
            g = [Float](repeating: 0, count: n * k)
        } else {
            packed = wh.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, k: k, n: o, transposed: true) }
            e0 = e; v = []; c0 = 0
            g = [Float](repeating: 0, count: n * o)
        }
        d = [Float](repeating: 0, count: n * k)
    }

    /// Rows per cache block: the residual block, its product and the operands of the dots stay in L2.
    static let blockRows = 128

    /// The loss of the candidate whose residual X − X̂ `fill(buffer, lo, hi)` writes into elements
    /// [lo, hi) of the N×K buffer. Work runs in row blocks (fill → GEMM on the block → partial sums),
    /// the two halves of the rows on two threads.
    public func loss(_ fill: (UnsafeMutablePointer<Float>, Int, Int) -> Void) -> Double {
        let cols = useGram ? k : o
        LA.count(n * k * cols)
        var parts = [0.0, 0.0]
        d.withUnsafeMutableBufferPointer { dp in
            g.withUnsafeMutableBufferPointer { gp in
                v.withUnsafeBufferPointer { vp in
                    e0.withUnsafeBufferPointer { ep in
                        parts.withUnsafeMutableBufferPointer { pp in
                            let db = dp.baseAddress!, gb = gp.baseAddress!, part = pp.baseAddress!
                            let vb = vp.baseAddress, eb = ep.baseAddress
                            let blocks = (n + Self.blockRows - 1) / Self.blockRows
                            parallelRanges(blocks, minimum: 8) { b0, b1 in
                                var acc = 0.0
                                for blk in b0..<b1 {
                                    let r0 = blk * Self.blockRows, r1 = min(n, r0 + Self.blockRows)
                                    fill(db, r0 * k, r1 * k)
                                    let dblk = db + r0 * k, gblk = gb + r0 * cols
                                    LA.gemmUncounted(dblk, m: r1 - r0, packed, gblk)
                                    if useGram, let vb {
                                        acc += qk_dot(gblk, dblk, (r1 - r0) * k) + 2 * qk_dot(dblk, vb + r0 * k, (r1 - r0) * k)
                                    } else if let eb {
                                        acc += qk_sum_sq_of_sum(gblk, eb + r0 * o, (r1 - r0) * o)
                                    }
                                }
                                part[b0 == 0 ? 0 : 1] = acc
                            }
                        }
                    }
                }
            }
        }
        return parts[0] + parts[1] + c0
    }
}

/// Cached unit levels of AdaLog for each q (hardware table).
struct AdaLogLevelCache {
    let bits: Int
    var cache: [Int: [Float]] = [:]
    init(bits: Int) { self.bits = bits }
    mutating func levels(_ q: Int) -> [Float] {
        if let l = cache[q] { return l }
        let l = (try? AdaLogQuantizer(bits: bits, q: q).unitLevels) ?? []
        cache[q] = l
        return l
    }
}

/// Output error of candidates for one operand of per-(image, head) products S = A·Bᵀ with the other
/// operand's quantizer fixed, per head. Slices are [T × d]; with D = A − Â, Ô the other operand quantized
/// and E0 = A (B − B̂)ᵀ: ‖E0 + D Ôᵀ‖² = ⟨D·ÔᵀÔ, D⟩ + 2⟨D, E0 Ô⟩ + ‖E0‖² (cost T·d² per candidate instead of T²·d).
/// Searching B of A·Bᵀ is the same with the roles swapped (Sᵀ = B·Aᵀ).
final class ScoresOperandObjective {
    let slices: Int, heads: Int, t: Int, d: Int
    let searched: [Float]
    var gram: [[Float]] = []      // per slice d×d
    var v: [[Float]] = []         // per slice T×d
    var c0: [Double] = []

    /// - Parameters: searched/other float [slices·T·d] with slice index b·heads + h; otherHat = other quantized.
    init(searched: [Float], other: [Float], otherHat: [Float], slices: Int, heads: Int, tokens t: Int, headDim d: Int) {
        self.slices = slices; self.heads = heads; self.t = t; self.d = d; self.searched = searched
        let sz = t * d
        for sl in 0..<slices {
            let a = Array(searched[(sl * sz)..<((sl + 1) * sz)])
            let ob = Array(other[(sl * sz)..<((sl + 1) * sz)])
            let oh = Array(otherHat[(sl * sz)..<((sl + 1) * sz)])
            let e0 = LA.matmul(a, ob.minus(oh), m: t, n: t, k: d, bT: true)
            gram.append(LA.atb(oh, oh, n: t, k: d, m: d))
            v.append(LA.matmul(e0, oh, m: t, n: d, k: t, bT: false))
            c0.append(e0.withUnsafeBufferPointer { qk_dot($0.baseAddress!, $0.baseAddress!, e0.count) })
        }
    }

    /// Losses [candidate · heads + head] of per-head asymmetric `bits`-bit candidates.
    func losses(_ cands: UniformCandidates, bits: Int) -> [Double] {
        let qmax = Float((1 << bits) - 1)
        let sz = t * d, cc = cands.count
        var out = [Double](repeating: 0, count: cc * heads)
        var dbuf = [Float](repeating: 0, count: cc * sz)
        var zbuf = dbuf
        searched.withUnsafeBufferPointer { ap in
            dbuf.withUnsafeMutableBufferPointer { dp in
                zbuf.withUnsafeMutableBufferPointer { zp in
                    for sl in 0..<slices {
                        let h = sl % heads
                        let db = dp.baseAddress!, ab = ap.baseAddress!
                        parallelRanges(cc, minimum: 2) { lo, hi in
                            for c in lo..<hi {
                                qk_uniform_fq(ab + sl * sz, sz, cands.scale(c, h), cands.zeroPoint(c, h), 0, qmax, db + c * sz, 1)
                            }
                        }
                        gram[sl].withUnsafeBufferPointer { gp in
                            LA.matmul(dp.baseAddress!, gp.baseAddress!, m: cc * t, n: d, k: d, bT: false, zp.baseAddress!)
                        }
                        v[sl].withUnsafeBufferPointer { vp in
                            for c in 0..<cc {
                                let dc = dp.baseAddress! + c * sz
                                out[c * heads + h] += qk_dot(zp.baseAddress! + c * sz, dc, sz)
                                    + 2 * qk_dot(dc, vp.baseAddress!, sz) + c0[sl]
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
