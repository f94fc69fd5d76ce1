import ArtifactKit
import Classification
import TestSupport
import XCTest

/// `prepare classification` on other files: CSV/TSV against pandas, JSONL, columns, label numbering.
final class ClassificationInputTests: XCTestCase {
    private func read(_ text: String, _ source: String, _ options: ClassificationInputOptions = .init()) throws -> LabeledTable {
        try LabeledTextTable.read(Data(text.utf8), source: source, options: options)
    }

    func testDelimitedFilesReadAsPandasReadCSV() throws {
        let cases = try XCTUnwrap(DataPrepFixtures.json("classify_cases.json")["csv_cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String)
            let data = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(c["input_base64"] as? String)))
            let options = ClassificationInputOptions(format: c["sep"] as? String == "," ? .csv : .tsv,
                                                     textColumn: .name(try XCTUnwrap(c["text_column"] as? String)),
                                                     labelColumn: .name(try XCTUnwrap(c["label_column"] as? String)))
            let table = try LabeledTextTable.read(data, source: name, options: options)
            XCTAssertEqual(table.rows.map(\.text), c["texts"] as? [String], name)
            XCTAssertEqual(table.rows.map { table.labelNames[$0.label] }, c["labels"] as? [String], name)
        }
    }

    func testLabelsAreNumberedSortedNumericallyOrLexicographically() throws {
        let stars = try read("review,stars\na,10\nb,9\nc,2\nd,9\n", "r.csv", .init(textColumn: .name("review"), labelColumn: .name("stars")))
        XCTAssertEqual(stars.labelNames, ["2", "9", "10"])
        XCTAssertEqual(stars.rows.map(\.label), [2, 1, 0, 1])
        let words = try read("spam\tx\nham\ty\nfoo\tz\n", "w.tsv")
        XCTAssertEqual(words.labelNames, ["foo", "ham", "spam"])
        let given = try read("spam\tx\nham\ty\n", "g.tsv", .init(labelNames: ["spam", "ham"]))
        XCTAssertEqual(given.rows.map(\.label), [0, 1])
    }

    func testColumnsByIndexInAHeaderlessCSV() throws {
        let t = try read("1,\"hello, world\",pos\n2,bye,neg\n", "h.csv", .init(textColumn: .index(1), labelColumn: .index(2)))
        XCTAssertEqual(t.rows.map(\.text), ["hello, world", "bye"])
        XCTAssertEqual(t.labelNames, ["neg", "pos"])
        XCTAssertEqual(t.format, .csv)
    }

    func testJSONLWithStringAndIntegerLabels() throws {
        let t = try read("\u{FEFF}{\"text\": \"a\", \"label\": 1}\r\n\n{\"text\": \"b\\nc\", \"label\": 0}\n{\"text\": \"d\", \"label\": 2}\n", "d.jsonl")
        XCTAssertEqual(t.labelNames, ["0", "1", "2"])
        XCTAssertEqual(t.rows.map(\.text), ["a", "b\nc", "d"])
        XCTAssertEqual(t.rows.map(\.line), [1, 3, 4])
        let keyed = try read("{\"s\": \"x\", \"y\": \"pos\"}\n{\"s\": \"z\", \"y\": \"neg\"}\n", "k.jsonl", .init(textColumn: .name("s"), labelColumn: .name("y")))
        XCTAssertEqual(keyed.rows.map(\.label), [1, 0])
    }

    func testFormatFromExtensionOrFlag() throws {
        XCTAssertEqual(try ClassificationFileFormat.detect(URL(fileURLWithPath: "/x/SMSSpamCollection")), .tsv)
        XCTAssertEqual(try ClassificationFileFormat.detect(URL(fileURLWithPath: "a.CSV")), .csv)
        XCTAssertEqual(try ClassificationFileFormat.detect(URL(fileURLWithPath: "a.ndjson")), .jsonl)
        let e = DataPrepFixtures.pipelineError { _ = try ClassificationFileFormat.detect(URL(fileURLWithPath: "a.xlsx")) }
        XCTAssertTrue(e?.hint?.contains("--format") ?? false)
        XCTAssertEqual(ColumnRef(parsing: "3"), .index(3))
        XCTAssertEqual(ColumnRef(parsing: "text"), .name("text"))
    }
}

/// `--balance`, `--stratify` and `--limit` on small tables.
final class SplitOptionsTests: XCTestCase {
    /// 30 rows of class 0, 12 of class 1, 6 of class 2.
    private let rows: [LabeledText] = (0..<48).map { i in LabeledText(label: i < 30 ? 0 : (i < 42 ? 1 : 2), text: "t\(i)", row: i, line: i + 1) }
    private let names = ["a", "b", "c"]

    private func split(_ edit: (inout BookSplit.Options) -> Void) throws -> BookSplit {
        var o = BookSplit.Options()
        edit(&o)
        return try BookSplit(rows: rows, labelNames: names, options: o)
    }

    func testUndersampleCutsEveryClassToTheSmallest() throws {
        let s = try split { _ in }
        XCTAssertEqual(s.balancedCounts, [6, 6, 6])
        XCTAssertEqual(s.train.count + s.validation.count + s.test.count, 18)
        let none = try split { $0.balance = .none }
        XCTAssertEqual(none.balancedCounts, [30, 12, 6])
        XCTAssertEqual(Set((none.train + none.validation + none.test).map(\.row)).count, 48)
    }

