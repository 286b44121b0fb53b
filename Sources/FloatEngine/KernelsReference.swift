// Plain-Swift reference bodies of the float kernel API: the definition the fast C paths are tested
// against (one scalar multiply-add at a time, libm in double for the transcendental functions).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Slow, obviously-correct versions of every `FloatKernels` entry point, kept for tests and for
/// checking new fast paths. Same layouts as `FloatKernels`; `gemm` takes B unpacked (row-major k × n).
public enum FloatReference {
    /// C[m × n] = A[m × k] · B[k × n] + bias[n], then `activation`.
    public static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            bias: UnsafePointer<Float>?, activation: FloatActivation = .none,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = bias?[j] ?? 0
                for kk in 0..<k { s += a[i * lda + kk] * b[kk * ldb + j] }
                c[i * ldc + j] = activation.apply(s)
            }
        }
    }

    /// C (+)= A · B or A · Bᵀ, as `FloatKernels.matmul`.
    public static func matmul(m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, lda: Int,
                              b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                              c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = accumulate ? c[i * ldc + j] : 0
                for kk in 0..<k {
                    s += a[i * lda + kk] * (bTransposed ? b[j * ldb + kk] : b[kk * ldb + j])
                }
                c[i * ldc + j] = s
            }
        }
    }

    /// Direct convolution of one image, weights [O, C/groups, kh, kw].
    public static func conv2d(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, params p: Conv2DParams,
                              bias: UnsafePointer<Float>?, activation: FloatActivation = .none,
                              output: UnsafeMutablePointer<Float>) {
        let cPerGroup = p.inChannels / p.groups, oPerGroup = p.outChannels / p.groups
        let oh = p.outHeight, ow = p.outWidth
        for o in 0..<p.outChannels {
            let g = o / oPerGroup
            for y in 0..<oh {
                for x in 0..<ow {
                    var s: Float = bias?[o] ?? 0
                    for ci in 0..<cPerGroup {
                        let c = g * cPerGroup + ci
                        for ky in 0..<p.kernelH {
                            let iy = y * p.strideH - p.padTop + ky * p.dilationH
                            if iy < 0 || iy >= p.inHeight { continue }
                            for kx in 0..<p.kernelW {
                                let ix = x * p.strideW - p.padLeft + kx * p.dilationW
                                if ix < 0 || ix >= p.inWidth { continue }
                                s += input[(c * p.inHeight + iy) * p.inWidth + ix]
                                    * weights[((o * cPerGroup + ci) * p.kernelH + ky) * p.kernelW + kx]
                            }
                        }
                    }
                    output[(o * oh + y) * ow + x] = activation.apply(s)
                }
            }
        }
    }

    /// Softmax over each row, in place.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows {
            let p = x + r * cols
            var mx = -Float.infinity
            for j in 0..<cols { mx = max(mx, p[j]) }
            var sum: Float = 0
            for j in 0..<cols { p[j] = expf(p[j] - mx); sum += p[j] }
            let inv = 1 / sum
            for j in 0..<cols { p[j] *= inv }
        }
    }

    /// LayerNorm over each row.
    public static func layerNormRows(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                     gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, epsilon: Float,
                                     output: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let p = x + r * cols, o = output + r * cols
            var mean: Float = 0
            for j in 0..<cols { mean += p[j] }
            mean /= Float(cols)
            var v: Float = 0
            for j in 0..<cols { let d = p[j] - mean; v += d * d }
            let inv = 1 / (v / Float(cols) + epsilon).squareRoot()
            for j in 0..<cols { o[j] = (p[j] - mean) * inv * (gamma?[j] ?? 1) + (beta?[j] ?? 0) }
        }
    }

    /// One unary function value, computed in double with libm and rounded to float.
    public static func unary(_ f: FloatKernels.Unary, _ v: Float) -> Float {
        let d = Double(v)
        switch f {
        case .exp: return Float(exp(d))
        case .erf: return Float(erf(d))
        case .tanh: return Float(tanh(d))
        case .sigmoid: return Float(1 / (1 + exp(-d)))
        case .gelu: return Float(0.5 * d * erfc(-d / 2.0.squareRoot()))
        }
    }

    /// Element-wise unary functions, in place.
    public static func apply(_ f: FloatKernels.Unary, _ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = unary(f, x[i]) }
    }
}
