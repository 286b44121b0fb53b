// Plain-Swift steps for ops that are not on the FloatKernels API (element-wise with broadcasting,
// transposes, pools, conv-transpose, resize, group/instance norm) and the batched activation MatMul.
import ONNXGraph

extension ExecutionPlan {
    func binaryStep(_ node: Node, _ a: Slot, _ b: Slot, _ y: Slot) -> Step {
        let op: BinaryOp
        switch node.opType {
        case "Add": op = .add
        case "Sub": op = .sub
        case "Mul": op = .mul
        default: op = .div
        }
        let n = y.count
        let out = y.shape
        func isSuffix(_ s: [Int]) -> Bool {
            var t = s
            while let first = t.first, first == 1 { t.removeFirst() }
            return t.count <= out.count && Array(out.suffix(t.count)) == t
        }
        let outs = [node.outputs[0]]
        if a.count == n && b.count == n {
            return Step(node: node, outputs: outs) { binaryLoop(op, a.ptr, 1, b.ptr, 1, y.ptr, n) }
        }
        if a.count == n && isSuffix(b.shape) {
            let period = b.count
            return Step(node: node, outputs: outs) {
                var i = 0
                while i < n { binaryLoop(op, a.ptr + i, 1, b.ptr, period == 1 ? 0 : 1, y.ptr + i, period == 1 ? n : period); i += period == 1 ? n : period }
            }
        }
        if b.count == n && isSuffix(a.shape) {
            let period = a.count
            return Step(node: node, outputs: outs) {
                var i = 0
                while i < n { binaryLoop(op, a.ptr, period == 1 ? 0 : 1, b.ptr + i, 1, y.ptr + i, period == 1 ? n : period); i += period == 1 ? n : period }
            }
        }
        // general broadcast: outer odometer, strided inner loop
        let sa = broadcastStrides(a.shape, to: out), sb = broadcastStrides(b.shape, to: out)
        let inner = out.last ?? 1
        let outer = Array(out.dropLast())
        let ia = sa.last ?? 0, ib = sb.last ?? 0
        let oa = Array(sa.dropLast()), ob = Array(sb.dropLast())
        return Step(node: node, outputs: outs) {
            if n == 0 { return }
            forEachBroadcast(outer, [oa, ob]) { o, off in
                binaryLoop(op, a.ptr + off[0], ia, b.ptr + off[1], ib, y.ptr + o * inner, inner)
            }
        }
    }

    func transposeStep(_ node: Node, _ x: Slot, _ y: Slot, perm: [Int]) -> Step {
        let ins = rowMajorStrides(x.shape)
        let st = perm.map { ins[$0] }
        let out = y.shape
        let inner = out.last ?? 1, innerStride = st.last ?? 1
        let outer = Array(out.dropLast()), os = Array(st.dropLast())
        return Step(node: node, outputs: [node.outputs[0]]) {
            if y.count == 0 { return }
            forEachBroadcast(outer, [os]) { o, off in
                let base = o * inner, p = x.ptr + off[0]
                for j in 0..<inner { y.ptr[base + j] = p[j * innerStride] }
            }
        }
    }

    /// A·B over broadcast batch dims; with `bTransposed`, `b` holds Bᵀ ([…, n, k]).
    func batchedMatMul(_ node: Node, _ a: Slot, _ b: Slot, _ y: Slot, bTransposed: Bool = false) throws -> Step {
        let a2 = a.shape.count == 1 ? [1] + a.shape : a.shape
        var b2 = b.shape.count == 1 ? b.shape + [1] : b.shape
        if bTransposed { b2.swapAt(b2.count - 1, b2.count - 2) }
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        let ba = Array(a2.dropLast(2)), bb = Array(b2.dropLast(2))
        guard let batch = broadcastShape([ba, bb]) else { throw ONNXError.shapeMismatch(node: node.displayName, op: "MatMul", reason: "batch dims differ") }
        let sa = broadcastStrides(ba, to: batch), sb = broadcastStrides(bb, to: batch)
        return Step(node: node, outputs: [node.outputs[0]]) {
            forEachBroadcast(batch, [sa, sb]) { i, off in
                FloatKernels.matmul(m: m, n: n, k: k, a: a.ptr + off[0] * m * k, lda: k, b: b.ptr + off[1] * k * n,
                                    ldb: bTransposed ? k : n, bTransposed: bTransposed, c: y.ptr + i * m * n, ldc: n)
            }
        }
    }

