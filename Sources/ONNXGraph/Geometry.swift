// Output geometry of spatial ops (conv, conv-transpose, pools), shared by shape inference and the executor.

/// Resolved geometry of a 2-D sliding-window op (Conv, ConvTranspose, MaxPool, AveragePool).
public struct WindowGeometry: Sendable, Equatable {
    public var kernel: [Int]      // [kh, kw]
    public var strides: [Int]
    public var dilations: [Int]
    public var padBegin: [Int]    // [top, left]
    public var padEnd: [Int]      // [bottom, right]
    public var outSpatial: [Int]  // [oh, ow]
}

public enum Geometry {
    /// Largest stride, dilation, kernel or pad accepted (keeps every size computation far from overflow).
    static let maxAttribute = 1 << 24

    /// Geometry of Conv / MaxPool / AveragePool over `inSpatial` with `kernel` (auto_pad, ceil_mode handled).
    public static func window(_ node: Node, inSpatial: [Int], kernel: [Int]) throws -> WindowGeometry {
        let r = inSpatial.count
        func bad(_ s: String) -> ONNXError { .badNode(node: node.displayName, op: node.opType, reason: s) }
        let strides = node.ints("strides") ?? [Int](repeating: 1, count: r)
        let dil = node.ints("dilations") ?? [Int](repeating: 1, count: r)
        var pads = node.ints("pads") ?? [Int](repeating: 0, count: 2 * r)
        guard strides.count == r, dil.count == r, pads.count == 2 * r, kernel.count == r,
              (strides + dil + kernel).allSatisfy({ $0 > 0 && $0 <= maxAttribute }), pads.allSatisfy({ $0 >= 0 && $0 <= maxAttribute }),
              inSpatial.allSatisfy({ $0 >= 0 && $0 <= maxAttribute }) else {
            throw bad("strides/dilations/pads/kernel do not fit \(r) spatial dims or are out of range")
        }
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        let ceil = node.int("ceil_mode", default: 0) != 0
        var out = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let ek = dil[i] * (kernel[i] - 1) + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                let o = (inSpatial[i] + strides[i] - 1) / strides[i]
                let total = max(0, (o - 1) * strides[i] + ek - inSpatial[i])
                let small = total / 2, big = total - small
                pads[i] = autoPad == "SAME_UPPER" ? small : big
                pads[i + r] = autoPad == "SAME_UPPER" ? big : small
                out[i] = o
            case "VALID":
                pads[i] = 0; pads[i + r] = 0
                out[i] = (inSpatial[i] - ek) / strides[i] + 1
            default:
                let span = inSpatial[i] + pads[i] + pads[i + r] - ek
                if ceil {
                    var o = (span + strides[i] - 1) / strides[i] + 1
                    // the last window must start inside the input or left padding
                    if (o - 1) * strides[i] >= inSpatial[i] + pads[i] { o -= 1 }
                    out[i] = o
                } else {
                    out[i] = span >= 0 ? span / strides[i] + 1 : 0
                }
            }
            guard out[i] > 0 else { throw ONNXError.shapeMismatch(node: node.displayName, op: node.opType,
                reason: "input spatial size \(inSpatial) is too small for kernel \(kernel)") }
        }
        return WindowGeometry(kernel: kernel, strides: strides, dilations: dil, padBegin: Array(pads[..<r]),
                              padEnd: Array(pads[r...]), outSpatial: out)
    }

    /// Geometry of ConvTranspose (output_shape / output_padding / auto_pad handled).
    public static func convTranspose(_ node: Node, inSpatial: [Int], kernel: [Int]) throws -> (WindowGeometry, outputPadding: [Int]) {
        let r = inSpatial.count
        let strides = node.ints("strides") ?? [Int](repeating: 1, count: r)
        let dil = node.ints("dilations") ?? [Int](repeating: 1, count: r)
        var pads = node.ints("pads") ?? [Int](repeating: 0, count: 2 * r)
        let outPad = node.ints("output_padding") ?? [Int](repeating: 0, count: r)
        let given = node.ints("output_shape")
        guard strides.count == r, dil.count == r, pads.count == 2 * r, outPad.count == r, kernel.count == r,
              (strides + dil + kernel).allSatisfy({ $0 > 0 && $0 <= maxAttribute }),
              (pads + outPad + inSpatial + (given ?? [])).allSatisfy({ $0 >= 0 && $0 <= maxAttribute }) else {
            throw ONNXError.badNode(node: node.displayName, op: node.opType, reason: "attributes do not fit \(r) spatial dims or are out of range")
        }
        var out = [Int](repeating: 0, count: r)
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        for i in 0..<r {
            let full = strides[i] * (inSpatial[i] - 1) + outPad[i] + (kernel[i] - 1) * dil[i] + 1
            if let g = given, g.count >= r {
                let o = g[g.count - r + i]
                let total = max(0, full - o)
                pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[i + r] = total - pads[i]
                out[i] = o
            } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                let o = inSpatial[i] * strides[i]
                let total = max(0, full - o)
                pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[i + r] = total - pads[i]
                out[i] = o
            } else {
                out[i] = full - pads[i] - pads[i + r]
            }
            guard out[i] > 0 else { throw ONNXError.shapeMismatch(node: node.displayName, op: node.opType, reason: "non-positive output size") }
        }
        return (WindowGeometry(kernel: kernel, strides: strides, dilations: dil, padBegin: Array(pads[..<r]),
                               padEnd: Array(pads[r...]), outSpatial: out), outPad)
    }
}
