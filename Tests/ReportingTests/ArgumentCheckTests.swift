import Foundation
import Testing
@testable import Reporting
import Quant

@Suite struct ArgumentCheckTests {
    @Test func parsesBitsLists() throws {
        #expect(try BitSetting.parseList("W8A8,W6A6,W4A4,W3A3") == [setting(8), setting(6), setting(4), setting(3)])
        #expect(try BitSetting.parseList(" w4a8 , 8") == [setting(4, 8), setting(8)])
        #expect(setting(4, 8).description == "W4A8")
    }

    @Test(arguments: [
        ("W8", "--bits 'W8': expected W<bits>A<bits> such as W4A4, or a bare number such as 8. Use a comma-separated list like W8A8,W6A6,W4A4,W3A3 (weights W, activations A, 2 to 8 bits each)"),
        ("W16A16", "--bits 'W16A16': bit widths must be between 2 and 8. Use a comma-separated list like W8A8,W6A6,W4A4,W3A3 (weights W, activations A, 2 to 8 bits each)"),
        ("W8A8,,W4A4", "--bits 'W8A8,,W4A4': empty item between commas. Use a comma-separated list like W8A8,W6A6,W4A4,W3A3 (weights W, activations A, 2 to 8 bits each)"),
        ("", "--bits is empty; give at least one value"),
        ("W8A8,w8a8", "--bits lists 'W8A8' twice"),
        ("int8", "--bits 'int8': expected W<bits>A<bits> such as W4A4, or a bare number such as 8. Use a comma-separated list like W8A8,W6A6,W4A4,W3A3 (weights W, activations A, 2 to 8 bits each)"),
    ])
    func badBitsStringsGetClearMessages(input: String, message: String) {
        do {
            _ = try BitSetting.parseList(input)
            Issue.record("'\(input)' was accepted")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func methodsListWithSuggestion() throws {
        let known = ["adalog", "uniform-minmax"]
        #expect(try ArgumentChecks.parseMethods("AdaLog, uniform-minmax", known: known) == known)
        #expect(throws: ArgumentCheckError.unknownMethod(option: "--methods", value: "adalgo", known: known, suggestion: "adalog")) {
            try ArgumentChecks.parseMethods("adalgo", known: known)
        }
        do {
            _ = try ArgumentChecks.parseMethods("gptq", known: known)
            Issue.record("gptq accepted")
        } catch {
            #expect(error.description == "--methods: unknown method 'gptq'. Known methods: adalog, uniform-minmax")
        }
        #expect(throws: ArgumentCheckError.duplicate(option: "--methods", value: "adalog")) {
            try ArgumentChecks.parseMethods("adalog,ADALOG", known: known)
        }
    }

    @Test func missingFolder() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("calib").path
        do {
            try ArgumentChecks.imageFolder(missing, option: "--calib")
            Issue.record("missing folder accepted")
        } catch {
            #expect(error == .missingFolder(option: "--calib", path: missing))
            #expect(error.description == "--calib \(missing): no such folder")
        }
    }

    @Test func emptyCalibrationFolder() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Non-image files and hidden images do not count.
        try Data("x".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        try Data("x".utf8).write(to: dir.appendingPathComponent(".hidden.jpg"))
        do {
            try ArgumentChecks.imageFolder(dir.path, option: "--calib")
            Issue.record("empty folder accepted")
        } catch {
            #expect(error.description
                == "--calib \(dir.path): the folder has no .jpg, .jpeg or .png images (looked in it and its sub-folders)")
        }
    }

    @Test func countsImagesInSubfoldersAndChecksMinimum() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cls = dir.appendingPathComponent("cat")
        try FileManager.default.createDirectory(at: cls, withIntermediateDirectories: true)
        for name in ["a.JPEG", "b.png", "c.jpg"] { try Data([0]).write(to: cls.appendingPathComponent(name)) }
        #expect(try ArgumentChecks.imageFolder(dir.path, option: "--data") == 3)
        #expect(throws: ArgumentCheckError.tooFewImages(option: "--calib", path: dir.path, found: 3, needed: 8)) {
            try ArgumentChecks.imageFolder(dir.path, option: "--calib", minimumImages: 8)
        }
        let file = cls.appendingPathComponent("a.JPEG").path
        #expect(throws: ArgumentCheckError.notAFolder(option: "--data", path: file)) {
            try ArgumentChecks.imageFolder(file, option: "--data")
        }
    }

    @Test func outputDirectoryIsCreatedOrRejected() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let nested = dir.appendingPathComponent("runs/vit").path
        try ArgumentChecks.outputDirectory(nested)
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: nested, isDirectory: &isDir) && isDir.boolValue)
        let file = dir.appendingPathComponent("file.txt")
        try Data("x".utf8).write(to: file)
        #expect(throws: ArgumentCheckError.outputIsAFile(option: "--out", path: file.path)) {
            try ArgumentChecks.outputDirectory(file.path)
        }
        let underFile = file.appendingPathComponent("sub").path
        #expect(throws: ArgumentCheckError.self) { try ArgumentChecks.outputDirectory(underFile) }
    }

    @Test func editDistance() {
        #expect(ArgumentChecks.editDistance("adalgo", "adalog") == 2)
        #expect(ArgumentChecks.editDistance("", "abc") == 3)
        #expect(ArgumentChecks.editDistance("abc", "") == 3)
    }
}
