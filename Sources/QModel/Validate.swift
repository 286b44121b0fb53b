// Graph validation: every name resolves, types and shapes agree, op arity and quantizers are sane.

extension QModel {
    /// Checks the whole model; throws `QModelError.invalidGraph` / `.badSection` naming the op and what was expected.
    public func validate() throws(QModelError) {
        func fail(_ m: String) -> QModelError { .invalidGraph(m) }
        var tmap: [String: TensorInfo] = [:]
        for t in tensors {
            // A uniform grid of `t`: sane parameters, and stored values that fit int8 when folded.
            func checkUniform(_ u: UniformParams, _ what: String) throws(QModelError) {
                guard u.scale.isFinite, u.scale > 0, (2...8).contains(u.bits), u.zeroPoint >= 0, u.zeroPoint < 1 << u.bits else {
                    throw fail("tensor '\(t.name)': \(what) \(u) needs a finite scale > 0, bits 2...8, zero point in [0, 2^bits)")
                }
                if t.dtype == .int8, -Int(u.zeroPoint) < -128 || (1 << u.bits) - 1 - Int(u.zeroPoint) > 127 {
                    throw fail("tensor '\(t.name)': folded int8 storage of the \(what) needs [−z, 2^b−1−z] within int8 (bits \(u.bits), z \(u.zeroPoint)); use uint8")
                }
            }
            guard !t.name.isEmpty, tmap[t.name] == nil else { throw fail("tensor name '\(t.name)' is empty or duplicated") }
            guard !t.shape.isEmpty, t.shape.allSatisfy({ $0 > 0 && $0 <= 1 << 24 }), t.shape.reduce(1, { $0.multipliedReportingOverflow(by: $1).partialValue }) <= 1 << 28 else {
                throw fail("tensor '\(t.name)' has an invalid shape \(t.shape)")
            }
            switch (t.dtype, t.quantizer) {
            case (.float32, nil): break
            case let (.int8, .uniform(u)?), let (.uint8, .uniform(u)?):
                try checkUniform(u, "uniform quantizer")
            case let (.code, .adaLog(a)?):
                try checkAdaLog(a, "tensor '\(t.name)'")
            default:
                throw fail("tensor '\(t.name)': dtype \(t.dtype.rawValue) does not fit quantizer \(String(describing: t.quantizer)) (float32: none; int8/uint8: uniform; code: adaLog)")
            }
            if let p = t.prefix {
                guard case .uniform? = t.quantizer, t.shape.count == 2, p.count >= 1, p.count < t.shape[0] else {
                    throw fail("tensor '\(t.name)': a class-token quantizer needs a uniform [T, C] tensor and 1 ≤ count < T (count \(p.count), shape \(t.shape))")
                }
                try checkUniform(p.quantizer, "class-token quantizer")
            }
            tmap[t.name] = t
        }
        var cmap: [String: Constant] = [:]
        for c in constants {
            guard !c.name.isEmpty, cmap[c.name] == nil else { throw fail("constant name '\(c.name)' is empty or duplicated") }
            guard c.shape.allSatisfy({ $0 >= 0 }), c.dtype.byteCount(c.elementCount) == c.bytes.count else {
                throw .badSection(name: c.name, reason: "\(c.bytes.count) bytes do not match \(c.dtype.rawValue) shape \(c.shape)")
            }
            cmap[c.name] = c
        }
        var defined = Set<String>()
        for i in inputs {
            guard let t = tmap[i] else { throw fail("graph input '\(i)' is not a declared tensor") }
            guard t.dtype == .float32 else { throw fail("graph input '\(i)' must be float32") }
            defined.insert(i)
        }
        for op in ops {
            let where_ = "op '\(op.name)' (\(op.kind))"
            var ins: [TensorInfo] = []
            for n in op.inputs {
                guard let t = tmap[n] else { throw fail("\(where_): input '\(n)' is not a declared tensor") }
                guard defined.contains(n) else { throw fail("\(where_): input '\(n)' is used before it is produced") }
                ins.append(t)
            }
            guard let out = tmap[op.output] else { throw fail("\(where_): output '\(op.output)' is not a declared tensor") }
            guard !defined.contains(op.output) else { throw fail("\(where_): output '\(op.output)' is produced twice") }
            let x = ins[0]
            func const(_ name: String, _ dtype: [DType], _ count: Int? = nil) throws(QModelError) -> Constant {
                guard let c = cmap[name] else { throw fail("\(where_): constant '\(name)' is missing") }
                guard dtype.contains(c.dtype) else { throw fail("\(where_): constant '\(name)' is \(c.dtype.rawValue), expected \(dtype.map(\.rawValue))") }
                if let count, c.elementCount != count { throw fail("\(where_): constant '\(name)' has \(c.elementCount) elements, expected \(count)") }
                return c
            }
            func weights(_ w: WeightRef, rows: Int, cols: Int) throws(QModelError) {
                let c = try const(w.weights, w.zeroPoints == nil ? [.int8, .int4] : [.uint8, .uint4], rows * cols)
                guard c.shape.first == rows else { throw fail("\(where_): weight '\(w.weights)' shape \(c.shape) must start with \(rows)") }
                guard (2...8).contains(w.bits), (c.dtype != .int4 && c.dtype != .uint4) || w.bits <= 4 else { throw fail("\(where_): weight bits \(w.bits) invalid for \(c.dtype.rawValue)") }
                if let z = w.zeroPoints {
                    _ = try const(z, [.int32], rows)
                    guard let (_, offset) = weightsWithRowOffset(w) else { throw fail("\(where_): weights '\(w.weights)' minus zero points '\(z)' leave the int8 range (fold needs ≤ 7-bit weights, or 8-bit uint8 codes)") }
                    // 8-bit rows whose W − z leaves int8 (offset != nil) are exact in the runtime for any output type: convs and
                    // linears add the weight zero-point term in int32 before requantizing (adaLogLinear has a float output).
                    _ = offset
                }
                let s = try const(w.scales, [.float32], rows)
                guard let sv = s.floats(), sv.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw fail("\(where_): weight scales '\(w.scales)' must be finite and > 0") }
            }
            func floats(_ name: String, _ count: Int) throws(QModelError) {
                let c = try const(name, [.float32], count)
                guard let v = c.floats(), v.allSatisfy(\.isFinite) else { throw fail("\(where_): constant '\(name)' has non-finite values") }
            }
            func expect(_ cond: Bool, _ m: @autoclosure () -> String) throws(QModelError) { if !cond { throw fail("\(where_): \(m())") } }
            let quantized: (TensorInfo) -> Bool = { $0.dtype == .int8 || $0.dtype == .uint8 }
            switch op {
            case let .conv2d(o):
                try expect(x.shape.count == 3 && out.shape.count == 3, "conv tensors must be [H, W, C] (got \(x.shape) → \(out.shape))")
                try expect(o.kernel.count == 2 && o.stride.count == 2 && o.pads.count == 4 && o.groups > 0, "kernel [kh,kw], stride [sh,sw], pads [t,l,b,r], groups > 0 required")
                try expect(o.kernel.allSatisfy { $0 > 0 && $0 <= 64 } && o.stride.allSatisfy { $0 > 0 && $0 <= 64 } && o.pads.allSatisfy { $0 >= 0 && $0 <= 64 }, "kernel/stride/pads out of range")
                let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2]), oc = out.shape[2]
                try expect(c % o.groups == 0 && oc % o.groups == 0, "groups \(o.groups) must divide C \(c) and O \(oc)")
                let oh = (h + o.pads[0] + o.pads[2] - o.kernel[0]) / o.stride[0] + 1, ow = (w + o.pads[1] + o.pads[3] - o.kernel[1]) / o.stride[1] + 1
                try expect(h + o.pads[0] + o.pads[2] >= o.kernel[0] && w + o.pads[1] + o.pads[3] >= o.kernel[1] && out.shape[0] == oh && out.shape[1] == ow,
                           "output shape \(out.shape) should be [\(oh), \(ow), \(oc)]")
                try expect(o.groups == 1 || o.groups == c, "only dense (groups 1) or depthwise (groups = C) convs are supported")
                if o.groups > 1 { try expect(oc == c, "depthwise conv needs O == C") }
                try expect(x.dtype == .float32 || quantized(x), "input must be float32, int8 or uint8")
                try expect(out.dtype == .float32 || quantized(out), "output must be float32, int8 or uint8")
                if x.dtype == .float32 { try expect(out.dtype == .float32 && o.groups == 1, "a float-input conv (patch embed) has a float output and groups 1") }
                try weights(o.weight, rows: oc, cols: o.kernel[0] * o.kernel[1] * (c / o.groups))
                if let b = o.bias { try floats(b, oc) }
            case let .linear(o), let .adaLogLinear(o):
                let k = x.shape.last!, n = out.shape.last!
                try expect(Array(x.shape.dropLast()) == Array(out.shape.dropLast()), "leading dims differ: \(x.shape) → \(out.shape)")
                if case .adaLogLinear = op {
                    try expect(x.dtype == .code && out.dtype == .float32, "input must be AdaLog codes and the output float32")
                    if case let .adaLog(a)? = x.quantizer { try expect(a.bits <= 8, "AdaLog bits \(a.bits) > 8") }
                } else {
                    try expect(quantized(x), "input must be int8 or uint8 (quantized)")
                    try expect(out.dtype == .float32 || quantized(out), "output must be float32, int8 or uint8")
                }
                try weights(o.weight, rows: n, cols: k)
                if let b = o.bias { try floats(b, n) }
            case let .layerNormQuantize(o):
                try expect(x.dtype == .float32 && quantized(out) && x.shape == out.shape, "float input → quantized output of the same shape")
                try floats(o.gamma, x.shape.last!); try floats(o.beta, x.shape.last!)
                try expect(o.epsilon.isFinite && o.epsilon > 0, "epsilon must be > 0")
            case let .attention(o):
                try expect(o.heads > 0 && o.headDim > 0, "heads and headDim must be positive")
                let c = o.heads * o.headDim
                try expect(x.dtype == .float32 && x.shape.count == 2 && x.shape[1] == 3 * c, "input must be float [T, 3·H·d] = [T, \(3 * c)], got \(x.shape)")
                try expect(out.shape == [x.shape[0], c] && (out.dtype == .float32 || quantized(out)), "output must be [T, H·d] float or quantized")
                for (n, g) in [("query", o.query), ("key", o.key), ("value", o.value)] {
                    try expect(g.scale.count == o.heads && g.zeroPoint.count == o.heads, "\(n) quantizer needs \(o.heads) scales and zero points")
                    try expect((2...8).contains(g.bits) && g.scale.allSatisfy { $0.isFinite && $0 > 0 }, "\(n) quantizer needs bits 2...8 and finite scales > 0")
                    // (at 8 bits the runtime clamps the folded values q − z to int8: only codes beyond ±127 from z differ)
                    try expect(g.zeroPoint.allSatisfy { $0 >= 0 && Int($0) < 1 << g.bits },
                               "\(n) zero points must be in [0, 2^bits)")
                }
                switch o.probabilities {
                case let .adaLog(a):
                    try checkAdaLog(a, where_)
                    try expect(a.scale == 1 && a.shift == 0, "post-softmax AdaLog needs scale 1 and shift 0")
                case let .uniform(u):
                    try expect(u.scale.isFinite && u.scale > 0 && (2...8).contains(u.bits) && u.zeroPoint == 0, "uniform post-softmax quantizer needs scale > 0, bits 2...8, zero point 0")
                }
            case .geluAdaLog:
                try expect(x.dtype == .float32 && out.dtype == .code && x.shape == out.shape, "float input → AdaLog codes of the same shape")
            case .gelu:
                try expect(x.dtype == .float32 && out.dtype == .float32 && x.shape == out.shape, "float in and out, same shape")
            case .quantize:
                try expect(x.dtype == .float32 && quantized(out) && x.shape == out.shape, "float input → quantized output of the same shape")
            case .dequantize:
                try expect(quantized(x) && out.dtype == .float32 && x.shape == out.shape, "quantized input → float output of the same shape")
            case .add:
                try expect(ins.allSatisfy { $0.dtype == .float32 && $0.shape == out.shape } && out.dtype == .float32, "float inputs and output of one shape")
            case .globalAveragePool:
                try expect(x.dtype == .float32 && x.shape.count == 3 && out.shape == [x.shape[2]] && out.dtype == .float32, "float [H, W, C] → float [C]")
            case let .tokenSelect(o):
                try expect(x.dtype == .float32 && x.shape.count == 2 && out.shape == [x.shape[1]] && out.dtype == .float32, "float [T, C] → float [C]")
                try expect(o.index >= 0 && o.index < x.shape[0], "index \(o.index) outside 0..<\(x.shape[0])")
            case let .classPosition(o):
                try expect(x.dtype == .float32 && x.shape.count == 2 && out.shape == [x.shape[0] + 1, x.shape[1]] && out.dtype == .float32, "float [T, C] → float [T+1, C]")
                try floats(o.classToken, x.shape[1]); try floats(o.position, (x.shape[0] + 1) * x.shape[1])
            case let .maxPool(o):
                try expect(x.shape.count == 3 && out.shape.count == 3 && x.dtype == out.dtype && x.quantizer == out.quantizer && out.shape[2] == x.shape[2],
                           "[H, W, C] in and out with the same dtype, quantizer and channels")
                try expect(o.kernel.count == 2 && o.stride.count == 2 && o.pads.count == 4 && o.kernel.allSatisfy { $0 > 0 && $0 <= 64 }
                           && o.stride.allSatisfy { $0 > 0 && $0 <= 64 } && o.pads.allSatisfy { $0 >= 0 && $0 < 64 }, "kernel [kh,kw], stride [sh,sw], pads [t,l,b,r] in range")
                try expect(o.pads[0] < o.kernel[0] && o.pads[2] < o.kernel[0] && o.pads[1] < o.kernel[1] && o.pads[3] < o.kernel[1], "padding must be smaller than the window")
                let oh = (x.shape[0] + o.pads[0] + o.pads[2] - o.kernel[0]) / o.stride[0] + 1, ow = (x.shape[1] + o.pads[1] + o.pads[3] - o.kernel[1]) / o.stride[1] + 1
                try expect(x.shape[0] + o.pads[0] + o.pads[2] >= o.kernel[0] && x.shape[1] + o.pads[1] + o.pads[3] >= o.kernel[1] && out.shape[0] == oh && out.shape[1] == ow,
                           "output shape \(out.shape) should be [\(oh), \(ow), \(x.shape[2])]")
            case .reshape:
                try expect(x.elementCount == out.elementCount && x.dtype == out.dtype && x.quantizer == out.quantizer, "same element count, dtype and quantizer")
            }
            // Class-token quantizers: produced by the ops that quantize rows themselves, read only by linear layers.
            if out.prefix != nil {
                try expect(["layerNormQuantize", "attention", "quantize"].contains(op.kind),
                           "output '\(out.name)' has a class-token quantizer, which only layerNormQuantize, attention and quantize produce")
            }
            for t in ins where t.prefix != nil {
                try expect(op.kind == "linear", "input '\(t.name)' has a class-token quantizer, which only linear layers read")
            }
            defined.insert(op.output)
        }
        guard !outputs.isEmpty else { throw fail("the graph has no outputs") }
        for o in outputs {
            guard let t = tmap[o], defined.contains(o) else { throw fail("graph output '\(o)' is never produced") }
            guard t.dtype == .float32 else { throw fail("graph output '\(o)' must be float32") }
        }
        guard inputs.count == 1 else { throw fail("exactly one graph input is supported, got \(inputs.count)") }
    }

    private func checkAdaLog(_ a: AdaLogParams, _ w: String) throws(QModelError) {
        guard (1...8).contains(a.bits), a.q > 0, a.q <= 1024, a.r > 0, a.r <= 1024, a.scale.isFinite, a.scale > 0, a.shift.isFinite else {
            throw .invalidGraph("\(w): AdaLog quantizer \(a) needs bits 1...8, q and r in 1...1024, a finite scale > 0 and a finite shift")
        }
    }
}
