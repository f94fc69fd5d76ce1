import ArtifactKit
import TestSupport
import Classification
import XCTest

/// Bad input files: a PipelineError naming the file (and line), what is wrong and what to do,
/// ending with the command to rerun; nothing written.
final class ClassificationInputErrorTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try DataPrepFixtures.directoryWithFakeVocabulary("prep-errors")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Prepares `bytes` saved as `name`; returns the error, checking its hint and that no output appeared.
    private func failure(_ bytes: Data, _ name: String, file: StaticString = #filePath, line: UInt = #line,
                         _ edit: (inout ClassificationPrepareOptions) -> Void = { _ in }) -> (PipelineError?, String) {
        let input = dir.appendingPathComponent(name)
        try? bytes.write(to: input)
        var o = ClassificationPrepareOptions(input: input, vocabDirectory: dir, output: dir.appendingPathComponent("out"))
        edit(&o)
        let e = DataPrepFixtures.pipelineError({ _ = try ClassificationPreparer.run(o) { $0.split(separator: " ").map { _ in 1 } } },
                                               file: file, line: line)
        XCTAssertTrue(e?.hint?.contains("rerun `prepare classification`") ?? false, e?.description ?? "", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: o.output.path), "nothing written", file: file, line: line)
        return (e, input.path)
    }

    func testMissingColumnListsTheColumnsFound() {
        let (e, path) = failure(Data("text,category\na,x\nb,y\n".utf8), "in.csv") { $0.inputFormat.textColumn = .name("body") }
        XCTAssertEqual(e?.location, "\(path):1")
        XCTAssertTrue(e?.message.contains("no column \"body\" in the header; the columns are: \"text\", \"category\"") ?? false, e?.description ?? "")
        let (j, jpath) = failure(Data("{\"text\": \"a\", \"y\": 1}\n".utf8), "in.jsonl")
        XCTAssertEqual(j?.location, "\(jpath):1")
        XCTAssertTrue(j?.message.contains("no key \"label\"; this record has \"text\", \"y\"") ?? false, j?.description ?? "")
        let (i, _) = failure(Data("a,b\nc,d\n".utf8), "h.csv") { $0.inputFormat.textColumn = .index(5) }
        XCTAssertTrue(i?.message.contains("--text-column 5 is past the last column") ?? false, i?.description ?? "")
    }

    func testEmptyTextIsRefusedWithItsLine() {
        let (e, path) = failure(Data("text,label\n\"\",pos\nb,neg\n".utf8), "in.csv") {
            $0.inputFormat.textColumn = .name("text"); $0.inputFormat.labelColumn = .name("label")
        }
        XCTAssertEqual(e?.location, "\(path):2")
        XCTAssertTrue(e?.message.contains("no text (rows with empty text are refused, not skipped)") ?? false, e?.description ?? "")
    }

    func testAClassTooSmallForTheSplitIsRefused() {
        let rows = (0..<10).map { "a\tx\($0)\nb\ty\($0)\n" }.joined() + "c\tz\n"
        let (e, _) = failure(Data(rows.utf8), "in.tsv") { $0.balance = .none; $0.stratify = true }
        XCTAssertTrue(e?.message.contains("class \"c\" has too few rows for the split: 1 in all, none of them in train") ?? false,
                      e?.description ?? "")
        XCTAssertTrue(e?.message.contains("label in validation/test that train never saw") ?? false)
    }

    func testInvalidUTF8NamesTheLine() {
        let bad = Data("text,label\nok,a\n".utf8) + Data([0xFF, 0xFE]) + Data(",b\n".utf8)
        let (e, _) = failure(bad, "in.csv") { $0.inputFormat.textColumn = .name("text"); $0.inputFormat.labelColumn = .name("label") }
        XCTAssertTrue(e?.message.contains("line 3 is not valid UTF-8") ?? false, e?.description ?? "")
        let (j, jpath) = failure(Data("{\"text\": \"a\", \"label\": 0}\n".utf8) + Data([0x7B, 0xC3, 0x28, 0x7D, 0x0A]), "in.jsonl")
        XCTAssertEqual(j?.location, "\(jpath):2")
        XCTAssertTrue(j?.message.contains("line 2 is not valid UTF-8") ?? false, j?.description ?? "")
    }

    func testAnEmptyFileSaysSo() {
        let (e, _) = failure(Data("\n".utf8), "in.csv") { $0.inputFormat.textColumn = .index(3) }
        XCTAssertTrue(e?.message.contains("the data set is empty") ?? false, e?.description ?? "")
    }

    func testASingleClassIsRefused() {
        let (e, path) = failure(Data("pos,x\npos,y\n".utf8), "in.csv")
        XCTAssertEqual(e?.location, path)
        XCTAssertTrue(e?.message.contains("every row has the label \"pos\": a classifier needs at least 2 classes") ?? false, e?.description ?? "")
    }
}
