import ArtifactKit
import Classification
import XCTest

final class LabeledTextTableTests: XCTestCase {
    /// Parsing each of `texts` fails with a PipelineError at `location` whose message mentions `part`.
    private func assertRejected(_ texts: String..., at location: String, saying part: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            let e = DataPrepFixtures.pipelineError({ _ = try LabeledTextTable.parse(Data(text.utf8), source: "in.tsv") }, file: file, line: line)
            XCTAssertEqual(e?.location, location, text.debugDescription, file: file, line: line)
            XCTAssertTrue(e?.message.contains(part) ?? false, e?.description ?? "no error for \(text.debugDescription)", file: file, line: line)
        }
    }

    func testLabelsMapToBookIndices() throws {
        let rows = try LabeledTextTable.parse(Data("ham\thello\nspam\tWIN\n".utf8), source: "in.tsv")
        XCTAssertEqual(rows.map(\.label), [0, 1])
        XCTAssertEqual(rows.map(\.text), ["hello", "WIN"])
        XCTAssertEqual(rows.map(\.line), [1, 2])
    }

    func testUnknownLabelNamesTheLine() {
        assertRejected("ham\ta\nspam\tb\neggs\tc\n", at: "in.tsv:3", saying: "unknown label \"eggs\"")
    }

    func testMissingTextNamesTheLine() {
        assertRejected("ham\ta\nspam\n", "ham\ta\nspam\t\n", "ham\ta\nspam\t\"\"\n", at: "in.tsv:2", saying: "no text")
    }

    func testPandasNAStringAsTextIsRejected() {
        assertRejected("ham\ta\nspam\tNA\n", at: "in.tsv:2", saying: "NA")
    }

    func testThirdFieldNamesTheLine() {
        assertRejected("ham\ta\nspam\tb\tc\n", at: "in.tsv:2", saying: "found 3")
    }

    func testEmptyInputsAreRejected() {
        assertRejected("", "\n\n", "   \n", at: "in.tsv", saying: "empty")
    }

    func testMissingFileSaysWhatToRun() {
        let e = DataPrepFixtures.pipelineError { _ = try LabeledTextTable.load(from: URL(fileURLWithPath: "/nonexistent/x.tsv")) }
        XCTAssertEqual(e?.location, "/nonexistent/x.tsv")
        XCTAssertTrue(e?.hint?.contains("pipeline run fetch") ?? false)
    }
}
