import CInt8Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Integer tables of one AdaLog quantizer (adalog.md §1.3, §4.4, §4.8): base β = 2^(q/r), r = 37,
/// 2^b non-zero codes plus the zero state (code 2^b), mantissas on a 1/D grid with D = 2^(b+1) − 2.
/// Self-contained here (the Quant room keeps its own float model of the same quantizer).
public struct AdaLogTable: Sendable, Equatable {
    public let q: Int
    public let r: Int
    public let bits: Int
    /// Fraction bits of the integer table: `table[k] = round(M_k · 2^(F − A_k))`.
    public let fractionBits: Int
    /// D = 2^(b+1) − 2.
    public let denominator: Int
    /// A_k = floor(k·q / r), k = 0..<2^b.
    public let shifts: [Int]
    /// M_{ρ_k} = round(D · 2^(−ρ_k/r)), ρ_k = k·q mod r.
    public let mantissas: [Int]
    /// 2^b + 1 int16 entries, the last (zero state) 0; values round half to even. When `tableHigh` is set (an
    /// int32 table, see `init(q:bits:r:fractionBits:)`), the low 15 bits of each entry.
    public let table: [Int16]
    /// The int32 table's high part (entry = tableHigh·2^15 + table), or nil when the table fits int16.
    public let tableHigh: [Int16]?
    /// The full entries round(M_k · 2^(F − A_k)).
    public var values: [Int32] { (0..<table.count).map { i in Int32(table[i]) + (Int32(tableHigh?[i] ?? 0) << 15) } }

    /// Number of non-zero codes (2^b); also the zero code.
    public var zeroCode: Int { 1 << bits }

    /// Builds the tables. `fractionBits` defaults to the largest F with D·2^F ≤ 32767 (int16 table); a larger F
    /// gives an int32 table (entries < 2^31, the high part < 2^15), held as `tableHigh`·2^15 + `table`.
    public init(q: Int, bits: Int, r: Int = 37, fractionBits: Int? = nil) throws(Int8KernelError) {
        guard (1...8).contains(bits) else { throw .invalidArgument("AdaLog bits \(bits) must be in 1...8") }
        guard q > 0, r > 0 else { throw .invalidArgument("AdaLog q \(q) and r \(r) must be positive") }
        let d = (1 << (bits + 1)) - 2
        var f = 0
        while d << (f + 1) <= 32767 { f += 1 }
        if let fb = fractionBits { f = fb }
        let n = 1 << bits
        guard (0...30).contains(f) else { throw .invalidArgument("AdaLog fractionBits \(f) must be in 0...30") }
        var a: [Int] = [], m: [Int] = [], t: [Int] = []
        for k in 0..<n {
            let ak = (k * q) / r, rho = (k * q) % r
            let mk = Int((Double(d) * Double.pow2(-Double(rho) / Double(r))).rounded(.toNearestOrEven))
            let v = (Double(mk) * pow2(f - ak)).rounded(.toNearestOrEven)
            guard v < 2147483648 else { throw .invalidArgument("AdaLog table entry \(v) for code \(k) does not fit int32; lower fractionBits (\(f))") }
            a.append(ak); m.append(mk); t.append(Int(v))
        }
        if bits == 8, t[n - 1] != 0 {
            throw .invalidArgument("AdaLog 8-bit table: code 255 (value \(t[n - 1])) must underflow to 0 to share its byte with the zero state; q \(q) is too small")
        }
        t.append(0)
        self.q = q; self.r = r; self.bits = bits; self.fractionBits = f; denominator = d
        shifts = a; mantissas = m
        if t.allSatisfy({ $0 <= 32767 }) {
            table = t.map { Int16($0) }; tableHigh = nil
        } else {
            table = t.map { Int16($0 & 0x7FFF) }; tableHigh = t.map { Int16($0 >> 15) }
        }
    }

    /// Thresholds τ_k = s·2^(−(k+½)q/r), k = 0..<2^b (descending; computed in double, stored as Float).
    /// Code = number of thresholds above the value; below the last one → zero code (adalog.md §1.3, §4.3).
    /// At 8 bits the 257 states do not fit a byte: the last threshold is −∞, so code 255 also stands for the
    /// zero state. Both are worth 0 in the table (2^(−255·q/r) underflows it for any q ≥ 10), so the
    /// accumulation is unchanged.
    public func thresholds(scale: Double) -> [Float] {
        (0..<zeroCode).map { k in
            bits == 8 && k == zeroCode - 1 ? -Float.infinity : Float(scale * Double.pow2(-(Double(k) + 0.5) * Double(q) / Double(r)))
        }
    }

    /// Real value of a code for scale s: s · 2^(−A_k) · M_k / D (0 for the zero code).
    public func value(code: Int, scale: Double) -> Double {
        guard code >= 0, code < zeroCode else { return 0 }
        return scale * pow2(-shifts[code]) * Double(mantissas[code]) / Double(denominator)
    }

    /// The largest F for attention P·V against operands |v| ≤ `maxOperand`: Σ_j L·v must fit int32 although
    /// coding rounds each p up by as much as 2^(q/2r)·(1 + 1/D), so D·2^F·maxOperand·that < 2^31 (adalog.md §4.4A
    /// without the int16 limit: an 8-bit table at the int16 F = 6 loses probabilities below 2^−6 to rounding).
    public static func attentionFractionBits(q: Int, bits: Int, r: Int = 37, maxOperand: Int = 255) -> Int {
        let d = Double((1 << (bits + 1)) - 2)
        let growth = Double.pow2(Double(q) / Double(2 * r)) * (1 + 1 / d)
        var f = 0
        while f < 30, d * pow2(f + 1) * Double(maxOperand) * growth < 2147483648 { f += 1 }
        return f
    }

    /// Real value represented by one unit of an accumulator built from `table`: s / (D · 2^F).
    public func accumulatorUnit(scale: Double) -> Double { scale / (Double(denominator) * pow2(fractionBits)) }
}

extension Double {
    static func pow2(_ x: Double) -> Double { exp2(x) }
}
