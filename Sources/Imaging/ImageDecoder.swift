import CImageCodecs
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The container formats the decoder recognises by their magic bytes.
public enum ImageFormat: String, Sendable {
    case jpeg = "JPEG"
    case png = "PNG"

    /// Sniffs the format from the first bytes (JPEG: `FF D8 FF`, PNG: the 8-byte signature).
    public static func sniff<C: Collection>(_ bytes: C) -> ImageFormat? where C.Element == UInt8 {
        let head = Array(bytes.prefix(8))
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }
}

/// Options for ``ImageDecoder``.
public struct DecodeOptions: Sendable, Equatable {
    /// Images with more pixels than this are refused after reading the header, before any pixel memory is allocated.
    public var maxPixels: Int
    /// Files larger than this many bytes are refused before reading them.
    public var maxFileBytes: Int
    /// When true (the default), libjpeg warnings such as "Premature end of JPEG file" or "Corrupt JPEG data" are
    /// errors, and PNG CRC errors in any chunk are errors. When false, such JPEGs decode with grey padding.
    public var strict: Bool
    /// Rotate/mirror JPEGs according to their EXIF orientation tag. Off by default: Pillow (and so the reference
    /// accuracy of timm/torchvision models) ignores EXIF orientation.
    public var applyEXIFOrientation: Bool

    public init(maxPixels: Int = 100_000_000, maxFileBytes: Int = 1 << 30, strict: Bool = true,
                applyEXIFOrientation: Bool = false) {
        self.maxPixels = maxPixels
        self.maxFileBytes = maxFileBytes
        self.strict = strict
        self.applyEXIFOrientation = applyEXIFOrientation
    }
}

/// Extra facts a decode reports besides the pixels.
public struct DecodeInfo: Sendable, Equatable {
    public var format: ImageFormat
    /// EXIF orientation found in the file (1 when absent or for PNG), whether or not it was applied.
    public var exifOrientation: Int
    /// Whether the orientation was applied to the returned pixels.
    public var orientationApplied: Bool
    /// libjpeg warnings tolerated in non-strict mode (0 in strict mode), with the first message.
    public var warnings: Int
    public var firstWarning: String?
}

/// Decodes JPEG and PNG files into ``RGBImage`` through libjpeg/libpng (via the CImageCodecs shim).
public enum ImageDecoder {
    /// Reads and decodes the image at `path`, sniffing the format from its magic bytes.
    public static func decode(fileAt path: String, options: DecodeOptions = DecodeOptions()) throws(ImageError) -> RGBImage {
        try decodeWithInfo(fileAt: path, options: options).image
    }

    /// Like ``decode(fileAt:options:)`` but also returns what the decoder found (format, EXIF orientation, warnings).
    public static func decodeWithInfo(fileAt path: String, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> (image: RGBImage, info: DecodeInfo)
    {
        let data = try readFile(path, maxBytes: options.maxFileBytes)
        return try decodeWithInfo(data: data, name: path, options: options)
    }

    /// Decodes in-memory file contents; `name` is used in error messages.
    public static func decode(data: [UInt8], name: String, options: DecodeOptions = DecodeOptions()) throws(ImageError) -> RGBImage {
        try decodeWithInfo(data: data, name: name, options: options).image
    }

    public static func decodeWithInfo(data: [UInt8], name: String, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> (image: RGBImage, info: DecodeInfo)
    {
        if data.isEmpty { throw .empty(path: name) }
        guard let format = ImageFormat.sniff(data) else {
            throw .unknownFormat(path: name, firstBytes: Array(data.prefix(8)))
        }
        var opt = cic_decode_options()
        opt.max_pixels = UInt64(max(0, options.maxPixels))
        opt.strict = options.strict ? 1 : 0
        opt.read_orientation = 1
        var out: UnsafeMutablePointer<UInt8>? = nil
        var w: UInt32 = 0, h: UInt32 = 0
        var orientation: Int32 = 1, warnings: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        let code: Int32 = data.withUnsafeBufferPointer { buf in
            err.withUnsafeMutableBufferPointer { e in
                switch format {
                case .jpeg:
                    return cic_jpeg_decode_rgb(buf.baseAddress, buf.count, &opt, &out, &w, &h, &orientation, &warnings,
                                               e.baseAddress, e.count)
                case .png:
                    return cic_png_decode_rgb(buf.baseAddress, buf.count, &opt, &out, &w, &h, e.baseAddress, e.count)
                }
            }
        }
        let message = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        guard code == 0, let pixels = out else {
            if let out { cic_free(out) }
            throw mapError(code: code, message: message, name: name, format: format)
        }
        defer { cic_free(pixels) }
        let count = Int(w) * Int(h) * 3
        let bytes = [UInt8](UnsafeBufferPointer(start: pixels, count: count))
        var image = RGBImage(uncheckedWidth: Int(w), height: Int(h), bytes: bytes)
        let orient = Int(orientation)
        var applied = false
        if options.applyEXIFOrientation, orient != 1 {
            image = image.applyingEXIFOrientation(orient)
            applied = true
        }
        let info = DecodeInfo(format: format, exifOrientation: orient, orientationApplied: applied,
                              warnings: Int(warnings), firstWarning: warnings > 0 ? message : nil)
        return (image, info)
    }

    static func mapError(code: Int32, message: String, name: String, format: ImageFormat) -> ImageError {
        let f = format.rawValue
        switch code {
        case Int32(CIC_ERR_EMPTY): return .empty(path: name)
        case Int32(CIC_ERR_MAGIC): return .corrupt(path: name, format: f, detail: message)
        case Int32(CIC_ERR_TRUNCATED): return .truncated(path: name, format: f, detail: message)
        case Int32(CIC_ERR_CRC): return .badCRC(path: name, detail: message)
        case Int32(CIC_ERR_TOO_LARGE): return .tooLarge(path: name, detail: message)
        case Int32(CIC_ERR_NOMEM): return .outOfMemory(path: name)
        case Int32(CIC_ERR_UNSUPPORTED): return .unsupported(path: name, detail: message)
        default: return .corrupt(path: name, format: f, detail: message.isEmpty ? "decoder error \(code)" : message)
        }
    }

    /// Reads a whole file with POSIX calls so the error can name the exact reason (errno).
    public static func readFile(_ path: String, maxBytes: Int = 1 << 30) throws(ImageError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw .unreadable(path: path, reason: "is a directory, not an image file") }
        let size = Int(st.st_size)
        if size > maxBytes { throw .tooLarge(path: path, detail: "file is \(size) bytes, above the limit of \(maxBytes)") }
        var data = [UInt8](repeating: 0, count: size)
        var got = 0
        var failure: Int32 = 0
        data.withUnsafeMutableBytes { buf in
            while got < size {
                let n = read(fd, buf.baseAddress! + got, size - got)
                if n < 0 { if errno == EINTR { continue }; failure = errno; return }
                if n == 0 { break }
                got += n
            }
        }
        if failure != 0 { throw .unreadable(path: path, reason: String(cString: strerror(failure))) }
        if got < size { data.removeSubrange(got...) }
        return data
    }
}
