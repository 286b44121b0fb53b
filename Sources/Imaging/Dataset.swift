import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): the stated PRNG behind ``ImageDataset/sample(_:seed:)``, so a sample drawn
/// with a seed is the same on every platform and Swift version.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Why a dataset folder or labels file could not be used.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    case notADirectory(String)
    case unreadable(path: String, reason: String)
    case noImages(String)
    case badLabels(file: String, line: Int, reason: String)
    case unknownClass(file: String, name: String, labels: String)
    case missingFile(listedIn: String, line: Int, path: String)
    case badSample(String)

    public var description: String {
        switch self {
        case let .notADirectory(p): return "\(p): not a folder; pass a folder of images (or of class sub-folders)"
        case let .unreadable(p, r): return "\(p): cannot read: \(r)"
        case let .noImages(p): return "\(p): no .jpg/.jpeg/.png images found (looked in the folder and its sub-folders)"
        case let .badLabels(f, l, r): return "\(f):\(l): \(r)"
        case let .unknownClass(f, n, labels): return "\(f): class '\(n)' is not in the labels file \(labels)"
        case let .missingFile(list, l, p): return "\(list):\(l): listed image \(p) does not exist"
        case let .badSample(r): return "cannot sample: \(r)"
        }
    }
}

/// One image of a dataset: its path and, for labelled datasets, its class index.
public struct DatasetItem: Sendable, Equatable {
    public var path: String
    public var label: Int?
}

/// A list of images in a deterministic order with optional labels and class names.
///
/// Layouts, chosen by what is on disk plus an optional labels file:
/// - **ImageFolder** `root/<class>/<image>`: class index = position of the sub-folder name in code-point order
///   (torchvision's `sorted()`), or its line in a synset labels file when one is given; files sorted within a class.
/// - **ImageNet flat** `root/nXXXXXXXX_*.JPEG`: the class is the synset prefix's index in the labels file (one synset
///   per line, or `index<TAB>synset<TAB>name` lines); without a labels file the bundled ImageNet-1k list is used.
/// - **File list**: a labels file of `filename label` lines (ImageNet `val.txt` form), paths relative to root;
///   labels below 1000 are named with the ImageNet-1k class names.
/// - **Unlabelled**: any other flat folder of images (calibration).
public struct ImageDataset: Sendable {
    /// Which on-disk layout was detected (see the type's documentation).
    public enum Layout: String, Sendable { case imageFolder, imagenetFlat, fileList, unlabelled }

    /// The folder the dataset was opened from.
    public let root: String
    public let layout: Layout
    public private(set) var items: [DatasetItem]
    /// Class names in class-index order (empty for unlabelled datasets).
    public let classNames: [String]

    /// Number of images.
    public var count: Int { items.count }
    public var isLabelled: Bool { layout != .unlabelled }

