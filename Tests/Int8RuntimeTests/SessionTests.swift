import Testing
@testable import Int8Runtime
import Int8Kernels
import QModel

@Suite struct SessionTests {
    func vit() throws -> (QModel, [[Float]]) {
        var v = TinyViT(seed: 11, wBits: 4, aBits: 4)
        var r = Rng(s: 3)
        let imgs = (0..<3).map { _ in randomFloats(&r, 16 * 16 * 3) }
        _ = v.simulate(imgs[0], calibrate: true)
        return (try v.model(), imgs)
    }

    @Test func batchThreadsAndISAGiveIdenticalBytes() throws {
        let (m, imgs) = try vit()
        let single = try Session(model: m, batch: 1, threads: 1, isa: .portable)
        let ref = try imgs.map { try single.run($0)[1] }
        for isa in KernelISA.supported {
            for threads in [1, 2] {
                let s = try Session(model: m, batch: 3, threads: threads, isa: isa)
                let out = try s.run(imgs.flatMap { $0 }, samples: 3)[1]
                #expect(out == ref.flatMap { $0 }, "isa \(isa), threads \(threads)")
                // a partial batch reuses the same buffers
                #expect(try s.run(imgs[2], samples: 1)[1] == ref[2])
            }
        }
    }

    @Test func activationBuffersAreShared() throws {
        let (m, _) = try vit()
        let s = try Session(model: m, batch: 2)
        let unshared = m.tensors.reduce(0) { $0 + max(64, 2 * $1.dtype.byteCount($1.elementCount)) }
        #expect(s.arenaBytes < unshared)
        print("arena \(s.arenaBytes) bytes vs \(unshared) unshared")
    }

    @Test func badRunArgumentsThrow() throws {
        let (m, imgs) = try vit()
        let s = try Session(model: m, batch: 2)
        #expect(throws: RuntimeError.self) { try s.run([1, 2, 3]) }
        #expect(throws: RuntimeError.self) { try s.run(imgs[0] + imgs[1] + imgs[2], samples: 3) }
        #expect(throws: RuntimeError.self) { try Session(model: m, batch: 0) }
        var broken = m
        broken.ops.removeFirst()
        #expect(throws: RuntimeError.self) { try Session(model: broken) }
    }
}
