// Reading ONNX files into `Graph`, through the generated swift-protobuf types.
import Foundation
import OnnxProto
import SwiftProtobuf

/// An ONNX model read from disk: the suite's graph plus the original protobuf (kept so a quantizer
/// can write a modified model back, preserving fields the suite does not interpret).
public struct ONNXModel: @unchecked Sendable {
    public var path: String
    public var graph: Graph
    public var proto: Onnx_ModelProto

    /// Reads and decodes a model file. External-data files are looked up beside the model. A model needing more
    /// memory than `limits` allows (file, initializers, external data) is refused before it is read or decoded.
    public init(contentsOf path: String, limits: ResourceLimits = .default) throws(ONNXError) {
        let url = URL(fileURLWithPath: path)
        if let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber {
            var budget = MemoryBudget(limits)
            try budget.charge(size.intValue, bytesPerElement: 1, for: "the model file '\(path)'")
        }
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw .cannotRead(path: path, reason: (error as NSError).localizedDescription)
        }
        try self.init(serialized: data, path: path, baseDirectory: url.deletingLastPathComponent().path, limits: limits)
    }

    /// Decodes a model from bytes. `baseDirectory` is where external-data files live (nil: none allowed).
    public init(serialized data: Data, path: String = "<memory>", baseDirectory: String? = nil,
                limits: ResourceLimits = .default) throws(ONNXError) {
        if data.isEmpty { throw .malformedProtobuf(path: path, reason: "the file is empty") }
        var budget = MemoryBudget(limits)
        try budget.charge(data.count, bytesPerElement: 1, for: "the model file '\(path)'")
        // The decoded protobuf can be far larger than the file (empty messages, packed varints): charge it first.
        let decoded: Int
        do {
            decoded = try WireEstimate.modelBytes(data)
        } catch {
            switch error {
            case .malformed(let reason): throw .malformedProtobuf(path: path, reason: reason)
            case .tooDeep: throw .malformedProtobuf(path: path, reason: "messages nested deeper than \(WireEstimate.maxDepth) levels")
            }
        }
        try budget.charge(decoded, bytesPerElement: 1, for: "decoding the protobuf of '\(path)'")
        let proto: Onnx_ModelProto
        do { proto = try Onnx_ModelProto(serializedBytes: data) } catch {
            throw .malformedProtobuf(path: path, reason: "\(error)")
        }
        self.path = path
        self.proto = proto
        var reader = GraphReader(path: path, baseDirectory: baseDirectory, budget: budget)
        self.graph = try reader.read(proto)
    }
}

struct GraphReader {
    let path: String
    let baseDirectory: String?
    var budget: MemoryBudget

    mutating func read(_ m: Onnx_ModelProto) throws(ONNXError) -> Graph {
        guard m.hasGraph else { throw .emptyModel(path: path) }
        let g = m.graph
        if g.node.isEmpty && g.output.isEmpty { throw .emptyModel(path: path) }
        var opsets: [String: Int] = [:]
        for o in m.opsetImport { opsets[o.domain == "ai.onnx" ? "" : o.domain] = Int(o.version) }
        let opset = opsets[""] ?? (m.opsetImport.isEmpty ? 13 : 1)
        var inits: [String: Tensor] = [:]
        for t in g.initializer { inits[t.name] = try tensor(t) }
        var nodes: [Node] = []
        nodes.reserveCapacity(g.node.count)
        for n in g.node {
            var attrs: [String: Attribute] = [:]
            for a in n.attribute { attrs[a.name] = try attribute(a, node: n.name) }
            nodes.append(Node(name: n.name, opType: n.opType, domain: n.domain == "ai.onnx" ? "" : n.domain,
                              inputs: n.input, outputs: n.output, attributes: attrs))
        }
        let inputs = g.input.filter { inits[$0.name] == nil }.map(valueInfo)
        let outputs = g.output.map(valueInfo)
        return Graph(name: g.name, nodes: nodes, initializers: inits, inputs: inputs, outputs: outputs,
                     opset: opset, opsets: opsets, producer: m.producerName + " " + m.producerVersion,
                     irVersion: Int(m.irVersion))
    }

