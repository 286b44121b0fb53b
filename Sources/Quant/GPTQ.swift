// Weight rounding with error compensation (GPTQ/OPTQ, Frantar et al. 2023) on top of the FPCS-chosen
// per-row scales and zero-points. Not part of the AdaLog reference (which rounds to nearest); an option
// (`--weight-rounding gptq | gptq-ia`), documented in README.md.
//
// For a linear layer y = x·wᵀ with quantized input x̂ and H = X̂ᵀX̂ (+ λI), the columns of W are rounded one
// at a time and the rounding error of each column is spread over the columns not yet rounded so that
// ‖X̂ (W − Ŵ)ᵀ‖² stays small. With the factorization H⁻¹ = XᵀX (X = L⁻¹, L = chol(H), lower) the columns are
// processed from the last to the first: e = (w_c − q_c)/X[c][c], w_j ← w_j − e·X[c][j] for j < c (the usual
// forward-order GPTQ on the reversed index order). "Act order" (columns with large H_ii rounded first)
// is a permutation applied before.
//
// `gptq-ia` (input-aware) also compensates the input quantization error: the error ‖X wᵀ − X̂ ŵᵀ‖² of a row
// equals ‖D w‖² − … + ‖X̂(w* − ŵ)‖² with w* = w + H⁻¹ G w, G = X̂ᵀ(X − X̂), so GPTQ rounds w* instead of w.
import FloatEngine

/// How weights are rounded onto the chosen per-row grid.
public enum WeightRounding: String, Codable, Sendable, CaseIterable {
    /// Round to nearest (the AdaLog reference).
    case nearest
    /// GPTQ with H = X̂ᵀX̂ (quantized layer input), act order, 1 % dampening.
    case gptq
    /// GPTQ on the input-aware target w* = w + H⁻¹X̂ᵀ(X − X̂)w.
    case gptqInputAware = "gptq-ia"
    /// After the search, layer by layer in graph order: GPTQ towards the float weight applied to the layer's input
    /// as the quantized model computes it, then the bias refit (SequentialRounding.swift).
    case gptqSequential = "gptq-seq"

    /// GPTQ dampening λ / mean(diag H) when the settings give none. gptq-seq's H comes from inputs that already
    /// carry the upstream error: ViT-Tiny W4A4 (class-token bits 8, 468 images) scored 63.68 at 0.01, 65.17 at 0.1
    /// and 65.38 at 0.5.
    public var defaultDampening: Float { self == .gptqSequential ? 0.1 : 0.01 }

    /// Rounded inside each layer's search (gptq, gptq-ia); nearest and gptq-seq round to nearest there.
    var roundsDuringSearch: Bool { self == .gptq || self == .gptqInputAware }

    public static func parse(_ s: String) throws(QuantError) -> WeightRounding {
        guard let r = WeightRounding(rawValue: s.lowercased()) else {
            throw .badPlanOption(s, reason: "weight rounding must be one of nearest, gptq, gptq-ia, gptq-seq")
        }
        return r
    }
}

