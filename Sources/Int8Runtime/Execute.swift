import Dispatch
import CFloatKernels
import CInt8Kernels
import Int8Kernels
import QModel
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Session {
    /// Runs `samples` samples (≤ `batch`) of the single input (`samples × inputElements` floats, NHWC per sample)
    /// and returns each output as `samples × outputElements` floats.
    public func run(_ input: [Float], samples: Int? = nil) throws(RuntimeError) -> [[Float]] {
        let n = samples ?? batch
        guard n >= 1, n <= batch else { throw .invalidArgument("samples \(n) must be in 1...\(batch) (the session's batch)") }
        let per = model.tensors[inputIndex].elementCount
        guard input.count == n * per else { throw .inputSize(expected: n * per, got: input.count) }
        input.withUnsafeBytes { buffers[inputIndex].copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try execute(samples: n)
        return outputIndices.map { i in
            let c = n * model.tensors[i].elementCount
            return Array(UnsafeBufferPointer(start: buffers[i].assumingMemoryBound(to: Float.self), count: c))
        }
    }

    /// Runs with the input already in `inputBuffer`; outputs stay in `outputBuffer(_:)`. The conv, depthwise and GEMM
    /// steps allocate nothing: their output parameters are built at planning and their scratch is the session's.
    public func execute(samples n: Int) throws(RuntimeError) {
        guard n >= 1, n <= batch else { throw .invalidArgument("samples \(n) must be in 1...\(batch)") }
        guard let observer else {
            // by index: an unspecialized (debug) array iterator allocates for a value as large as a Step
            for i in steps.indices { try run(steps[i], n) }
            return
        }
        for i in steps.indices {
            try run(steps[i], n)
            let t = tensorIndex[model.ops[i].output]!
            observer(model.ops[i], model.tensors[t], UnsafeRawPointer(buffers[t]), n)
        }
    }

    /// Pointer to the input buffer (`batch × inputElements` floats).
    public var inputBuffer: UnsafeMutablePointer<Float> { buffers[inputIndex].assumingMemoryBound(to: Float.self) }
    /// Pointer to output `i` (`batch × elements` floats).
    public func outputBuffer(_ i: Int) -> UnsafePointer<Float> { UnsafePointer(buffers[outputIndices[i]].assumingMemoryBound(to: Float.self)) }

    private func f(_ i: Int) -> UnsafeMutablePointer<Float> { buffers[i].assumingMemoryBound(to: Float.self) }
    private func u8(_ i: Int) -> UnsafeMutablePointer<UInt8> { buffers[i].assumingMemoryBound(to: UInt8.self) }

    private func applyClamp(_ c: Clamp?, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        guard let c, c != .none else { return }
        let hi: Float = c == .relu6 ? 6 : .infinity
        for i in 0..<count { p[i] = Swift.min(hi, Swift.max(0, p[i])) }
    }

    private func run(_ step: Step, _ n: Int) throws(RuntimeError) {
        let isa = self.isa, threads = self.threads
        func k(_ name: String, _ body: () throws(Int8KernelError) -> Void) throws(RuntimeError) {
            do { try body() } catch { throw .kernel(op: name, error) }
        }
        switch step {
        case let .convFloat(_, x, y, packed, bias, h, wd, c, o, kh, kw, sh, sw, pt, pl, oh, ow, clamp, sc):
            let rows = oh * ow
            let col = f(sc)
            let (act, lo, hi): (Int32, Float, Float) = switch clamp {
            case .none: (Int32(CFK_ACT_NONE), 0, 0)
            case .relu: (Int32(CFK_ACT_CLAMP), 0, .infinity)
            case .relu6: (Int32(CFK_ACT_CLAMP), 0, 6)
            }
            let fisa = cfk_best_isa()
            // rows (output pixels) split between the threads (FloatConvJob)
            let parts = threads <= 1 || rows < 64 ? 1 : threads
            for b in 0..<n {
                bias.withUnsafeBufferPointer { bb in
                    parallelJob(parts, threads: parts, FloatConvJob(xin: f(x) + b * h * wd * c, outp: f(y) + b * rows * o, col: col, packed: packed,
                                                                    bias: bb.baseAddress!, h: h, w: wd, c: c, o: o, kh: kh, kw: kw, sh: sh, sw: sw,
                                                                    pt: pt, pl: pl, ow: ow, rows: rows, parts: parts, act: act, lo: lo, hi: hi, isa: fisa))
                }
            }
        case let .conv(name, x, y, kern, post, ws, wsBytes):
            let g = kern.conv.geometry, es = kern.elementSize
            let inB = g.inH * g.inW * g.inC, outE = g.outH * g.outW * g.outC
            for b in 0..<n {
                try k(name) { () throws(Int8KernelError) in
                    try kern.run(input: u8(x) + b * inB, dst: buffers[y] + b * outE * es, workspace: buffers[ws], workspaceBytes: wsBytes,
                                 isa: isa, threads: threads)
                }
                if es == 4 { applyClamp(post, f(y) + b * outE, outE) }
            }
        case let .depthwise(name, x, y, kern, post, ws, wsBytes):
            let g = kern.conv.geometry, es = kern.elementSize
            let inB = g.inH * g.inW * g.inC, outE = g.outH * g.outW * g.outC
            for b in 0..<n {
                try k(name) { () throws(Int8KernelError) in
                    try kern.run(input: u8(x) + b * inB, dst: buffers[y] + b * outE * es, workspace: buffers[ws], workspaceBytes: wsBytes,
                                 isa: isa, threads: threads)
                }
                if es == 4 { applyClamp(post, f(y) + b * outE, outE) }
            }
        case let .linear(name, x, y, gemm, rows, post, ws, wsBytes, prefix):
            let m = rows * n, wts = gemm.weights
            if let p = prefix {
                // per sample: the class-token rows on their own activation grid, then the other rows
                let es = gemm.elementSize
                for b in 0..<n {
                    let r0 = b * p.tokens, r1 = r0 + p.count
                    try k(name) { () throws(Int8KernelError) in
                        try p.gemm.run(a: u8(x) + r0 * wts.k, lda: wts.k, m: p.count, dst: buffers[y] + r0 * wts.n * es, ldd: wts.n,
                                       workspace: buffers[ws], workspaceBytes: wsBytes, isa: isa, threads: threads)
                        try gemm.run(a: u8(x) + r1 * wts.k, lda: wts.k, m: p.tokens - p.count, dst: buffers[y] + r1 * wts.n * es, ldd: wts.n,
                                     workspace: buffers[ws], workspaceBytes: wsBytes, isa: isa, threads: threads)
                    }
                }
            } else {
                try k(name) { () throws(Int8KernelError) in
                    try gemm.run(a: u8(x), lda: wts.k, m: m, dst: buffers[y], ldd: wts.n, workspace: buffers[ws], workspaceBytes: wsBytes,
                                 isa: isa, threads: threads)
                }
            }
            if gemm.elementSize == 4 { applyClamp(post, f(y), m * wts.n) }
        case let .adaLogLinear(name, x, y, kern, gemm, rows, sc, predecoded):
            // codes → int16 table values into the shared scratch (AdaLogLinear.run would allocate this per call),
            // unless the geluAdaLog step before wrote them there
            let count = rows * n * kern.weights.k
            let a16 = buffers[sc].assumingMemoryBound(to: Int16.self)
            if !predecoded {
                try k(name) { () throws(Int8KernelError) in try Elementwise.adalogDecode(u8(x), count: count, table: kern.table, dst: a16, isa: isa, threads: threads) }
            }
            try k(name) { () throws(Int8KernelError) in
                try gemm.run(a: a16, lda: kern.weights.k, m: rows * n, dst: buffers[y], ldd: kern.weights.n, isa: isa, threads: threads)
            }
        case let .layerNormQuantize(name, x, y, gamma, beta, eps, rows, c, q, prefix):
            try forEachRowRun(0..<(rows * n), prefix, q) { (r0, count, q) throws(RuntimeError) in
                try k(name) { () throws(Int8KernelError) in
                    try Elementwise.layerNormQuantize(f(x) + r0 * c, rows: count, channels: c, gamma: gamma, beta: beta, epsilon: eps, scale: q.scale,
                                                      zeroPoint: q.zero, qmin: q.qmin, qmax: q.qmax, unsigned: q.unsigned, dst: buffers[y] + r0 * c, ldd: c,
                                                      isa: isa, threads: threads)
                }
            }
        case let .addLayerNormQuantize(_, a, b, sum, ln):
            guard case let .layerNormQuantize(_, _, y, gamma, beta, eps, rows, c, q, prefix) = ln else { break }
            let m = rows * n
            let blocks = threads <= 1 || m * c < 16_384 ? 1 : min(m, 2 * threads)
            gamma.withUnsafeBufferPointer { gb in beta.withUnsafeBufferPointer { bb in
                parallelJob(blocks, threads: threads, AddLayerNormJob(a: f(a), b: f(b), sum: f(sum), y: buffers[y], rows: m, blocks: blocks, c: c,
                                                                    gamma: gb.baseAddress!, beta: bb.baseAddress!, eps: eps, q: q, prefix: prefix,
                                                                    isa: isa.rawValue))
            } }
        case .done:
            break
        case let .attention(name, x, y, kern, qq, sc, ws, wsBytes):
            let heads = kern.heads, d = kern.headDim, t = kern.tokens, c = heads * d
            let q16 = buffers[sc].assumingMemoryBound(to: Int16.self)
            for b in 0..<n {
                // Q to int16 rows, K and V straight into the kernel's packed form (once per head), then the heads' rows
                try k(name) { () throws(Int8KernelError) in
                    try kern.run(x: f(x) + b * t * 3 * c, quantize: qq, q: q16, dst: buffers[y] + b * t * c * kern.elementSize,
                                 workspace: buffers[ws], workspaceBytes: wsBytes, isa: isa, threads: threads)
                }
            }
        case let .geluAdaLog(name, x, y, count, shift, enc, values):
            for b in 0..<n {
                try k(name) { () throws(Int8KernelError) in
                    try Elementwise.geluAdaLogEncode(f(x) + b * count, count: count, shift: shift, encoder: enc, codes: u8(y) + b * count,
                                                     table: values?.table, values: values.map { buffers[$0.scratch].assumingMemoryBound(to: Int16.self) + b * count },
                                                     isa: isa, threads: threads)
                }
            }
        case let .quantize(name, x, y, count, q, prefix):
            let c = prefix.map { count / $0.tokens } ?? count
            try forEachRowRun(0..<(count * n / c), prefix, q) { (r0, rowCount, q) throws(RuntimeError) in
                try k(name) { () throws(Int8KernelError) in
                    try Elementwise.quantize(f(x) + r0 * c, count: rowCount * c, scale: q.scale, zeroPoint: q.zero, qmin: q.qmin, qmax: q.qmax,
                                             unsigned: q.unsigned, dst: buffers[y] + r0 * c, isa: isa, threads: threads)
                }
            }
        case let .dequantize(name, x, y, count, q):
            try k(name) { () throws(Int8KernelError) in
                try Elementwise.dequantize(buffers[x], count: count * n, unsigned: q.unsigned, scale: q.scale, zeroPoint: q.zero, dst: f(y), isa: isa, threads: threads)
            }
        case let .gelu(name, x, y, count):
            try k(name) { () throws(Int8KernelError) in try Elementwise.gelu(f(x), count: count * n, dst: f(y), isa: isa) }
        case let .add(name, a, b, y, count):
            try k(name) { () throws(Int8KernelError) in try Elementwise.add(f(a), f(b), count: count * n, dst: f(y), isa: isa, threads: threads) }
        case let .pool(_, x, y, hw, c):
            for b in 0..<n {
                let xin = UnsafeRawPointer(f(x) + b * hw * c), out = f(y) + b * c
                let inv = 1 / Float(hw)
                // per channel: 0 + x[0] + x[1] + … in pixel order, then × 1/hw (16 channels a vector, same order)
                var c0 = 0
                while c0 + 16 <= c {
                    var acc = SIMD16<Float>(repeating: 0)
                    for p in 0..<hw { acc += xin.loadUnaligned(fromByteOffset: (p * c + c0) * 4, as: SIMD16<Float>.self) }
                    UnsafeMutableRawPointer(out + c0).storeBytes(of: acc * inv, as: SIMD16<Float>.self)
                    c0 += 16
                }
                for cc in c0..<c {
                    var s: Float = 0
                    for p in 0..<hw { s += xin.load(fromByteOffset: (p * c + cc) * 4, as: Float.self) }
                    out[cc] = s * inv
                }
            }
        case let .tokenSelect(_, x, y, t, c, index):
            for b in 0..<n { (f(y) + b * c).update(from: f(x) + b * t * c + index * c, count: c) }
        case let .classPosition(_, x, y, t, c, cls, pos):
            for b in 0..<n {
                let xin = f(x) + b * t * c, out = f(y) + b * (t + 1) * c
                for cc in 0..<c { out[cc] = cls[cc] + pos[cc] }
                for i in 0..<(t * c) { out[c + i] = xin[i] + pos[c + i] }
            }
        case let .maxPool(_, x, y, dtype, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow):
            switch dtype {
            case .float32: maxPool(f(x), f(y), n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow)
            case .int8: maxPool(buffers[x].assumingMemoryBound(to: Int8.self), buffers[y].assumingMemoryBound(to: Int8.self), n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow)
            default: maxPool(u8(x), u8(y), n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow)
            }
        case let .copy(_, x, y, bytes):
            buffers[y].copyMemory(from: buffers[x], byteCount: bytes * n)
        }
    }
}

extension Session {
    /// Milliseconds per op kind (best of `repeats` runs of each op in sequence), for benchmarks.
    public func profile(_ input: [Float], repeats: Int = 3) throws(RuntimeError) -> [String: Double] {
        var out: [String: Double] = [:]
        for p in try profileOps(input, repeats: repeats) { out[p.kind, default: 0] += p.ms }
        return out
    }

    /// Milliseconds per op (best of `repeats` runs of each op in sequence), in execution order, with the op's name,
    /// kind and a short shape description, for benchmarks.
    public func profileOps(_ input: [Float], repeats: Int = 3) throws(RuntimeError) -> [(name: String, kind: String, detail: String, ms: Double)] {
        _ = try run(input, samples: 1)
        var best = [Double](repeating: .infinity, count: steps.count)
        for _ in 0..<max(1, repeats) {
            for (i, s) in steps.enumerated() {
                var a = timespec(), b = timespec()
                clock_gettime(CLOCK_MONOTONIC, &a)
                try run(s, 1)
                clock_gettime(CLOCK_MONOTONIC, &b)
                best[i] = Swift.min(best[i], Double(b.tv_sec - a.tv_sec) * 1e3 + Double(b.tv_nsec - a.tv_nsec) / 1e6)
            }
        }
        return model.ops.enumerated().map { i, op in (op.name, op.kind, detail(steps[i]), best[i]) }
    }

    private func detail(_ s: Step) -> String {
        func t(_ i: Int) -> String { model.tensors.indices.contains(i) ? "\(model.tensors[i].dtype.rawValue)\(model.tensors[i].shape)" : "?" }
        switch s {
        case let .conv(_, x, y, kern, _, _, _):
            let g = kern.conv.geometry
            return "\(g.kernelH)x\(g.kernelW)/\(g.strideH) \(t(x)) -> \(t(y))\(kern.conv.packed.contains { $0.columnOffsets != nil } ? " +wzp" : "")"
        case let .depthwise(_, x, y, kern, _, _, _):
            let g = kern.conv.geometry
            return "dw \(g.kernelH)x\(g.kernelW)/\(g.strideH) \(t(x)) -> \(t(y))"
        case let .linear(_, x, y, g, _, _, _, _, _): return "\(t(x)) -> \(t(y))\(g.weights.columnOffsets == nil ? "" : " +wzp")"
        case let .convFloat(_, x, y, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _): return "\(t(x)) -> \(t(y))"
        case let .quantize(_, x, y, _, _, _), let .dequantize(_, x, y, _, _), let .add(_, x, _, y, _), let .pool(_, x, y, _, _):
            return "\(t(x)) -> \(t(y))"
        default: return ""
        }
    }
}

/// NHWC max pool; windows clipped to the input (padding never wins).
func maxPool<T: Comparable>(_ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int, _ h: Int, _ w: Int, _ c: Int, _ kh: Int, _ kw: Int,
                            _ sh: Int, _ sw: Int, _ pt: Int, _ pl: Int, _ oh: Int, _ ow: Int) {
    for b in 0..<n {
        let xin = x + b * h * w * c, out = y + b * oh * ow * c
        for oy in 0..<oh { for ox in 0..<ow {
            let y0 = max(0, oy * sh - pt), y1 = min(h, oy * sh - pt + kh), x0 = max(0, ox * sw - pl), x1 = min(w, ox * sw - pl + kw)
            let dst = out + (oy * ow + ox) * c
            dst.update(from: xin + (y0 * w + x0) * c, count: c)
            for iy in y0..<y1 { for ix in x0..<x1 {
                let src = xin + (iy * w + ix) * c
                for cc in 0..<c where src[cc] > dst[cc] { dst[cc] = src[cc] }
            } }
        } }
    }
}

/// Calls `body(firstRow, rowCount, quantizer)` over the rows `r` in runs on one grid: all of them with `q` when there
/// is no class-token quantizer, else split where a sample's class-token rows (position < count in the sample; their
/// own quantizer) meet its other rows (`q`).
func forEachRowRun<E: Error>(_ r: Range<Int>, _ prefix: RowPrefix?, _ q: QuantSpec,
                             _ body: (Int, Int, QuantSpec) throws(E) -> Void) throws(E) {
    var r0 = r.lowerBound
    while r0 < r.upperBound {
        var end = r.upperBound, g = q
        if let p = prefix {
            let pos = r0 % p.tokens
            if pos < p.count { end = min(end, r0 - pos + p.count); g = p.q } else { end = min(end, r0 - pos + p.tokens) }
        }
        try body(r0, end - r0, g)
        r0 = end
    }
}

/// `sum = a + b` and the LayerNorm + quantize of `sum` for one block of rows: the bytes of `Elementwise.add` then
/// `Elementwise.layerNormQuantize` (both act row by row), with the class-token rows (`prefix`) on their own grid.
struct AddLayerNormJob: ParallelJob, @unchecked Sendable {
    let a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, sum: UnsafeMutablePointer<Float>, y: UnsafeMutableRawPointer
    let rows: Int, blocks: Int, c: Int
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float
    let q: QuantSpec, prefix: RowPrefix?, isa: Int32

    func run(_ i: Int, slot: Int) {
        let r = splitPart(rows, parts: blocks, i)
        guard !r.isEmpty else { return }
        i8k_add(isa, a + r.lowerBound * c, b + r.lowerBound * c, r.count * c, sum + r.lowerBound * c)
        forEachRowRun(r, prefix, q) { r0, count, g in
            i8k_layernorm_quant(isa, sum + r0 * c, count, c, gamma, beta, eps, g.scale, g.zero, g.qmin, g.qmax, g.unsigned ? 1 : 0,
                                y + r0 * c, c)
        }
    }
    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: AddLayerNormJob.self).pointee.run(i, slot: slot) } }
}

