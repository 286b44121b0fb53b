// How much memory decoding an ONNX file will take, read off the protobuf wire format before decoding it.
//
// A protobuf message can expand far beyond its size on disk: an empty NodeProto is 2 bytes on the wire and a few
// hundred bytes decoded, a packed int64 element is 1 byte on the wire and 8 decoded. So checking the file size against
// the memory cap is not enough. This walker visits every field with the ONNX schema (which fields are messages of
// which type, which are packed numbers) and sums a conservative decoded size, so `ONNXModel` can refuse a file before
// swift-protobuf allocates it. It reads the bytes once, keeps no state but the running sum, and is iterative in bytes
// but recursive in message depth (bounded by `maxDepth`, the same depth swift-protobuf refuses past).
import Foundation

/// The ONNX message types reachable from ModelProto (onnx.proto), for the wire walk.
enum ONNXMessageKind: UInt8 {
    case model, graph, node, attribute, valueInfo, tensor, segment, sparseTensor, tensorShape, dimension
    case typeProto, typeTensor, typeSequence, typeMap, typeOptional, typeSparseTensor, typeOpaque
    case operatorSetId, stringEntry, trainingInfo, function, tensorAnnotation
    case deviceConfiguration, nodeDeviceConfiguration, shardingSpec, shardedDim, simpleShardedDim, intIntListEntry

    /// What a length-delimited field of this message holds.
    enum Field { case message(ONNXMessageKind), packed(bytesPerWireByte: Int), bytes }

    func field(_ number: UInt64) -> Field {
        switch (self, number) {
        case (.model, 7): return .message(.graph)
        case (.model, 8): return .message(.operatorSetId)
        case (.model, 14): return .message(.stringEntry)
        case (.model, 20): return .message(.trainingInfo)
        case (.model, 25): return .message(.function)
        case (.model, 26): return .message(.deviceConfiguration)
        case (.graph, 1): return .message(.node)
        case (.graph, 5): return .message(.tensor)
        case (.graph, 11), (.graph, 12), (.graph, 13): return .message(.valueInfo)
        case (.graph, 14): return .message(.tensorAnnotation)
        case (.graph, 15): return .message(.sparseTensor)
        case (.graph, 16): return .message(.stringEntry)
        case (.node, 5): return .message(.attribute)
        case (.node, 9): return .message(.stringEntry)
        case (.node, 10): return .message(.nodeDeviceConfiguration)
        case (.attribute, 5), (.attribute, 10): return .message(.tensor)
        case (.attribute, 6), (.attribute, 11): return .message(.graph)
        case (.attribute, 14), (.attribute, 15): return .message(.typeProto)
        case (.attribute, 22), (.attribute, 23): return .message(.sparseTensor)
        case (.attribute, 7): return .packed(bytesPerWireByte: 1)          // floats: 4 bytes each, stored as Float
        case (.attribute, 8): return .packed(bytesPerWireByte: 8)          // ints: varints of ≥ 1 byte, stored as Int64
        case (.valueInfo, 2): return .message(.typeProto)
        case (.valueInfo, 4): return .message(.stringEntry)
        case (.tensor, 3): return .message(.segment)
        case (.tensor, 13), (.tensor, 16): return .message(.stringEntry)
        case (.tensor, 1), (.tensor, 7), (.tensor, 11): return .packed(bytesPerWireByte: 8)   // dims, int64, uint64
        case (.tensor, 5): return .packed(bytesPerWireByte: 4)                             // int32 varints
        case (.tensor, 4), (.tensor, 10): return .packed(bytesPerWireByte: 1)              // float, double (fixed)
        case (.sparseTensor, 1), (.sparseTensor, 2): return .message(.tensor)
        case (.sparseTensor, 3): return .packed(bytesPerWireByte: 8)
        case (.tensorShape, 1): return .message(.dimension)
        case (.typeProto, 1): return .message(.typeTensor)
        case (.typeProto, 4): return .message(.typeSequence)
        case (.typeProto, 5): return .message(.typeMap)
        case (.typeProto, 7): return .message(.typeOpaque)
        case (.typeProto, 8): return .message(.typeSparseTensor)
        case (.typeProto, 9): return .message(.typeOptional)
        case (.typeTensor, 2), (.typeSparseTensor, 2): return .message(.tensorShape)
        case (.typeSequence, 1), (.typeOptional, 1), (.typeMap, 2): return .message(.typeProto)
        case (.trainingInfo, 1), (.trainingInfo, 2): return .message(.graph)
        case (.trainingInfo, 3), (.trainingInfo, 4): return .message(.stringEntry)
        case (.function, 7): return .message(.node)
        case (.function, 9): return .message(.operatorSetId)
        case (.function, 11): return .message(.attribute)
        case (.function, 12): return .message(.valueInfo)
        case (.function, 14): return .message(.stringEntry)
        case (.tensorAnnotation, 2): return .message(.stringEntry)
        case (.nodeDeviceConfiguration, 2): return .message(.shardingSpec)
        case (.shardingSpec, 2): return .packed(bytesPerWireByte: 8)
        case (.shardingSpec, 3): return .message(.intIntListEntry)
        case (.shardingSpec, 4): return .message(.shardedDim)
        case (.shardedDim, 2): return .message(.simpleShardedDim)
        case (.intIntListEntry, 2): return .packed(bytesPerWireByte: 8)
        default: return .bytes   // strings, bytes (raw_data) and unknown fields: held as their wire bytes
        }
    }
}

