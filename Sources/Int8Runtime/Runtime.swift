// Executes a QModel on the integer kernels (adalog.md §4, pragmatic path).
import Int8Kernels
import CFloatKernels
@_exported import QModel
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors preparing or running a model: which op, and what is wrong.
public enum RuntimeError: Error, CustomStringConvertible, Sendable {
    case model(QModelError)
    case kernel(op: String, Int8KernelError)
    case unsupported(op: String, String)
    case inputSize(expected: Int, got: Int)
    case invalidArgument(String)
    /// Activations and scratch of this model at this batch would need more than the memory cap; refused before
    /// allocating (`maxMemoryBytes` of `Session.init`, `--max-memory-mb`).
    case exceedsMemoryLimit(needed: Int, limit: Int)

    public var description: String {
        switch self {
        case let .model(e): e.description
        case let .kernel(op, e): "op '\(op)': \(e)"
        case let .unsupported(op, m): "op '\(op)': unsupported: \(m)"
        case let .inputSize(e, g): "input has \(g) floats, expected \(e) (batch × per-sample elements)"
        case let .invalidArgument(m): m
        case let .exceedsMemoryLimit(needed, limit):
            "the model needs \(needed >> 20) MiB of activation and scratch memory at this batch size, above the memory limit of \(limit >> 20) MiB (raise it with --max-memory-mb)"
        }
    }
}

/// One prepared step: kernels packed, output stages built, buffers resolved.
enum Step {
    /// Float conv on the image (patch embed, 8-bit stem): im2col rows × weights packed once for the float SGEMM.
    case convFloat(name: String, x: Int, y: Int, packed: UnsafeMutablePointer<Float>, bias: [Float], h: Int, w: Int, c: Int, o: Int, kh: Int, kw: Int,
                   sh: Int, sw: Int, pt: Int, pl: Int, oh: Int, ow: Int, clamp: Clamp, scratch: Int)
    /// Dense conv; 8-bit weight rows whose W − z leaves int8 carry their exact zero-point term inside the kernel.
    /// `workspace`: the scratch buffer index (im2col blocks, row sums) of `workspaceBytes` bytes.
    case conv(name: String, x: Int, y: Int, kernel: PreparedConv2D, post: Clamp?, workspace: Int, workspaceBytes: Int)
    /// Depthwise conv; weights are int16 W − z, exact for every 8-bit zero point.
    case depthwise(name: String, x: Int, y: Int, kernel: PreparedDepthwiseConv2D, post: Clamp?, workspace: Int, workspaceBytes: Int)
    /// `workspace`: scratch for Σx̃ per row when the weights have a zero-point term (`weights.columnOffsets`).
    case linear(name: String, x: Int, y: Int, gemm: PreparedGEMM, rows: Int, post: Clamp?, workspace: Int, workspaceBytes: Int, prefix: LinearPrefix?)
    /// `predecoded`: the preceding geluAdaLog step already wrote the int16 table values into `scratch`.
    case adaLogLinear(name: String, x: Int, y: Int, kernel: AdaLogLinear, gemm: PreparedInt16GEMM, rows: Int, scratch: Int, predecoded: Bool)
    case layerNormQuantize(name: String, x: Int, y: Int, gamma: [Float], beta: [Float], eps: Float, rows: Int, c: Int, q: QuantSpec, prefix: RowPrefix?)
    /// A residual add `sum = a + b` and the LayerNorm + quantize of `sum` right after it (`ln`, a `.layerNormQuantize`
    /// step), run together per block of rows; the LayerNorm's own step is then `.done`.
    indirect case addLayerNormQuantize(name: String, a: Int, b: Int, sum: Int, ln: Step)
    /// An op whose work the step before it did.
    case done(name: String)
    case attention(name: String, x: Int, y: Int, kernel: AttentionKernel, qkvQ: (scales: [Float], lo: [Int32], hi: [Int32]),
                   operands: Int, workspace: Int, workspaceBytes: Int)
    /// `values`: also write the codes' int16 table values into that scratch (for the adaLogLinear step right after it).
    case geluAdaLog(name: String, x: Int, y: Int, count: Int, shift: Float, encoder: AdaLogEncoder, values: (table: [Int16], scratch: Int)?)
    case quantize(name: String, x: Int, y: Int, count: Int, q: QuantSpec, prefix: RowPrefix?)
    case dequantize(name: String, x: Int, y: Int, count: Int, q: QuantSpec)
    case add(name: String, a: Int, b: Int, y: Int, count: Int)
    case gelu(name: String, x: Int, y: Int, count: Int)
    case pool(name: String, x: Int, y: Int, hw: Int, c: Int)
    case tokenSelect(name: String, x: Int, y: Int, t: Int, c: Int, index: Int)
    case classPosition(name: String, x: Int, y: Int, t: Int, c: Int, cls: [Float], pos: [Float])
    case copy(name: String, x: Int, y: Int, bytes: Int)
    case maxPool(name: String, x: Int, y: Int, dtype: DType, h: Int, w: Int, c: Int, kh: Int, kw: Int, sh: Int, sw: Int, pt: Int, pl: Int, oh: Int, ow: Int)
}

