import ArgumentParser

@main
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post-training quantization of vision backbones (uniform and AdaLog) with int8 kernels.",
        subcommands: [PreprocessCommand.self]
    )
}
