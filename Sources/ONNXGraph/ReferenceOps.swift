// Plain-Swift reference implementations of the ops that carry shape arithmetic and data movement.
// Used to fold constants while specialising a graph, and by the executor for ops without a fast path.
import Foundation

/// Reference evaluation of one node on concrete tensors (nil for omitted optional inputs).
public enum ReferenceOps {
    /// Ops this evaluator implements.
    public static let supported: Set<String> = [
        "Identity", "Dropout", "Constant", "Shape", "Size", "Cast", "CastLike", "ConstantOfShape", "Range",
        "Gather", "GatherElements", "Unsqueeze", "Squeeze", "Concat", "Reshape", "Flatten", "Transpose", "Slice", "Split",
        "Expand", "Tile", "Where", "Pad", "Trilu", "CumSum",
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Sum", "Mean",
        "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not",
        "Sqrt", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Relu", "Neg", "Abs", "Reciprocal", "Floor", "Ceil",
        "Round", "Sin", "Cos", "Softplus", "Sign", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Clip", "Gelu",
        "Mish", "Softsign",
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare",
        "ArgMax", "ArgMin", "Softmax", "LogSoftmax", "MatMul",
    ]

    /// Largest tensor (in elements) one evaluation may create. Specialisation lowers it to what is left of the
    /// memory budget (`ResourceLimits`), so folding refuses an oversized constant before allocating it.
    @TaskLocal public static var elementLimit: Int = ShapeInference.maxElements

    /// The element count of `shape` when every dimension is ≥ 0 and the count is within `elementLimit`.
    static func checkedSize(_ shape: [Int], _ bad: (String) -> ONNXError) throws -> Int {
        guard let n = checkedElementCount(shape) else { throw bad("invalid or overflowing shape \(shape)") }
        guard n <= elementLimit else {
            throw bad("result of shape \(shape) has \(n) elements, above the limit of \(elementLimit) (memory cap)")
        }
        return n
    }

    /// Arithmetic operations evaluating `node` on `inputs` takes, for the constant-folding work limit: multiply-adds
    /// for MatMul, the elements read otherwise (every other op here is linear in its inputs and outputs, and outputs are
    /// bounded by `elementLimit`). Nil when the count overflows.
    public static func operationCount(_ node: Node, _ inputs: [Tensor?]) -> Int? {
        var read = 0
        for t in inputs { if let t { let (s, o) = read.addingReportingOverflow(t.count); if o { return nil }; read = s } }
        guard node.opType == "MatMul", inputs.count == 2, let a = inputs[0], let b = inputs[1], a.rank > 0, b.rank > 0,
              let out = try? matmulShape(a.shape, b.shape, { .badNode(node: node.displayName, op: "MatMul", reason: $0) }),
              let outCount = checkedElementCount(out) else { return read }
        let (macs, o) = outCount.multipliedReportingOverflow(by: a.shape[a.rank - 1])
        return o ? nil : max(read, macs)
    }

