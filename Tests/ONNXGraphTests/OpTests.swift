import Foundation
import OnnxProto
import Testing
@testable import ONNXGraph
@testable import FloatEngine

/// Attribute forms PyTorch never emits (auto_pad), checked against the equivalent explicit form.
@Suite struct OpTests {
    func run(_ b: ModelBuilder, _ x: [Float]) throws -> (out: [Float], shape: [Int]) {
        let s = try FloatSession(graph: try b.model().graph, batch: 1)
        let r = try s.run(x)
        return (r, s.graph.outputs[0].shape)
    }

    @Test(arguments: ["SAME_UPPER", "SAME_LOWER", "VALID"], [5, 6])
    func convAutoPadMatchesExplicitPads(mode: String, size: Int) throws {
        let w: [Float] = (0..<36).map { (i: Int) -> Float in Float((i * 7) % 11) / 10 - 0.5 }
        let x: [Float] = (0..<(2 * size * size)).map { (i: Int) -> Float in Float((i * 5) % 13) / 6 - 1 }
        func model(_ attrs: (inout ModelBuilder) -> Void) -> ModelBuilder {
            var b = ModelBuilder()
            b.input("x", [1, 2, size, size]); b.output("y", [1, 2, "h", "w"])
            b.floatInit("w", [2, 2, 3, 3], w)
            attrs(&b)
            return b
        }
        // expected pads: out = ceil(size/2); total = (out-1)*2 + 3 - size
        let out = (size + 1) / 2
        let total = max(0, (out - 1) * 2 + 3 - size)
        let small = total / 2, big = total - small
        let pads: [Int]
        switch mode {
        case "SAME_UPPER": pads = [small, small, big, big]
        case "SAME_LOWER": pads = [big, big, small, small]
        default: pads = [0, 0, 0, 0]
        }
        let auto = model { $0.node("Conv", ["x", "w"], ["y"], ints: ["strides": [2, 2]], string: ["auto_pad": mode]) }
        let explicit = model { $0.node("Conv", ["x", "w"], ["y"], ints: ["strides": [2, 2], "pads": pads]) }
        let a = try run(auto, x), e = try run(explicit, x)
        #expect(a.shape == e.shape)
        #expect(a.out == e.out)
        if mode != "VALID" { #expect(a.shape == [1, 2, out, out]) }
    }

    @Test func maxPoolCeilModeAndPadding() throws {
        var b = ModelBuilder()
        b.input("x", [1, 1, 5, 5]); b.output("y", [1, 1, 3, 3])
        b.node("MaxPool", ["x"], ["y"], ints: ["kernel_shape": [2, 2], "strides": [2, 2]], int: ["ceil_mode": 1])
        let x = (0..<25).map { Float($0) }
        let r = try run(b, x)
        #expect(r.shape == [1, 1, 3, 3])
        #expect(r.out == [6, 8, 9, 16, 18, 19, 21, 23, 24])
    }

    @Test func hostileShapesAreErrorsNotCrashes() throws {
        // ConstantOfShape asking for 2⁴⁰ elements
        var b = ModelBuilder()
        b.input("x", [1]); b.output("y", ["a", "b"])
        b.initializer(OnnxProtoTensor.int64("big", [1 << 20, 1 << 20]))
        b.node("ConstantOfShape", ["big"], ["c"], name: "huge")
        b.node("Add", ["c", "x"], ["y"])
        #expect { _ = try b.model().graph.specialized(batch: 1) } throws: { e in
            guard case .badNode(let node, _, _)? = e as? ONNXError else { return false }
            return node == "huge"
        }
        // Gather with an index out of range
        var g = ModelBuilder()
        g.input("x", [4, 2]); g.output("y", [1, 2])
        g.initializer(OnnxProtoTensor.int64("idx", [7]))
        g.node("Gather", ["x", "idx"], ["y"], name: "gather", int: ["axis": 0])
        let s = try FloatSession(graph: try g.model().graph, batch: 1)
        #expect { _ = try s.run([Float](repeating: 1, count: 8)) } throws: { e in
            guard case .badNode(let node, _, let reason)? = e as? ONNXError else { return false }
            return node == "gather" && reason.contains("out of range")
        }
    }

    @Test func integerShapeArithmeticFolds() throws {
        // y = Reshape(x, Concat(Shape(x)[0], Div(Shape(x)[1]·Shape(x)[2], 2), 2)) : integer division must stay integral
        var b = ModelBuilder()
        b.input("x", ["n", 3, 4]); b.output("y", ["n", 6, 2])
        let i0 = OnnxProtoTensor.int64("i0", [0]), i1 = OnnxProtoTensor.int64("i1", [1]), i2 = OnnxProtoTensor.int64("i2", [2])
        let two = OnnxProtoTensor.int64("two", [2]), ax = OnnxProtoTensor.int64("ax", [0])
        for t in [i0, i1, i2, two, ax] { b.initializer(t) }
        b.node("Shape", ["x"], ["s"])
        b.node("Gather", ["s", "i0"], ["d0"], int: ["axis": 0])
        b.node("Gather", ["s", "i1"], ["d1"], int: ["axis": 0])
        b.node("Gather", ["s", "i2"], ["d2"], int: ["axis": 0])
        b.node("Mul", ["d1", "d2"], ["p"])
        b.node("Div", ["p", "two"], ["h"])
        b.node("Concat", ["d0", "h", "two"], ["shape"], int: ["axis": 0])
        b.node("Reshape", ["x", "shape"], ["y"])
        let g = try b.model().graph.specialized(batch: 3)
        #expect(g.nodes.map(\.opType) == ["Reshape"])
        #expect(g.shapes["y"] == [3, 6, 2])
    }
}

