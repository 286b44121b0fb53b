/// Which ops the suite can read and run.
public enum OpSupport {
    /// Ops the float engine implements with its own kernels (not constant-foldable here).
    public static let engineOps: Set<String> = [
        "Conv", "ConvTranspose", "Gemm", "BatchNormalization", "LayerNormalization", "InstanceNormalization",
        "GroupNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize", "Upsample",
    ]

    /// Every op of the default domain the suite supports (opsets 13–21).
    public static var allSupported: Set<String> { ReferenceOps.supported.union(engineOps) }

    public static func isSupported(_ op: String, domain: String) -> Bool {
        (domain.isEmpty || domain == "ai.onnx") && allSupported.contains(op)
    }
}