/// Storage form of a uniform-quantized activation: real = (stored − zero)·scale, stored in [qmin, qmax].
/// The class-token rows of a quantized [T, C] tensor (`TensorInfo.prefix`): rows `0..<count` of every `tokens`.
struct RowPrefix {
    var tokens: Int
    var count: Int
    var q: QuantSpec
}

/// A linear layer whose input has class-token rows: their GEMM (own zero point, integer bias and output stage).
struct LinearPrefix {
    var tokens: Int
    var count: Int
    var gemm: PreparedGEMM
}

struct QuantSpec {
    var scale: Float
    var zero: Int32     // zero point of the *stored* value (0 for folded int8)
    var qmin: Int32
    var qmax: Int32
    var unsigned: Bool
    var activation: ActivationType { unsigned ? .uint8(zeroPoint: zero) : .int8(zeroPoint: zero) }

    /// The spec of `t`'s quantizer, or with `prefix` of its class-token quantizer.
    init(_ t: TensorInfo, prefix: Bool = false) throws(RuntimeError) {
        guard case let .uniform(main)? = t.quantizer, t.dtype == .int8 || t.dtype == .uint8 else {
            throw .invalidArgument("tensor '\(t.name)' is not uniform-quantized")
        }
        var u = main
        if prefix {
            guard let p = t.prefix else { throw .invalidArgument("tensor '\(t.name)' has no class-token quantizer") }
            u = p.quantizer
        }
        scale = u.scale
        let top = Int32((1 << u.bits) - 1)
        if t.dtype == .uint8 { zero = u.zeroPoint; qmin = 0; qmax = top; unsigned = true }
        else { zero = 0; qmin = -u.zeroPoint; qmax = top - u.zeroPoint; unsigned = false }
    }
}