    public init(root: String, layout: Layout, items: [DatasetItem], classNames: [String]) {
        self.root = root
        self.layout = layout
        self.items = items
        self.classNames = classNames
    }

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    static func isImage(_ name: String) -> Bool {
        guard !name.hasPrefix("."), let dot = name.lastIndex(of: ".") else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// Code-point order, as Python's `sorted()` on str.
    static func codePointLess(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
    }

    static func listDirectory(_ path: String) throws(DatasetError) -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: path).sorted(by: codePointLess) }
        catch { throw .unreadable(path: path, reason: error.localizedDescription) }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    /// A parsed labels file.
    public enum Labels: Sendable, Equatable {
        /// Class identifiers (synsets or folder names) in class-index order, with display names.
        case classes(ids: [String], names: [String])
        /// `filename label` lines.
        case fileList([(String, Int)])

        public static func == (a: Labels, b: Labels) -> Bool {
            switch (a, b) {
            case let (.classes(i1, n1), .classes(i2, n2)): return i1 == i2 && n1 == n2
            case let (.fileList(l1), .fileList(l2)): return l1.elementsEqual(l2) { $0 == $1 }
            default: return false
            }
        }
    }

    /// Parses a labels file: `index<TAB>synset<TAB>name`, one class id per line, or `filename label` lines.
    public static func parseLabels(_ text: String, file: String) throws(DatasetError) -> Labels {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var content: [(Int, String)] = []
        for (i, l) in lines.enumerated() where !l.isEmpty && !l.hasPrefix("#") { content.append((i + 1, l)) }
        guard let first = content.first else { throw .badLabels(file: file, line: 1, reason: "the labels file is empty") }
        let tabbed = first.1.split(separator: "\t", omittingEmptySubsequences: false)
        if tabbed.count >= 3, Int(tabbed[0]) != nil {
            var ids: [String] = [], names: [String] = []
            for (n, l) in content {
                let f = l.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard f.count >= 3, let idx = Int(f[0]) else {
                    throw .badLabels(file: file, line: n, reason: "expected 'index<TAB>synset<TAB>name', got '\(l)'")
                }
                guard idx == ids.count else {
                    throw .badLabels(file: file, line: n, reason: "class index \(idx) out of order (expected \(ids.count))")
                }
                ids.append(f[1])
                names.append(f[2...].joined(separator: "\t"))
            }
            return .classes(ids: ids, names: names)
        }
        let words = first.1.split(whereSeparator: \.isWhitespace)
        if words.count == 2, Int(words[1]) != nil, isImage(String(words[0])) {
            var list: [(String, Int)] = []
            for (n, l) in content {
                let w = l.split(whereSeparator: \.isWhitespace)
                guard w.count == 2, let lab = Int(w[1]), lab >= 0 else {
                    throw .badLabels(file: file, line: n, reason: "expected 'filename label', got '\(l)'")
                }
                list.append((String(w[0]), lab))
            }
            return .fileList(list)
        }
        var ids: [String] = []
        for (n, l) in content {
            let w = l.split(whereSeparator: \.isWhitespace)
            guard w.count >= 1 else { continue }
            if w.count > 1 && Int(w[1]) != nil {
                throw .badLabels(file: file, line: n, reason: "mixes class-list and 'filename label' forms: '\(l)'")
            }
            ids.append(String(w[0]))
        }
        return .classes(ids: ids, names: ids)
    }

    /// Opens a dataset at `root`, choosing the layout from the folder contents and the optional labels file.
    public static func open(_ root: String, labels labelsPath: String? = nil) throws(DatasetError) -> ImageDataset {
        guard isDirectory(root) else { throw .notADirectory(root) }
        var labels: Labels? = nil
        if let lp = labelsPath {
            let text: String
            do { text = try String(contentsOfFile: lp, encoding: .utf8) } catch {
                throw .unreadable(path: lp, reason: error.localizedDescription)
            }
            labels = try parseLabels(text, file: lp)
        }
        let entries = try listDirectory(root)
        let subdirs = entries.filter { !$0.hasPrefix(".") && isDirectory(root + "/" + $0) }
        let files = entries.filter { isImage($0) && !isDirectory(root + "/" + $0) }

        if case let .fileList(list)? = labels {
            var items: [DatasetItem] = []
            var maxLabel = -1
            for (i, (name, lab)) in list.enumerated() {
                let p = root + "/" + name
                guard FileManager.default.fileExists(atPath: p) else {
                    throw .missingFile(listedIn: labelsPath ?? "", line: i + 1, path: p)
                }
                items.append(DatasetItem(path: p, label: lab))
                maxLabel = max(maxLabel, lab)
            }
            if items.isEmpty { throw .noImages(root) }
            // `filename label` is ImageNet's val.txt form: labels below 1000 get the ImageNet-1k names.
            let names = maxLabel < 1000 && !ImageNetClasses.names.isEmpty ? ImageNetClasses.names : (0...maxLabel).map { String($0) }
            return ImageDataset(root: root, layout: .fileList, items: items, classNames: names)
        }

        let classIds: [String]?, classNames: [String]?
        if case let .classes(ids, names)? = labels { (classIds, classNames) = (ids, names) } else { (classIds, classNames) = (nil, nil) }

        if !subdirs.isEmpty {
            // ImageFolder
            var items: [DatasetItem] = []
            let ids = classIds ?? subdirs
            var index: [String: Int] = [:]
            for (i, id) in ids.enumerated() where index[id] == nil { index[id] = i }
            for d in subdirs {
                let imgs = try listDirectory(root + "/" + d).filter(isImage)
                if imgs.isEmpty { continue }
                guard let c = index[d] else {
                    throw .unknownClass(file: root + "/" + d, name: d, labels: labelsPath ?? "")
                }
                for f in imgs { items.append(DatasetItem(path: root + "/" + d + "/" + f, label: c)) }
            }
            if items.isEmpty { throw .noImages(root) }
            return ImageDataset(root: root, layout: .imageFolder, items: dedupeOrder(items), classNames: classNames ?? subdirs)
        }

        if files.isEmpty { throw .noImages(root) }
        let synsetPrefixed = files.allSatisfy { synsetPrefix(of: $0) != nil }
        if synsetPrefixed || classIds != nil {
            let ids = classIds ?? ImageNetClasses.synsets
            let names = classNames ?? ImageNetClasses.names
            var index: [String: Int] = [:]
            for (i, id) in ids.enumerated() where index[id] == nil { index[id] = i }
            var items: [DatasetItem] = []
            for f in files {
                guard let syn = synsetPrefix(of: f) else {
                    throw .badLabels(file: root + "/" + f, line: 0, reason: "file name does not start with a synset 'nXXXXXXXX_'")
                }
                guard let c = index[syn] else {
                    throw .unknownClass(file: root + "/" + f, name: syn, labels: labelsPath ?? "the bundled ImageNet-1k list")
                }
                items.append(DatasetItem(path: root + "/" + f, label: c))
            }
            return ImageDataset(root: root, layout: .imagenetFlat, items: items, classNames: names)
        }
        return ImageDataset(root: root, layout: .unlabelled,
                            items: files.map { DatasetItem(path: root + "/" + $0, label: nil) }, classNames: [])
    }

    /// Items of an ImageFolder opened with a labels file come sorted by (class index, path).
    private static func dedupeOrder(_ items: [DatasetItem]) -> [DatasetItem] {
        items.sorted { a, b in
            let la = a.label ?? -1, lb = b.label ?? -1
            return la != lb ? la < lb : codePointLess(a.path, b.path)
        }
    }

    /// `n01440764` from `n01440764_tench.JPEG`, or nil.
    public static func synsetPrefix(of name: String) -> String? {
        let u = Array(name.utf8)
        guard u.count >= 10, u[0] == UInt8(ascii: "n"), u[9] == UInt8(ascii: "_"),
              u[1...8].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return String(decoding: u[0..<9], as: UTF8.self)
    }

    /// The display name of class `label`, or its number when there are no names.
    public func className(_ label: Int) -> String {
        label >= 0 && label < classNames.count ? classNames[label] : String(label)
    }

    /// Indices of `n` items drawn without replacement with ``SplitMix64`` seeded by `seed`
    /// (partial Fisher–Yates: for i in 0..<n, j = i + next() % (count - i), swap), returned in ascending order.
    public func sampleIndices(_ n: Int, seed: UInt64) throws(DatasetError) -> [Int] {
        guard n >= 0, n <= count else { throw .badSample("asked for \(n) images but the dataset has \(count)") }
        var idx = Array(0..<count)
        var rng = SplitMix64(seed: seed)
        for i in 0..<n {
            let j = i + Int(rng.next() % UInt64(count - i))
            idx.swapAt(i, j)
        }
        return Array(idx[0..<n]).sorted()
    }

    /// A reproducible random subset of `n` images (same seed → same images on every platform), in dataset order.
    public func sample(_ n: Int, seed: UInt64) throws(DatasetError) -> ImageDataset {
        let picked = try sampleIndices(n, seed: seed)
        return ImageDataset(root: root, layout: layout, items: picked.map { items[$0] }, classNames: classNames)
    }

    /// Splits into a calibration sample of `n` images (as ``sample(_:seed:)``) and the rest, both in dataset order.
    public func split(calibration n: Int, seed: UInt64) throws(DatasetError) -> (calibration: ImageDataset, rest: ImageDataset) {
        let picked = try sampleIndices(n, seed: seed)
        var chosen = [Bool](repeating: false, count: count)
        for i in picked { chosen[i] = true }
        let rest = items.indices.filter { !chosen[$0] }.map { items[$0] }
        return (ImageDataset(root: root, layout: layout, items: picked.map { items[$0] }, classNames: classNames),
                ImageDataset(root: root, layout: layout, items: rest, classNames: classNames))
    }
}

