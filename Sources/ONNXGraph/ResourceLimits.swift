// The memory cap: a model that would need more memory than this is refused with a typed error before the memory is
// allocated (initializers are checked against their declared shapes before decoding, folded constants before they
// are computed, runtime tensors when their shapes are inferred).

/// Memory limits for reading and specialising a model.
public struct ResourceLimits: Sendable, Equatable {
    /// Largest number of bytes the model may need: its file, decoded initializers and folded constants, and (after
    /// specialisation) every runtime tensor at once (an upper bound: the executor reuses buffers).
    public var maxBytes: Int
    /// Most arithmetic operations (multiply-adds, or elements read and written) that folding constants at specialisation may
    /// take in all: a MatMul of two large constants with a small result passes the memory cap but could run for hours
    /// in the reference evaluator. The default, 2·10¹⁰, is tens of seconds there; real models fold far less.
    public var maxFoldingOperations: Int

    public init(maxBytes: Int, maxFoldingOperations: Int = 20_000_000_000) {
        self.maxBytes = max(0, maxBytes)
        self.maxFoldingOperations = max(0, maxFoldingOperations)
    }

    /// 16 GiB: refuses only models that could not run on a typical machine anyway.
    public static let `default` = ResourceLimits(maxBytes: 16 << 30)

    /// `megabytes` MiB (`--max-memory-mb`).
    public static func megabytes(_ megabytes: Int) -> ResourceLimits {
        let (b, o) = megabytes.multipliedReportingOverflow(by: 1 << 20)
        return ResourceLimits(maxBytes: o ? Int.max : b)
    }
}

/// Counts bytes against a `ResourceLimits` and throws `ONNXError.exceedsMemoryLimit` before a charge would pass it.
struct MemoryBudget {
    let limit: Int
    private(set) var used = 0

    init(_ limits: ResourceLimits) { limit = limits.maxBytes }

    /// Charges `elements` values of `bytesPerElement` bytes each for `what`; throws if the total would exceed the cap.
    mutating func charge(_ elements: Int, bytesPerElement: Int, for what: @autoclosure () -> String) throws(ONNXError) {
        let (bytes, o1) = max(0, elements).multipliedReportingOverflow(by: bytesPerElement)
        let (total, o2) = used.addingReportingOverflow(bytes)
        guard !o1, !o2, total <= limit else {
            throw .exceedsMemoryLimit(what: what(), bytes: o1 ? Int.max : bytes, used: used, limit: limit)
        }
        used = total
    }
}

/// Bytes one stored value of `dtype` takes in the suite (floats as Float, integers as Int64).
func storedBytes(_ dtype: DType) -> Int { dtype.isFloat ? 4 : 8 }

/// Element count of a shape, or nil when it overflows or a dimension is negative.
@inlinable public func checkedElementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (m, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = m
    }
    return n
}
