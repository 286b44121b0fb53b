import Foundation
import Testing
@testable import Imaging

@Suite("Datasets")
struct DatasetTests {
    func touch(_ path: String) throws { try writeFile(path, [0xFF, 0xD8, 0xFF]) }

    @Test("ImageFolder: classes in code-point order, files sorted, non-images skipped")
    func imageFolder() throws {
        let root = try makeTempDir("if")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for c in ["b", "a", "B", "class10", "class2"] {
            try FileManager.default.createDirectory(atPath: root + "/" + c, withIntermediateDirectories: true)
            for f in ["z.jpg", "a.PNG", "m.jpeg", "notes.txt", ".hidden.jpg"] { try touch(root + "/" + c + "/" + f) }
        }
        let ds = try ImageDataset.open(root)
        #expect(ds.layout == .imageFolder)
        #expect(ds.classNames == ["B", "a", "b", "class10", "class2"])
        #expect(ds.count == 15)
        #expect(ds.items[0].path.hasSuffix("/B/a.PNG") && ds.items[0].label == 0)
        #expect(ds.items[2].path.hasSuffix("/B/z.jpg"))
        #expect(ds.items[3].label == 1)
    }

    @Test("flat ImageNet names with the bundled list, a synset list, or index<TAB>synset<TAB>name lines")
    func imagenetFlat() throws {
        let root = try makeTempDir("flat")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try touch(root + "/n01443537_goldfish.JPEG")
        try touch(root + "/n01440764_tench.JPEG")
        let bundled = try ImageDataset.open(root)
        #expect(bundled.layout == .imagenetFlat)
        #expect(bundled.items.map(\.label) == [0, 1])
        #expect(bundled.className(1) == "goldfish")
        #expect(ImageNetClasses.synsets.count == 1000 && ImageNetClasses.names[999] == "toilet_tissue")

        let labels = root + "/../labels-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: labels) }
        try writeFile(labels, Array("n01443537\nn01440764\n".utf8))
        let custom = try ImageDataset.open(root, labels: labels)
        #expect(custom.items.map(\.label) == [1, 0])
        try writeFile(labels, Array("0\tn01443537\tgoldfish\n1\tn01440764\ttench\n".utf8))
        let tabbed = try ImageDataset.open(root, labels: labels)
        #expect(tabbed.items.map(\.label) == [1, 0] && tabbed.classNames == ["goldfish", "tench"])
        try writeFile(labels, Array("0\tn09999999\tother\n".utf8))
        #expect(throws: DatasetError.self) { try ImageDataset.open(root, labels: labels) }
    }

    @Test("filename label lines (val.txt form) and an unlabelled folder")
    func fileListAndUnlabelled() throws {
        let root = try makeTempDir("list")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for f in ["ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000001.JPEG"] { try touch(root + "/" + f) }
        let unl = try ImageDataset.open(root)
        #expect(unl.layout == .unlabelled && !unl.isLabelled)
        #expect(unl.items.map { ($0.path as NSString).lastPathComponent } == ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"])
        let labels = root + "/../val-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: labels) }
        try writeFile(labels, Array("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n".utf8))
        let ds = try ImageDataset.open(root, labels: labels)
        #expect(ds.layout == .fileList && ds.items.map(\.label) == [65, 970])
        #expect(ds.className(65) == "sea_snake")
        try writeFile(labels, Array("ILSVRC2012_val_00000003.JPEG 1\n".utf8))
        #expect(throws: DatasetError.self) { try ImageDataset.open(root, labels: labels) }
    }

    @Test("SplitMix64 matches the reference sequence")
    func splitmix() {
        var r = SplitMix64(seed: 0)
        // reference values of SplitMix64 (Vigna's splitmix64.c) for seed 0
        #expect(r.next() == 0xE220_A839_7B1D_CDAF)
        #expect(r.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(r.next() == 0x06C4_5D18_8009_454F)
    }

