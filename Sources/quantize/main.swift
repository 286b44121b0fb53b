import ArgumentParser
import FileOutput

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post-training quantization of vision backbones (uniform and AdaLog) with int8 kernels.",
        subcommands: [QuantizeModel.self, PreprocessCommand.self, Inspect.self, RunRaw.self, Infer.self, Eval.self, Compare.self, Bench.self, Export.self, ReportCommand.self, Demo.self],
        defaultSubcommand: QuantizeModel.self
    )
}

// main.swift is top-level code once the target has more than one file, so @main cannot be used here.
// An interrupted run (Ctrl-C, SIGTERM, SIGHUP) removes the temporary file of any output being written: no partial files.
AtomicFile.removeTemporariesOnInterrupt()
Quantize.main()
