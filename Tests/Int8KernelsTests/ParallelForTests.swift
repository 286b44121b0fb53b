// The thread pool behind every parallel kernel loop: each index runs exactly once, whatever the thread count, when
// loops run concurrently from several threads (the pool is busy, the fallback takes over) and when nested.
import Foundation
import Testing
@testable import Int8Kernels

@Suite struct ParallelForTests {
    /// Counts of how often each index ran.
    final class Hits: @unchecked Sendable {
        private var counts: [Int]
        private let lock = NSLock()
        init(_ n: Int) { counts = [Int](repeating: 0, count: n) }
        func hit(_ i: Int) { lock.lock(); counts[i] += 1; lock.unlock() }
        var allOnce: Bool { lock.lock(); defer { lock.unlock() }; return counts.allSatisfy { $0 == 1 } }
    }

    @Test func everyIndexRunsOnce() {
        for threads in [1, 2, 3, 8] {
            for count in [0, 1, 2, 3, 7, 64, 1000] {
                for _ in 0..<20 {
                    let h = Hits(count)
                    parallelFor(count, threads: threads) { h.hit($0) }
                    #expect(h.allOnce, "threads \(threads) count \(count)")
                }
            }
        }
    }

    @Test func concurrentAndNestedLoops() async {
        await withTaskGroup(of: Bool.self) { group in
            for task in 0..<6 {
                group.addTask {
                    var ok = true
                    for round in 0..<50 {
                        let outer = 3 + (task + round) % 5, inner = 17
                        let h = Hits(outer * inner)
                        parallelFor(outer, threads: 2) { o in
                            parallelFor(inner, threads: 2) { i in h.hit(o * inner + i) }
                        }
                        ok = ok && h.allOnce
                    }
                    return ok
                }
            }
            for await ok in group { #expect(ok) }
        }
    }
}
