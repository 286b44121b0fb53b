import CInt8Kernels
import Dispatch

/// An instruction-set path of the integer kernels. Every path gives bit-identical results; they differ only in speed.
public enum KernelISA: Int32, CaseIterable, Sendable, CustomStringConvertible {
    /// Plain C, runs everywhere; also the semantics every other path is tested against.
    case portable = 0
    /// x86 AVX2: `vpmaddubsw` for 7-bit weights, int16 widening (`vpmaddwd`) otherwise.
    case avx2 = 1
    /// x86 AVX-VNNI (256-bit `vpdpbusd` / `vpdpwssd`).
    case avxVNNI = 2
    /// x86 AVX-512 VNNI (512-bit `vpdpbusd` / `vpdpwssd`, 8×48 microkernel).
    case avx512VNNI = 3
    /// AArch64 NEON dot-product (`sdot`).
    case neonDot = 4

    /// Whether the running CPU (and this build) can execute the path.
    public var isSupported: Bool { i8k_isa_supported(rawValue) != 0 }
    /// The fastest supported path.
    public static var best: KernelISA { KernelISA(rawValue: i8k_isa_best()) ?? .portable }
    /// All paths the running CPU supports, portable first.
    public static var supported: [KernelISA] { allCases.filter(\.isSupported) }

    public var description: String {
        switch self {
        case .portable: "portable"
        case .avx2: "avx2"
        case .avxVNNI: "avxvnni"
        case .avx512VNNI: "avx512vnni"
        case .neonDot: "neondot"
        }
    }
}

/// Errors from the integer kernels: what was expected and what was given.
public enum Int8KernelError: Error, CustomStringConvertible, Equatable {
    case sizeMismatch(what: String, expected: Int, got: Int)
    case invalidArgument(String)
    case unsupportedISA(KernelISA)

    public var description: String {
        switch self {
        case let .sizeMismatch(what, expected, got): "Int8Kernels: \(what) has \(got) elements, expected \(expected)"
        case let .invalidArgument(m): "Int8Kernels: \(m)"
        case let .unsupportedISA(isa): "Int8Kernels: ISA \(isa) is not supported by this CPU (supported: \(KernelISA.supported))"
        }
    }
}

func checkISA(_ isa: KernelISA) throws(Int8KernelError) {
    if !isa.isSupported { throw .unsupportedISA(isa) }
}

/// Runs `body(i)` for i in 0..<count on up to `threads` threads: on the persistent pool of CInt8Kernels (pool.c,
/// workers that spin briefly between jobs, so a 50 µs op is worth splitting), or with
/// DispatchQueue.concurrentPerform when that pool is busy (a loop running concurrently on another thread, or nested).
public func parallelFor(_ count: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
    if count <= 0 { return }
    if threads <= 1 || count == 1 {
        for i in 0..<count { body(i) }
        return
    }
    let ran = withoutActuallyEscaping(body) { escapable -> Bool in
        var fn: (Int) -> Void = escapable
        return withUnsafeMutablePointer(to: &fn) { p in
            i8k_parallel_for(count, min(threads, count), { ctx, i in
                ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
            }, UnsafeMutableRawPointer(p)) != 0
        }
    }
    if !ran { DispatchQueue.concurrentPerform(iterations: count, execute: body) }
}

/// Splits 0..<n into `parts` contiguous ranges of near-equal size.
func splitRange(_ n: Int, parts: Int) -> [Range<Int>] {
    let p = max(1, min(parts, n))
    return (0..<p).map { i in (n * i / p)..<(n * (i + 1) / p) }
}
