import Testing
import CAllocCounter
@testable import Int8Runtime
import Int8Kernels
import QModel

/// `Session.execute` allocates nothing: buffers, scratch, output parameters and work splits are planned once. Counted
/// on the calling thread (glibc: CAllocCounter interposes the allocator); the pool's workers run the same code.
@Suite(.enabled(if: alloc_counter_available() != 0, "allocation counting needs glibc")) struct NoAllocationTests {
    /// quantize → 3×3/2 conv (im2col, weight zero-point term) → 3×3/1 depthwise on 48 channels (tap quads) →
    /// 5×5/2 depthwise (tap pairs) → 1×1 conv (direct GEMM, zero-point term) → linear with a float output.
    static func convModel() throws -> QModel {
        typealias W = WeightZeroPointRuntimeTests
        var rng = Rng(s: 5)
        let (h, w, c, o) = (10, 9, 3, 48)
        let l1 = W.layer(&rng, o: o, k: 9 * c), l2 = W.layer(&rng, o: o, k: 9), l3 = W.layer(&rng, o: o, k: 25)
        let l4 = W.layer(&rng, o: 24, k: o), l5 = W.layer(&rng, o: 10, k: 24)
        func q(_ n: String, _ s: [Int], _ z: Int32) -> TensorInfo {
            TensorInfo(name: n, dtype: .uint8, shape: s, quantizer: .uniform(UniformParams(scale: 0.05, zeroPoint: z, bits: 8)))
        }
        func fl(_ n: String, _ s: [Int]) -> TensorInfo { TensorInfo(name: n, dtype: .float32, shape: s) }
        let wz = WeightZeroPointRuntimeTests()
        return QModel(name: "no-alloc", classNames: [],
                      tensors: [fl("image", [h, w, c]), q("x", [h, w, c], 7), q("y1", [5, 5, o], 3), q("y2", [5, 5, o], 120), q("y3", [3, 3, o], 9),
                                q("y4", [3, 3, 24], 90), fl("out", [3, 3, 10])],
                      ops: [.quantize(UnaryOp(name: "qin", input: "image", output: "x")),
                            .conv2d(ConvOp(name: "c1", input: "x", output: "y1", weight: wz.ref("c1"), bias: "c1.b", kernel: [3, 3], stride: [2, 2],
                                           pads: [1, 1, 1, 1], clamp: .relu6)),
                            .conv2d(ConvOp(name: "dw1", input: "y1", output: "y2", weight: wz.ref("dw1"), bias: "dw1.b", kernel: [3, 3], stride: [1, 1],
                                           pads: [1, 1, 1, 1], groups: o, clamp: .relu)),
                            .conv2d(ConvOp(name: "dw2", input: "y2", output: "y3", weight: wz.ref("dw2"), bias: "dw2.b", kernel: [5, 5], stride: [2, 2],
                                           pads: [2, 2, 2, 2], groups: o)),
                            .conv2d(ConvOp(name: "pw", input: "y3", output: "y4", weight: wz.ref("pw"), bias: "pw.b", kernel: [1, 1], stride: [1, 1],
                                           pads: [0, 0, 0, 0])),
                            .linear(LinearOp(name: "fc", input: "y4", output: "out", weight: wz.ref("fc"), bias: "fc.b"))],
                      inputs: ["image"], outputs: ["out"],
                      constants: wz.constants("c1", l1, shape: [o, 3, 3, c]) + wz.constants("dw1", l2, shape: [o, 3, 3, 1]) +
                          wz.constants("dw2", l3, shape: [o, 5, 5, 1]) + wz.constants("pw", l4, shape: [24, 1, 1, o]) +
                          wz.constants("fc", l5, shape: [10, 24]))
    }

    /// Allocations of 3 `execute`s after a warm-up run (the pool's threads start on the first parallel loop): the fewest
    /// of 5 tries, since a loop that finds the pool busy with another test's job runs on Dispatch, which allocates.
    static func allocations(_ model: QModel, threads: Int) throws -> (count: Int, output: [Float]) {
        let s = try Session(model: model, batch: 1, threads: threads)
        var rng = Rng(s: 9)
        let x = randomFloats(&rng, s.inputShape.reduce(1, *))
        s.inputBuffer.update(from: x, count: x.count)
        try s.execute(samples: 1)
        var n = Int.max
        for _ in 0..<5 where n > 0 {
            alloc_counter_begin()
            for _ in 0..<3 { try s.execute(samples: 1) }
            n = min(n, alloc_counter_end())
        }
        let out = Array(UnsafeBufferPointer(start: s.outputBuffer(0), count: s.outputShapes[0].reduce(1, *)))
        return (n, out)
    }

    @Test func counterSeesAllocations() {
        alloc_counter_begin()
        let p = UnsafeMutableRawPointer.allocate(byteCount: 100, alignment: 64)
        let a = [Int](repeating: 1, count: Int(alloc_counter_available()) + 99)
        let n = alloc_counter_end()
        p.deallocate()
        #expect(n >= 2 && a.count == 100)
    }

    @Test func convModelExecutesWithoutAllocating() throws {
        let m = try Self.convModel()
        let (n1, o1) = try Self.allocations(m, threads: 1)
        let (n2, o2) = try Self.allocations(m, threads: 2)
        #expect(n1 == 0, "1 thread: \(n1) allocations in 3 inferences")
        #expect(n2 == 0, "2 threads: \(n2) allocations in 3 inferences")
        #expect(o1 == o2)
    }

    @Test func vitModelExecutesWithoutAllocating() throws {
        let m = try vitModel()
        for threads in [1, 2] {
            let (n, _) = try Self.allocations(m, threads: threads)
            #expect(n == 0, "\(threads) threads: \(n) allocations in 3 inferences")
        }
    }
}