    @Test("sample and calibration split are reproducible and complementary")
    func sampling() throws {
        let items = (0..<500).map { DatasetItem(path: String(format: "/x/%03d.jpg", $0), label: $0 % 10) }
        let ds = ImageDataset(root: "/x", layout: .unlabelled, items: items, classNames: [])
        let a = try ds.sampleIndices(32, seed: 0)
        let b = try ds.sampleIndices(32, seed: 0)
        #expect(a == b && Set(a).count == 32 && a == a.sorted())
        #expect(try ds.sampleIndices(32, seed: 1) != a)
        let (calib, rest) = try ds.split(calibration: 32, seed: 0)
        #expect(calib.count == 32 && rest.count == 468)
        #expect(Set(calib.items.map(\.path)).isDisjoint(with: rest.items.map(\.path)))
        #expect(calib.items.map(\.path) == a.map { items[$0].path })
        #expect(throws: DatasetError.self) { try ds.sample(501, seed: 0) }
    }
}

@Suite("NPY")
struct NPYTests {
    @Test("write then read round-trips, header is 64-byte aligned, write is atomic")
    func roundTrip() throws {
        let dir = try makeTempDir("npy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let values: [Float] = (0..<(3 * 5 * 7)).map { Float($0) * 0.25 - 3 }
        let p = dir + "/t.npy"
        try NPY.write(values, shape: [1, 3, 5, 7], to: p)
        let (back, shape) = try NPY.read(Float.self, from: p)
        #expect(back == values && shape == [1, 3, 5, 7])
        let raw = try ImageDecoder.readFile(p)
        let hlen = Int(raw[8]) | Int(raw[9]) << 8
        #expect((10 + hlen) % 64 == 0 && raw.count == 10 + hlen + values.count * 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["t.npy"])
        try NPY.write([UInt8](repeating: 7, count: 12), shape: [2, 2, 3], to: dir + "/u.npy")
        #expect(try NPY.read(UInt8.self, from: dir + "/u.npy").values == [UInt8](repeating: 7, count: 12))
        #expect(throws: NPYError.self) { try NPY.read(Float.self, from: dir + "/u.npy") }
        #expect(throws: NPYError.self) { try NPY.write(values, shape: [2, 2], to: dir + "/bad.npy") }
        #expect(throws: NPYError.self) { try NPY.write(values, shape: [105], to: "/nonexistent/dir/x.npy") }
    }

    @Test("reads a file written by numpy")
    func numpyFile() throws {
        let (v, shape) = try NPY.read(Float.self, from: Fixtures.path("numpy_written.npy"))
        #expect(shape == [2, 3, 4])
        #expect(v == (0..<24).map { Float($0) / 7 })
    }
}

@Suite("Dataset batches")
struct BatchTests {
    @Test("a batch equals the per-image tensors, and a bad file stops it with that file's error")
    func batch() throws {
        let root = try makeTempDir("batch")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for c in ["cat", "dog"] { try FileManager.default.createDirectory(atPath: root + "/" + c, withIntermediateDirectories: true) }
        try writeFile(root + "/cat/1.jpg", try Fixtures.bytes("photo.jpg"))
        try writeFile(root + "/dog/2.png", try Fixtures.bytes("portrait.png"))
        let ds = try ImageDataset.open(root)
        let spec = PreprocessSpec(size: 48, cropPct: 0.875, interpolation: .bicubic, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        let (t, labels) = try ds.batch(0..<2, spec: spec)
        #expect(labels == [0, 1])
        let one = try Preprocessor.tensor(fileAt: root + "/dog/2.png", spec: spec)
        #expect(Array(t[(3 * 48 * 48)...]) == one)
        try writeFile(root + "/dog/2.png", [1, 2, 3])
        #expect(throws: ImageError.unknownFormat(path: root + "/dog/2.png", firstBytes: [1, 2, 3])) {
            try ds.batch(0..<2, spec: spec)
        }
    }
}