    public static func evaluate(_ node: Node, _ inputs: [Tensor?], opset: Int) throws -> [Tensor] {
        let op = node.opType
        func bad(_ r: String) -> ONNXError { .badNode(node: node.displayName, op: op, reason: r) }
        func input(_ i: Int) throws -> Tensor {
            guard i < inputs.count, let t = inputs[i] else { throw bad("input \(i) is missing") }
            return t
        }
        switch op {
        case "Identity", "Dropout":
            let x = try input(0)
            return node.outputs.count > 1 ? [x, Tensor(shape: x.shape, dtype: .bool, ints: [Int64](repeating: 1, count: x.count))] : [x]
        case "Constant":
            if let t = node.tensor("value") { return [t] }
            if case .float(let f)? = node.attributes["value_float"] { return [Tensor(scalar: f)] }
            if let f = node.floats("value_floats") { return [Tensor(shape: [f.count], floats: f)] }
            if case .int(let i)? = node.attributes["value_int"] { return [Tensor(shape: [], ints: [Int64(i)])] }
            if case .ints(let i)? = node.attributes["value_ints"] { return [Tensor(shape: [i.count], ints: i.map { Int64($0) })] }
            throw bad("Constant without a supported value attribute")
        case "Shape":
            return [shapeTensor(try input(0).shape, node)]
        case "Size":
            return [Tensor(shape: [], ints: [Int64(try input(0).count)])]
        case "Cast":
            guard let to = node.int("to"), let dt = DType(onnxCode: to) else { throw bad("unsupported 'to' type") }
            return [cast(try input(0), to: dt)]
        case "CastLike":
            return [cast(try input(0), to: try input(1).dtype)]
        case "ConstantOfShape":
            let shape = try input(0).ints.map { Int($0) }
            let n = try checkedSize(shape, bad)
            let v = node.tensor("value") ?? Tensor(shape: [1], floats: [0])
            switch v.data {
            case .float(let f): return [Tensor(shape: shape, dtype: v.dtype, floats: [Float](repeating: f.first ?? 0, count: n))]
            case .int(let i): return [Tensor(shape: shape, dtype: v.dtype, ints: [Int64](repeating: i.first ?? 0, count: n))]
            }
        case "Range":
            let s = try input(0), l = try input(1), d = try input(2)
            guard s.count == 1, l.count == 1, d.count == 1 else { throw bad("start, limit and delta must be scalars") }
            if s.dtype.isFloat {
                let a = s.floats[0], b = l.floats[0], c = d.floats[0]
                guard c != 0 else { throw bad("delta is 0") }
                let q = ((b - a) / c).rounded(.up)
                guard q.isFinite, q <= Float(elementLimit) else { throw bad("range too long") }
                let n = max(Int(q), 0)
                return [Tensor(shape: [n], dtype: s.dtype, floats: (0..<n).map { a + Float($0) * c })]
            } else {
                let a = s.ints[0], b = l.ints[0], c = d.ints[0]
                guard c != 0 else { throw bad("delta is 0") }
                let q = (Double(b) - Double(a)) / Double(c)
                guard q.isFinite, q <= Double(elementLimit) else { throw bad("range too long") }
                let n = max(Int(q.rounded(.up)), 0)
                return [Tensor(shape: [n], dtype: s.dtype, ints: (0..<n).map { a &+ Int64($0) &* c })]
            }
        case "Gather":
            return [try gather(try input(0), try input(1), axis: node.int("axis", default: 0), bad)]
        case "GatherElements":
            return [try gatherElements(try input(0), try input(1), axis: node.int("axis", default: 0), bad)]
        case "Unsqueeze":
            let x = try input(0)
            let axes = try opset >= 13 && inputs.count > 1 ? input(1).ints.map { Int($0) } : (node.ints("axes") ?? [])
            return [x.reshaped(try unsqueezeShape(x.shape, axes: axes, bad))]
        case "Squeeze":
            let x = try input(0)
            let axes: [Int]? = opset >= 13 ? (inputs.count > 1 && inputs[1] != nil ? try input(1).ints.map { Int($0) } : nil) : node.ints("axes")
            return [x.reshaped(try squeezeShape(x.shape, axes: axes, bad))]
        case "Concat":
            let ts = inputs.compactMap { $0 }
            return [try concat(ts, axis: node.int("axis", default: 0), bad)]
        case "Reshape":
            let x = try input(0)
            let shape = try reshapeShape(x.shape, try input(1).ints, allowZero: node.int("allowzero", default: 0) != 0, bad)
            return [x.reshaped(shape)]
        case "Flatten":
            let x = try input(0)
            var a = node.int("axis", default: 1)
            if a < 0 { a += x.rank }
            guard a >= 0, a <= x.rank else { throw bad("axis out of range") }
            return [x.reshaped([elementCount(Array(x.shape[..<a])), elementCount(Array(x.shape[a...]))])]
        case "Transpose":
            let x = try input(0)
            let perm = node.ints("perm") ?? Array((0..<x.rank).reversed())
            return [try transpose(x, perm: perm, bad)]
        case "Slice":
            let x = try input(0)
            let starts: [Int64], ends: [Int64], axes: [Int64]?, steps: [Int64]?
            if opset >= 10 {
                starts = try input(1).ints; ends = try input(2).ints
                axes = inputs.count > 3 ? inputs[3]?.ints : nil
                steps = inputs.count > 4 ? inputs[4]?.ints : nil
            } else {
                starts = (node.ints("starts") ?? []).map { Int64($0) }; ends = (node.ints("ends") ?? []).map { Int64($0) }
                axes = node.ints("axes")?.map { Int64($0) }; steps = nil
            }
            let spec = try sliceSpec(x.shape, starts: starts, ends: ends, axes: axes, steps: steps, bad)
            return [slice(x, spec)]
        case "Split":
            let x = try input(0)
            let sizes = try splitSizes(node, x.shape, inputs.count > 1 ? inputs[1] : nil, opset: opset, bad)
            let axis = normalizeAxis(node.int("axis", default: 0), rank: x.rank)!
            var out: [Tensor] = []
            var start = 0
            for s in sizes {
                var spec = SliceSpec(shape: x.shape)
                spec.starts[axis] = start; spec.sizes[axis] = s
                out.append(slice(x, spec))
                start += s
            }
            return out
        case "Expand":
            let x = try input(0)
            let target = try input(1).ints.map { Int($0) }
            guard target.allSatisfy({ $0 >= 0 && $0 < (1 << 28) }), let shape = broadcastShape([x.shape, target]) else {
                throw bad("cannot expand \(x.shape) to \(target)")
            }
            _ = try checkedSize(shape, bad)
            return [broadcastTo(x, shape)]
        case "Tile":
            let x = try input(0)
            let reps = try input(1).ints.map { Int($0) }
            guard reps.count == x.rank, reps.allSatisfy({ $0 >= 0 && $0 < (1 << 28) }) else {
                throw bad("repeats \(reps) do not fit rank \(x.rank) or are too large")
            }
            _ = try checkedSize(zip(x.shape, reps).map { $0 * $1 }, bad)
            return [tile(x, reps)]
        case "Where":
            let c = try input(0), a = try input(1), b = try input(2)
            guard let shape = broadcastShape([c.shape, a.shape, b.shape]) else { throw bad("shapes \(c.shape), \(a.shape), \(b.shape) do not broadcast") }
            _ = try checkedSize(shape, bad)
            let st = [c.shape, a.shape, b.shape].map { broadcastStrides($0, to: shape) }
            let cv = c.ints
            if a.dtype.isFloat || b.dtype.isFloat {
                let av = a.floats, bv = b.floats
                var o = [Float](repeating: 0, count: elementCount(shape))
                forEachBroadcast(shape, st) { i, off in o[i] = cv[off[0]] != 0 ? av[off[1]] : bv[off[2]] }
                return [Tensor(shape: shape, dtype: a.dtype.isFloat ? a.dtype : b.dtype, floats: o)]
            }
            let av = a.ints, bv = b.ints
            var o = [Int64](repeating: 0, count: elementCount(shape))
            forEachBroadcast(shape, st) { i, off in o[i] = cv[off[0]] != 0 ? av[off[1]] : bv[off[2]] }
            return [Tensor(shape: shape, dtype: a.dtype, ints: o)]
        case "Pad":
            return [try pad(node, inputs, opset: opset, bad)]
        case "Trilu":
            let x = try input(0)
            let k = inputs.count > 1 ? Int(inputs[1]?.ints.first ?? 0) : 0
            let upper = node.int("upper", default: 1) != 0
            guard x.rank >= 2 else { throw bad("rank < 2") }
            let r = x.shape[x.rank - 2], c = x.shape[x.rank - 1]
            var f = x.floats
            for i in 0..<f.count {
                let col = i % c, row = (i / c) % r
                let keep = upper ? (col - row >= k) : (col - row <= k)
                if !keep { f[i] = 0 }
            }
            return [x.dtype.isFloat ? Tensor(shape: x.shape, dtype: x.dtype, floats: f) : Tensor(shape: x.shape, dtype: x.dtype, ints: f.map(saturatingInt64))]
        case "CumSum":
            let x = try input(0)
            guard let axis = normalizeAxis(Int(try input(1).ints.first ?? 0), rank: x.rank) else { throw bad("axis out of range") }
            let excl = node.int("exclusive", default: 0) != 0, rev = node.int("reverse", default: 0) != 0
            let outer = elementCount(Array(x.shape[..<axis])), n = x.shape[axis], inner = elementCount(Array(x.shape[(axis + 1)...]))
            var f = x.floats, o = f
            for a in 0..<outer { for b in 0..<inner {
                var s: Float = 0
                for jj in 0..<n {
                    let j = rev ? n - 1 - jj : jj
                    let i = (a * n + j) * inner + b
                    if excl { o[i] = s; s += f[i] } else { s += f[i]; o[i] = s }
                }
            } }
            f = o
            return [x.dtype.isFloat ? Tensor(shape: x.shape, dtype: x.dtype, floats: f) : Tensor(shape: x.shape, dtype: x.dtype, ints: f.map(saturatingInt64))]
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Sum", "Mean":
            let ts = inputs.compactMap { $0 }
            guard !ts.isEmpty else { throw bad("no inputs") }
            var acc = ts[0]
            let fn = op == "Sum" || op == "Mean" ? "Add" : op
            for t in ts.dropFirst() { acc = try binary(fn, acc, t, fmod: node.int("fmod", default: 0) != 0, bad) }
            if op == "Mean" { acc = try binary("Div", acc, Tensor(scalar: Float(ts.count)), fmod: false, bad) }
            return [acc]
        case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
            return [try compare(op, try input(0), try input(1), bad)]
        case "Not":
            let x = try input(0)
            return [Tensor(shape: x.shape, dtype: .bool, ints: x.ints.map { $0 == 0 ? 1 : 0 })]
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare":
            let x = try input(0)
            let axes = reduceAxes(node, inputs, opset: opset)
            return [try reduce(op, x, axes: axes, keepDims: node.int("keepdims", default: 1) != 0,
                               noopWithEmpty: node.int("noop_with_empty_axes", default: 0) != 0, bad)]
        case "ArgMax", "ArgMin":
            let x = try input(0)
            guard let axis = normalizeAxis(node.int("axis", default: 0), rank: x.rank) else { throw bad("axis out of range") }
            let keep = node.int("keepdims", default: 1) != 0
            let outer = elementCount(Array(x.shape[..<axis])), n = x.shape[axis], inner = elementCount(Array(x.shape[(axis + 1)...]))
            let f = x.floats
            var o = [Int64](repeating: 0, count: outer * inner)
            for a in 0..<outer { for b in 0..<inner {
                var best = 0
                for j in 1..<max(n, 1) {
                    let v = f[(a * n + j) * inner + b], bv = f[(a * n + best) * inner + b]
                    if op == "ArgMax" ? v > bv : v < bv { best = j }
                }
                o[a * inner + b] = Int64(best)
            } }
            var shape = x.shape
            if keep { shape[axis] = 1 } else { shape.remove(at: axis) }
            return [Tensor(shape: shape, ints: o)]
        case "Softmax", "LogSoftmax":
            let x = try input(0)
            var axis = node.int("axis", default: opset >= 13 ? -1 : 1)
            if axis < 0 { axis += x.rank }
            guard axis >= 0, axis < x.rank else { throw bad("axis out of range") }
            var f = x.floats
            // opset < 13 flattens to 2-D at axis; opset ≥ 13 is per-axis.
            let outer: Int, n: Int, inner: Int
            if opset >= 13 {
                outer = elementCount(Array(x.shape[..<axis])); n = x.shape[axis]; inner = elementCount(Array(x.shape[(axis + 1)...]))
            } else {
                outer = elementCount(Array(x.shape[..<axis])); n = elementCount(Array(x.shape[axis...])); inner = 1
            }
            for a in 0..<outer { for b in 0..<inner {
                var mx = -Float.infinity
                for j in 0..<n { mx = max(mx, f[(a * n + j) * inner + b]) }
                var s: Float = 0
                for j in 0..<n { s += expf(f[(a * n + j) * inner + b] - mx) }
                for j in 0..<n {
                    let i = (a * n + j) * inner + b
                    f[i] = op == "Softmax" ? expf(f[i] - mx) / s : f[i] - mx - logf(s)
                }
            } }
            return [Tensor(shape: x.shape, dtype: x.dtype, floats: f)]
        case "MatMul":
            return [try matmul(try input(0), try input(1), bad)]
        default:
            if let f = unaryFunction(node) {
                let x = try input(0)
                if op == "Clip" {
                    let lo = inputs.count > 1 ? inputs[1]?.floats.first : (opset < 11 ? node.float("min", default: -.infinity) : nil)
                    let hi = inputs.count > 2 ? inputs[2]?.floats.first : (opset < 11 ? node.float("max", default: .infinity) : nil)
                    if !x.dtype.isFloat {
                        let l = saturatingInt64(lo ?? -.infinity)
                        let h = saturatingInt64(hi ?? .infinity)
                        return [Tensor(shape: x.shape, dtype: x.dtype, ints: x.ints.map { min(max($0, l), h) })]
                    }
                    let l = lo ?? -.infinity, h = hi ?? .infinity
                    return [Tensor(shape: x.shape, dtype: x.dtype, floats: x.floats.map { min(max($0, l), h) })]
                }
                if !x.dtype.isFloat, op == "Neg" || op == "Abs" || op == "Relu" || op == "Sign" {
                    return [Tensor(shape: x.shape, dtype: x.dtype, ints: x.ints.map { saturatingInt64(f(Float($0))) })]
                }
                return [Tensor(shape: x.shape, dtype: x.dtype.isFloat ? x.dtype : .float32, floats: x.floats.map(f))]
            }
            throw ONNXError.unsupportedOp(node: node.displayName, op: op, domain: node.domain, opset: opset,
                                          supported: OpSupport.allSupported.sorted())
        }
    }