/// A loaded model ready to run: weights packed and every activation buffer allocated once for `batch` samples.
/// Not thread-safe: one `Session` runs one inference at a time (it owns its buffers).
public final class Session {
    public let model: QModel
    public let batch: Int
    public let threads: Int
    public let isa: KernelISA
    /// Requantization rounding of every int → int output stage. Single rounding (`(x·M + 2^(30−shift)) >> (31−shift)`,
    /// half up) by default: it is exact rounding of acc·M, so it agrees with the fake-quant simulation except at
    /// exact ties. TFLite's double rounding loses up to ½ unit of acc·M0/2^31 first, which flipped about 15 % of
    /// the codes of a 4-bit uniform-P attention output (small accumulators) in the tests.
    public let requantRounding: RequantRounding
    /// Per-sample shape of the (single) input and of each output.
    public let inputShape: [Int]
    public let outputShapes: [[Int]]
    var steps: [Step] = []
    /// Called after each op with the op, its output tensor and that tensor's buffer (`samples` samples, the
    /// tensor's dtype), for comparing intermediate tensors with another implementation. Nil costs nothing.
    public var observer: ((_ op: Op, _ output: TensorInfo, _ data: UnsafeRawPointer, _ samples: Int) -> Void)?
    /// Pointer of every tensor (by tensor index), then of every scratch area.
    var buffers: [UnsafeMutableRawPointer] = []
    /// The allocations behind `buffers` (tensors whose lifetimes do not overlap share one).
    var owned: [UnsafeMutableRawPointer] = []
    /// Bytes allocated for activations and scratch (after lifetime sharing).
    public private(set) var arenaBytes = 0
    var memoryLimit = Int.max
    var scratchNeed = [0, 0]
    /// Bytes of scratch the ops share (attention workspaces, decode buffers), allocated once beside the arena.
    public var scratchBytes: Int { scratchNeed.reduce(0, +) }
    var scratchLane: [(Int, Int)] = []
    var tensorIndex: [String: Int] = [:]
    let inputIndex: Int
    let outputIndices: [Int]

    /// Prepares `model` for batches of up to `batch` samples on `threads` threads.
    /// A model whose activation and scratch buffers would exceed `maxMemoryBytes` is refused with
    /// `RuntimeError.exceedsMemoryLimit` before they are allocated.
    public init(model: QModel, batch: Int = 1, threads: Int = 2, isa: KernelISA = .best,
                requantRounding: RequantRounding = .singleRounding, maxMemoryBytes: Int = 16 << 30) throws(RuntimeError) {
        self.requantRounding = requantRounding
        do { try model.validate() } catch { throw .model(error) }
        guard batch >= 1, batch <= 4096 else { throw .invalidArgument("batch \(batch) must be in 1...4096") }
        guard isa.isSupported else { throw .invalidArgument("ISA \(isa) is not supported on this CPU") }
        self.model = model; self.batch = batch; self.threads = max(1, threads); self.isa = isa
        for (i, t) in model.tensors.enumerated() { tensorIndex[t.name] = i }
        // Plan once: a tensor's buffer is returned to a free list after its last reader, and later outputs take
        // the smallest free buffer that fits (a producer's output never aliases its own inputs: the output is
        // placed before the inputs are released). Graph inputs/outputs keep their own buffers.
        let tcount = model.tensors.count
        var lastUse = [Int](repeating: -1, count: tcount)
        for (oi, op) in model.ops.enumerated() { for n in op.inputs { lastUse[tensorIndex[n]!] = oi } }
        let tix = tensorIndex
        var pinned = Set(model.outputs.compactMap { tix[$0] })
        pinned.insert(tensorIndex[model.inputs[0]]!)
        var slot = [Int](repeating: -1, count: tcount)
        var slotSize: [Int] = [], free: [Int] = []
        func bytes(_ i: Int) -> Int { max(64, batch * model.tensors[i].dtype.byteCount(model.tensors[i].elementCount)) }
        func place(_ i: Int) {
            let need = bytes(i)
            if !pinned.contains(i), let best = free.filter({ slotSize[$0] >= need }).min(by: { slotSize[$0] < slotSize[$1] }) {
                slot[i] = best; free.removeAll { $0 == best }
            } else {
                slot[i] = slotSize.count; slotSize.append(need)
            }
        }
        place(tensorIndex[model.inputs[0]]!)
        for (oi, op) in model.ops.enumerated() {
            let o = tensorIndex[op.output]!
            place(o)
            for n in Set(op.inputs) { let i = tensorIndex[n]!; if lastUse[i] == oi, !pinned.contains(i) { free.append(slot[i]) } }
            if lastUse[o] < 0, !pinned.contains(o) { free.append(slot[o]) }
        }
        for i in 0..<tcount where slot[i] < 0 { slot[i] = slotSize.count; slotSize.append(bytes(i)) }
        let planned = slotSize.reduce(0) { $0.addingReportingOverflow($1).overflow ? Int.max : $0 + $1 }
        guard planned <= maxMemoryBytes else { throw .exceedsMemoryLimit(needed: planned, limit: maxMemoryBytes) }
        memoryLimit = maxMemoryBytes
        for size in slotSize {
            let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            owned.append(p); arenaBytes += size
        }
        let own = owned
        buffers = slot.map { own[$0] }
        inputIndex = tensorIndex[model.inputs[0]]!
        inputShape = model.tensors[inputIndex].shape
        let ti = tensorIndex
        outputIndices = model.outputs.map { ti[$0]! }
        outputShapes = outputIndices.map { model.tensors[$0].shape }
        for op in model.ops { steps.append(try prepare(op)) }
        fuseGeluIntoAdaLogLinear()
        fuseAddIntoLayerNorm()
        let scratchTotal = scratchNeed.reduce(0, +)
        guard scratchTotal <= memoryLimit - arenaBytes else {
            throw .exceedsMemoryLimit(needed: arenaBytes + scratchTotal, limit: memoryLimit)
        }
        bindScratch()
    }

