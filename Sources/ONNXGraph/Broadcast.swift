// numpy-style broadcasting helpers shared by folding and execution.

/// The broadcast shape of several shapes, or nil if they are incompatible.
public func broadcastShape(_ shapes: [[Int]]) -> [Int]? {
    let rank = shapes.map(\.count).max() ?? 0
    var out = [Int](repeating: 1, count: rank)
    for s in shapes {
        let off = rank - s.count
        for (i, d) in s.enumerated() {
            let o = out[off + i]
            if o == d || d == 1 { continue }
            if o == 1 { out[off + i] = d } else { return nil }
        }
    }
    return out
}

/// Strides to read a tensor of `shape` as if broadcast to `outShape` (0 on broadcast dims).
public func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let rs = rowMajorStrides(shape)
    let off = outShape.count - shape.count
    var s = [Int](repeating: 0, count: outShape.count)
    for i in 0..<shape.count where shape[i] != 1 { s[off + i] = rs[i] }
    return s
}

/// Calls `body(outIndex, offsets)` for each element of `outShape` in row-major order, where
/// `offsets[j]` is the flat index into operand j (given by its broadcast strides).
@inline(__always)
public func forEachBroadcast(_ outShape: [Int], _ strides: [[Int]], _ body: (Int, UnsafeMutableBufferPointer<Int>) -> Void) {
    let total = elementCount(outShape)
    let rank = outShape.count
    let n = strides.count
    var idx = [Int](repeating: 0, count: rank)
    var offs = [Int](repeating: 0, count: n)
    offs.withUnsafeMutableBufferPointer { ob in
        for flat in 0..<total {
            body(flat, ob)
            // advance odometer
            var d = rank - 1
            while d >= 0 {
                idx[d] += 1
                for j in 0..<n { ob[j] += strides[j][d] }
                if idx[d] < outShape[d] { break }
                for j in 0..<n { ob[j] -= strides[j][d] * outShape[d] }
                idx[d] = 0
                d -= 1
            }
        }
    }
}

/// Normalises a possibly negative axis against `rank`; nil if out of range. A scalar (rank 0) has no axis: accepting
/// axis 0 there let Concat/Split/ArgMax/CumSum index an empty shape (fuzz finding: Concat of a rank-0 constant).
public func normalizeAxis(_ a: Int, rank: Int) -> Int? {
    let r = a < 0 ? a + rank : a
    return (r >= 0 && r < rank) ? r : nil
}
