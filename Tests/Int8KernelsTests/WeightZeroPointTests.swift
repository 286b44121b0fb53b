import CInt8Kernels
import Testing
@testable import Int8Kernels

/// Naive accumulators Σ_k (a − z)·(W[n][k] + c[n]) in Int64, wrapped to int32 like the kernels (W is [N][K]).
func naiveOffsetAcc(a: [UInt8], m: Int, k: Int, n: Int, activation: ActivationType, wNK: [Int8], offsets: [Int32]) -> [Int32] {
    let (signed, z): (Bool, Int64) = switch activation {
    case let .uint8(z): (false, Int64(z))
    case let .int8(z): (true, Int64(z))
    }
    var out = [Int32](repeating: 0, count: m * n)
    for i in 0..<m { for o in 0..<n {
        var s: Int64 = 0
        for kk in 0..<k {
            let raw = a[i * k + kk]
            let x = signed ? Int64(Int8(bitPattern: raw)) : Int64(raw)
            s += (x - z) * (Int64(wNK[o * k + kk]) + Int64(offsets[o]))
        }
        out[i * n + o] = Int32(truncatingIfNeeded: s)
    } }
    return out
}

/// Naive NHWC conv accumulators with int32 weights `[O][kh][kw][C/g]` (stored int8 + per-channel offset).
func naiveConvAcc32(_ g: ConvGeometry, input: [UInt8], signed: Bool, zero: Int32, weights: [Int32]) -> [Int32] {
    let cg = g.inC / g.groups, og = g.outC / g.groups
    var out = [Int32](repeating: 0, count: g.outH * g.outW * g.outC)
    for oy in 0..<g.outH { for ox in 0..<g.outW { for o in 0..<g.outC {
        let gi = o / og
        var s: Int64 = 0
        for ky in 0..<g.kernelH { for kx in 0..<g.kernelW {
            let iy = oy * g.strideH + ky * g.dilationH - g.padTop, ix = ox * g.strideW + kx * g.dilationW - g.padLeft
            if iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW { continue }
            for c in 0..<cg {
                let raw = input[(iy * g.inW + ix) * g.inC + gi * cg + c]
                let x = signed ? Int64(Int8(bitPattern: raw)) : Int64(raw)
                s += (x - Int64(zero)) * Int64(weights[((o * g.kernelH + ky) * g.kernelW + kx) * cg + c])
            }
        } }
        out[(oy * g.outW + ox) * g.outC + o] = Int32(truncatingIfNeeded: s)
    } } }
    return out
}

@Suite("Weight zero-point term (8-bit rows whose W − z leaves int8): GEMM, conv, depthwise, row sums, bit-exact")
struct WeightZeroPointTests {
    /// Offsets c = 128 − z_w for z_w in [0, 255], with the extremes.
    static func offsets(_ n: Int, _ g: inout SplitMix) -> [Int32] {
        (0..<n).map { i in i == 0 ? 128 : i == 1 ? -127 : i == 2 ? 0 : Int32.random(in: -127...128, using: &g) }
    }

    @Test("row sums: every ISA against the portable path (u8/s8, awkward K, zero points)", arguments: testISAs)
    func rowSums(isa: KernelISA) {
        var g = SplitMix(91)
        for k in [1, 3, 4, 31, 32, 33, 63, 64, 65, 127, 200, 1030] {
            let m = 7, lda = k + 5
            for fill in [nil, UInt8(255), UInt8(0), UInt8(128)] {
                let a = fill.map { [UInt8](repeating: $0, count: m * lda) } ?? randomU8(m * lda, &g)
                for act in [ActivationType.uint8(zeroPoint: 0), .uint8(zeroPoint: 255), .uint8(zeroPoint: 77), .int8(zeroPoint: 0), .int8(zeroPoint: -128), .int8(zeroPoint: 127)] {
                    var got = [Int32](repeating: -1, count: m), ref = [Int32](repeating: -2, count: m)
                    a.withUnsafeBufferPointer { ab in
                        Int8GEMM.computeRowSums(a: ab.baseAddress!, lda: lda, m: m, k: k, activation: act, dst: &got, isa: isa)
                        Int8GEMM.computeRowSums(a: ab.baseAddress!, lda: lda, m: m, k: k, activation: act, dst: &ref, isa: .portable)
                    }
                    // and against the definition
                    let (signed, z): (Bool, Int) = switch act { case let .uint8(z): (false, Int(z)); case let .int8(z): (true, Int(z)) }
                    let def = (0..<m).map { i in Int32((0..<k).reduce(0) { $0 + (signed ? Int(Int8(bitPattern: a[i * lda + $1])) : Int(a[i * lda + $1])) - z }) }
                    #expect(ref == def, "portable k \(k) \(act)")
                    #expect(got == ref, "isa \(isa) k \(k) \(act) fill \(String(describing: fill))")
                }
            }
        }
    }