    deinit { for p in owned { p.deallocate() } }

    /// A geluAdaLog step whose codes feed only the adaLogLinear step right after it also writes their int16 table
    /// values into that step's scratch, which then skips its decode pass (same values: the same table lookup).
    /// Nothing runs between the two steps, so the scratch lane still holds them.
    func fuseGeluIntoAdaLogLinear() {
        var uses = [Int](repeating: 0, count: model.tensors.count)
        for op in model.ops { for n in op.inputs { uses[tensorIndex[n]!] += 1 } }
        for o in model.outputs { uses[tensorIndex[o]!] += 1 }
        for i in 0..<max(0, steps.count - 1) {
            guard case let .geluAdaLog(gn, gx, gy, count, shift, enc, nil) = steps[i],
                  case let .adaLogLinear(ln, lx, ly, kern, gemm, rows, sc, false) = steps[i + 1],
                  lx == gy, uses[gy] == 1, kern.table.tableHigh == nil, kern.table.zeroCode <= 256,
                  rows * kern.weights.k == count else { continue }
            steps[i] = .geluAdaLog(name: gn, x: gx, y: gy, count: count, shift: shift, encoder: enc, values: (kern.table.table, sc))
            steps[i + 1] = .adaLogLinear(name: ln, x: lx, y: ly, kernel: kern, gemm: gemm, rows: rows, scratch: sc, predecoded: true)
        }
    }

    /// A residual add whose sum the LayerNorm + quantize step right after it reads runs with that step, per block of
    /// rows (one hand-off instead of two, the rows still in cache; the sum is still written for its other readers).
    func fuseAddIntoLayerNorm() {
        for i in 0..<max(0, steps.count - 1) {
            guard case let .add(an, a, b, y, count) = steps[i], case let .layerNormQuantize(ln, x, _, _, _, _, rows, c, _, _) = steps[i + 1],
                  x == y, rows * c == count else { continue }
            steps[i] = .addLayerNormQuantize(name: an, a: a, b: b, sum: y, ln: steps[i + 1])
            steps[i + 1] = .done(name: ln)
        }
    }

    /// Scratch areas live only during their op, so all ops share one allocation per lane (an op that needs two
    /// areas at once takes lanes 0 and 1). Returns the `buffers` index; pointers are bound after `prepare`.
    func scratch(_ bytes: Int, lane: Int = 0) -> Int {
        scratchNeed[lane] = max(scratchNeed[lane], max(64, bytes))
        buffers.append(UnsafeMutableRawPointer(bitPattern: 64)!)
        scratchLane.append((buffers.count - 1, lane))
        return buffers.count - 1
    }

