/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R G B` (HWC), no padding between rows.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes.
    public var bytes: [UInt8]

    /// Wraps `bytes`; returns nil when the count does not match `width * height * 3`.
    public init?(width: Int, height: Int, bytes: [UInt8]) {
        guard width > 0, height > 0, width.multipliedReportingOverflow(by: height).overflow == false,
              bytes.count == width * height * 3 else { return nil }
        self.width = width
        self.height = height
        self.bytes = bytes
    }

    init(uncheckedWidth width: Int, height: Int, bytes: [UInt8]) {
        self.width = width
        self.height = height
        self.bytes = bytes
    }

    /// The pixel at (x, y) as (r, g, b).
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (bytes[i], bytes[i + 1], bytes[i + 2])
    }

    /// Applies an EXIF orientation (1...8) so the image is upright, as Pillow's `ImageOps.exif_transpose` does.
    /// Values outside 2...8 return the image unchanged.
    public func applyingEXIFOrientation(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let sx: Int, sy: Int
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - ox, oy)            // mirror horizontally
                        case 3: (sx, sy) = (w - 1 - ox, h - 1 - oy)    // rotate 180
                        case 4: (sx, sy) = (ox, h - 1 - oy)            // mirror vertically
                        case 5: (sx, sy) = (oy, ox)                    // transpose
                        case 6: (sx, sy) = (oy, h - 1 - ox)            // rotate 90 clockwise
                        case 7: (sx, sy) = (w - 1 - oy, h - 1 - ox)    // transverse
                        default: (sx, sy) = (w - 1 - oy, ox)           // 8: rotate 90 counter-clockwise
                        }
                        let s = (sy * w + sx) * 3, d = (oy * ow + ox) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(uncheckedWidth: ow, height: oh, bytes: out)
    }
}