    func valueInfo(_ v: Onnx_ValueInfoProto) -> ValueInfo {
        guard case .tensorType(let tt)? = v.type.value else {
            return ValueInfo(name: v.name, dtype: .float32, dims: nil)
        }
        let dtype = DType(onnxCode: Int(tt.elemType)) ?? .float32
        guard tt.hasShape else { return ValueInfo(name: v.name, dtype: dtype, dims: nil) }
        let dims: [Dim] = tt.shape.dim.map { d in
            switch d.value {
            case .dimValue(let n)?: return n > 0 ? .fixed(Int(n)) : .symbol("")
            case .dimParam(let s)?: return .symbol(s)
            case nil: return .symbol("")
            }
        }
        return ValueInfo(name: v.name, dtype: dtype, dims: dims)
    }

    mutating func attribute(_ a: Onnx_AttributeProto, node: String) throws(ONNXError) -> Attribute {
        switch a.type.rawValue {
        case 1: return .float(a.f)
        case 2: return .int(Int(clamping: a.i))
        case 3: return .string(String(decoding: a.s, as: UTF8.self))
        case 4: return .tensor(try tensor(a.t))
        case 5, 10: return .graph
        case 6: return .floats(a.floats)
        case 7: return .ints(a.ints.map { Int(clamping: $0) })
        case 8: return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) })
        default:
            // Untyped (old exporters): guess from which field is set.
            if a.hasT { return .tensor(try tensor(a.t)) }
            if !a.ints.isEmpty { return .ints(a.ints.map { Int(clamping: $0) }) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if a.hasF { return .float(a.f) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            return .int(Int(clamping: a.i))
        }
    }

    /// Decodes a TensorProto (raw_data, typed fields or external data) into a `Tensor`.
    mutating func tensor(_ t: Onnx_TensorProto) throws(ONNXError) -> Tensor {
        let name = t.name
        guard let dtype = DType(onnxCode: Int(t.dataType)) else {
            throw .badTensor(name: name, reason: "element type \(t.dataType) is not supported (float, float16, bfloat16, double, int8/16/32/64, uint8/16/32/64, bool are)")
        }
        var shape: [Int] = []
        var count = 1
        for d in t.dims {
            guard d >= 0, d < Int64(Int32.max) else { throw .badTensor(name: name, reason: "invalid dimension \(d)") }
            shape.append(Int(d))
            let (c, o) = count.multipliedReportingOverflow(by: Int(d))
            guard !o, c < (1 << 34) else { throw .badTensor(name: name, reason: "too many elements (shape \(t.dims))") }
            count = c
        }
        // Decoded values are held as Float or Int64: charge them before decoding (external data is read first too).
        try budget.charge(count, bytesPerElement: storedBytes(dtype) + (t.dataLocation == .external ? Self.elementSize(dtype) : 0),
                          for: "tensor '\(name)' (shape \(shape), \(dtype))")
        var raw: Data? = nil
        if t.dataLocation == .external {
            raw = try externalBytes(t, elementSize: Self.elementSize(dtype) , count: count)
        } else if t.hasRawData {
            raw = t.rawData
        }
        if let raw {
            let size = Self.elementSize(dtype)
            guard raw.count == count * size else {
                throw .badTensor(name: name, reason: "raw data has \(raw.count) bytes, shape \(shape) of \(dtype) needs \(count * size)")
            }
            return Self.decodeRaw(raw, dtype: dtype, shape: shape, count: count)
        }
        func check(_ n: Int) throws(ONNXError) {
            guard n == count else { throw .badTensor(name: name, reason: "has \(n) values, shape \(shape) needs \(count)") }
        }
        switch dtype {
        case .float32:
            try check(t.floatData.count); return Tensor(shape: shape, dtype: dtype, floats: t.floatData)
        case .float64:
            try check(t.doubleData.count); return Tensor(shape: shape, dtype: dtype, floats: t.doubleData.map { Float($0) })
        case .float16:
            try check(t.int32Data.count)
            return Tensor(shape: shape, dtype: dtype, floats: t.int32Data.map { halfToFloat(UInt16(truncatingIfNeeded: $0)) })
        case .bfloat16:
            try check(t.int32Data.count)
            return Tensor(shape: shape, dtype: dtype, floats: t.int32Data.map { Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: $0)) << 16) })
        case .int64:
            try check(t.int64Data.count); return Tensor(shape: shape, dtype: dtype, ints: t.int64Data)
        case .int32, .int16, .int8, .uint8, .uint16, .bool:
            try check(t.int32Data.count); return Tensor(shape: shape, dtype: dtype, ints: t.int32Data.map { Int64($0) })
        case .uint32, .uint64:
            try check(t.uint64Data.count)
            return Tensor(shape: shape, dtype: dtype, ints: t.uint64Data.map { Int64(truncatingIfNeeded: $0) })
        }
    }

    func externalBytes(_ t: Onnx_TensorProto, elementSize: Int, count: Int) throws(ONNXError) -> Data {
        var location = "", offset = 0, length: Int? = nil
        for e in t.externalData {
            switch e.key {
            case "location": location = e.value
            case "offset": offset = Int(e.value) ?? -1
            case "length": length = Int(e.value)
            default: break
            }
        }
        guard !location.isEmpty else { throw .externalData(tensor: t.name, file: "", reason: "no location given") }
        guard let base = baseDirectory else {
            throw .externalData(tensor: t.name, file: location, reason: "model was not read from a file, so external data cannot be found")
        }
        let baseURL = URL(fileURLWithPath: base).standardizedFileURL.resolvingSymlinksInPath()
        let fileURL = baseURL.appendingPathComponent(location).standardizedFileURL.resolvingSymlinksInPath()
        guard !location.hasPrefix("/"), fileURL.path.hasPrefix(baseURL.path + "/") else {
            throw .externalData(tensor: t.name, file: location, reason: "path leaves the model's folder '\(base)'")
        }
        guard FileManager.default.fileExists(atPath: fileURL.path) else {
            throw .externalData(tensor: t.name, file: fileURL.path, reason: "file not found (it must sit beside the model)")
        }
        let data: Data
        do { data = try Data(contentsOf: fileURL, options: .mappedIfSafe) } catch {
            throw .externalData(tensor: t.name, file: fileURL.path, reason: "\(error)")
        }
        let need = length ?? count * elementSize
        guard offset >= 0, need >= 0, offset <= data.count, need <= data.count - offset else {
            throw .externalData(tensor: t.name, file: fileURL.path,
                                reason: "needs \(need) bytes from offset \(offset), file has \(data.count)")
        }
        return data.subdata(in: data.startIndex + offset ..< data.startIndex + offset + need)
    }

    static func elementSize(_ d: DType) -> Int {
        switch d {
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    static func decodeRaw(_ raw: Data, dtype: DType, shape: [Int], count: Int) -> Tensor {
        raw.withUnsafeBytes { (p: UnsafeRawBufferPointer) -> Tensor in
            func load<T>(_ i: Int, _: T.Type) -> T { p.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self) }
            switch dtype {
            case .float32: return Tensor(shape: shape, dtype: dtype, floats: (0..<count).map { Float(bitPattern: UInt32(littleEndian: load($0, UInt32.self))) })
            case .float64: return Tensor(shape: shape, dtype: dtype, floats: (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: load($0, UInt64.self)))) })
            case .float16: return Tensor(shape: shape, dtype: dtype, floats: (0..<count).map { halfToFloat(UInt16(littleEndian: load($0, UInt16.self))) })
            case .bfloat16: return Tensor(shape: shape, dtype: dtype, floats: (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: load($0, UInt16.self))) << 16) })
            case .int64: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(littleEndian: load($0, Int64.self)) })
            case .uint64: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(truncatingIfNeeded: UInt64(littleEndian: load($0, UInt64.self))) })
            case .int32: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(Int32(littleEndian: load($0, Int32.self))) })
            case .uint32: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(UInt32(littleEndian: load($0, UInt32.self))) })
            case .int16: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(Int16(littleEndian: load($0, Int16.self))) })
            case .uint16: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(UInt16(littleEndian: load($0, UInt16.self))) })
            case .int8: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(load($0, Int8.self)) })
            case .uint8: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { Int64(load($0, UInt8.self)) })
            case .bool: return Tensor(shape: shape, dtype: dtype, ints: (0..<count).map { load($0, UInt8.self) != 0 ? 1 : 0 })
            }
        }
    }
}

/// IEEE half → Float, exact (subnormals, inf, NaN included).
public func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        let v = Float(mant) * 0x1p-24
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}