    func poolStep(_ node: Node, _ x: Slot, _ y: Slot) throws -> Step {
        guard let k = node.ints("kernel_shape") else { throw ONNXError.badNode(node: node.displayName, op: node.opType, reason: "kernel_shape missing") }
        let geo = try Geometry.window(node, inSpatial: Array(x.shape[2...]), kernel: k)
        let nc = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        let oh = geo.outSpatial[0], ow = geo.outSpatial[1]
        let isMax = node.opType == "MaxPool"
        let includePad = node.int("count_include_pad", default: 0) != 0
        return Step(node: node, outputs: [node.outputs[0]]) {
            for c in 0..<nc {
                let p = x.ptr + c * h * w, q = y.ptr + c * oh * ow
                for oy in 0..<oh { for ox in 0..<ow {
                    var acc: Float = isMax ? -.infinity : 0
                    var cnt = 0
                    let y0 = oy * geo.strides[0] - geo.padBegin[0], x0 = ox * geo.strides[1] - geo.padBegin[1]
                    for ky in 0..<k[0] {
                        let iy = y0 + ky * geo.dilations[0]
                        for kx in 0..<k[1] {
                            let ix = x0 + kx * geo.dilations[1]
                            if iy < 0 || iy >= h || ix < 0 || ix >= w {
                                // padding counts only if it lies inside the padded extent
                                if includePad && iy < h + geo.padEnd[0] && ix < w + geo.padEnd[1] { cnt += 1 }
                                continue
                            }
                            let v = p[iy * w + ix]
                            if isMax { acc = max(acc, v) } else { acc += v }
                            cnt += 1
                        }
                    }
                    q[oy * ow + ox] = isMax ? acc : acc / Float(max(cnt, 1))
                } }
            }
        }
    }

    func convTransposeStep(_ node: Node, graph: StaticGraph, constants: [String: Tensor]) throws -> Step {
        let x = try slot(node.inputs[0], node), w = try slot(node.inputs[1], node), y = try slot(node.outputs[0], node)
        let bias: Slot? = try node.input(2).map { try slot($0, node) }
        let (geo, _) = try Geometry.convTranspose(node, inSpatial: Array(x.shape[2...]), kernel: node.ints("kernel_shape") ?? Array(w.shape[2...]))
        let g = node.int("group", default: 1)
        let batch = x.shape[0], cin = x.shape[1], h = x.shape[2], wd = x.shape[3]
        let coutG = w.shape[1], cinG = cin / g, kh = w.shape[2], kw = w.shape[3]
        let cout = coutG * g, oh = y.shape[2], ow = y.shape[3]
        return Step(node: node, outputs: [node.outputs[0]]) {
            for b in 0..<batch {
                let yo = y.ptr + b * cout * oh * ow
                for co in 0..<cout { let bv = bias?.ptr[co] ?? 0; for i in 0..<(oh * ow) { yo[co * oh * ow + i] = bv } }
                for ci in 0..<cin {
                    let gi = ci / cinG
                    let xi = x.ptr + (b * cin + ci) * h * wd
                    for iy in 0..<h { for ix in 0..<wd {
                        let v = xi[iy * wd + ix]
                        for cg in 0..<coutG {
                            let co = gi * coutG + cg
                            let wp = w.ptr + ((ci * coutG + cg) * kh) * kw
                            for ky in 0..<kh {
                                let oy = iy * geo.strides[0] - geo.padBegin[0] + ky * geo.dilations[0]
                                if oy < 0 || oy >= oh { continue }
                                for kx in 0..<kw {
                                    let ox = ix * geo.strides[1] - geo.padBegin[1] + kx * geo.dilations[1]
                                    if ox < 0 || ox >= ow { continue }
                                    yo[(co * oh + oy) * ow + ox] += v * wp[ky * kw + kx]
                                }
                            }
                        }
                    } }
                }
            }
        }
    }

