import ArtifactKit
import Classification
import XCTest

/// CSV bytes against pandas' `to_csv(index=None)`.
final class PandasCSVTests: XCTestCase {
    func testTrickyTextsMatchPandasBytes() throws {
        let fixture = try DataPrepFixtures.json("csv_cases.json")
        for entry in [fixture, try XCTUnwrap(fixture["bare_cr"] as? [String: Any])] {
            let labels = try XCTUnwrap(entry["labels"] as? [Int]), texts = try XCTUnwrap(entry["texts"] as? [String])
            let expected = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(entry["csv_base64"] as? String)))
            let got = PandasCSV.labelTextCSV(labels: labels, texts: texts)
            XCTAssertEqual(got, expected, String(decoding: got, as: UTF8.self).debugDescription)
        }
    }

    func testRealSplitsMatchPandasHashes() throws {
        let rows = try LabeledTextTable.load(from: DataPrepFixtures.smsTSV())
        let split = try BookSplit(rows: rows, seed: 123, trainFraction: 0.7, validationFraction: 0.1)
        let fixture = try XCTUnwrap(try DataPrepFixtures.json("splits.json")["splits"] as? [String: [String: Any]])
        for (name, part) in [("train", split.train), ("validation", split.validation), ("test", split.test)] {
            let data = PandasCSV.labelTextCSV(part)
            XCTAssertEqual(data.count, fixture[name]?["csv_size"] as? Int, name)
            XCTAssertEqual(FileHash.sha256(of: data), fixture[name]?["csv_sha256"] as? String, name)
        }
    }
}