    @Test("GEMM with column offsets vs naive Σ(a − z)(W + c), all stages, 1 and 2 threads", arguments: testISAs)
    func gemm(isa: KernelISA) throws {
        var g = SplitMix(92)
        // (M, N, K): single rows, M not a multiple of 8, M > 256 (row blocks), K tails, K > 1024 (K slices), N tails,
        // M >= 1024 (two threads split rows only)
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 1000, 1280), (7, 17, 5), (9, 48, 64), (17, 50, 67), (300, 20, 33),
                                         (3, 63, 1030), (49, 96, 16), (260, 24, 144), (1037, 100, 16)]
        for (m, n, k) in shapes {
            let w = randomS8(n * k, &g)
            let c = Self.offsets(n, &g)
            let packed = try PackedInt8Weights(weights: w, k: k, n: n, layout: .outputMajor, columnOffsets: c)
            #expect(packed.columnOffsets == c)
            let bias = (0..<n).map { _ in Int32.random(in: -20000...20000, using: &g) }
            for act in [ActivationType.uint8(zeroPoint: 117), .uint8(zeroPoint: 0), .int8(zeroPoint: 0), .int8(zeroPoint: -3)] {
                let a = randomU8(m * k, &g)
                let acc = naiveOffsetAcc(a: a, m: m, k: k, n: n, activation: act, wNK: w, offsets: c)
                for (name, stage) in stages(n: n, &g) {
                    let ref = applyStage(acc, rows: m, n: n, bias: bias, stage: stage)
                    for threads in [1, 2] {
                        let got = try runGEMM(a: a, m: m, k: k, n: n, activation: act, packed: packed, bias: bias, stage: stage, isa: isa, threads: threads)
                        #expect(firstDifference(got, ref) == nil, "isa \(isa) \(m)x\(n)x\(k) \(act) \(name) threads \(threads)")
                    }
                }
            }
        }
    }

    @Test("the C reference GEMM forms the term itself and agrees with the naive sum")
    func cReference() throws {
        var g = SplitMix(93)
        let (m, n, k) = (11, 37, 70)
        let w = randomS8(n * k, &g), c = Self.offsets(n, &g), a = randomU8(m * k, &g)
        var wKN = [Int8](repeating: 0, count: k * n)
        for o in 0..<n { for kk in 0..<k { wKN[kk * n + o] = w[o * k + kk] } }
        let acc = naiveOffsetAcc(a: a, m: m, k: k, n: n, activation: .uint8(zeroPoint: 201), wNK: w, offsets: c)
        let p = try OutputParams(stage: .int32, n: n, bias: nil, aZero: 0, colsum: nil, rowCoef: c)
        var out = [Int32](repeating: 0, count: m * n)
        withUnsafePointer(to: &p.raw) { op in out.withUnsafeMutableBytes { i8k_ref_gemm_u8(a, k, 0, wKN, n, m, n, k, 201, op, $0.baseAddress!, n) } }
        #expect(out == acc)
    }

    @Test("extremes: 255 inputs × (−128 + 128) and (127 − 127) weights, K = 128 (largest int16 row sums: the vpdpwssd term), 129 and 1000, saturating requantization",
          arguments: testISAs)
    func extremes(isa: KernelISA) throws {
        for k in [128, 129, 1000] { try extremes(isa: isa, k: k) }
    }

    func extremes(isa: KernelISA, k: Int) throws {
        let m = 5, n = 33
        let big = (0..<n).map { _ in try! QuantizedMultiplier(30.0) }
        let sat: OutputStage = .requantize(multipliers: big, rounding: .singleRounding, zeroPoint: 3, qmin: 0, qmax: 255, unsigned: true)
        let sat8: OutputStage = .requantize(multipliers: big, rounding: .doubleRounding, zeroPoint: -1, qmin: -128, qmax: 127, unsigned: false)
        for (wv, cv) in [(Int8(-128), Int32(128)), (Int8(127), Int32(-127)), (Int8(-128), Int32(-127)), (Int8(127), Int32(128))] {
            let w = [Int8](repeating: wv, count: n * k), c = [Int32](repeating: cv, count: n)
            let packed = try PackedInt8Weights(weights: w, k: k, n: n, layout: .outputMajor, columnOffsets: c)
            for (av, act) in [(UInt8(255), ActivationType.uint8(zeroPoint: 0)), (UInt8(0), .uint8(zeroPoint: 255)), (UInt8(127), .int8(zeroPoint: -128)),
                              (UInt8(128), .int8(zeroPoint: 127))] {
                let a = [UInt8](repeating: av, count: m * k)
                let acc = naiveOffsetAcc(a: a, m: m, k: k, n: n, activation: act, wNK: w, offsets: c)
                for stage in [OutputStage.int32, sat, sat8] {
                    let ref = applyStage(acc, rows: m, n: n, bias: nil, stage: stage)
                    let got = try runGEMM(a: a, m: m, k: k, n: n, activation: act, packed: packed, bias: nil, stage: stage, isa: isa)
                    #expect(firstDifference(got, ref) == nil, "isa \(isa) K \(k) w \(wv) c \(cv) a \(av) \(act)")
                }
            }
        }
    }

    @Test("requantization ties: accumulators at exact .5 steps land the same with the offset term", arguments: testISAs)
    func ties(isa: KernelISA) throws {
        // multiplier 0.5: acc·0.5 is a tie for every odd acc; K = 1, weight 0 + offset c gives acc = c·(a − z)
        let n = 16, m = 64
        let half = try QuantizedMultiplier(0.5)
        let c: [Int32] = (0..<n).map { (i: Int) -> Int32 in
            let v = Int32(2 * i + 1)
            return i % 2 == 0 ? v : -v
        }
        let packed = try PackedInt8Weights(weights: [Int8](repeating: 0, count: n), k: 1, n: n, layout: .outputMajor, columnOffsets: c)
        let a: [UInt8] = (0..<m).map { (i: Int) -> UInt8 in UInt8(127 + 2 * (i - 32) + 1) }   // a − z odd, so c·(a − z) is odd: every product is a tie
        let acc = naiveOffsetAcc(a: a, m: m, k: 1, n: n, activation: .uint8(zeroPoint: 127), wNK: [Int8](repeating: 0, count: n), offsets: c)
        for rounding in RequantRounding.allCases {
            let st: OutputStage = .requantize(multipliers: [half], rounding: rounding, zeroPoint: 0, qmin: -128, qmax: 127, unsigned: false)
            let ref = applyStage(acc, rows: m, n: n, bias: nil, stage: st)
            let got = try runGEMM(a: a, m: m, k: 1, n: n, activation: .uint8(zeroPoint: 127), packed: packed, bias: nil, stage: st, isa: isa)
            #expect(firstDifference(got, ref) == nil, "isa \(isa) \(rounding)")
        }
    }

    @Test("dense / grouped / 1×1 conv with channel offsets vs naive (padding = zero point adds 0)", arguments: testISAs)
    func conv(isa: KernelISA) throws {
        var rng = SplitMix(94)
        var geos = ConvTests.geometries
        geos.append(ConvGeometry(inH: 12, inW: 12, inC: 3, outC: 32, kernelH: 3, kernelW: 3, stride: 2, pad: 1))   // stem-like
        geos.append(ConvGeometry(inH: 7, inW: 7, inC: 320, outC: 100, kernelH: 1, kernelW: 1))                      // head-like, direct
        for g in geos {
            let kk = g.kernelH * g.kernelW * (g.inC / g.groups)
            let w = randomS8(g.outC * kk, &rng)
            let c = Self.offsets(g.outC, &rng)
            let conv = try Conv2DInt8(geometry: g, weights: w, channelOffsets: c)
            let w32 = (0..<w.count).map { Int32(w[$0]) + c[$0 / kk] }
            let input = randomU8(g.inH * g.inW * g.inC, &rng)
            let bias = (0..<g.outC).map { _ in Int32.random(in: -3000...3000, using: &rng) }
            for (signed, z) in [(false, Int32(131)), (false, Int32(255)), (true, Int32(-7)), (true, Int32(-128))] {
                let acc = naiveConvAcc32(g, input: input, signed: signed, zero: z, weights: w32)
                try expectConv(conv, g, input: input, bias: bias, acc: acc, activation: signed ? .int8(zeroPoint: z) : .uint8(zeroPoint: z),
                               isa: isa, &rng, "signed \(signed) z \(z)")
            }
        }
    }

    @Test("depthwise with int16 weights W − z in [−255, 255] vs naive", arguments: testISAs)
    func depthwise16(isa: KernelISA) throws {
        var rng = SplitMix(95)
        let shapes: [(Int, Int, Int, Int, Int)] = [(3, 3, 1, 1, 17), (3, 3, 2, 1, 40), (5, 5, 1, 2, 3), (5, 5, 2, 2, 64), (2, 3, 1, 0, 33),
                                                   (3, 3, 1, 1, 1), (5, 5, 1, 2, 96), (3, 3, 2, 1, 144)]
        for (kh, kw, s, p, c) in shapes {
            let g = ConvGeometry(inH: 9, inW: 8, inC: c, outC: c, kernelH: kh, kernelW: kw, stride: s, pad: p, groups: c)
            var w = (0..<(kh * kw * c)).map { _ in Int16.random(in: -255...255, using: &rng) }
            w[0] = -255; w[w.count - 1] = 255
            let dw = try DepthwiseConv2DInt8(geometry: g, weights16: w)
            var w32 = [Int32](repeating: 0, count: c * kh * kw)
            for o in 0..<c { for t in 0..<(kh * kw) { w32[o * kh * kw + t] = Int32(w[t * c + o]) } }
            for (fill, signed, z) in [(nil, false, Int32(100)), (UInt8(255), false, Int32(0)), (UInt8(0), false, Int32(255)), (nil, true, Int32(-128)), (UInt8(127), true, Int32(-128))] {
                let input = fill.map { [UInt8](repeating: $0, count: g.inH * g.inW * c) } ?? randomU8(g.inH * g.inW * c, &rng)
                let acc = naiveConvAcc32(g, input: input, signed: signed, zero: z, weights: w32)
                let act: ActivationType = signed ? .int8(zeroPoint: z) : .uint8(zeroPoint: z)
                let bias = (0..<c).map { _ in Int32.random(in: -3000...3000, using: &rng) }
                try expectMatchesNaive(dw, input: input, activation: act, bias: bias, acc: acc,
                                       stages: stages(n: c, &rng), isa: isa, label: "dw \(kh)x\(kw) s\(s) p\(p) c\(c)")
            }
        }
        #expect(throws: Int8KernelError.self) {
            try DepthwiseConv2DInt8(geometry: ConvGeometry(inH: 4, inW: 4, inC: 1, outC: 1, kernelH: 1, kernelW: 1, groups: 1), weights16: [256])
        }
        #expect(throws: Int8KernelError.self) {
            try PackedInt8Weights(weights: [1, 2], k: 1, n: 2, layout: .outputMajor, columnOffsets: [0, 256])
        }
    }
}