    func resizeStep(_ node: Node, graph: StaticGraph, constants: [String: Tensor]) throws -> Step {
        let x = try slot(node.inputs[0], node), y = try slot(node.outputs[0], node)
        func bad(_ r: String) -> ONNXError { .badNode(node: node.displayName, op: node.opType, reason: r) }
        let mode = node.string("mode") ?? "nearest"
        let ctm = node.string("coordinate_transformation_mode") ?? (node.opType == "Upsample" ? "asymmetric" : "half_pixel")
        let nearestMode = node.string("nearest_mode") ?? "round_prefer_floor"
        guard mode == "nearest" || mode == "linear" else { throw bad("mode '\(mode)' is not supported (nearest, linear are)") }
        let r = x.shape.count
        guard r >= 2, x.shape.count == y.shape.count else { throw bad("rank mismatch") }
        for d in 0..<(r - 2) where x.shape[d] != y.shape[d] { throw bad("only the last two axes may be resized") }
        // scale per axis: given scales when present (they define coordinates), else out/in
        var scales = (0..<r).map { Float(y.shape[$0]) / Float(x.shape[$0]) }
        if node.opType == "Upsample" { if let s = node.input(1).flatMap({ constants[$0] }) { scales = s.floats } }
        else if let s = node.input(2).flatMap({ constants[$0] }), s.count == r { scales = s.floats }
        let ih = x.shape[r - 2], iw = x.shape[r - 1], oh = y.shape[r - 2], ow = y.shape[r - 1]
        let planes = x.count / max(ih * iw, 1)
        func src(_ o: Int, _ inSize: Int, _ outSize: Int, _ scale: Float) -> Float {
            let of = Float(o)
            switch ctm {
            case "asymmetric": return of / scale
            case "align_corners": return outSize == 1 ? 0 : of * Float(inSize - 1) / Float(outSize - 1)
            case "pytorch_half_pixel": return outSize > 1 ? (of + 0.5) / scale - 0.5 : 0
            default: return (of + 0.5) / scale - 0.5
            }
        }
        let sh = scales[r - 2], sw = scales[r - 1]
        if mode == "nearest" {
            func pick(_ s: Float, _ n: Int) -> Int {
                var i: Int
                switch nearestMode {
                case "floor": i = Int(s.rounded(.down))
                case "ceil": i = Int(s.rounded(.up))
                case "round_prefer_ceil": i = Int((s + 0.5).rounded(.down))
                default: i = s == s.rounded(.down) + 0.5 ? Int(s.rounded(.down)) : Int(s.rounded())
                }
                return min(max(i, 0), n - 1)
            }
            let ys = (0..<oh).map { pick(src($0, ih, oh, sh), ih) }, xs = (0..<ow).map { pick(src($0, iw, ow, sw), iw) }
            return Step(node: node, outputs: [node.outputs[0]]) {
                for p in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
                    y.ptr[(p * oh + oy) * ow + ox] = x.ptr[(p * ih + ys[oy]) * iw + xs[ox]]
                } } }
            }
        }
        func lin(_ o: Int, _ n: Int, _ outN: Int, _ s: Float) -> (Int, Int, Float) {
            let c = min(max(src(o, n, outN, s), 0), Float(n - 1))
            let i0 = Int(c.rounded(.down)), i1 = min(i0 + 1, n - 1)
            return (i0, i1, c - Float(i0))
        }
        let yl = (0..<oh).map { lin($0, ih, oh, sh) }, xl = (0..<ow).map { lin($0, iw, ow, sw) }
        return Step(node: node, outputs: [node.outputs[0]]) {
            for p in 0..<planes {
                let base = x.ptr + p * ih * iw
                for oy in 0..<oh {
                    let (y0, y1, fy) = yl[oy]
                    for ox in 0..<ow {
                        let (x0, x1, fx) = xl[ox]
                        let top = base[y0 * iw + x0] * (1 - fx) + base[y0 * iw + x1] * fx
                        let bot = base[y1 * iw + x0] * (1 - fx) + base[y1 * iw + x1] * fx
                        y.ptr[(p * oh + oy) * ow + ox] = top * (1 - fy) + bot * fy
                    }
                }
            }
        }
    }

    func groupNormStep(_ node: Node) throws -> Step {
        let x = try slot(node.inputs[0], node), y = try slot(node.outputs[0], node)
        let sc = try slot(node.inputs[1], node), bi = try slot(node.inputs[2], node)
        let c = x.shape[1], batch = x.shape[0], inner = x.count / max(batch * c, 1)
        let groups = node.opType == "InstanceNormalization" ? c : node.int("num_groups", default: 1)
        guard groups > 0, c % groups == 0 else { throw ONNXError.badNode(node: node.displayName, op: node.opType, reason: "channels \(c) not divisible by groups \(groups)") }
        let eps = node.float("epsilon", default: 1e-5)
        let cpg = c / groups, perChannel = sc.count == c
        return Step(node: node, outputs: [node.outputs[0]]) {
            for b in 0..<batch { for g in 0..<groups {
                let p = x.ptr + (b * c + g * cpg) * inner, q = y.ptr + (b * c + g * cpg) * inner
                let n = cpg * inner
                var mean: Double = 0; for i in 0..<n { mean += Double(p[i]) }; mean /= Double(n)
                var v: Double = 0; for i in 0..<n { let d = Double(p[i]) - mean; v += d * d }; v /= Double(n)
                let inv = Float(1 / (v + Double(eps)).squareRoot())
                for ci in 0..<cpg {
                    let ch = g * cpg + ci
                    let s = perChannel ? sc.ptr[ch] : sc.ptr[g], t = perChannel ? bi.ptr[ch] : bi.ptr[g]
                    for i in 0..<inner { q[ci * inner + i] = (p[ci * inner + i] - Float(mean)) * inv * s + t }
                }
            } }
        }
    }
}

