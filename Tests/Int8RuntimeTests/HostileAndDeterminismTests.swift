// The memory cap of the runtime, fuzz findings replayed, and determinism of .qmodel files and runs.
import Foundation
import Testing
import QModel
@testable import Int8Runtime

@Suite struct HostileQModelTests {
    /// A valid, tiny file (a few hundred bytes) whose one op declares activations of 2^26 floats each.
    func bigActivations() -> QModel {
        let big = [1 << 13, 1 << 13]
        return QModel(name: "big", classNames: [], tensors: [TensorInfo(name: "x", dtype: .float32, shape: big),
                                                          TensorInfo(name: "y", dtype: .float32, shape: big)],
                      ops: [.gelu(UnaryOp(name: "g", input: "x", output: "y"))], inputs: ["x"], outputs: ["y"], constants: [])
    }

    @Test func activationsAboveTheCapAreRefusedBeforeAllocating() throws {
        let bytes = try QModelFile.encode(bigActivations())
        #expect(bytes.count < 1024)
        let model = try QModelFile.decode(bytes)
        #expect {
            try Session(model: model, batch: 1, threads: 1, maxMemoryBytes: 64 << 20)
        } throws: { e in
            guard case let .exceedsMemoryLimit(needed, limit)? = e as? RuntimeError else { return false }
            return needed >= 2 * (1 << 28) && limit == 64 << 20 && (e as! RuntimeError).description.contains("--max-memory-mb")
        }
        // The batch multiplies the need: 4096 × the per-sample size is refused too, long before allocation.
        #expect(throws: RuntimeError.self) { try Session(model: model, batch: 4096, threads: 1) }
    }

    @Test func fileAboveTheSizeCapIsRefusedBeforeReading() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qmodel-cap-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.qmodel").path
        try QModelFile.write(try vitModel(), to: path)
        #expect {
            try QModelFile.load(path: path, maxFileSize: 1024)
        } throws: { e in
            if case .tooLarge(_, 1024)? = e as? QModelError { return true }
            return false
        }
    }
}

@Suite struct DeterminismTests {
    @Test func sameModelGivesBitIdenticalFilesRunToRun() throws {
        // Two independent builds of the same model (fresh builder, fresh calibration) encode to the same bytes, and
        // writing them to disk twice gives identical files.
        let a = try QModelFile.encode(try vitModel()), b = try QModelFile.encode(try vitModel())
        #expect(a == b)
        var cnn1 = TinyCNN(seed: 3), cnn2 = TinyCNN(seed: 3)
        var r1 = Rng(s: 5), r2 = Rng(s: 5)
        _ = cnn1.simulate(randomFloats(&r1, 8 * 8 * 3), calibrate: true)
        _ = cnn2.simulate(randomFloats(&r2, 8 * 8 * 3), calibrate: true)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qmodel-det-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try QModelFile.write(try cnn1.model(), to: dir.path + "/1.qmodel")
        try QModelFile.write(try cnn2.model(), to: dir.path + "/2.qmodel")
        #expect(try Data(contentsOf: dir.appendingPathComponent("1.qmodel")) == Data(contentsOf: dir.appendingPathComponent("2.qmodel")))
    }

    @Test func oneAndTwoThreadsGiveBitIdenticalOutputs() throws {
        var cnn = TinyCNN(seed: 3)
        var r = Rng(s: 5)
        _ = cnn.simulate(randomFloats(&r, 8 * 8 * 3), calibrate: true)
        for model in [try vitModel(), try cnn.model()] {
            let per = model.tensors.first { $0.name == model.inputs[0] }!.elementCount
            var rng = Rng(s: 11)
            let input = randomFloats(&rng, 4 * per)
            let one = try Session(model: model, batch: 4, threads: 1).run(input)
            let two = try Session(model: model, batch: 4, threads: 2).run(input)
            #expect(one.map { $0.map(\.bitPattern) } == two.map { $0.map(\.bitPattern) }, "\(model.name)")
            let again = try Session(model: model, batch: 4, threads: 2).run(input)
            #expect(two.map { $0.map(\.bitPattern) } == again.map { $0.map(\.bitPattern) }, "\(model.name) run to run")
        }
    }
}