public enum GPTQ {
    /// In-place lower Cholesky factor of the symmetric positive-definite n×n row-major `a` (the strict upper
    /// triangle is zeroed). Blocked left-looking; the trailing products go through FloatKernels, the small
    /// diagonal blocks and panels are done in Double. Returns false when `a` is not positive definite.
    static func choleskyLower(_ a: inout [Float], n: Int, block: Int = 64) -> Bool {
        var ok = true
        var tmp = [Float](repeating: 0, count: n * block)
        a.withUnsafeMutableBufferPointer { ap in
            let A = ap.baseAddress!
            tmp.withUnsafeMutableBufferPointer { tp in
                let T = tp.baseAddress!
                var jb = 0
                while jb < n && ok {
                    let bs = min(block, n - jb), rows = n - jb
                    if jb > 0 {
                        // A[jb:n, jb:jb+bs] −= L[jb:n, 0:jb] · L[jb:jb+bs, 0:jb]ᵀ
                        FloatKernels.matmul(m: rows, n: bs, k: jb, a: A + jb * n, lda: n, b: A + jb * n, ldb: n,
                                            bTransposed: true, c: T, ldc: bs)
                        for i in 0..<rows { for j in 0..<bs { A[(jb + i) * n + jb + j] -= T[i * bs + j] } }
                    }
                    for j in 0..<bs {
                        let r = jb + j
                        var d = Double(A[r * n + r])
                        for kk in 0..<j { let v = Double(A[r * n + jb + kk]); d -= v * v }
                        if !(d > 0) || !d.isFinite { ok = false; break }
                        let l = d.squareRoot()
                        A[r * n + r] = Float(l)
                        // The rest of this column inside the block and in the panel below.
                        for i in (r + 1)..<n {
                            var s = Double(A[i * n + r])
                            for kk in 0..<j { s -= Double(A[i * n + jb + kk]) * Double(A[r * n + jb + kk]) }
                            A[i * n + r] = Float(s / l)
                        }
                    }
                    jb += bs
                }
            }
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { A[i * n + j] = 0 } }
        }
        return ok
    }

    /// Inverse of the lower-triangular n×n row-major `l` (blocked; products through FloatKernels).
    static func lowerInverse(_ l: [Float], n: Int, block: Int = 64) -> [Float] {
        var x = [Float](repeating: 0, count: n * n)
        var t = [Float](repeating: 0, count: block * n)
        var dinv = [Double](repeating: 0, count: block * block)
        l.withUnsafeBufferPointer { lp in
            x.withUnsafeMutableBufferPointer { xp in
                t.withUnsafeMutableBufferPointer { tp in
                    let L = lp.baseAddress!, X = xp.baseAddress!, T = tp.baseAddress!
                    var ib = 0
                    while ib < n {
                        let bs = min(block, n - ib)
                        // Dinv = L[I, I]⁻¹ by forward substitution (column j solves L·x = e_j).
                        for i in 0..<(bs * bs) { dinv[i] = 0 }
                        for j in 0..<bs {
                            for i in j..<bs {
                                var s: Double = i == j ? 1 : 0
                                for kk in j..<i { s -= Double(L[(ib + i) * n + ib + kk]) * dinv[kk * bs + j] }
                                dinv[i * bs + j] = s / Double(L[(ib + i) * n + ib + i])
                            }
                        }
                        if ib > 0 {
                            // T = L[I, 0:ib] · X[0:ib, 0:ib]; X[I, 0:ib] = −Dinv · T.
                            FloatKernels.matmul(m: bs, n: ib, k: ib, a: L + ib * n, lda: n, b: X, ldb: n,
                                                bTransposed: false, c: T, ldc: ib)
                            for i in 0..<bs {
                                for c in 0..<ib {
                                    var s = 0.0
                                    for kk in 0...i { s -= dinv[i * bs + kk] * Double(T[kk * ib + c]) }
                                    X[(ib + i) * n + c] = Float(s)
                                }
                            }
                        }
                        for i in 0..<bs { for j in 0...i { X[(ib + i) * n + ib + j] = Float(dinv[i * bs + j]) } }
                        ib += bs
                    }
                }
            }
        }
        return x
    }

    /// GPTQ rounding of `w` [rows × cols] (row = output channel) onto the per-row asymmetric grid
    /// (scales, zeroPoints, `bits`), with H [cols × cols] the Gram matrix of the layer's (quantized) input.
    /// - Parameters:
    ///   - gw: optional [rows × cols] G·w_o per row (G = X̂ᵀ(X − X̂)); when given, the input-aware target
    ///     w + H⁻¹Gw is rounded instead of w.
    ///   - dampening: λ = dampening · mean(diag H) added to the diagonal.
    ///   - actOrder: round the columns with the largest H_ii first.
    /// - Returns: the dequantized weights (every value on its row's grid), [rows × cols].
    public static func round(weight w: [Float], rows o: Int, cols k: Int, hessian h: [Float],
                             scales: [Float], zeroPoints: [Float], bits: Int, gw: [Float]? = nil,
                             dampening: Float = 0.01, actOrder: Bool = true,
                             block: Int = 128) throws(QuantError) -> [Float] {
        guard o > 0, k > 0, w.count == o * k, h.count == k * k, scales.count == o, zeroPoints.count == o,
              gw.map({ $0.count == o * k }) ?? true else {
            throw .shapeMismatch("GPTQ: weight \(w.count) for \(o)×\(k), H \(h.count), \(scales.count) scales")
        }
        let qmax = Float((1 << bits) - 1)
        // Dead inputs (H_ii = 0) get H_ii = 1; their weights do not matter.
        var diag = (0..<k).map { h[$0 * k + $0] }
        let meanDiag = diag.reduce(0, +) / Float(k)
        let lambda = max(dampening * meanDiag, 1e-8)
        let perm: [Int] = actOrder ? (0..<k).sorted { diag[$0] != diag[$1] ? diag[$0] < diag[$1] : $0 > $1 } : Array(0..<k)
        var hp = [Float](repeating: 0, count: k * k)
        for i in 0..<k {
            let pi = perm[i]
            for j in 0..<k { hp[i * k + j] = h[pi * k + perm[j]] }
            if diag[pi] <= 0 { hp[i * k + i] = 1 }
            hp[i * k + i] += lambda
        }
        diag = []
        var damp = lambda
        var hl = hp
        while !choleskyLower(&hl, n: k) {
            // Not positive definite in Float: more dampening.
            damp *= 10
            hl = hp
            for i in 0..<k { hl[i * k + i] += damp }
            if damp > 1e6 * max(meanDiag, 1) { throw .invalidParameters("GPTQ: the Hessian is not positive definite") }
        }
        let x = lowerInverse(hl, n: k)
        // Columns (permuted) as contiguous rows: wt[c·o + r] = w[r, perm[c]].
        var wt = [Float](repeating: 0, count: k * o)
        for r in 0..<o { for c in 0..<k { wt[c * o + r] = w[r * k + perm[c]] } }
        if let gw {
            // w* = w + H⁻¹ (G w) = w + Xᵀ X (G w), in the permuted order: columns of gwt are g_o.
            var gwt = [Float](repeating: 0, count: k * o)
            for r in 0..<o { for c in 0..<k { gwt[c * o + r] = gw[r * k + perm[c]] } }
            let y = LA.matmul(x, gwt, m: k, n: o, k: k, bT: false)            // X·g  [k × o]
            let xt = LA.transpose(x, rows: k, cols: k)
            let z = LA.matmul(xt, y, m: k, n: o, k: k, bT: false)            // Xᵀ X g
            for i in 0..<(k * o) { wt[i] += z[i] }
        }
        let bsMax = min(block, k)
        var err = [Float](repeating: 0, count: bsMax * o)
        var xbt = [Float](repeating: 0, count: k * bsMax)
        scales.withUnsafeBufferPointer { sp in
            zeroPoints.withUnsafeBufferPointer { zp in
                x.withUnsafeBufferPointer { xp in
                    wt.withUnsafeMutableBufferPointer { wp in
                        err.withUnsafeMutableBufferPointer { ep in
                            xbt.withUnsafeMutableBufferPointer { bp in
                                let W = wp.baseAddress!, X = xp.baseAddress!, E = ep.baseAddress!
                                var b1 = k
                                while b1 > 0 {
                                    let b0 = max(0, b1 - bsMax), bs = b1 - b0
                                    for c in stride(from: b1 - 1, through: b0, by: -1) {
                                        let col = W + c * o
                                        let inv = 1 / X[c * k + c]
                                        let e = E + (c - b0) * o
                                        for r in 0..<o {
                                            let s = sp[r], z = zp[r]
                                            let q = min(max((col[r] / s).rounded(.toNearestOrEven) + z, 0), qmax)
                                            let deq = (q - z) * s
                                            e[r] = (col[r] - deq) * inv
                                            col[r] = deq
                                        }
                                        for j in b0..<c {
                                            let f = X[c * k + j]
                                            if f == 0 { continue }
                                            let cj = W + j * o
                                            for r in 0..<o { cj[r] -= e[r] * f }
                                        }
                                    }
                                    if b0 > 0 {
                                        // W[0:b0] −= X[b0:b1, 0:b0]ᵀ · E   ([b0 × bs] · [bs × o]).
                                        for j in 0..<b0 { for c in 0..<bs { bp[j * bs + c] = -X[(b0 + c) * k + j] } }
                                        FloatKernels.matmul(m: b0, n: o, k: bs, a: bp.baseAddress!, lda: bs, b: E, ldb: o,
                                                            bTransposed: false, c: W, ldc: o, accumulate: true)
                                    }
                                    b1 = b0
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = [Float](repeating: 0, count: o * k)
        for c in 0..<k { let pc = perm[c]; for r in 0..<o { out[r * k + pc] = wt[c * o + r] } }
        return out
    }

    /// Integer codes of on-grid weights `wh` [rows × cols] under per-row (scales, zeroPoints).
    public static func codes(of wh: [Float], rows o: Int, cols k: Int, scales: [Float], zeroPoints: [Float], bits: Int) -> [UInt8] {
        let qmax = Float((1 << bits) - 1)
        var out = [UInt8](repeating: 0, count: o * k)
        for r in 0..<o {
            for c in 0..<k {
                out[r * k + c] = UInt8(min(max((wh[r * k + c] / scales[r]).rounded(.toNearestOrEven) + zeroPoints[r], 0), qmax))
            }
        }
        return out
    }
}
