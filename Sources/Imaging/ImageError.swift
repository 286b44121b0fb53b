/// Why an image could not be read, decoded or preprocessed. Every case names the file (or the spec) and what is
/// wrong, so the message alone tells a user what to fix.
public enum ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path could not be opened or read (missing, a directory, no permission).
    case unreadable(path: String, reason: String)
    /// The file has zero bytes.
    case empty(path: String)
    /// The first bytes are neither a JPEG nor a PNG signature.
    case unknownFormat(path: String, firstBytes: [UInt8])
    /// The data ends before the image is complete.
    case truncated(path: String, format: String, detail: String)
    /// A PNG chunk's CRC does not match its contents.
    case badCRC(path: String, detail: String)
    /// The compressed data is malformed.
    case corrupt(path: String, format: String, detail: String)
    /// The image (or file) is larger than the configured limit; refused before allocating pixel memory.
    case tooLarge(path: String, detail: String)
    /// A valid file in a variant this decoder does not handle (e.g. 12-bit JPEG).
    case unsupported(path: String, detail: String)
    /// Memory for the pixels could not be allocated.
    case outOfMemory(path: String)
    /// A preprocessing spec or argument is invalid.
    case invalidSpec(String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read the file: \(reason)"
        case let .empty(path): return "\(path): the file is empty (0 bytes); expected a JPEG or PNG image"
        case let .unknownFormat(path, bytes):
            let hex = bytes.map { String($0, radix: 16, uppercase: true) }.map { $0.count == 1 ? "0" + $0 : $0 }
            return "\(path): not a JPEG or PNG image (starts with \(hex.joined(separator: " ")); "
                + "JPEG starts with FF D8 FF, PNG with 89 50 4E 47)"
        case let .truncated(path, format, detail): return "\(path): truncated \(format) file: \(detail)"
        case let .badCRC(path, detail): return "\(path): PNG checksum (CRC) mismatch, the file is damaged: \(detail)"
        case let .corrupt(path, format, detail): return "\(path): corrupt \(format) data: \(detail)"
        case let .tooLarge(path, detail): return "\(path): image too large: \(detail)"
        case let .unsupported(path, detail): return "\(path): unsupported image: \(detail)"
        case let .outOfMemory(path): return "\(path): out of memory while decoding"
        case let .invalidSpec(message): return "invalid preprocessing spec: \(message)"
        }
    }
}
