import ArgumentParser
import ONNXGraph

/// `--max-memory-mb`: the memory cap for reading and specialising a model. A model whose file, initializers, folded
/// constants and activations would need more is refused with a message naming what needs the memory.
struct ResourceOptions: ParsableArguments {
    @Option(name: .customLong("max-memory-mb"),
            help: "Refuse a model that would need more than this many MiB (file, weights, activations at the batch size).")
    var maxMemoryMB: Int = 16384

    var limits: ResourceLimits { .megabytes(maxMemoryMB) }

    func validate() throws {
        guard maxMemoryMB >= 1 else { throw ValidationError("--max-memory-mb must be at least 1") }
    }
}
