// Class-token quantizers (`TensorInfo.prefix`): the runtime's row splits in LayerNorm+quantize, attention and
// linear layers, and the validator's limits on where such tensors may appear.
import Testing
import QModel
import Int8Kernels
import Int8Runtime

@Suite struct ClassTokenTests {
    /// The tiny ViT block's quantized linear inputs: LayerNorm outputs (qkv, fc1) and the attention output (proj).
    static let prefixable = ["ln1", "ln2", "attn"]

    static func run(_ m: QModel, batch: Int, threads: Int, isa: KernelISA) throws -> [Float] {
        var r = Rng(s: 11)
        let s = try Session(model: m, batch: batch, threads: threads, isa: isa)
        let x = randomFloats(&r, batch * s.inputShape.reduce(1, *))
        return try s.run(x, samples: batch)[0]
    }

    /// A class-token grid equal to the tensor's own grid changes nothing: the split GEMMs, the per-sample
    /// LayerNorm rows and the attention's separate class-row work items give the unsplit model's bits, in the
    /// folded int8 storage and in uint8 storage, for every ISA, batch 3 and 1 or 2 threads.
    @Test(arguments: KernelISA.supported) func sameGridGivesIdenticalOutputs(isa: KernelISA) throws {
        let base = try vitModel()
        for storage in [DType.int8, .uint8] {
            var m = base
            for i in m.tensors.indices where Self.prefixable.contains(m.tensors[i].name) {
                guard case let .uniform(u)? = m.tensors[i].quantizer else { Issue.record("\(m.tensors[i].name) is not uniform"); continue }
                m.tensors[i].prefix = TokenPrefix(count: 1, quantizer: u)
                m.tensors[i].dtype = storage
            }
            try m.validate()
            #expect(m.requiredFormatVersion == 3)
            for threads in [1, 2] {
                let want = try Self.run(base, batch: 3, threads: threads, isa: isa)
                let got = try Self.run(m, batch: 3, threads: threads, isa: isa)
                #expect(got == want, "\(storage) storage, \(threads) threads")
            }
        }
    }

    /// A finer class-token grid moves the outputs (the class token is what the head reads), and the file round trip
    /// keeps it.
    @Test func finerGridChangesTheClassToken() throws {
        let base = try vitModel()
        var m = base
        for i in m.tensors.indices where Self.prefixable.contains(m.tensors[i].name) {
            guard case let .uniform(u)? = m.tensors[i].quantizer else { continue }
            // 8 bits over the same range: 17× finer steps
            let s = u.scale * Float((1 << u.bits) - 1) / 255
            m.tensors[i].prefix = TokenPrefix(count: 1, quantizer: UniformParams(scale: s, zeroPoint: Int32((Float(u.zeroPoint) * u.scale / s).rounded()), bits: 8))
            m.tensors[i].dtype = .uint8
        }
        let loaded = try QModelFile.decode(try QModelFile.encode(m))
        #expect(loaded == m)
        let a = try Self.run(base, batch: 2, threads: 2, isa: .best), b = try Self.run(loaded, batch: 2, threads: 2, isa: .best)
        #expect(a != b)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 0.5 * max(1, abs($0)) }, "a class-token grid should move logits a little, not break them")
    }

    @Test func misplacedClassTokenQuantizersAreRefused() throws {
        let base = try vitModel()
        func refused(_ what: String, _ edit: (inout QModel) -> Void) {
            var m = base
            edit(&m)
            #expect(throws: QModelError.self, "\(what)") { try m.validate() }
        }
        func index(_ m: QModel, _ name: String) -> Int { m.tensors.firstIndex { $0.name == name }! }
        let p8 = TokenPrefix(count: 1, quantizer: UniformParams(scale: 0.1, zeroPoint: 7, bits: 8))
        refused("count = T") { m in let i = index(m, "ln1"); m.tensors[i].dtype = .uint8; m.tensors[i].prefix = TokenPrefix(count: m.tensors[i].shape[0], quantizer: p8.quantizer) }
        refused("count 0") { m in let i = index(m, "ln1"); m.tensors[i].dtype = .uint8; m.tensors[i].prefix = TokenPrefix(count: 0, quantizer: p8.quantizer) }
        refused("8-bit grid in folded int8") { m in let i = index(m, "ln1"); m.tensors[i].dtype = .int8; m.tensors[i].prefix = p8 }
        refused("bad scale") { m in let i = index(m, "ln1"); m.tensors[i].dtype = .uint8
            m.tensors[i].prefix = TokenPrefix(count: 1, quantizer: UniformParams(scale: .nan, zeroPoint: 0, bits: 8)) }
        refused("float tensor") { m in let i = index(m, "qkv"); m.tensors[i].prefix = p8 }
        // a quantized tensor that a non-linear op reads (the AdaLog-coded GELU output is not uniform; use the
        // attention's quantized output read by a reshape-free linear only → make the LayerNorm output feed nothing else)
        refused("read by a non-linear op") { m in
            let i = index(m, "ln1"); m.tensors[i].dtype = .uint8; m.tensors[i].prefix = p8
            m.ops.insert(.dequantize(UnaryOp(name: "peek", input: "ln1", output: "peek")), at: m.ops.firstIndex { $0.output == "ln1" }! + 1)
            m.tensors.append(TensorInfo(name: "peek", dtype: .float32, shape: m.tensors[i].shape))
        }
    }
}