    func testStratifiedSplitKeepsClassProportions() throws {
        let s = try split { $0.balance = .none; $0.stratify = true; $0.trainFraction = 0.5; $0.validationFraction = 0.25 }
        func counts(_ part: [LabeledText]) -> [Int] { (0..<3).map { c in part.filter { $0.label == c }.count } }
        XCTAssertEqual(counts(s.train), [15, 6, 3])
        XCTAssertEqual(counts(s.validation), [7, 3, 1])
        XCTAssertEqual(counts(s.test), [8, 3, 2])
    }

    func testLimitKeepsASeededSubsetInFileOrder() throws {
        let a = try split { $0.balance = .none; $0.limit = 20 }, b = try split { $0.balance = .none; $0.limit = 20 }
        let rowsA = (a.train + a.validation + a.test).map(\.row)
        XCTAssertEqual(rowsA.count, 20)
        XCTAssertEqual(rowsA, (b.train + b.validation + b.test).map(\.row))
        XCTAssertNotNil(DataPrepFixtures.pipelineError { _ = try self.split { $0.limit = 0 } })
    }
}

/// Splits given by the input: `--train/--validation/--test` files or a split column.
final class GivenSplitsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try DataPrepFixtures.directoryWithFakeVocabulary("prep-given")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func prepare(_ edit: (inout ClassificationPrepareOptions) -> Void) throws -> Manifest {
        var o = ClassificationPrepareOptions(input: dir.appendingPathComponent("unused"), vocabDirectory: dir, output: dir.appendingPathComponent("out"))
        edit(&o)
        return try ClassificationPreparer.run(o) { $0.split(separator: " ").map { _ in 1 } }
    }

    private func write(_ name: String, _ text: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func testThreeFilesAreUsedAsGivenWithLabelsNumberedOverAll() throws {
        let files = try [("train.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n{\"text\": \"c\", \"label\": \"y\"}\n"),
                         ("val.jsonl", "{\"text\": \"d\", \"label\": \"y\"}\n"),
                         ("test.jsonl", "{\"text\": \"e\", \"label\": \"x\"}\n{\"text\": \"f\", \"label\": \"x\"}\n")].map(write)
        let m = try prepare { $0.input = files[0]; $0.splitFiles = files; $0.balance = .none }
        XCTAssertEqual([m.stats["train_rows"], m.stats["validation_rows"], m.stats["test_rows"]], [3, 1, 2])
        XCTAssertEqual(m.params["label_names"], ["x", "y"])
        XCTAssertEqual(m.inputs.prefix(3).map(\.path), files.map(\.relativePath))
        let test = try String(contentsOf: dir.appendingPathComponent("out/test.csv"), encoding: .utf8)
        XCTAssertEqual(test, "Label,Text\n0,e\n0,f\n")
        // undersample balances (and shuffles) the train split only.
        let balanced = try prepare { $0.input = files[0]; $0.splitFiles = files }
        XCTAssertEqual([balanced.stats["train_rows"], balanced.stats["validation_rows"], balanced.stats["test_rows"]], [2, 1, 2])
    }

    func testSplitColumnAssignsRowsAndUnknownValuesAreRefused() throws {
        let csv = try write("all.csv", "text,label,part\na,x,train\nb,y,train\nc,x,dev\nd,y,test\ne,x,TEST\n")
        let m = try prepare {
            $0.input = csv; $0.balance = .none
            $0.inputFormat = ClassificationInputOptions(textColumn: .name("text"), labelColumn: .name("label"), splitColumn: .name("part"))
        }
        XCTAssertEqual([m.stats["train_rows"], m.stats["validation_rows"], m.stats["test_rows"]], [2, 1, 2])
        XCTAssertEqual(m.params["split_column"], "part")
        let bad = try write("bad.csv", "text,label,part\na,x,train\nb,y,holdout\n")
        let e = DataPrepFixtures.pipelineError {
            _ = try self.prepare {
                $0.input = bad
                $0.inputFormat = ClassificationInputOptions(textColumn: .name("text"), labelColumn: .name("label"), splitColumn: .name("part"))
            }
        }
        XCTAssertEqual(e?.location, "\(bad.path):3")
        XCTAssertTrue(e?.message.contains("unknown split \"holdout\"") ?? false, e?.description ?? "")
    }

    func testALabelOnlyInTestIsRefused() throws {
        let files = try [("tr.csv", "a,x\nb,y\n"), ("va.csv", "c,x\n"), ("te.csv", "d,z\n")].map(write)
        let e = DataPrepFixtures.pipelineError {
            _ = try self.prepare { $0.input = files[0]; $0.splitFiles = files; $0.inputFormat.textColumn = .index(0); $0.inputFormat.labelColumn = .index(1) }
        }
        XCTAssertTrue(e?.message.contains("class \"z\" has too few rows for the split") ?? false, e?.description ?? "")
        XCTAssertTrue(e?.hint?.contains("rerun `prepare classification`") ?? false)
    }
}
