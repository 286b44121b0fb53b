import Dispatch
import CFloatKernels
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

    /// Runs with the input already in `inputBuffer`; outputs stay in `outputBuffer(_:)`. No allocation by the runtime
    /// itself (the kernels still allocate small per-call parameter arrays, see the report).
    public func execute(samples n: Int) throws(RuntimeError) {
        guard n >= 1, n <= batch else { throw .invalidArgument("samples \(n) must be in 1...\(batch)") }
        guard let observer else {
            for step in steps { try run(step, n) }
            return
        }
        for (i, step) in steps.enumerated() {
            try run(step, n)
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
            let kk = kh * kw * c, rows = oh * ow
            let col = f(sc)
            let (act, lo, hi): (Int32, Float, Float) = switch clamp {
            case .none: (Int32(CFK_ACT_NONE), 0, 0)
            case .relu: (Int32(CFK_ACT_CLAMP), 0, .infinity)
            case .relu6: (Int32(CFK_ACT_CLAMP), 0, 6)
            }
            let fisa = cfk_best_isa()
            // Rows (output pixels) split between the threads; each thread gathers its own im2col rows, then runs
            // one SGEMM over them. A kernel row whose taps are all inside the input is one contiguous copy of kw·c
            // floats (the patch embed's 16×3 pixels), not kw copies of c.
            let parts = threads <= 1 || rows < 64 ? 1 : threads
            for b in 0..<n {
                nonisolated(unsafe) let xin = f(x) + b * h * wd * c, outp = f(y) + b * rows * o, colp = col, pk = packed
                bias.withUnsafeBufferPointer { bb in
                    nonisolated(unsafe) let bp = bb.baseAddress!
                    parallelFor(parts, threads: parts) { t in
                        let r0 = rows * t / parts, r1 = rows * (t + 1) / parts
                        guard r1 > r0 else { return }
                        for r in r0..<r1 {
                            let oy = r / ow, ox = r % ow
                            var j = r * kk
                            let ix0 = ox * sw - pl
                            for ky in 0..<kh {
                                let iy = oy * sh - pt + ky
                                if iy < 0 || iy >= h {
                                    (colp + j).update(repeating: 0, count: kw * c)
                                } else if ix0 >= 0 && ix0 + kw <= wd {
                                    (colp + j).update(from: xin + (iy * wd + ix0) * c, count: kw * c)
                                } else {
                                    for kx in 0..<kw {
                                        let ix = ix0 + kx
                                        if ix < 0 || ix >= wd { (colp + j + kx * c).update(repeating: 0, count: c) }
                                        else { (colp + j + kx * c).update(from: xin + (iy * wd + ix) * c, count: c) }
                                    }
                                }
                                j += kw * c
                            }
                        }
                        cfk_sgemm_packed(fisa, r1 - r0, o, kk, colp + r0 * kk, kk, pk, kk * 16, outp + r0 * o, o, bp, nil, act, lo, hi, 0)
                    }
                }
            }
        case let .conv(name, x, y, kern, act, bias, stage, post):
            let g = kern.geometry
            let inB = g.inH * g.inW * g.inC, outE = g.outH * g.outW * g.outC
            for b in 0..<n {
                try k(name) { () throws(Int8KernelError) in
                    try kern.run(input: u8(x) + b * inB, activation: act, bias: bias, output: stage, dst: buffers[y] + b * outE * stage.elementSize, isa: isa, threads: threads)
                }
                if stage.elementSize == 4 { applyClamp(post, f(y) + b * outE, outE) }
            }
        case let .depthwise(name, x, y, kern, act, bias, stage, post):
            let g = kern.geometry
            let inB = g.inH * g.inW * g.inC, outE = g.outH * g.outW * g.outC
            for b in 0..<n {
                try k(name) { () throws(Int8KernelError) in
                    try kern.run(input: u8(x) + b * inB, activation: act, bias: bias, output: stage, dst: buffers[y] + b * outE * stage.elementSize, isa: isa, threads: threads)
                }
                if stage.elementSize == 4 { applyClamp(post, f(y) + b * outE, outE) }
            }
        case let .linear(name, x, y, wts, act, bias, stage, rows, post, rs):
            let m = rows * n
            try k(name) { () throws(Int8KernelError) in
                try Int8GEMM.run(a: u8(x), lda: wts.k, m: m, activation: act, weights: wts, bias: bias, output: stage, dst: buffers[y], ldd: wts.n, isa: isa, threads: threads,
                                 rowSums: rs.map { buffers[$0].assumingMemoryBound(to: Int32.self) })
            }
            if stage.elementSize == 4 { applyClamp(post, f(y), m * wts.n) }
        case let .adaLogLinear(name, x, y, kern, stage, rows, sc, predecoded):
            // codes → int16 table values into the shared scratch (AdaLogLinear.run would allocate this per call),
            // unless the geluAdaLog step before wrote them there
            let count = rows * n * kern.weights.k
            let a16 = buffers[sc].assumingMemoryBound(to: Int16.self)
            if !predecoded {
                try k(name) { () throws(Int8KernelError) in try Elementwise.adalogDecode(u8(x), count: count, table: kern.table, dst: a16, isa: isa, threads: threads) }
            }
            try k(name) { () throws(Int8KernelError) in
                try Int8GEMM.runInt16(a: a16, lda: kern.weights.k, m: rows * n, weights: kern.weights, output: stage, dst: buffers[y], ldd: kern.weights.n, isa: isa, threads: threads)
            }
        case let .layerNormQuantize(name, x, y, gamma, beta, eps, rows, c, q):
            try k(name) { () throws(Int8KernelError) in
                try Elementwise.layerNormQuantize(f(x), rows: rows * n, channels: c, gamma: gamma, beta: beta, epsilon: eps, scale: q.scale,
                                                  zeroPoint: q.zero, qmin: q.qmin, qmax: q.qmax, unsigned: q.unsigned, dst: buffers[y], ldd: c, isa: isa,
                                                  threads: threads)
            }
        case let .attention(name, x, y, kern, qq, sc, ws, wsBytes):
            let heads = kern.heads, d = kern.headDim, t = kern.tokens, c = heads * d
            let q16 = buffers[sc].assumingMemoryBound(to: Int16.self)
            for b in 0..<n {
                let xin = f(x) + b * t * 3 * c
                try k(name) { () throws(Int8KernelError) in
                    try Elementwise.quantizeInt16Groups(xin, rows: t, groupSize: d, scales: qq.scales, qmin: qq.lo, qmax: qq.hi, dst: q16,
                                                        isa: isa, threads: threads)
                    try kern.run(qkv: q16, dst: buffers[y] + b * t * c * kern.elementSize, workspace: buffers[ws], workspaceBytes: wsBytes,
                                 isa: isa, threads: threads)
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
        case let .quantize(name, x, y, count, q):
            try k(name) { () throws(Int8KernelError) in
                try Elementwise.quantize(f(x), count: count * n, scale: q.scale, zeroPoint: q.zero, qmin: q.qmin, qmax: q.qmax, unsigned: q.unsigned, dst: buffers[y], isa: isa)
            }
        case let .dequantize(name, x, y, count, q):
            try k(name) { () throws(Int8KernelError) in
                try Elementwise.dequantize(buffers[x], count: count * n, unsigned: q.unsigned, scale: q.scale, zeroPoint: q.zero, dst: f(y), isa: isa)
            }
        case let .gelu(name, x, y, count):
            try k(name) { () throws(Int8KernelError) in try Elementwise.gelu(f(x), count: count * n, dst: f(y), isa: isa) }
        case let .add(name, a, b, y, count):
            try k(name) { () throws(Int8KernelError) in try Elementwise.add(f(a), f(b), count: count * n, dst: f(y), isa: isa) }
        case let .pool(_, x, y, hw, c):
            for b in 0..<n {
                let xin = f(x) + b * hw * c, out = f(y) + b * c
                for cc in 0..<c { out[cc] = 0 }
                for p in 0..<hw { for cc in 0..<c { out[cc] += xin[p * c + cc] } }
                let inv = 1 / Float(hw)
                for cc in 0..<c { out[cc] *= inv }
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
        case let .conv(_, x, y, kern, _, _, _, _):
            let g = kern.geometry
            return "\(g.kernelH)x\(g.kernelW)/\(g.strideH) \(t(x)) -> \(t(y))\(kern.packed.contains { $0.columnOffsets != nil } ? " +wzp" : "")"
        case let .depthwise(_, x, y, kern, _, _, _, _):
            let g = kern.geometry
            return "dw \(g.kernelH)x\(g.kernelW)/\(g.strideH) \(t(x)) -> \(t(y))"
        case let .linear(_, x, y, w, _, _, _, _, _, _): return "\(t(x)) -> \(t(y))\(w.columnOffsets == nil ? "" : " +wzp")"
        case let .convFloat(_, x, y, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _): return "\(t(x)) -> \(t(y))"
        case let .quantize(_, x, y, _, _), let .dequantize(_, x, y, _, _), let .add(_, x, _, y, _), let .pool(_, x, y, _, _):
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
