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

/// The body of a parallel loop as a value: the pool calls `Self.entry` (a C function pointer) with a pointer to the job,
/// so nothing is allocated per loop. (`parallelFor` with a closure has to turn the closure into an escaping one to hand
/// it to C, which allocates its context on every call.)
public protocol ParallelJob: Sendable {
    /// Runs item `item` on the thread of `slot` (0..<max(1, min(threads, count))): no two items run at once in one
    /// slot, so each slot can own a part of a caller-provided workspace.
    func run(_ item: Int, slot: Int)
    /// `{ ctx, i, slot in ctx!.assumingMemoryBound(to: Self.self).pointee.run(i, slot: slot) }` for the concrete type
    /// (a C function pointer cannot be generic).
    static var entry: i8k_slot_task_fn { get }
}

/// Runs `job.run(i, slot:)` for i in 0..<count on up to `threads` threads of the pool (as `parallelFor`), or with
/// DispatchQueue.concurrentPerform over a fixed stride of items per slot when the pool is busy.
public func parallelJob<J: ParallelJob>(_ count: Int, threads: Int, _ job: J) {
    if count <= 0 { return }
    if threads <= 1 || count == 1 {
        for i in 0..<count { job.run(i, slot: 0) }
        return
    }
    var j = job
    let ran = withUnsafeMutablePointer(to: &j) { i8k_parallel_for_slots(count, min(threads, count), J.entry, $0) != 0 }
    if ran { return }
    let slots = min(threads, count)
    DispatchQueue.concurrentPerform(iterations: slots) { s in
        for i in stride(from: s, to: count, by: slots) { job.run(i, slot: s) }
    }
}

/// Part `i` of 0..<n split into `parts` contiguous ranges of near-equal size (`splitRange(n, parts:)[i]`, no array).
@inlinable public func splitPart(_ n: Int, parts: Int, _ i: Int) -> Range<Int> {
    let p = max(1, min(parts, n))
    return (n * i / p)..<(n * (i + 1) / p)
}

/// How many parts `splitRange(n, parts:)` makes.
@inlinable public func splitCount(_ n: Int, parts: Int) -> Int { max(1, min(parts, n)) }

/// `bytes` rounded up to a multiple of 64 (workspace areas start on cache lines).
@inline(__always) func align64(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

/// The first 64-byte aligned address of a caller's workspace (its byte count includes up to 64 bytes of slack).
@inline(__always) func alignedBase(_ p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: p) + 63) / 64 * 64)!
}
