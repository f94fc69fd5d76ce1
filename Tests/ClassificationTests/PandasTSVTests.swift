import ArtifactKit
import Classification
import XCTest

/// The TSV reader against pandas' `read_csv(sep="\t", header=None, names=["Label", "Text"])`.
final class PandasTSVTests: XCTestCase {
    /// What pandas would show for a record: NA strings and absent fields become nil.
    private func pandasView(_ record: PandasTSV.Record) -> [String?] {
        func na(_ s: String?) -> String? { s.flatMap { PandasTSV.defaultNAValues.contains($0) ? nil : $0 } }
        return [na(record.fields.first), na(record.fields.count > 1 ? record.fields[1] : nil)]
    }

    func testSyntheticCasesMatchPandas() throws {
        let fixture = try DataPrepFixtures.json("tsv_cases.json")
        let cases = try XCTUnwrap(fixture["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 20)
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String)
            let input = Data(try XCTUnwrap(c["input"] as? String).utf8)
            if let rows = c["rows"] as? [[Any]] {
                let expected: [[String?]] = rows.map { $0.map { $0 as? String } }
                let records = try PandasTSV.records([UInt8](input), source: name)
                XCTAssertEqual(records.map(pandasView), expected, name)
                XCTAssertTrue(records.allSatisfy { $0.fields.count <= 2 }, name)
            } else {
                // pandas refuses these (unterminated quote, a third field); so must we.
                XCTAssertNotNil(c["error"] as? String, name)
                XCTAssertThrowsError(try LabeledTextTable.parse(input, source: name), name)
            }
        }
    }

    func testRecordsKnowTheirLines() throws {
        let text = "ham\ta\n\n\"spam\"\t\"two\nlines\"\nham\tc\r\nham\td\re"
        let records = try PandasTSV.records([UInt8](text.utf8), source: "t")
        XCTAssertEqual(records.map(\.line), [1, 3, 5, 6, 7])
        XCTAssertEqual(records[1].fields, ["spam", "two\nlines"])
        XCTAssertEqual(records[4].fields, ["e"])
    }

    func testUnterminatedQuoteNamesTheStartingLine() {
        let error = DataPrepFixtures.pipelineError {
            _ = try PandasTSV.records([UInt8]("ham\tok\nspam\t\"open\nmore\n".utf8), source: "bad.tsv")
        }
        XCTAssertEqual(error?.location, "bad.tsv")
        XCTAssertTrue(error?.message.contains("line 2") ?? false, error?.description ?? "")
    }

    func testInvalidUTF8IsRejectedWithItsLine() {
        var bytes = [UInt8]("ham\tok\nspam\t".utf8)
        bytes += [0xFF, 0xFE, 0x0A]
        let error = DataPrepFixtures.pipelineError { _ = try PandasTSV.records(bytes, source: "bad.tsv") }
        XCTAssertTrue(error?.message.contains("line 2") ?? false, error?.description ?? "")
    }

    /// The real file: 5,574 lines, 5,572 records; every label and text equals pandas' (sha256 prefix per row).
    func testRealFileParsesLikePandasRowByRow() throws {
        let url = try DataPrepFixtures.smsTSV()
        let rows = try LabeledTextTable.load(from: url)
        let expected = try String(contentsOf: DataPrepFixtures.directory.appendingPathComponent("sms_rows.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(rows.count, 5572)
        XCTAssertEqual(expected.count, 5572)
        XCTAssertEqual(rows.filter { $0.label == SpamLabels.ham }.count, 4825)
        XCTAssertEqual(rows.filter { $0.label == SpamLabels.spam }.count, 747)
        var mismatches: [String] = []
        for (row, line) in zip(rows, expected) {
            let got = "\(SpamLabels.names[row.label]) \(FileHash.sha256(of: row.text).prefix(16))"
            if got != line { mismatches.append("row \(row.row) (line \(row.line)): \(got) vs pandas \(line)") }
        }
        XCTAssertEqual(mismatches, [], "first mismatches: \(mismatches.prefix(3))")
        XCTAssertEqual(rows.map(\.row), Array(0..<5572))
    }
}