/// Output pixels of the float conv split between the threads: each gathers its own im2col rows, then runs one SGEMM over
/// them. A kernel row whose taps are all inside the input is one contiguous copy of kw·c floats (the patch embed's 16×3
/// pixels), not kw copies of c.
struct FloatConvJob: ParallelJob, @unchecked Sendable {
    let xin: UnsafeMutablePointer<Float>, outp: UnsafeMutablePointer<Float>, col: UnsafeMutablePointer<Float>
    let packed: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>
    let h: Int, w: Int, c: Int, o: Int, kh: Int, kw: Int, sh: Int, sw: Int, pt: Int, pl: Int, ow: Int, rows: Int, parts: Int
    let act: Int32, lo: Float, hi: Float, isa: Int32

    func run(_ t: Int, slot: Int) {
        let kk = kh * kw * c
        let r0 = rows * t / parts, r1 = rows * (t + 1) / parts
        guard r1 > r0 else { return }
        for r in r0..<r1 {
            let oy = r / ow, ox = r % ow
            var j = r * kk
            let ix0 = ox * sw - pl
            for ky in 0..<kh {
                let iy = oy * sh - pt + ky
                if iy < 0 || iy >= h {
                    (col + j).update(repeating: 0, count: kw * c)
                } else if ix0 >= 0 && ix0 + kw <= w {
                    (col + j).update(from: xin + (iy * w + ix0) * c, count: kw * c)
                } else {
                    for kx in 0..<kw {
                        let ix = ix0 + kx
                        if ix < 0 || ix >= w { (col + j + kx * c).update(repeating: 0, count: c) }
                        else { (col + j + kx * c).update(from: xin + (iy * w + ix) * c, count: c) }
                    }
                }
                j += kw * c
            }
        }
        cfk_sgemm_packed(isa, r1 - r0, o, kk, col + r0 * kk, kk, packed, kk * 16, outp + r0 * o, o, bias, nil, act, lo, hi, 0)
    }

    static var entry: i8k_slot_task_fn { { ctx, i, slot in ctx!.assumingMemoryBound(to: FloatConvJob.self).pointee.run(i, slot: slot) } }
}
