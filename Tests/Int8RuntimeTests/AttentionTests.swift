import Testing
@testable import Int8Runtime
import QModel
/// The float attention output (before its quantizer) of the uniform-P path equals the oracle's P̂·V̂ to float rounding:
/// P·V is exact integer arithmetic on the same codes.
@Test func uniformAttentionFloatOutputMatchesOracle() throws {
    var vit = TinyViT(seed: 7, wBits: 4, aBits: 4, uniformSoftmax: true)
    var r = Rng(s: 99)
    let img = randomFloats(&r, 16 * 16 * 3)
    _ = vit.simulate(img, calibrate: true)
    var m = try vit.model()
    m.tensors.append(TensorInfo(name: "attn_f", dtype: .float32, shape: [17, 16]))
    let i = m.ops.firstIndex { $0.name == "attn" }!
    guard case var .attention(a) = m.ops[i] else { return }
    a.output = "attn_f"
    m.ops[i] = .attention(a)
    m.ops.insert(.quantize(UnaryOp(name: "q", input: "attn_f", output: "attn")), at: i + 1)
    m.outputs.append("attn_f")
    let out = try Session(model: m, batch: 1, threads: 1, isa: .portable).run(img)
    let ref = vit.lastAttentionFloat
    #expect(maxDiff(out[2], ref) <= 1e-5 * maxAbs(ref))
}
