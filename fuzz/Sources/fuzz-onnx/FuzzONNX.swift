// libFuzzer target: ONNX bytes → ModelProto → Graph → static graph (batch 1 and 2) → BatchNorm folding and patterns.
// Every failure must be a thrown ONNXError; a trap, sanitizer report, or allocation above libFuzzer's limit is a bug.
import Foundation
import ONNXGraph

/// The caps under test: anything needing more memory must be refused with `ONNXError.exceedsMemoryLimit`, and
/// constant folding beyond 5·10⁷ operations (well inside libFuzzer's 20 s timeout) with `exceedsFoldingLimit`.
let limits = ResourceLimits(maxBytes: 64 << 20, maxFoldingOperations: 50_000_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard let model = try? ONNXModel(serialized: bytes, path: "fuzz.onnx", limits: limits) else { return 0 }
    let g = model.graph
    _ = g.opHistogram
    _ = g.unsupportedNodes
    _ = g.parameterCount
    for batch in [1, 2] {
        guard let s = try? g.specialized(batch: batch, limits: limits) else { continue }
        _ = try? ModelPatterns(graph: s)
        _ = try? s.foldingBatchNorms()
    }
    return 0
}
