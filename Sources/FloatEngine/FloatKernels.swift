// The float compute API the executor calls. This file fixes the *interface*; the bodies here are
// plain-Swift reference implementations. Fast paths (C microkernels in CFloatKernels, runtime ISA
// dispatch, 2 threads) replace the bodies without changing the signatures.
//
// Layout conventions: row-major, explicit leading dimensions; conv tensors are NCHW, one image at a time.

/// An activation fused into the output stage of a GEMM or convolution.
public enum FloatActivation: Sendable, Equatable {
    case none
    case relu
    /// clamp(x, lower, upper); ReLU6 is `.clamp(0, 6)`.
    case clamp(Float, Float)

    @inline(__always) func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return max(x, 0)
        case .clamp(let lo, let hi): return min(max(x, lo), hi)
        }
    }
}

/// A constant right-hand matrix B (K × N), packed once into the layout the GEMM microkernel wants.
public final class PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    /// Reference layout: row-major K × N.
    let storage: [Float]

    /// - Parameters:
    ///   - b: the matrix, row-major K × N (`transposed == false`) or N × K (`transposed == true`,
    ///     e.g. ONNX `Gemm` with `transB = 1`, or conv weights [O, C·kh·kw]).
    public init(_ b: UnsafePointer<Float>, k: Int, n: Int, transposed: Bool = false) {
        self.k = k
        self.n = n
        var s = [Float](repeating: 0, count: k * n)
        for kk in 0..<k {
            for nn in 0..<n {
                s[kk * n + nn] = transposed ? b[nn * k + kk] : b[kk * n + nn]
            }
        }
        storage = s
    }
}

/// Geometry of a 2-D convolution (NCHW, weights [O, C/groups, kh, kw]).
public struct Conv2DParams: Sendable, Equatable {
    public var inChannels: Int, outChannels: Int
    public var inHeight: Int, inWidth: Int
    public var kernelH: Int, kernelW: Int
    public var strideH: Int = 1, strideW: Int = 1
    public var padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0
    public var dilationH: Int = 1, dilationW: Int = 1
    public var groups: Int = 1

    public init(inChannels: Int, outChannels: Int, inHeight: Int, inWidth: Int, kernelH: Int, kernelW: Int,
                strideH: Int = 1, strideW: Int = 1, padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0,
                padRight: Int = 0, dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.inHeight = inHeight; self.inWidth = inWidth
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
        self.dilationH = dilationH; self.dilationW = dilationW
        self.groups = groups
    }

    public var outHeight: Int { (inHeight + padTop + padBottom - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    public var outWidth: Int { (inWidth + padLeft + padRight - dilationW * (kernelW - 1) - 1) / strideW + 1 }
}

/// Convolution weights packed once for `FloatKernels.conv2d`.
public final class PackedConvWeights: @unchecked Sendable {
    public let params: Conv2DParams
    /// Reference layout: the original [O, C/groups, kh, kw].
    let storage: [Float]

    public init(_ weights: UnsafePointer<Float>, params: Conv2DParams) {
        self.params = params
        let count = params.outChannels * (params.inChannels / params.groups) * params.kernelH * params.kernelW
        storage = Array(UnsafeBufferPointer(start: weights, count: count))
    }
}

public enum FloatKernels {
    /// C[m × n] = A[m × k] · B + bias[n], then `activation`. A has row stride `lda`, C `ldc`.
    public static func gemm(m: Int, a: UnsafePointer<Float>, lda: Int, b: PackedMatrix,
                            bias: UnsafePointer<Float>?, activation: FloatActivation = .none,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        let n = b.n, k = b.k
        b.storage.withUnsafeBufferPointer { bp in
            for i in 0..<m {
                for j in 0..<n {
                    var s: Float = bias?[j] ?? 0
                    for kk in 0..<k { s += a[i * lda + kk] * bp[kk * n + j] }
                    c[i * ldc + j] = activation.apply(s)
                }
            }
        }
    }

    /// C[m × n] (+)= A[m × k] · B, where B is k × n (row stride `ldb`) or, with `bTransposed`,
    /// n × k (so C = A · Bᵀ, as in Q·Kᵀ). Both operands are activations (no packing).
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

    /// One image: input [C, H, W] → output [O, outH, outW], plus bias[O], then `activation`.
    public static func conv2d(input: UnsafePointer<Float>, weights: PackedConvWeights,
                              bias: UnsafePointer<Float>?, activation: FloatActivation = .none,
                              output: UnsafeMutablePointer<Float>) {
        let p = weights.params
        let cPerGroup = p.inChannels / p.groups, oPerGroup = p.outChannels / p.groups
        let oh = p.outHeight, ow = p.outWidth
        weights.storage.withUnsafeBufferPointer { w in
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
                                        * w[((o * cPerGroup + ci) * p.kernelH + ky) * p.kernelW + kx]
                                }
                            }
                        }
                        output[(o * oh + y) * ow + x] = activation.apply(s)
                    }
                }
            }
        }
    }

    /// Softmax over each row of `rows × cols` (contiguous), in place.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for r in 0..<rows {
            let p = x + r * cols
            var mx = -Float.infinity
            for j in 0..<cols { mx = max(mx, p[j]) }
            var sum: Float = 0
            for j in 0..<cols { p[j] = (p[j] - mx).exp(); sum += p[j] }
            let inv = 1 / sum
            for j in 0..<cols { p[j] *= inv }
        }
    }

    /// LayerNorm over each row of `rows × cols`: y = (x − mean) / sqrt(var + eps) · gamma + beta.
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

    /// Element-wise unary functions over `count` contiguous values, in place.
    public enum Unary: Sendable { case exp, erf, tanh, sigmoid, gelu }

    public static func apply(_ f: Unary, _ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            switch f {
            case .exp: x[i] = v.exp()
            case .erf: x[i] = Float(_erf(Double(v)))
            case .tanh: x[i] = Float(_tanh(Double(v)))
            case .sigmoid: x[i] = 1 / (1 + (-v).exp())
            case .gelu: x[i] = 0.5 * v * (1 + Float(_erf(Double(v) / 2.0.squareRoot())))
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _erf(_ x: Double) -> Double { Glibc.erf(x) }
@inline(__always) private func _tanh(_ x: Double) -> Double { Glibc.tanh(x) }
extension Float { @inline(__always) fileprivate func exp() -> Float { Glibc.expf(self) } }
#else
import Darwin
@inline(__always) private func _erf(_ x: Double) -> Double { Darwin.erf(x) }
@inline(__always) private func _tanh(_ x: Double) -> Double { Darwin.tanh(x) }
extension Float { @inline(__always) fileprivate func exp() -> Float { Darwin.expf(self) } }
#endif