    /// The scalar function of an element-wise unary op (with its attributes bound), or nil.
    public static func unaryFunction(_ node: Node) -> ((Float) -> Float)? {
        switch node.opType {
        case "Sqrt": return { $0.squareRoot() }
        case "Exp": return { expf($0) }
        case "Log": return { logf($0) }
        case "Erf": return { Float(erf(Double($0))) }
        case "Tanh": return { tanhf($0) }
        case "Sigmoid": return { 1 / (1 + expf(-$0)) }
        case "Relu": return { max($0, 0) }
        case "Neg": return { -$0 }
        case "Abs": return { abs($0) }
        case "Reciprocal": return { 1 / $0 }
        case "Floor": return { $0.rounded(.down) }
        case "Ceil": return { $0.rounded(.up) }
        case "Round": return { $0.rounded(.toNearestOrEven) }
        case "Sin": return { sinf($0) }
        case "Cos": return { cosf($0) }
        case "Sign": return { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
        case "Softplus": return { $0 > 20 ? $0 : log1pf(expf($0)) }
        case "Softsign": return { $0 / (1 + abs($0)) }
        case "Mish": return { $0 * tanhf($0 > 20 ? $0 : log1pf(expf($0))) }
        case "HardSigmoid":
            let a = node.float("alpha", default: 0.2), b = node.float("beta", default: 0.5)
            return { max(0, min(1, a * $0 + b)) }
        case "HardSwish": return { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        case "LeakyRelu":
            let a = node.float("alpha", default: 0.01)
            return { $0 >= 0 ? $0 : a * $0 }
        case "Elu":
            let a = node.float("alpha", default: 1)
            return { $0 >= 0 ? $0 : a * (expf($0) - 1) }
        case "Gelu":
            if node.string("approximate") == "tanh" {
                return { 0.5 * $0 * (1 + tanhf(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }
            }
            return { Float(0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot()))) }
        case "Clip": return { $0 }
        default: return nil
        }
    }

    // MARK: helpers

    static func cast(_ x: Tensor, to dt: DType) -> Tensor {
        if dt.isFloat {
            var f = x.floats
            if dt == .float16 || dt == .bfloat16 { f = f.map { roundToHalfish($0, bfloat: dt == .bfloat16) } }
            return Tensor(shape: x.shape, dtype: dt, floats: f)
        }
        if dt == .bool { return Tensor(shape: x.shape, dtype: .bool, ints: x.floats.map { $0 != 0 ? 1 : 0 }) }
        var v = x.ints
        switch dt {
        case .int32: v = v.map { Int64(Int32(truncatingIfNeeded: $0)) }
        case .int8: v = v.map { Int64(Int8(truncatingIfNeeded: $0)) }
        case .uint8: v = v.map { Int64(UInt8(truncatingIfNeeded: $0)) }
        case .int16: v = v.map { Int64(Int16(truncatingIfNeeded: $0)) }
        case .uint16: v = v.map { Int64(UInt16(truncatingIfNeeded: $0)) }
        case .uint32: v = v.map { Int64(UInt32(truncatingIfNeeded: $0)) }
        default: break
        }
        return Tensor(shape: x.shape, dtype: dt, ints: v)
    }

    static func roundToHalfish(_ f: Float, bfloat: Bool) -> Float {
        if bfloat {
            let b = f.bitPattern
            let r = (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000
            return Float(bitPattern: r)
        }
        #if arch(x86_64) || arch(arm64)
        return Float(Float16(f))
        #else
        return f
        #endif
    }

    static func gather(_ data: Tensor, _ idx: Tensor, axis a: Int, _ bad: (String) -> ONNXError) throws -> Tensor {
        guard let axis = normalizeAxis(a, rank: data.rank), data.rank > 0 else { throw bad("axis \(a) out of range for rank \(data.rank)") }
        let n = data.shape[axis]
        let outer = elementCount(Array(data.shape[..<axis])), inner = elementCount(Array(data.shape[(axis + 1)...]))
        var indices = idx.ints.map { Int($0) }
        for i in 0..<indices.count {
            if indices[i] < 0 { indices[i] += n }
            guard indices[i] >= 0, indices[i] < n else { throw bad("index \(idx.ints[i]) out of range 0..<\(n)") }
        }
        let shape = Array(data.shape[..<axis]) + idx.shape + Array(data.shape[(axis + 1)...])
        _ = try checkedSize(shape, bad)
        func go<T>(_ v: [T], _ zero: T) -> [T] {
            var o = [T](repeating: zero, count: outer * indices.count * inner)
            var p = 0
            for a in 0..<outer { for j in indices {
                let base = (a * n + j) * inner
                for b in 0..<inner { o[p] = v[base + b]; p += 1 }
            } }
            return o
        }
        switch data.data {
        case .float(let v): return Tensor(shape: shape, dtype: data.dtype, floats: go(v, 0))
        case .int(let v): return Tensor(shape: shape, dtype: data.dtype, ints: go(v, 0))
        }
    }

    static func gatherElements(_ data: Tensor, _ idx: Tensor, axis a: Int, _ bad: (String) -> ONNXError) throws -> Tensor {
        guard let axis = normalizeAxis(a, rank: data.rank), idx.rank == data.rank else { throw bad("bad axis or rank") }
        let ds = rowMajorStrides(data.shape), isx = rowMajorStrides(idx.shape)
        let iv = idx.ints, f = data.floats
        var o = [Float](repeating: 0, count: idx.count)
        for flat in 0..<idx.count {
            var rem = flat, off = 0
            for d in 0..<idx.rank {
                var c = rem / isx[d]; rem %= isx[d]
                if d == axis {
                    c = Int(iv[flat]); if c < 0 { c += data.shape[d] }
                }
                guard c >= 0, c < data.shape[d] else { throw bad("index out of range (indices \(idx.shape) vs data \(data.shape))") }
                off += c * ds[d]
            }
            o[flat] = f[off]
        }
        return data.dtype.isFloat ? Tensor(shape: idx.shape, dtype: data.dtype, floats: o) : Tensor(shape: idx.shape, dtype: data.dtype, ints: o.map(saturatingInt64))
    }

    public static func unsqueezeShape(_ s: [Int], axes: [Int], _ bad: (String) -> ONNXError) throws -> [Int] {
        let r = s.count + axes.count
        var na: [Int] = []
        for a in axes {
            guard let x = normalizeAxis(a, rank: r) else { throw bad("axis \(a) out of range") }
            na.append(x)
        }
        var out: [Int] = []
        var it = s.makeIterator()
        for i in 0..<r { out.append(na.contains(i) ? 1 : (it.next() ?? 1)) }
        return out
    }

    public static func squeezeShape(_ s: [Int], axes: [Int]?, _ bad: (String) -> ONNXError) throws -> [Int] {
        guard let axes, !axes.isEmpty else { return s.filter { $0 != 1 } }
        var na = Set<Int>()
        for a in axes {
            guard let x = normalizeAxis(a, rank: s.count), s[x] == 1 else { throw bad("cannot squeeze axis \(a) of shape \(s)") }
            na.insert(x)
        }
        return s.enumerated().filter { !na.contains($0.offset) }.map(\.element)
    }

    public static func reshapeShape(_ s: [Int], _ target: [Int64], allowZero: Bool, _ bad: (String) -> ONNXError) throws -> [Int] {
        var out = [Int]()
        var infer = -1
        for (i, t) in target.enumerated() {
            if t == 0 && !allowZero {
                guard i < s.count else { throw bad("dimension 0 at position \(i) copies a dimension the input \(s) does not have") }
                out.append(s[i])
            } else if t == -1 {
                guard infer < 0 else { throw bad("more than one -1 in shape \(target)") }
                infer = i; out.append(1)
            } else {
                guard t >= 0 else { throw bad("invalid dimension \(t)") }
                out.append(Int(t))
            }
        }
        let total = elementCount(s)
        if infer >= 0 {
            let rest = elementCount(out)
            guard rest > 0, total % rest == 0 else { throw bad("cannot reshape \(s) (\(total) elements) to \(target)") }
            out[infer] = total / rest
        }
        guard elementCount(out) == total else { throw bad("cannot reshape \(s) (\(total) elements) to \(target)") }
        return out
    }

    public static func concat(_ ts: [Tensor], axis a: Int, _ bad: (String) -> ONNXError) throws -> Tensor {
        guard let first = ts.first else { throw bad("no inputs") }
        let nonEmpty = ts.filter { $0.count > 0 || $0.rank == first.rank }
        guard let axis = normalizeAxis(a, rank: first.rank) else { throw bad("axis \(a) out of range") }
        var shape = first.shape
        shape[axis] = 0
        for t in nonEmpty {
            guard t.rank == first.rank else { throw bad("rank mismatch \(t.shape) vs \(first.shape)") }
            for d in 0..<t.rank where d != axis && t.shape[d] != first.shape[d] { throw bad("shape mismatch \(t.shape) vs \(first.shape) on axis \(d)") }
            shape[axis] += t.shape[axis]
        }
        let outer = elementCount(Array(first.shape[..<axis]))
        let isFloat = nonEmpty.contains { $0.dtype.isFloat }
        if isFloat {
            var o: [Float] = []; o.reserveCapacity(elementCount(shape))
            let vs = nonEmpty.map { $0.floats }
            for a in 0..<outer { for (t, v) in zip(nonEmpty, vs) {
                let chunk = t.count / max(outer, 1)
                o.append(contentsOf: v[(a * chunk)..<((a + 1) * chunk)])
            } }
            return Tensor(shape: shape, dtype: nonEmpty.first { $0.dtype.isFloat }!.dtype, floats: o)
        }
        var o: [Int64] = []; o.reserveCapacity(elementCount(shape))
        let vs = nonEmpty.map { $0.ints }
        for a in 0..<outer { for (t, v) in zip(nonEmpty, vs) {
            let chunk = t.count / max(outer, 1)
            o.append(contentsOf: v[(a * chunk)..<((a + 1) * chunk)])
        } }
        return Tensor(shape: shape, dtype: first.dtype, ints: o)
    }

    public static func transposeShape(_ s: [Int], perm: [Int], _ bad: (String) -> ONNXError) throws -> [Int] {
        guard perm.count == s.count, Set(perm) == Set(0..<s.count) else { throw bad("perm \(perm) does not fit shape \(s)") }
        return perm.map { s[$0] }
    }

    static func transpose(_ x: Tensor, perm: [Int], _ bad: (String) -> ONNXError) throws -> Tensor {
        let shape = try transposeShape(x.shape, perm: perm, bad)
        let ins = rowMajorStrides(x.shape)
        let st = [perm.map { ins[$0] }]
        func go<T>(_ v: [T], _ z: T) -> [T] {
            var o = [T](repeating: z, count: v.count)
            forEachBroadcast(shape, st) { i, off in o[i] = v[off[0]] }
            return o
        }
        switch x.data {
        case .float(let v): return Tensor(shape: shape, dtype: x.dtype, floats: go(v, 0))
        case .int(let v): return Tensor(shape: shape, dtype: x.dtype, ints: go(v, 0))
        }
    }

    /// A strided box inside a tensor: per axis a start, a step and a count.
    public struct SliceSpec: Sendable, Equatable {
        public var shape: [Int]
        public var starts: [Int]
        public var steps: [Int]
        public var sizes: [Int]
        init(shape: [Int]) {
            self.shape = shape
            starts = [Int](repeating: 0, count: shape.count)
            steps = [Int](repeating: 1, count: shape.count)
            sizes = shape
        }
    }

    public static func sliceSpec(_ s: [Int], starts: [Int64], ends: [Int64], axes: [Int64]?, steps: [Int64]?,
                                 _ bad: (String) -> ONNXError) throws -> SliceSpec {
        var spec = SliceSpec(shape: s)
        let ax = axes ?? (0..<Int64(starts.count)).map { $0 }
        guard starts.count == ends.count, ax.count == starts.count, steps == nil || steps!.count == starts.count else {
            throw bad("starts/ends/axes/steps lengths differ")
        }
        for i in 0..<ax.count {
            guard let a = normalizeAxis(Int(ax[i]), rank: s.count) else { throw bad("axis \(ax[i]) out of range") }
            let dim = Int64(s[a])
            // |step| > dim selects at most one element; clamping keeps the size arithmetic from overflowing.
            let step = max(min(steps?[i] ?? 1, dim + 1), -(dim + 1))
            guard step != 0 else { throw bad("step 0") }
            var st = starts[i], en = ends[i]
            if st < 0 { st += dim }
            if en < 0 { en += dim }
            if step > 0 {
                st = min(max(st, 0), dim); en = min(max(en, 0), dim)
                spec.sizes[a] = Int(max(0, (en - st + step - 1) / step))
            } else {
                st = min(max(st, 0), dim - 1); en = min(max(en, -1), dim - 1)
                spec.sizes[a] = Int(max(0, (st - en + (-step) - 1) / (-step)))
            }
            spec.starts[a] = Int(st); spec.steps[a] = Int(step)
        }
        return spec
    }

    static func slice(_ x: Tensor, _ spec: SliceSpec) -> Tensor {
        let ins = rowMajorStrides(x.shape)
        let st = [zip(ins, spec.steps).map { $0 * $1 }]
        let base = zip(ins, spec.starts).reduce(0) { $0 + $1.0 * $1.1 }
        let shape = spec.sizes
        func go<T>(_ v: [T], _ z: T) -> [T] {
            var o = [T](repeating: z, count: elementCount(shape))
            if o.isEmpty { return o }
            forEachBroadcast(shape, st) { i, off in o[i] = v[base + off[0]] }
            return o
        }
        switch x.data {
        case .float(let v): return Tensor(shape: shape, dtype: x.dtype, floats: go(v, 0))
        case .int(let v): return Tensor(shape: shape, dtype: x.dtype, ints: go(v, 0))
        }
    }

    public static func splitSizes(_ node: Node, _ shape: [Int], _ splitInput: Tensor?, opset: Int,
                                  _ bad: (String) -> ONNXError) throws -> [Int] {
        guard let axis = normalizeAxis(node.int("axis", default: 0), rank: shape.count) else { throw bad("axis out of range") }
        let dim = shape[axis]
        var sizes: [Int]
        if let s = splitInput { sizes = s.ints.map { Int($0) } }
        else if opset < 13, let s = node.ints("split") { sizes = s }
        else {
            let n = node.int("num_outputs") ?? node.outputs.count
            guard n > 0 else { throw bad("no outputs") }
            let chunk = (dim + n - 1) / n
            sizes = (0..<n).map { min(chunk, max(dim - $0 * chunk, 0)) }
        }
        guard sizes.allSatisfy({ $0 >= 0 && $0 <= dim }), sizes.reduce(0, +) == dim, sizes.count == node.outputs.count else {
            throw bad("split sizes \(sizes) do not add up to \(dim) or do not match \(node.outputs.count) outputs")
        }
        return sizes
    }

    public static func broadcastTo(_ x: Tensor, _ shape: [Int]) -> Tensor {
        let st = [broadcastStrides(x.shape, to: shape)]
        func go<T>(_ v: [T], _ z: T) -> [T] {
            var o = [T](repeating: z, count: elementCount(shape))
            if o.isEmpty { return o }
            forEachBroadcast(shape, st) { i, off in o[i] = v[off[0]] }
            return o
        }
        switch x.data {
        case .float(let v): return Tensor(shape: shape, dtype: x.dtype, floats: go(v, 0))
        case .int(let v): return Tensor(shape: shape, dtype: x.dtype, ints: go(v, 0))
        }
    }

    static func tile(_ x: Tensor, _ reps: [Int]) -> Tensor {
        let shape = zip(x.shape, reps).map { $0 * $1 }
        let ins = rowMajorStrides(x.shape)
        let f = x.floats
        var o = [Float](repeating: 0, count: elementCount(shape))
        let os = rowMajorStrides(shape)
        for i in 0..<o.count {
            var rem = i, off = 0
            for d in 0..<shape.count { let c = rem / os[d]; rem %= os[d]; off += (c % x.shape[d]) * ins[d] }
            o[i] = f[off]
        }
        return x.dtype.isFloat ? Tensor(shape: shape, dtype: x.dtype, floats: o) : Tensor(shape: shape, dtype: x.dtype, ints: o.map(saturatingInt64))
    }

    /// Pads of a Pad node as (begin, end) per axis, plus mode and constant value.
    public static func padSpec(_ node: Node, _ inputs: [Tensor?], rank: Int, opset: Int,
                               _ bad: (String) -> ONNXError) throws -> (begin: [Int], end: [Int], mode: String, value: Float) {
        var pads: [Int]
        var value: Float = 0
        if opset >= 11 {
            guard inputs.count > 1, let p = inputs[1] else { throw bad("pads input missing or not constant") }
            pads = p.ints.map { Int($0) }
            if inputs.count > 2, let v = inputs[2] { value = v.floats.first ?? 0 }
        } else {
            pads = node.ints("pads") ?? []
            value = node.float("value", default: 0)
        }
        var axes = Array(0..<rank)
        if inputs.count > 3, let a = inputs[3] {
            axes = try a.ints.map { guard let x = normalizeAxis(Int($0), rank: rank) else { throw bad("axis out of range") }; return x }
        }
        guard pads.count == 2 * axes.count else { throw bad("pads \(pads) do not fit \(axes.count) axes") }
        guard pads.allSatisfy({ abs($0) < 1 << 28 }) else { throw bad("pads \(pads) are out of range") }
        var b = [Int](repeating: 0, count: rank), e = b
        for (i, a) in axes.enumerated() { b[a] = pads[i]; e[a] = pads[i + axes.count] }
        return (b, e, node.string("mode") ?? "constant", value)
    }

    static func pad(_ node: Node, _ inputs: [Tensor?], opset: Int, _ bad: (String) -> ONNXError) throws -> Tensor {
        guard let x = inputs.first ?? nil else { throw bad("input missing") }
        let (b, e, mode, value) = try padSpec(node, inputs, rank: x.rank, opset: opset, bad)
        let shape = (0..<x.rank).map { x.shape[$0] + b[$0] + e[$0] }
        guard shape.allSatisfy({ $0 >= 0 && $0 < (1 << 28) }) else {
            throw bad("pads \(b) / \(e) make an invalid or too large shape")
        }
        _ = try checkedSize(shape, bad)
        let f = x.floats
        var o = [Float](repeating: value, count: elementCount(shape))
        let ins = rowMajorStrides(x.shape), os = rowMajorStrides(shape)
        if mode == "constant" || x.rank == 0 || x.shape.contains(0) {
            // Constant padding: copy each innermost input row to its place (the output is already `value`).
            // Negative pads crop; a row's copied part is the overlap of the shifted row with the output.
            let last = x.rank - 1
            if x.rank > 0 && !x.shape.contains(0) && !shape.contains(0) {
                let n = x.shape[last], lo = max(0, -b[last]), hi = min(n, shape[last] - b[last])
                let rows = f.count / n
                if hi > lo {
                    f.withUnsafeBufferPointer { src in
                        o.withUnsafeMutableBufferPointer { dst in
                            for r in 0..<rows {
                                var rem = r, off = b[last] + lo, inside = true
                                for d in stride(from: last - 1, through: 0, by: -1) {
                                    let c = rem % x.shape[d] + b[d]; rem /= x.shape[d]
                                    if c < 0 || c >= shape[d] { inside = false; break }
                                    off += c * os[d]
                                }
                                if inside {
                                    (dst.baseAddress! + off).update(from: src.baseAddress! + r * n + lo, count: hi - lo)
                                }
                            }
                        }
                    }
                }
            } else if x.rank == 0 {
                o = f
            }
            return x.dtype.isFloat ? Tensor(shape: shape, dtype: x.dtype, floats: o) : Tensor(shape: shape, dtype: x.dtype, ints: o.map(saturatingInt64))
        }
        for i in 0..<o.count {
            var rem = i, off = 0, inside = true
            for d in 0..<shape.count {
                var c = rem / os[d] - b[d]; rem %= os[d]
                let n = x.shape[d]
                if c < 0 || c >= n {
                    switch mode {
                    case "reflect":
                        guard n > 1 else { c = 0; break }
                        let period = 2 * (n - 1)
                        c = ((c % period) + period) % period
                        if c >= n { c = period - c }
                    case "edge": c = min(max(c, 0), n - 1)
                    case "wrap": c = ((c % n) + n) % n
                    default: inside = false
                    }
                }
                if !inside { break }
                off += c * ins[d]
            }
            if inside { o[i] = f[off] }
        }
        return x.dtype.isFloat ? Tensor(shape: shape, dtype: x.dtype, floats: o) : Tensor(shape: shape, dtype: x.dtype, ints: o.map(saturatingInt64))
    }

    static func binary(_ op: String, _ a: Tensor, _ b: Tensor, fmod: Bool, _ bad: (String) -> ONNXError) throws -> Tensor {
        guard let shape = broadcastShape([a.shape, b.shape]) else { throw bad("shapes \(a.shape) and \(b.shape) do not broadcast") }
        let st = [broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape)]
        let n = try checkedSize(shape, bad)
        if a.dtype.isFloat || b.dtype.isFloat || op == "Pow" {
            let av = a.floats, bv = b.floats
            var o = [Float](repeating: 0, count: n)
            let f: (Float, Float) -> Float
            switch op {
            case "Add": f = { $0 + $1 }
            case "Sub": f = { $0 - $1 }
            case "Mul": f = { $0 * $1 }
            case "Div": f = { $0 / $1 }
            case "Pow": f = { y, e in e == 2 ? y * y : (e == 0.5 ? y.squareRoot() : powf(y, e)) }
            case "Max": f = { max($0, $1) }
            case "Min": f = { min($0, $1) }
            case "Mod": f = fmod ? { fmodf($0, $1) } : { x, y in let r = fmodf(x, y); return (r != 0 && (r < 0) != (y < 0)) ? r + y : r }
            default: throw bad("unknown binary op")
            }
            if n > 0 { forEachBroadcast(shape, st) { i, off in o[i] = f(av[off[0]], bv[off[1]]) } }
            let dt = a.dtype.isFloat ? a.dtype : (b.dtype.isFloat ? b.dtype : .float32)
            if op == "Pow" && !a.dtype.isFloat { return Tensor(shape: shape, dtype: a.dtype, ints: o.map(saturatingInt64)) }
            return Tensor(shape: shape, dtype: dt, floats: o)
        }
        let av = a.ints, bv = b.ints
        var o = [Int64](repeating: 0, count: n)
        var divZero = false
        let f: (Int64, Int64) -> Int64
        switch op {
        case "Add": f = { $0 &+ $1 }
        case "Sub": f = { $0 &- $1 }
        case "Mul": f = { $0 &* $1 }
        case "Div": f = { x, y in if y == 0 { divZero = true; return 0 }; return x.dividedReportingOverflow(by: y).partialValue }
        case "Max": f = { max($0, $1) }
        case "Min": f = { min($0, $1) }
        case "Mod": f = { x, y in
            if y == 0 { divZero = true; return 0 }
            let r = x.remainderReportingOverflow(dividingBy: y).partialValue
            return (!fmod && r != 0 && (r < 0) != (y < 0)) ? r &+ y : r }
        default: throw bad("unknown binary op")
        }
        if n > 0 { forEachBroadcast(shape, st) { i, off in o[i] = f(av[off[0]], bv[off[1]]) } }
        if divZero { throw bad("integer division by zero") }
        return Tensor(shape: shape, dtype: a.dtype, ints: o)
    }

    static func compare(_ op: String, _ a: Tensor, _ b: Tensor, _ bad: (String) -> ONNXError) throws -> Tensor {
        guard let shape = broadcastShape([a.shape, b.shape]) else { throw bad("shapes \(a.shape) and \(b.shape) do not broadcast") }
        let st = [broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape)]
        var o = [Int64](repeating: 0, count: try checkedSize(shape, bad))
        if o.isEmpty { return Tensor(shape: shape, dtype: .bool, ints: o) }
        if a.dtype.isFloat || b.dtype.isFloat {
            let av = a.floats, bv = b.floats
            let f: (Float, Float) -> Bool
            switch op {
            case "Equal": f = { $0 == $1 }
            case "Less": f = { $0 < $1 }
            case "Greater": f = { $0 > $1 }
            case "LessOrEqual": f = { $0 <= $1 }
            case "GreaterOrEqual": f = { $0 >= $1 }
            case "And": f = { $0 != 0 && $1 != 0 }
            case "Or": f = { $0 != 0 || $1 != 0 }
            default: f = { ($0 != 0) != ($1 != 0) }
            }
            forEachBroadcast(shape, st) { i, off in o[i] = f(av[off[0]], bv[off[1]]) ? 1 : 0 }
        } else {
            let av = a.ints, bv = b.ints
            let f: (Int64, Int64) -> Bool
            switch op {
            case "Equal": f = { $0 == $1 }
            case "Less": f = { $0 < $1 }
            case "Greater": f = { $0 > $1 }
            case "LessOrEqual": f = { $0 <= $1 }
            case "GreaterOrEqual": f = { $0 >= $1 }
            case "And": f = { $0 != 0 && $1 != 0 }
            case "Or": f = { $0 != 0 || $1 != 0 }
            default: f = { ($0 != 0) != ($1 != 0) }
            }
            forEachBroadcast(shape, st) { i, off in o[i] = f(av[off[0]], bv[off[1]]) ? 1 : 0 }
        }
        return Tensor(shape: shape, dtype: .bool, ints: o)
    }

    /// Reduction axes of a Reduce* node (attribute before opset 18 / ReduceSum 13, input after); nil = all.
    public static func reduceAxes(_ node: Node, _ inputs: [Tensor?], opset: Int) -> [Int]? {
        let fromInput = opset >= 18 || (node.opType == "ReduceSum" && opset >= 13)
        if fromInput {
            if inputs.count > 1, let a = inputs[1] { return a.ints.map { Int($0) } }
            return nil
        }
        return node.ints("axes")
    }

    public static func reduceShape(_ s: [Int], axes: [Int]?, keepDims: Bool, noopWithEmpty: Bool,
                                   _ bad: (String) -> ONNXError) throws -> (shape: [Int], axes: [Int]) {
        var ax: [Int]
        if let axes, !axes.isEmpty {
            ax = try axes.map { guard let x = normalizeAxis($0, rank: s.count) else { throw bad("axis \($0) out of range") }; return x }
        } else if noopWithEmpty {
            return (s, [])
        } else { ax = Array(0..<s.count) }
        ax = Array(Set(ax)).sorted()
        var shape: [Int] = []
        for d in 0..<s.count {
            if ax.contains(d) { if keepDims { shape.append(1) } } else { shape.append(s[d]) }
        }
        return (shape, ax)
    }

    static func reduce(_ op: String, _ x: Tensor, axes: [Int]?, keepDims: Bool, noopWithEmpty: Bool,
                       _ bad: (String) -> ONNXError) throws -> Tensor {
        let (shape, ax) = try reduceShape(x.shape, axes: axes, keepDims: keepDims, noopWithEmpty: noopWithEmpty, bad)
        if ax.isEmpty { return x }
        let keptShape = x.shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let n = elementCount(keptShape)
        let st = [broadcastStrides(keptShape, to: x.shape)]
        let f = x.floats
        let initial: Float
        switch op {
        case "ReduceMax": initial = -.infinity
        case "ReduceMin": initial = .infinity
        case "ReduceProd": initial = 1
        default: initial = 0
        }
        var acc = [Float](repeating: initial, count: n)
        if !f.isEmpty {
            forEachBroadcast(x.shape, st) { i, off in
                let v = f[i], o = off[0]
                switch op {
                case "ReduceMax": acc[o] = max(acc[o], v)
                case "ReduceMin": acc[o] = min(acc[o], v)
                case "ReduceProd": acc[o] *= v
                case "ReduceL2", "ReduceSumSquare": acc[o] += v * v
                default: acc[o] += v
                }
            }
        }
        let cnt = Float(elementCount(x.shape) / max(n, 1))
        if op == "ReduceMean" { acc = acc.map { $0 / cnt } }
        if op == "ReduceL2" { acc = acc.map { $0.squareRoot() } }
        if !x.dtype.isFloat { return Tensor(shape: shape, dtype: x.dtype, ints: acc.map(saturatingInt64)) }
        return Tensor(shape: shape, dtype: x.dtype, floats: acc)
    }

    public static func matmulShape(_ a: [Int], _ b: [Int], _ bad: (String) -> ONNXError) throws -> [Int] {
        guard !a.isEmpty, !b.isEmpty else { throw bad("MatMul of a scalar") }
        let a2 = a.count == 1 ? [1] + a : a, b2 = b.count == 1 ? b + [1] : b
        guard a2[a2.count - 1] == b2[b2.count - 2] else { throw bad("inner dimensions differ: \(a) · \(b)") }
        guard let batch = broadcastShape([Array(a2.dropLast(2)), Array(b2.dropLast(2))]) else { throw bad("batch dims of \(a) and \(b) do not broadcast") }
        var out = batch + [a2[a2.count - 2], b2[b2.count - 1]]
        if b.count == 1 { out.removeLast() }
        if a.count == 1 { out.remove(at: out.count - (b.count == 1 ? 1 : 2)) }
        return out
    }

    static func matmul(_ a: Tensor, _ b: Tensor, _ bad: (String) -> ONNXError) throws -> Tensor {
        let shape = try matmulShape(a.shape, b.shape, bad)
        _ = try checkedSize(shape, bad)
        let a2 = a.rank == 1 ? [1] + a.shape : a.shape, b2 = b.rank == 1 ? b.shape + [1] : b.shape
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        let batch = broadcastShape([Array(a2.dropLast(2)), Array(b2.dropLast(2))])!
        let sa = broadcastStrides(Array(a2.dropLast(2)), to: batch), sb = broadcastStrides(Array(b2.dropLast(2)), to: batch)
        let av = a.floats, bv = b.floats
        var o = [Float](repeating: 0, count: elementCount(batch) * m * n)
        var bi = 0
        forEachBroadcast(batch, [sa, sb]) { _, off in
            let ao = off[0] * m * k, bo = off[1] * k * n, oo = bi * m * n
            for i in 0..<m { for kk in 0..<k {
                let x = av[ao + i * k + kk]
                for j in 0..<n { o[oo + i * n + j] += x * bv[bo + kk * n + j] }
            } }
            bi += 1
        }
        return Tensor(shape: shape, dtype: a.dtype.isFloat ? a.dtype : .float32, floats: o)
    }
}

extension Tensor {
    /// The same values under a new shape (same element count).
    public func reshaped(_ s: [Int]) -> Tensor { var t = self; t.shape = s; return t }

}

extension ReferenceOps {
    /// The output of a `Shape` node (with its start/end attributes) for an input of shape `shape`.
    public static func shapeTensor(_ shape: [Int], _ node: Node) -> Tensor {
        var dims = shape.map { Int64($0) }
        let r = dims.count
        var start = node.int("start", default: 0), end = node.int("end", default: r)
        if start < 0 { start += r }; if end < 0 { end += r }
        start = min(max(start, 0), r); end = min(max(end, start), r)
        dims = Array(dims[start..<end])
        return Tensor(shape: [dims.count], ints: dims)
    }
}