enum WireEstimate {
    /// Bytes charged per decoded message: the generated struct (up to ~250 bytes, some behind a heap box) plus the
    /// slack of the array that holds it. Measured strides of the ONNX types are below this.
    static let bytesPerMessage = 512
    /// Bytes charged per string/bytes value beyond its payload (String/Data storage and heap header).
    static let bytesPerValue = 48
    /// Bytes charged per scalar that is not in a packed field (each is one element of a repeated field at worst).
    static let bytesPerScalar = 8
    /// Nesting beyond this is refused (swift-protobuf's own default limit is 100).
    static let maxDepth = 100

    enum Failure: Error { case malformed(String), tooDeep }

    /// Conservative decoded size of `data` as an ONNX ModelProto.
    static func modelBytes(_ data: Data) throws(Failure) -> Int {
        try data.withUnsafeBytes { raw in Result { () throws(Failure) in try modelBytes(raw) } }.get()
    }

    static func modelBytes(_ data: UnsafeRawBufferPointer) throws(Failure) -> Int {
        var cursor = 0
        return try message(.model, data, &cursor, end: data.count, depth: 0)
    }

    private static func varint(_ data: UnsafeRawBufferPointer, _ cursor: inout Int, end: Int) throws(Failure) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while cursor < end {
            let byte = data[cursor]
            cursor += 1
            if shift == 63 && byte > 1 { throw .malformed("varint overflows 64 bits at byte \(cursor - 1)") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { throw .malformed("varint longer than 10 bytes at byte \(cursor - 1)") }
        }
        throw .malformed("truncated varint")
    }

    /// Walks the fields in `data[cursor..<end]` as a message of `kind` (or, for kind nil, a group of unknown fields
    /// ending at the end-group tag `endGroup`), returning the bytes its decoding takes.
    private static func message(_ kind: ONNXMessageKind?, _ data: UnsafeRawBufferPointer, _ cursor: inout Int,
                                end: Int, depth: Int, endGroup: UInt64? = nil) throws(Failure) -> Int {
        guard depth <= maxDepth else { throw .tooDeep }
        var total = bytesPerMessage
        while cursor < end {
            let tagStart = cursor
            let tag = try varint(data, &cursor, end: end)
            let number = tag >> 3, wireType = tag & 7
            guard number > 0, number < 1 << 29 else { throw .malformed("invalid field number at byte \(tagStart)") }
            switch wireType {
            case 0:
                _ = try varint(data, &cursor, end: end)
                total += bytesPerScalar
            case 1, 5:
                let width = wireType == 1 ? 8 : 4
                guard end - cursor >= width else { throw .malformed("truncated fixed-width field at byte \(tagStart)") }
                cursor += width
                total += bytesPerScalar
            case 2:
                let length = try varint(data, &cursor, end: end)
                guard length <= UInt64(end - cursor) else {
                    throw .malformed("field \(number) at byte \(tagStart) is longer than what remains")
                }
                let fieldEnd = cursor + Int(length)
                switch kind?.field(number) ?? .bytes {
                case .message(let child):
                    total += try message(child, data, &cursor, end: fieldEnd, depth: depth + 1)
                    guard cursor == fieldEnd else { throw .malformed("message field \(number) ends mid-field") }
                case .packed(let perByte):
                    total += Int(length) * perByte + bytesPerValue
                    cursor = fieldEnd
                case .bytes:
                    total += Int(length) + bytesPerValue
                    cursor = fieldEnd
                }
            case 3:
                // A group (deprecated; only as an unknown field here): kept as its wire bytes.
                let start = cursor
                _ = try message(nil, data, &cursor, end: end, depth: depth + 1, endGroup: number)
                total += cursor - start + bytesPerValue
            case 4:
                guard let g = endGroup, g == number else { throw .malformed("unmatched end-group tag at byte \(tagStart)") }
                return total
            default:
                throw .malformed("invalid wire type \(wireType) at byte \(tagStart)")
            }
        }
        if endGroup != nil { throw .malformed("group not closed") }
        return total
    }
}
