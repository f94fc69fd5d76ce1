import ArtifactKit
import Classification
import XCTest

/// The book's balance + shuffle + split against pandas' (original row indices, in order).
final class BookSplitTests: XCTestCase {
    func testRealDataSplitEqualsPandasRowForRow() throws {
        let rows = try LabeledTextTable.load(from: DataPrepFixtures.smsTSV())
        let split = try BookSplit(rows: rows, seed: 123, trainFraction: 0.7, validationFraction: 0.1)
        let fixture = try XCTUnwrap(try DataPrepFixtures.json("splits.json")["splits"] as? [String: [String: Any]])
        XCTAssertEqual(split.balancedCounts, [747, 747])
        for (name, part) in [("train", split.train), ("validation", split.validation), ("test", split.test)] {
            let expected = try XCTUnwrap(fixture[name])
            XCTAssertEqual(part.map(\.row), try XCTUnwrap(expected["original_rows"] as? [Int]), name)
            XCTAssertEqual(part.filter { $0.label == 0 }.count, expected["ham"] as? Int, name)
            XCTAssertEqual(part.filter { $0.label == 1 }.count, expected["spam"] as? Int, name)
        }
        XCTAssertEqual([split.train.count, split.validation.count, split.test.count], [1045, 149, 300])
    }

    func testSplitArithmeticAndCoverage() throws {
        // 7 spam, 20 ham: 14 balanced rows -> int(9.8)=9 train, int(1.4)=1 validation, 4 test.
        let rows = (0..<27).map { LabeledText(label: $0 % 3 == 0 && $0 < 21 ? 1 : 0, text: "t\($0)", row: $0, line: $0 + 1) }
        XCTAssertEqual(rows.filter { $0.label == 1 }.count, 7)
        let split = try BookSplit(rows: rows, seed: 123, trainFraction: 0.7, validationFraction: 0.1)
        XCTAssertEqual([split.train.count, split.validation.count, split.test.count], [9, 1, 4])
        let all = split.train + split.validation + split.test
        XCTAssertEqual(Set(all.map(\.row)).count, 14)
        XCTAssertEqual(all.filter { $0.label == 1 }.count, 7)
        // Same seed, same split; another seed, another order.
        let again = try BookSplit(rows: rows, seed: 123, trainFraction: 0.7, validationFraction: 0.1)
        XCTAssertEqual(again.train.map(\.row), split.train.map(\.row))
        let other = try BookSplit(rows: rows, seed: 7, trainFraction: 0.7, validationFraction: 0.1)
        XCTAssertNotEqual((other.train + other.validation + other.test).map(\.row), all.map(\.row))
    }

    func testBadFractionsAndClassCountsAreRejected() {
        let rows = [LabeledText(label: 0, text: "a", row: 0, line: 1), LabeledText(label: 1, text: "b", row: 1, line: 2)]
        XCTAssertThrowsError(try BookSplit(rows: rows, seed: 1, trainFraction: 0.8, validationFraction: 0.3))
        XCTAssertThrowsError(try BookSplit(rows: rows, seed: 1, trainFraction: -0.1, validationFraction: 0.1))
        XCTAssertThrowsError(try BookSplit(rows: [rows[0]], seed: 1, trainFraction: 0.7, validationFraction: 0.1))
        XCTAssertThrowsError(try BookSplit(rows: [rows[1], rows[1]], seed: 1, trainFraction: 0.7, validationFraction: 0.1))
    }
}