enum OnnxProtoTensor {
    static func int64(_ name: String, _ v: [Int64]) -> OnnxProto.Onnx_TensorProto {
        var t = OnnxProto.Onnx_TensorProto(); t.name = name; t.dims = [Int64(v.count)]; t.dataType = 7; t.int64Data = v
        return t
    }
}

/// Constant Pad copies whole rows; checked element by element against the definition, with negative pads (crops),
/// a non-zero value and pads on every axis.
@Suite struct PadTests {
    @Test(arguments: [
        ([2, 3, 4, 5], [0, 0, 1, 2, 0, 0, 2, 1]),
        ([2, 3, 4, 5], [0, 1, -1, 0, 1, 0, 1, -2]),
        ([1, 2, 3], [1, 0, -1, 0, 2, 3]),
        ([6], [-2, 3]),
    ])
    func constantPadMatchesDefinition(shape: [Int], pads: [Int]) throws {
        let count = shape.reduce(1, *)
        let x = Tensor(shape: shape, floats: (0..<count).map { Float($0) + 1 })
        let node = Node(name: "pad", opType: "Pad", inputs: ["x", "p", "v"], outputs: ["y"])
        let r = try ReferenceOps.evaluate(node, [x, Tensor(shape: [pads.count], ints: pads.map(Int64.init)),
                                                 Tensor(shape: [], floats: [0.5])], opset: 13)[0]
        let rank = shape.count
        let out = (0..<rank).map { shape[$0] + pads[$0] + pads[$0 + rank] }
        #expect(r.shape == out)
        let total = out.reduce(1, *)
        var expected = [Float](repeating: 0.5, count: total)
        for i in 0..<total {
            var rem = i, src = 0, inside = true
            for d in 0..<rank {
                let stride = out[(d + 1)...].reduce(1, *)
                let c = rem / stride - pads[d]; rem %= stride
                if c < 0 || c >= shape[d] { inside = false; break }
                src = src * shape[d] + c
            }
            if inside { expected[i] = x.floats[src] }
        }
        #expect(r.floats == expected)
    }
}