enum BinaryOp { case add, sub, mul, div }

/// y[i] = a[i·sa] ∘ b[i·sb] for i < n, one loop per op so each is a tight loop.
@inline(__always)
func binaryLoop(_ op: BinaryOp, _ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int,
                _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    switch (op, sa, sb) {
    case (.add, 1, 1): for i in 0..<n { y[i] = a[i] + b[i] }
    case (.sub, 1, 1): for i in 0..<n { y[i] = a[i] - b[i] }
    case (.mul, 1, 1): for i in 0..<n { y[i] = a[i] * b[i] }
    case (.div, 1, 1): for i in 0..<n { y[i] = a[i] / b[i] }
    case (.add, 1, 0): let c = b[0]; for i in 0..<n { y[i] = a[i] + c }
    case (.sub, 1, 0): let c = b[0]; for i in 0..<n { y[i] = a[i] - c }
    case (.mul, 1, 0): let c = b[0]; for i in 0..<n { y[i] = a[i] * c }
    case (.div, 1, 0): let c = b[0]; for i in 0..<n { y[i] = a[i] / c }
    case (.add, 0, 1): let c = a[0]; for i in 0..<n { y[i] = c + b[i] }
    case (.sub, 0, 1): let c = a[0]; for i in 0..<n { y[i] = c - b[i] }
    case (.mul, 0, 1): let c = a[0]; for i in 0..<n { y[i] = c * b[i] }
    case (.div, 0, 1): let c = a[0]; for i in 0..<n { y[i] = c / b[i] }
    default:
        for i in 0..<n {
            let x = a[i * sa], z = b[i * sb]
            switch op {
            case .add: y[i] = x + z
            case .sub: y[i] = x - z
            case .mul: y[i] = x * z
            case .div: y[i] = x / z
            }
        }
    }
}