    func bindScratch() {
        for lane in 0..<scratchNeed.count where scratchNeed[lane] > 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: scratchNeed[lane], alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: scratchNeed[lane])
            owned.append(p); arenaBytes += scratchNeed[lane]
            for (i, l) in scratchLane where l == lane { buffers[i] = p }
        }
    }

    func floats(_ name: String) -> [Float] { model.constant(name)?.floats() ?? [] }

    func rowPrefix(_ t: TensorInfo) throws(RuntimeError) -> RowPrefix? {
        guard let p = t.prefix else { return nil }
        return RowPrefix(tokens: t.shape[0], count: p.count, q: try QuantSpec(t, prefix: true))
    }

    /// Output stage for an integer accumulator with real unit `accScale[o]` written to tensor `out`.
    /// The output stage into `out` (with `prefix`: into its class-token grid).
    func stage(for out: TensorInfo, prefix: Bool = false, accScale: [Double], bias: [Float]?, clamp: Clamp, op: String) throws(RuntimeError) -> (OutputStage, [Int32]?, Clamp?) {
        if out.dtype == .float32 {
            return (.dequantize(scales: accScale.map { Float($0) }, floatBias: bias), nil, clamp == .none ? nil : clamp)
        }
        let q = try QuantSpec(out, prefix: prefix)
        var mults: [QuantizedMultiplier] = []
        do { for s in accScale { mults.append(try QuantizedMultiplier(s / Double(q.scale))) } } catch { throw .kernel(op: op, error) }
        var lo = q.qmin, hi = q.qmax
        let zReal = q.zero   // stored value of real 0
        switch clamp {
        case .none: break
        case .relu: lo = max(lo, zReal)
        case .relu6:
            lo = max(lo, zReal)
            let six = (6.0 / Double(q.scale)).rounded(.toNearestOrEven)
            hi = min(hi, Int32(clamping: Int(max(-1e9, min(1e9, six))) + Int(zReal)))
        }
        let ib: [Int32]? = bias.map { b in (0..<b.count).map { Int32(clamping: Int((Double(b[$0]) / accScale[$0]).rounded(.toNearestOrEven).clamped(-2e9, 2e9))) } }
        return (.requantize(multipliers: mults, rounding: requantRounding, zeroPoint: q.zero, qmin: lo, qmax: max(lo, hi), unsigned: q.unsigned), ib, nil)
    }

    func prepare(_ op: Op) throws(RuntimeError) -> Step {
        let name = op.name
        func T(_ n: String) -> TensorInfo { model.tensors[tensorIndex[n]!] }
        func I(_ n: String) -> Int { tensorIndex[n]! }
        func wvals(_ w: WeightRef) -> ([Int8], [Float], [Int32]?) {
            let r = model.weightsWithRowOffset(w)
            return (r?.ints ?? [], floats(w.scales), r?.rowOffset)
        }
        func k<R>(_ body: () throws(Int8KernelError) -> R) throws(RuntimeError) -> R {
            do { return try body() } catch { throw .kernel(op: name, error) }
        }
        switch op {
        case let .conv2d(o):
            let x = T(o.input), y = T(o.output)
            let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2]), oc = y.shape[2]
            let (wq, ws, off) = wvals(o.weight)
            let kk = o.kernel[0] * o.kernel[1] * (c / o.groups)
            if x.dtype == .float32 {
                var wf = [Float](repeating: 0, count: wq.count)
                for oo in 0..<oc { for j in 0..<kk { wf[oo * kk + j] = Float(Int32(wq[oo * kk + j]) + (off?[oo] ?? 0)) * ws[oo] } }
                let b = o.bias.map(floats) ?? [Float](repeating: 0, count: oc)
                let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(16, Int(cfk_packed_b_size(kk, oc))))
                owned.append(UnsafeMutableRawPointer(packed))
                cfk_pack_b(wf, kk, 1, kk, oc, packed)   // Bᵀ = W [O][K]
                return .convFloat(name: name, x: I(o.input), y: I(o.output), packed: packed, bias: b, h: h, w: w, c: c, o: oc,
                                  kh: o.kernel[0], kw: o.kernel[1], sh: o.stride[0], sw: o.stride[1], pt: o.pads[0], pl: o.pads[1],
                                  oh: y.shape[0], ow: y.shape[1], clamp: o.clamp, scratch: scratch(y.shape[0] * y.shape[1] * kk * 4))
            }
            let xq = try QuantSpec(x)
            var g = ConvGeometry(inH: h, inW: w, inC: c, outC: oc, kernelH: o.kernel[0], kernelW: o.kernel[1], groups: o.groups)
            g.strideH = o.stride[0]; g.strideW = o.stride[1]
            g.padTop = o.pads[0]; g.padLeft = o.pads[1]; g.padBottom = o.pads[2]; g.padRight = o.pads[3]
            let acc = ws.map { Double(xq.scale) * Double($0) }
            let (st, ib, post) = try stage(for: y, accScale: acc, bias: o.bias.map(floats), clamp: o.clamp, op: name)
            if o.groups == 1 {
                let kern = try k { () throws(Int8KernelError) in
                    try PreparedConv2D(try Conv2DInt8(geometry: g, weights: wq, channelOffsets: off), activation: xq.activation, bias: ib, output: st)
                }
                let wsBytes = kern.workspaceBytes(threads: threads)
                return .conv(name: name, x: I(o.input), y: I(o.output), kernel: kern, post: post, workspace: scratch(wsBytes), workspaceBytes: wsBytes)
            }
            // depthwise: [C][kh][kw][1] → [kh][kw][C], int16 W − z (exact also for rows stored as W − 128 + offset)
            let khw = o.kernel[0] * o.kernel[1]
            var dw = [Int16](repeating: 0, count: wq.count)
            for ch in 0..<c { for j in 0..<khw { dw[j * c + ch] = Int16(wq[ch * khw + j]) + Int16(off?[ch] ?? 0) } }
            let kern = try k { () throws(Int8KernelError) in
                try PreparedDepthwiseConv2D(try DepthwiseConv2DInt8(geometry: g, weights16: dw), activation: xq.activation, bias: ib, output: st)
            }
            let wsBytes = kern.workspaceBytes(threads: threads)
            return .depthwise(name: name, x: I(o.input), y: I(o.output), kernel: kern, post: post, workspace: scratch(wsBytes), workspaceBytes: wsBytes)
        case let .linear(o):
            let x = T(o.input), y = T(o.output)
            let kk = x.shape.last!, n = y.shape.last!
            let xq = try QuantSpec(x)
            let (wq, ws, off) = wvals(o.weight)
            let packed = try k { () throws(Int8KernelError) in try PackedInt8Weights(weights: wq, k: kk, n: n, layout: .outputMajor, columnOffsets: off) }
            let acc = ws.map { Double(xq.scale) * Double($0) }
            let (st, ib, post) = try stage(for: y, accScale: acc, bias: o.bias.map(floats), clamp: o.clamp, op: name)
            let rows = x.elementCount / kk
            let gemm = try k { () throws(Int8KernelError) in try PreparedGEMM(weights: packed, activation: xq.activation, bias: ib, output: st) }
            let wsBytes = gemm.workspaceBytes(m: batch * rows, threads: threads)
            var prefix: LinearPrefix? = nil
            if let p = x.prefix {
                // the class-token rows: their own zero point, integer bias and output scale over the same packed weights
                let pq = try QuantSpec(x, prefix: true)
                let (pst, pib, _) = try stage(for: y, accScale: ws.map { Double(pq.scale) * Double($0) }, bias: o.bias.map(floats), clamp: o.clamp, op: name)
                let pg = try k { () throws(Int8KernelError) in try PreparedGEMM(weights: packed, activation: pq.activation, bias: pib, output: pst) }
                prefix = LinearPrefix(tokens: x.shape[0], count: p.count, gemm: pg)
            }
            return .linear(name: name, x: I(o.input), y: I(o.output), gemm: gemm, rows: rows, post: post, workspace: scratch(wsBytes),
                           workspaceBytes: wsBytes, prefix: prefix)
        case let .adaLogLinear(o):
            let x = T(o.input), y = T(o.output)
            guard case let .adaLog(a)? = x.quantizer else { throw .unsupported(op: name, "input is not AdaLog-coded") }
            let kk = x.shape.last!, n = y.shape.last!
            let (w8, ws, off) = wvals(o.weight)
            // int16 weights hold W − z exactly for every zero point (no row-offset fix-up)
            var wq = w8.map { Int16($0) }
            if let off { for r in 0..<n { for j in 0..<kk { wq[r * kk + j] += Int16(off[r]) } } }
            // Largest table precision F whose worst case K·max|W|·max L stays inside int32 (adalog.md §4.8 choice of F).
            var table = try k { () throws(Int8KernelError) in try AdaLogTable(q: a.q, bits: a.bits, r: a.r) }
            let maxW = wq.map { abs(Int($0)) }.max() ?? 0
            while table.fractionBits > 0, kk * maxW * Int(table.table.map { abs(Int($0)) }.max() ?? 0) >= Int(Int32.max) {
                let f = table.fractionBits - 1
                table = try k { () throws(Int8KernelError) in try AdaLogTable(q: a.q, bits: a.bits, r: a.r, fractionBits: f) }
            }
            let t = table
            let kern = try k { () throws(Int8KernelError) in try AdaLogLinear(weights: wq, inFeatures: kk, outFeatures: n, table: t) }
            let unit = table.accumulatorUnit(scale: Double(a.scale))
            let st = OutputStage.dequantize(scales: ws.map { Float(Double($0) * unit) }, floatBias: o.bias.map(floats))
            let gemm = try k { () throws(Int8KernelError) in try PreparedInt16GEMM(weights: kern.weights, output: st) }
            return .adaLogLinear(name: name, x: I(o.input), y: I(o.output), kernel: kern, gemm: gemm, rows: x.elementCount / kk,
                                 scratch: scratch(batch * x.elementCount * 2), predecoded: false)
        case let .layerNormQuantize(o):
            let x = T(o.input), c = x.shape.last!
            let y = T(o.output)
            return .layerNormQuantize(name: name, x: I(o.input), y: I(o.output), gamma: floats(o.gamma), beta: floats(o.beta), eps: o.epsilon,
                                      rows: x.elementCount / c, c: c, q: try QuantSpec(y), prefix: try rowPrefix(y))
        case let .attention(o):
            let x = T(o.input), y = T(o.output)
            let probs: AttentionProbabilities
            var unit: (Int) -> Double
            switch o.probabilities {
            case let .adaLog(a):
                // int32 table (split into int16 halves): F as large as int32 P·V allows, not limited to int16
                let f = AdaLogTable.attentionFractionBits(q: a.q, bits: a.bits, r: a.r, maxOperand: 255)
                let table = try k { () throws(Int8KernelError) in try AdaLogTable(q: a.q, bits: a.bits, r: a.r, fractionBits: f) }
                probs = .adaLog(table)
                unit = { table.accumulatorUnit(scale: Double(o.value.scale[$0])) }
            case let .uniform(u):
                probs = .uniform(scale: u.scale, bits: u.bits)
                unit = { Double(u.scale) * Double(o.value.scale[$0]) }
            }
            // Q, K, V as int16 stored values q − z: exact for every zero point of an 8-bit quantizer
            var qq: (scales: [Float], lo: [Int32], hi: [Int32]) = ([], [], [])
            for g in [o.query, o.key, o.value] {
                for h in 0..<o.heads {
                    let top = Int32((1 << g.bits) - 1)
                    qq.scales.append(g.scale[h]); qq.lo.append(-g.zeroPoint[h]); qq.hi.append(top - g.zeroPoint[h])
                }
            }
            let ls = (0..<o.heads).map { Float(Double(o.query.scale[$0]) * Double(o.key.scale[$0]) / Double(o.headDim).squareRoot()) }
            var stages: [OutputStage] = [], prefixStages: [OutputStage] = []
            for h in 0..<o.heads {
                let (st, _, _) = try stage(for: y, accScale: [unit(h)], bias: nil, clamp: .none, op: name)
                stages.append(st)
                if y.prefix != nil {
                    // the class-token rows of the output requantize onto their own grid
                    prefixStages.append(try stage(for: y, prefix: true, accScale: [unit(h)], bias: nil, clamp: .none, op: name).0)
                }
            }
            let prefixRows = y.prefix?.count ?? 0
            let kern = try k { () throws(Int8KernelError) in
                try AttentionKernel(tokens: x.shape[0], heads: o.heads, headDim: o.headDim, logitScales: ls, probabilities: probs, outputs: stages,
                                    prefixRows: prefixRows, prefixOutputs: prefixStages)
            }
            let wsBytes = kern.workspaceBytes(threads: threads)
            return .attention(name: name, x: I(o.input), y: I(o.output), kernel: kern, qkvQ: qq,
                              operands: scratch(x.elementCount / 3 * 2), workspace: scratch(wsBytes, lane: 1), workspaceBytes: wsBytes)
        case let .geluAdaLog(o):
            let y = T(o.output)
            guard case let .adaLog(a)? = y.quantizer else { throw .unsupported(op: name, "output is not AdaLog-coded") }
            let table = try k { () throws(Int8KernelError) in try AdaLogTable(q: a.q, bits: a.bits, r: a.r) }
            let enc = try k { () throws(Int8KernelError) in try AdaLogEncoder(thresholds: table.thresholds(scale: Double(a.scale))) }
            return .geluAdaLog(name: name, x: I(o.input), y: I(o.output), count: y.elementCount, shift: a.shift, encoder: enc, values: nil)
        case let .gelu(o):
            return .gelu(name: name, x: I(o.input), y: I(o.output), count: T(o.input).elementCount)
        case let .quantize(o):
            let y = T(o.output)
            return .quantize(name: name, x: I(o.input), y: I(o.output), count: T(o.input).elementCount, q: try QuantSpec(y), prefix: try rowPrefix(y))
        case let .dequantize(o):
            return .dequantize(name: name, x: I(o.input), y: I(o.output), count: T(o.input).elementCount, q: try QuantSpec(T(o.input)))
        case let .add(o):
            return .add(name: name, a: I(o.a), b: I(o.b), y: I(o.output), count: T(o.output).elementCount)
        case let .globalAveragePool(o):
            let x = T(o.input)
            return .pool(name: name, x: I(o.input), y: I(o.output), hw: x.shape[0] * x.shape[1], c: x.shape[2])
        case let .tokenSelect(o):
            let x = T(o.input)
            return .tokenSelect(name: name, x: I(o.input), y: I(o.output), t: x.shape[0], c: x.shape[1], index: o.index)
        case let .classPosition(o):
            let x = T(o.input)
            return .classPosition(name: name, x: I(o.input), y: I(o.output), t: x.shape[0], c: x.shape[1], cls: floats(o.classToken), pos: floats(o.position))
        case let .maxPool(o):
            let x = T(o.input), y = T(o.output)
            return .maxPool(name: name, x: I(o.input), y: I(o.output), dtype: x.dtype, h: x.shape[0], w: x.shape[1], c: x.shape[2], kh: o.kernel[0], kw: o.kernel[1],
                            sh: o.stride[0], sw: o.stride[1], pt: o.pads[0], pl: o.pads[1], oh: y.shape[0], ow: y.shape[1])
        case let .reshape(o):
            let x = T(o.input)
            return .copy(name: name, x: I(o.input), y: I(o.output), bytes: x.dtype.byteCount(x.elementCount))
        }
    }
}

extension Double {
    func clamped(_ lo: Double, _ hi: Double) -> Double { Swift.min(hi, Swift.max(lo, self)) }
}
