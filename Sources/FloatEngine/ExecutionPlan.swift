// Compiling a StaticGraph into steps over preallocated buffers (liveness-based reuse).
import Dispatch
import ONNXGraph

/// A float buffer owned by the plan.
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let capacity: Int
    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
        pointer.initialize(repeating: 0, count: self.capacity)
    }
    deinit { pointer.deallocate() }
}

/// Where a tensor's values live during a run.
struct Slot {
    var buffer: FloatBuffer
    var shape: [Int]
    var count: Int { elementCount(shape) }
    var ptr: UnsafeMutablePointer<Float> { buffer.pointer }
}

/// One executable step: a node (or fused group) and what it produces.
struct Step {
    var node: Node
    var outputs: [String]
    var run: () throws -> Void
    var label: String = ""
}

final class ExecutionPlan {
    var slots: [String: Slot] = [:]
    var constSlots: [String: Slot] = [:]
    var steps: [Step] = []
    var packCache: [String: AnyObject] = [:]
    var outputNames: [String] = []
    var inputNames: [String] = []
    var dtypes: [String: DType] = [:]

    var groups: [[Node]] = []

    init(graph: StaticGraph, constants: [String: Tensor], options: SessionOptions) throws {
        dtypes = graph.dtypes
        groups = FusionPlanner(graph: graph, enabled: options.fuse, keep: options.keep).groups()
        allocate(graph)
        try compile(graph: graph, constants: constants, options: options)
    }

    func rebuild(graph: StaticGraph, constants: [String: Tensor], changed: Set<String>, options: SessionOptions) throws {
        for k in packCache.keys where changed.contains(where: { k.hasPrefix($0 + "|") }) { packCache[k] = nil }
        try compile(graph: graph, constants: constants, options: options)
    }

    /// Assigns buffers: a tensor's buffer returns to a free list after its last reader has run.
    private func allocate(_ graph: StaticGraph) {
        inputNames = graph.inputs.map(\.name)
        outputNames = graph.outputs.map(\.name)
        // A fused group behaves as one node: its external inputs and its final output.
        let units: [Node] = groups.map { g in
            if g.count == 1 { return g[0] }
            let inner = Set(g.flatMap(\.outputs))
            var ins: [String] = []
            for n in g { for x in n.inputs where !x.isEmpty && !inner.contains(x) { ins.append(x) } }
            return Node(name: g.last!.name, opType: "Fused", inputs: ins, outputs: g.last!.outputs)
        }
        var lastUse: [String: Int] = [:]
        for (i, n) in units.enumerated() { for x in n.inputs where !x.isEmpty { lastUse[x] = i } }
        let pinned = Set(outputNames).union(inputNames)
        var free: [FloatBuffer] = []
        func take(_ count: Int) -> FloatBuffer {
            // best fit among free buffers
            var best = -1
            for (i, b) in free.enumerated() where b.capacity >= count {
                if best < 0 || b.capacity < free[best].capacity { best = i }
            }
            if best >= 0 { return free.remove(at: best) }
            return FloatBuffer(capacity: count)
        }
        for spec in graph.inputs { slots[spec.name] = Slot(buffer: FloatBuffer(capacity: elementCount(spec.shape)), shape: spec.shape) }
        // Live tensors per buffer: a buffer returns to the free list when its last live tensor dies.
        var live: [ObjectIdentifier: Int] = [:]
        let viewOps: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"]
        for (i, n) in units.enumerated() {
            for (k, o) in n.outputs.enumerated() where !o.isEmpty {
                let shape = graph.shapes[o] ?? []
                let buffer: FloatBuffer
                if pinned.contains(o) {
                    buffer = FloatBuffer(capacity: elementCount(shape))
                } else if k == 0, viewOps.contains(n.opType), let x = n.inputs.first, !pinned.contains(x),
                          let xs = slots[x], lastUse[x] == i, xs.buffer.capacity >= elementCount(shape) {
                    buffer = xs.buffer  // a view of a dying input: share its buffer, no copy
                } else {
                    buffer = take(elementCount(shape))
                }
                slots[o] = Slot(buffer: buffer, shape: shape)
                live[ObjectIdentifier(buffer), default: 0] += 1
            }
            // release inputs read for the last time, and outputs nobody reads
            for x in Set(n.inputs + n.outputs) where !x.isEmpty && !pinned.contains(x) {
                guard let s = slots[x], (lastUse[x] ?? i) <= i else { continue }
                let id = ObjectIdentifier(s.buffer)
                guard let c = live[id] else { continue }
                if c <= 1 { live[id] = nil; free.append(s.buffer) } else { live[id] = c - 1 }
            }
        }
    }

    func execute(inputs: [String: [Float]], session: FloatSession) throws -> [String: Tensor] {
        for name in inputNames {
            guard let s = slots[name], let v = inputs[name] else { continue }
            v.withUnsafeBufferPointer { s.ptr.update(from: $0.baseAddress!, count: min(v.count, s.count)) }
            notify(name, node: nil, session: session)
        }
        let prof = session.profile
        var pending = session.stopAfter
        for step in steps {
            if let prof {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try step.run()
                prof.add(step.label, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            } else {
                try step.run()
            }
            if session.observer != nil || session.transform != nil {
                for o in step.outputs where !o.isEmpty { notify(o, node: step.node, session: session) }
            }
            if !pending.isEmpty {
                for o in step.outputs { pending.remove(o) }
                if pending.isEmpty { return [:] }
            }
        }
        var out: [String: Tensor] = [:]
        for name in outputNames {
            if let s = slots[name] {
                let v = Array(UnsafeBufferPointer(start: s.ptr, count: s.count))
                out[name] = Tensor(shape: s.shape, floats: v)
            } else if let c = constSlots[name] {
                out[name] = Tensor(shape: c.shape, floats: Array(UnsafeBufferPointer(start: c.ptr, count: c.count)))
            }
        }
        return out
    }

    @inline(__always) private func notify(_ name: String, node: Node?, session: FloatSession) {
        guard let s = slots[name] else { return }
        if let obs = session.observer {
            obs(TensorObservation(name: name, node: node, shape: s.shape, values: UnsafeBufferPointer(start: s.ptr, count: s.count)))
        }
        if let t = session.transform { t(name, s.shape, UnsafeMutableBufferPointer(start: s.ptr, count: s.count)) }
    }
}
