// Grouping nodes the executor runs as one step (bias/activation epilogues, the Erf-form GELU chain).
import ONNXGraph

struct FusionPlanner {
    let graph: StaticGraph
    let enabled: Bool
    var keep: Set<String> = []

    func groups() -> [[Node]] {
        let nodes = graph.nodes
        guard enabled else { return nodes.map { [$0] } }
        var consumers: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() { for x in n.inputs where !x.isEmpty { consumers[x, default: []].append(i) } }
        let outputs = Set(graph.outputs.map(\.name))
        func soleConsumer(_ t: String) -> Int? {
            guard !outputs.contains(t), !keep.contains(t), let c = consumers[t], c.count == 1 else { return nil }
            return c[0]
        }
        func isConst(_ t: String) -> Bool { graph.constants[t] != nil }
        func constScalar(_ t: String) -> Float? {
            guard let c = graph.constants[t], c.count == 1 else { return nil }
            return c.floats[0]
        }
        func isActivation(_ n: Node) -> Bool {
            if n.opType == "Relu" { return true }
            if n.opType == "Clip" { return n.inputs.dropFirst().allSatisfy { $0.isEmpty || isConst($0) } }
            return false
        }
        // Transpose(K) swapping the last two axes, read only by a MatMul as its right operand (optionally through
        // a Mul by a constant scalar, as the SDPA export does): the MatMul reads K with bTransposed instead.
        // The group runs at the MatMul's position.
        var transposeOfMatMul: [Int: [Int]] = [:]
        var deferred = Set<Int>()
        for (i, n) in nodes.enumerated() where n.opType == "Transpose" && graph.constants[n.inputs[0]] == nil {
            let r = graph.shapes[n.inputs[0]]?.count ?? 0
            guard r >= 2, let perm = n.ints("perm"), perm == Array(0..<(r - 2)) + [r - 1, r - 2],
                  var j = soleConsumer(n.outputs[0]) else { continue }
            var chain = [i]
            var operand = n.outputs[0]
            if nodes[j].opType == "Mul", nodes[j].inputs.count == 2, nodes[j].inputs[0] == operand,
               constScalar(nodes[j].inputs[1]) != nil, let k = soleConsumer(nodes[j].outputs[0]) {
                chain.append(j); operand = nodes[j].outputs[0]; j = k
            }
            guard nodes[j].opType == "MatMul", nodes[j].inputs.count == 2, nodes[j].inputs[1] == operand,
                  nodes[j].inputs[0] != operand, (graph.shapes[nodes[j].inputs[0]]?.count ?? 0) >= 2 else { continue }
            transposeOfMatMul[j] = chain
            deferred.formUnion(chain)
        }
        var used = Set<Int>()
        var result: [[Node]] = []
        for (i, n) in nodes.enumerated() where !used.contains(i) && !deferred.contains(i) {
            if let chain = transposeOfMatMul[i] {
                result.append(chain.map { nodes[$0] } + [n]); used.insert(i); used.formUnion(chain)
                continue
            }
            var group = [n]
            used.insert(i)
            var tail = n.outputs[0]
            switch n.opType {
            case "Conv", "MatMul", "Gemm":
                let constB = n.inputs.count > 1 && isConst(n.inputs[1]) && (graph.constants[n.inputs[1]]?.rank == (n.opType == "Conv" ? 4 : 2))
                // (a MatMul with a rank-1 left operand runs as a plain batched matmul, so it takes no epilogue)
                let aRankOK = n.opType != "MatMul" || (graph.shapes[n.inputs[0]]?.count ?? 0) >= 2
                guard constB, aRankOK, n.outputs.count == 1 else { break }
                // optional bias Add (MatMul, or Conv without its own bias)
                let hasBias = n.opType == "Gemm" || (n.opType == "Conv" && n.input(2) != nil)
                if !hasBias, let j = soleConsumer(tail), nodes[j].opType == "Add", let bias = biasOperand(nodes[j], tail, conv: n.opType == "Conv") , !bias.isEmpty {
                    group.append(nodes[j]); used.insert(j); tail = nodes[j].outputs[0]
                }
                if let j = soleConsumer(tail), isActivation(nodes[j]) {
                    group.append(nodes[j]); used.insert(j)
                }
            case "Div", "Mul":
                // GELU (Erf form): Div(x, √2) | Mul(x, 1/√2) → Erf → Add(1) → Mul(x) → Mul(0.5)
                guard n.inputs.count == 2, let c = constScalar(n.inputs[1]) else { break }
                let x = n.inputs[0]
                let ok = n.opType == "Div" ? abs(c - 1.4142135) < 1e-4 : abs(c - 0.70710677) < 1e-5
                guard ok, let e = soleConsumer(tail), nodes[e].opType == "Erf",
                      let a = soleConsumer(nodes[e].outputs[0]), nodes[a].opType == "Add",
                      nodes[a].inputs.contains(where: { constScalar($0) == 1 }),
                      let m1 = soleConsumer(nodes[a].outputs[0]), nodes[m1].opType == "Mul", nodes[m1].inputs.contains(x)
                else { break }
                if let m2 = soleConsumer(nodes[m1].outputs[0]), nodes[m2].opType == "Mul",
                   nodes[m2].inputs.contains(where: { constScalar($0) == 0.5 }) {
                    group += [nodes[e], nodes[a], nodes[m1], nodes[m2]]
                    used.formUnion([e, a, m1, m2])
                }
            default: break
            }
            result.append(group)
        }
        return result
    }

    /// The constant operand of a bias Add whose other operand is `t`, if it broadcasts as a per-column (MatMul)
    /// or per-channel (Conv) bias; nil otherwise.
    func biasOperand(_ add: Node, _ t: String, conv: Bool) -> String? {
        guard add.inputs.count == 2 else { return nil }
        let other = add.inputs[0] == t ? add.inputs[1] : add.inputs[0]
        guard other != t, let c = graph.constants[other], let ts = graph.shapes[t] else { return nil }
        if conv {
            guard ts.count == 4, c.count == ts[1], c.shape.count <= 4 else { return nil }
            let s = c.shape
            let padded = [Int](repeating: 1, count: 4 - s.count) + s
            return padded == [1, ts[1], 1, 1] ? other : nil
        }
        guard let n = ts.last, c.count == n, c.shape.last == n else { return nil }
        return other
    }
}
