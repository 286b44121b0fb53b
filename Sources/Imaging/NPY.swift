import FileOutput
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a `.npy` file could not be written or read.
public enum NPYError: Error, CustomStringConvertible, Equatable, Sendable {
    case write(path: String, reason: String)
    case read(path: String, reason: String)
    case shapeMismatch(shape: [Int], count: Int)

    public var description: String {
        switch self {
        case let .write(path, reason): return "\(path): cannot write .npy: \(reason)"
        case let .read(path, reason): return "\(path): cannot read .npy: \(reason)"
        case let .shapeMismatch(shape, count): return "shape \(shape) holds \(shape.reduce(1, *)) values, but \(count) were given"
        }
    }
}

/// Element types a `.npy` file can hold here: little-endian Float32 (`<f4`) and UInt8 (`|u1`).
public protocol NPYElement: Sendable {
    static var npyDescr: String { get }
}
extension Float: NPYElement { public static var npyDescr: String { "<f4" } }
extension UInt8: NPYElement { public static var npyDescr: String { "|u1" } }

/// NumPy `.npy` (format 1.0, C order) writer and reader.
public enum NPY {
    /// The file bytes for `values` with `shape`.
    public static func encode<T: NPYElement>(_ values: [T], shape: [Int]) throws(NPYError) -> [UInt8] {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw .shapeMismatch(shape: shape, count: values.count)
        }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(T.npyDescr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let hlen = header.utf8.count
        out += [UInt8(hlen & 0xFF), UInt8(hlen >> 8)]
        out += Array(header.utf8)
        values.withUnsafeBytes { out += $0 }  // every supported platform is little-endian
        return out
    }

    /// Writes atomically: the bytes go to a temporary file in the same folder, which is then renamed over `path`,
    /// so a reader never sees a half-written file.
    public static func write<T: NPYElement>(_ values: [T], shape: [Int], to path: String) throws(NPYError) {
        let bytes = try encode(values, shape: shape)
        do { try AtomicFile.write(bytes, toPath: path) } catch { throw .write(path: path, reason: error.description) }
    }

    /// Reads a C-order `.npy` of element type `T`; returns the values and the shape.
    public static func read<T: NPYElement>(_ type: T.Type = T.self, from path: String) throws(NPYError) -> (values: [T], shape: [Int]) {
        let data: [UInt8]
        do { data = try ImageDecoder.readFile(path) } catch { throw .read(path: path, reason: "\(error)") }
        return try decode(type, data: data, name: path)
    }

    public static func decode<T: NPYElement>(_ type: T.Type = T.self, data: [UInt8], name: String = "npy")
        throws(NPYError) -> (values: [T], shape: [Int])
    {
        guard data.count >= 10, data[0] == 0x93, Array(data[1..<6]) == Array("NUMPY".utf8) else {
            throw .read(path: name, reason: "missing the \\x93NUMPY magic")
        }
        let major = data[6]
        let hlen: Int, start: Int
        if major == 1 {
            hlen = Int(data[8]) | Int(data[9]) << 8
            start = 10
        } else if major == 2 || major == 3 {
            guard data.count >= 12 else { throw .read(path: name, reason: "short header") }
            hlen = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
            start = 12
        } else { throw .read(path: name, reason: "unsupported format version \(major)") }
        guard start + hlen <= data.count else { throw .read(path: name, reason: "header runs past the end of the file") }
        let header = String(decoding: data[start..<(start + hlen)], as: UTF8.self)
        guard header.contains("'descr': '\(T.npyDescr)'") else {
            throw .read(path: name, reason: "expected dtype \(T.npyDescr), header is \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        if header.contains("'fortran_order': True") { throw .read(path: name, reason: "Fortran order is not supported") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw .read(path: name, reason: "no shape in header")
        }
        var shape: [Int] = []
        for part in header[open.upperBound..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw .read(path: name, reason: "bad shape entry '\(t)'") }
            shape.append(v)
        }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow)
        }
        let payload = data.count - start - hlen
        guard !overflow, count.multipliedReportingOverflow(by: MemoryLayout<T>.stride).partialValue == payload else {
            throw .read(path: name, reason: "shape \(shape) needs \(count) values but the file holds \(payload) bytes")
        }
        var values = [T]()
        values.reserveCapacity(count)
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + start + hlen
            for i in 0..<count { values.append(base.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: T.self)) }
        }
        return (values, shape)
    }
}
