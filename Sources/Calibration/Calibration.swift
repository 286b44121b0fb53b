// Calibration: draw a reproducible sample of images, preprocess it once, and collect the float
// activations the quantizer searches need, a few layers at a time (streaming), through the float
// session's observer hook.
import Foundation
import Imaging
import ONNXGraph
import FloatEngine

/// Errors of calibration, with what to fix.
public enum CalibrationError: Error, CustomStringConvertible, Equatable, Sendable {
    case emptyDataset(String)
    case badCount(Int, available: Int, folder: String)
    case inputMismatch(String)
    case missingTensor(String)

    public var description: String {
        switch self {
        case .emptyDataset(let d): return "calibration folder '\(d)' has no images (expected .jpg/.jpeg/.png files)"
        case .badCount(let n, let a, let d):
            return "asked for \(n) calibration images but '\(d)' has \(a); pass --calib-count between 1 and \(a)"
        case .inputMismatch(let m): return "calibration input does not fit the model: \(m)"
        case .missingTensor(let t): return "tensor '\(t)' was never produced by the float model (fused away or not in the graph)"
        }
    }
}

/// The calibration images: which files (in order), how they were preprocessed, and the NCHW batch.
public struct CalibrationSet: Sendable {
    public var files: [String]
    public var seed: UInt64
    public var spec: PreprocessSpec
    /// `count · 3 · size · size` values.
    public var images: [Float]
    public var count: Int { files.count }
    public var imageSize: Int { 3 * spec.size * spec.size }

    public init(files: [String], seed: UInt64, spec: PreprocessSpec, images: [Float]) {
        self.files = files; self.seed = seed; self.spec = spec; self.images = images
    }

    /// Draws `count` images from `dataset` with ``ImageDataset/sample(_:seed:)`` and preprocesses them once.
    public static func draw(from dataset: ImageDataset, count: Int, seed: UInt64, spec: PreprocessSpec,
                            progress: ((Int, Int) -> Void)? = nil) throws -> CalibrationSet {
        guard dataset.count > 0 else { throw CalibrationError.emptyDataset(dataset.root) }
        guard count >= 1, count <= dataset.count else {
            throw CalibrationError.badCount(count, available: dataset.count, folder: dataset.root)
        }
        let s = try dataset.sample(count, seed: seed)
        var images: [Float] = []
        images.reserveCapacity(count * 3 * spec.size * spec.size)
        for i in 0..<s.count {
            let (x, _) = try s.batch(i..<(i + 1), spec: spec)
            images += x
            progress?(i + 1, s.count)
        }
        return CalibrationSet(files: s.items.map(\.path), seed: seed, spec: spec, images: images)
    }
}

/// One collected tensor over all calibration images: the batch dimension (axis 0) is the image count.
public struct CollectedTensor: Sendable {
    public var shape: [Int]
    public var values: [Float]
    public init(shape: [Int], values: [Float]) { self.shape = shape; self.values = values }
}

/// Runs the float model over the calibration images and keeps only the tensors asked for.
/// Memory stays bounded by asking for a few layers' tensors per call (re-running the model each time).
public final class ActivationCollector {
    public let session: FloatSession
    public let calibration: CalibrationSet
    public let batch: Int
    /// Full float model runs so far (one per batch of images).
    public private(set) var runs = 0

    /// - Parameters: graph: the model specialised to the images per float run (`graph.batch`), already
    ///   BN-folded etc.
    public convenience init(graph: StaticGraph, calibration: CalibrationSet, options: SessionOptions = .init()) throws {
        try self.init(session: try FloatSession(staticGraph: graph, options: options), calibration: calibration)
    }

    /// Collects through an existing session (e.g. a fake-quant simulation's); its observer is taken during
    /// ``collect(_:progress:)``.
    public init(session: FloatSession, calibration: CalibrationSet) throws {
        let b = max(1, session.graph.batch)
        self.session = session
        self.calibration = calibration
        self.batch = b
        guard let input = session.graph.inputs.first, session.graph.inputs.count == 1 else {
            throw CalibrationError.inputMismatch("the model has \(session.graph.inputs.count) inputs; one image input is expected")
        }
        guard elementCount(input.shape) == b * calibration.imageSize else {
            throw CalibrationError.inputMismatch("input '\(input.name)' has shape \(input.shape) but the preprocessing makes 3×\(calibration.spec.size)×\(calibration.spec.size) images")
        }
    }

    /// Runs every calibration image through the model and returns the named tensors concatenated over
    /// images. `progress(done, total)` is called after each batch.
    public func collect(_ names: Set<String>, progress: ((Int, Int) -> Void)? = nil) throws -> [String: CollectedTensor] {
        var out: [String: CollectedTensor] = [:]
        let n = calibration.count, per = calibration.imageSize
        var start = 0
        while start < n {
            let m = min(batch, n - start)
            var x = Array(calibration.images[(start * per)..<((start + m) * per)])
            if m < batch { x += [Float](repeating: 0, count: (batch - m) * per) }
            session.observer = { obs in
                guard names.contains(obs.name) else { return }
                let total = obs.values.count, rows = obs.shape.first ?? 1
                let keep = rows == self.batch ? total / rows * m : total
                var t = out[obs.name] ?? CollectedTensor(shape: obs.shape, values: [])
                if t.values.isEmpty { t.values.reserveCapacity(total / max(rows, 1) * n) }
                t.values.append(contentsOf: UnsafeBufferPointer(rebasing: obs.values[0..<keep]))
                out[obs.name] = t
            }
            // Nothing after the last wanted tensor is needed. Tensors that never appear as step outputs (graph
            // inputs, constants) would keep the run going to the end, which is only slower.
            session.stopAfter = names
            defer { session.observer = nil; session.stopAfter = [] }
            _ = try session.run(x)
            runs += 1
            start += m
            progress?(start, n)
        }
        for name in names {
            guard var t = out[name] else { throw CalibrationError.missingTensor(name) }
            if t.shape.first == batch { t.shape[0] = n }
            out[name] = t
        }
        return out
    }
}