/// The 1000 ImageNet-1k classes in class-index order (bundled resource `imagenet-synsets.txt`).
public enum ImageNetClasses {
    static let table: (synsets: [String], names: [String]) = {
        guard let url = Bundle.module.url(forResource: "imagenet-synsets", withExtension: "txt"),
              let text = try? String(contentsOf: url, encoding: .utf8),
              case let .classes(ids, names)? = try? ImageDataset.parseLabels(text, file: url.path) else { return ([], []) }
        return (ids, names)
    }()

    /// Synset ids (`n01440764`, ...) in class-index order; empty if the resource bundle is missing.
    public static var synsets: [String] { table.synsets }
    /// Human-readable names (`tench`, ...) in class-index order.
    public static var names: [String] { table.names }
}

extension ImageDataset {
    /// Decodes and preprocesses `items[range]` into one NCHW Float32 batch (`range.count * 3 * size * size` values,
    /// image order as in the dataset) and returns it with the labels. The first unreadable image stops the batch with
    /// its error (which names the file).
    public func batch(_ range: Range<Int>, spec: PreprocessSpec, options: DecodeOptions = DecodeOptions())
        throws(ImageError) -> (tensor: [Float], labels: [Int?])
    {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw .invalidSpec("batch range \(range) is outside the dataset's \(count) images")
        }
        try spec.validate()
        let per = 3 * spec.size * spec.size
        var tensor = [Float](repeating: 0, count: per * range.count)
        var failure: ImageError? = nil
        tensor.withUnsafeMutableBufferPointer { buf in
            for (k, i) in range.enumerated() {
                do throws(ImageError) {
                    try Preprocessor.preprocess(fileAt: items[i].path, spec: spec, options: options,
                                                into: buf.baseAddress! + k * per)
                } catch {
                    failure = error
                    return
                }
            }
        }
        if let failure { throw failure }
        return (tensor, range.map { items[$0].label })
    }
}
