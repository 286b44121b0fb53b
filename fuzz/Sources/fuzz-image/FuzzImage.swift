// libFuzzer target: ImageDecoder over arbitrary bytes (PNG or JPEG by magic), strict and lenient, with a pixel cap.
import Imaging

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    // The cap keeps a valid header with huge dimensions from allocating (it must be refused, not attempted).
    for strict in [true, false] {
        let options = DecodeOptions(maxPixels: 1 << 22, strict: strict, applyEXIFOrientation: !strict)
        if let image = try? ImageDecoder.decode(data: bytes, name: "fuzz", options: options) {
            precondition(image.bytes.count == image.width * image.height * 3, "decoded buffer does not match its dimensions")
        }
    }
    return 0
}
