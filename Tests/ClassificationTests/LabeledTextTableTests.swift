import ArtifactKit
import Classification
import XCTest

final class LabeledTextTableTests: XCTestCase {
    private func error(_ text: String) -> PipelineError? {
        DataPrepFixtures.pipelineError { _ = try LabeledTextTable.parse(Data(text.utf8), source: "in.tsv") }
    }

    func testLabelsMapToBookIndices() throws {
        let rows = try LabeledTextTable.parse(Data("ham\thello\nspam\tWIN\n".utf8), source: "in.tsv")
        XCTAssertEqual(rows.map(\.label), [0, 1])
        XCTAssertEqual(rows.map(\.text), ["hello", "WIN"])
        XCTAssertEqual(rows.map(\.line), [1, 2])
    }

    func testUnknownLabelNamesTheLine() {
        let e = error("ham\ta\nspam\tb\neggs\tc\n")
        XCTAssertEqual(e?.location, "in.tsv:3")
        XCTAssertTrue(e?.message.contains("unknown label \"eggs\"") ?? false, e?.description ?? "")
    }

    func testMissingTextNamesTheLine() {
        for text in ["ham\ta\nspam\n", "ham\ta\nspam\t\n", "ham\ta\nspam\t\"\"\n"] {
            let e = error(text)
            XCTAssertEqual(e?.location, "in.tsv:2", text.debugDescription)
            XCTAssertTrue(e?.message.contains("no text") ?? false, e?.description ?? "")
        }
    }

    func testPandasNAStringAsTextIsRejected() {
        let e = error("ham\ta\nspam\tNA\n")
        XCTAssertEqual(e?.location, "in.tsv:2")
        XCTAssertTrue(e?.message.contains("NA") ?? false)
    }

    func testThirdFieldNamesTheLine() {
        let e = error("ham\ta\nspam\tb\tc\n")
        XCTAssertEqual(e?.location, "in.tsv:2")
        XCTAssertTrue(e?.message.contains("found 3") ?? false, e?.description ?? "")
    }

    func testEmptyInputsAreRejected() {
        for text in ["", "\n\n", "   \n"] {
            let e = error(text)
            XCTAssertEqual(e?.location, "in.tsv")
            XCTAssertTrue(e?.message.contains("empty") ?? false, e?.description ?? "")
        }
    }

    func testMissingFileSaysWhatToRun() {
        let e = DataPrepFixtures.pipelineError { _ = try LabeledTextTable.load(from: URL(fileURLWithPath: "/nonexistent/x.tsv")) }
        XCTAssertEqual(e?.location, "/nonexistent/x.tsv")
        XCTAssertTrue(e?.hint?.contains("pipeline run fetch") ?? false)
    }
}
