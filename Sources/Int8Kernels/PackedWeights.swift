import CInt8Kernels

/// How a weight matrix is laid out in memory before packing.
public enum WeightLayout: Sendable {
    /// `[N][K]`: one row per output channel (ONNX Gemm with transB, PyTorch Linear, conv `[O][kh][kw][C]`, Kᵀ in Q·Kᵀ).
    case outputMajor
    /// `[K][N]`: ONNX MatMul / MatMulInteger B.
    case inputMajor
}

/// Geometry shared by the packed formats: panels of at most 48 columns, the last rounded up to 16.
public struct PanelGeometry: Sendable, Equatable {
    public let k: Int
    public let n: Int
    /// (first column, valid columns, padded width, element offset of the panel)
    public let panels: [(n0: Int, nr: Int, width: Int, offset: Int)]
    public let totalElements: Int

    init(k: Int, n: Int, groupSize: Int) {
        self.k = k
        self.n = n
        let groups = (k + groupSize - 1) / groupSize
        var p: [(Int, Int, Int, Int)] = []
        var off = 0
        var n0 = 0
        while n0 < n {
            let nr = min(48, n - n0)
            let w = (nr + 15) / 16 * 16
            p.append((n0, nr, w, off))
            off += groups * w * groupSize
            n0 += nr
        }
        panels = p.map { (n0: $0.0, nr: $0.1, width: $0.2, offset: $0.3) }
        totalElements = off
    }

    public static func == (a: PanelGeometry, b: PanelGeometry) -> Bool {
        a.k == b.k && a.n == b.n && a.totalElements == b.totalElements
    }
}

/// Int8 weights pre-packed once (C packing loop, geometry decided here) into the microkernel layout (k grouped by 4, panels of 48 columns),
/// with per-column sums for the activation zero-point fold (adalog.md §4.1).
public struct PackedInt8Weights: Sendable {
    public let geometry: PanelGeometry
    public let data: [Int8]
    /// Σ_k W[k][n], used to fold `−z_x·Σ_k W[k][n]` into the int32 bias.
    public let columnSums: [Int32]
    /// All weights in [−64, 63]: AVX2 may use the (then exact) `vpmaddubsw`.
    public let sevenBit: Bool
    /// Per-column offsets c[n]: the real weight is `weights[k][n] + c[n]` (8-bit asymmetric rows whose W − z leaves
    /// int8 are packed as W − 128 with c = 128 − z). The GEMM adds the exact weight zero-point term c[n]·Σ_k x̃[m][k]
    /// in int32 before the output stage (gemmlowp's rank-one update). nil: the weights are exact as stored.
    public let columnOffsets: [Int32]?
    public var k: Int { geometry.k }
    public var n: Int { geometry.n }

    /// Packs a K×N weight matrix given in `layout`. Weights must already have their zero point folded
    /// (symmetric, or `W − z_w` for ≤ 7-bit weights), or come with per-column `columnOffsets` (real weight =
    /// stored + offset; |offset| ≤ 255, so that |stored + offset| ≤ 383 and K·max|x̃|·383 stays inside int32).
    public init(weights: [Int8], k: Int, n: Int, layout: WeightLayout, columnOffsets: [Int32]? = nil) throws(Int8KernelError) {
        guard k > 0, n > 0 else { throw .invalidArgument("weight matrix must be non-empty (k=\(k), n=\(n))") }
        guard weights.count == k * n else { throw .sizeMismatch(what: "weights (k=\(k), n=\(n))", expected: k * n, got: weights.count) }
        if let c = columnOffsets {
            guard c.count == n else { throw .sizeMismatch(what: "column offsets", expected: n, got: c.count) }
            guard c.allSatisfy({ (-255...255).contains($0) }) else { throw .invalidArgument("column offsets must be in [-255, 255]") }
        }
        self.columnOffsets = columnOffsets?.allSatisfy({ $0 == 0 }) == true ? nil : columnOffsets
        let g = PanelGeometry(k: k, n: n, groupSize: 4)
        var d = [Int8](repeating: 0, count: g.totalElements)
        var sums = [Int32](repeating: 0, count: n)
        var seven7: Int32 = 0
        i8k_pack_s8(weights, k, n, layout == .outputMajor ? 1 : 0, &d, &sums, &seven7)
        let seven = seven7 != 0
        geometry = g
        data = d
        columnSums = sums
        sevenBit = seven
    }
}

/// Int8 weights widened to int16 and packed in pairs of k, for the int16 × int16 GEMM that consumes
/// AdaLog table values (P·V and fc2, adalog.md §4.4/§4.8).
public struct PackedInt16Weights: Sendable {
    public let geometry: PanelGeometry
    public let data: [Int16]
    public var k: Int { geometry.k }
    public var n: Int { geometry.n }

    public init(weights: [Int8], k: Int, n: Int, layout: WeightLayout) throws(Int8KernelError) {
        try self.init(weights: weights.map { Int16($0) }, k: k, n: n, layout: layout)
    }

    /// From int16 weights: 8-bit weights with their zero point removed (W − z in [−255, 255]) stay exact.
    public init(weights: [Int16], k: Int, n: Int, layout: WeightLayout) throws(Int8KernelError) {
        guard k > 0, n > 0 else { throw .invalidArgument("weight matrix must be non-empty (k=\(k), n=\(n))") }
        guard weights.count == k * n else { throw .sizeMismatch(what: "weights (k=\(k), n=\(n))", expected: k * n, got: weights.count) }
        let g = PanelGeometry(k: k, n: n, groupSize: 2)
        var d = [Int16](repeating: 0, count: g.totalElements)
        i8k_pack_s16(weights, k, n, layout == .outputMajor ? 1 : 0, &d)
        geometry = g
        data = d
    }
}

/// Low-bit storage helpers (values live in int8 containers; 4-bit weights two per byte).
public enum LowBit {
    /// Packs signed 4-bit values (each in [−8, 7]) two per byte, low nibble first.
    public static func packInt4(_ values: [Int8]) throws(Int8KernelError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        for (i, v) in values.enumerated() {
            guard v >= -8, v <= 7 else { throw .invalidArgument("value \(v) at index \(i) does not fit in 4 bits") }
            let nib = UInt8(bitPattern: v) & 0x0F
            out[i / 2] |= i % 2 == 0 ? nib : nib << 4
        }
        return out
    }

    /// Unpacks `count` signed 4-bit values (sign-extended) from `packed` (unpacking happens at pack time).
    public static func unpackInt4(_ packed: [UInt8], count: Int) throws(Int8KernelError) -> [Int8] {
        guard packed.count * 2 >= count else { throw .sizeMismatch(what: "packed int4 bytes", expected: (count + 1) / 2, got: packed.count) }
        return (0..<count).map { i in
            let b = packed[i / 2]
            let nib = i % 2 == 0 ? b & 0x0F : b >> 4
            return Int8(bitPattern: nib << 4) >> 4
        }
    }

    /// The int8-container range of a `bits`-bit signed value with folded zero point: [−(2^(b−1)), 2^(b−1)−1].
    public static func signedRange(bits: Int) -> ClosedRange<Int32> {
        let h = Int32(1) << Int32(bits - 1)
        return -h...(h - 1)
    }
}
