import GPT2
import TestSupport
import TrainingKit
import Classification
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class MetricsTests: XCTestCase {
    /// Known predictions; the expected numbers are worked out by hand from the definitions.
    func testConfusionPrecisionRecallF1() {
        let labels    = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
        let predicted = [1, 1, 1, 0, 0, 0, 1, 0, 0, 0]
        let m = SplitMetrics(labels: labels, predicted: predicted, numClasses: 2, loss: 0.5)
        XCTAssertEqual(m.confusion, [[4, 1], [2, 3]])   // [actual][predicted]
        XCTAssertEqual(m.truePositives, 3)
        XCTAssertEqual(m.falsePositives, 1)
        XCTAssertEqual(m.falseNegatives, 2)
        XCTAssertEqual(m.trueNegatives, 4)
        XCTAssertEqual(m.accuracy, 0.7, accuracy: 1e-12)
        XCTAssertEqual(m.precision!, 0.75, accuracy: 1e-12)
        XCTAssertEqual(m.recall!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(m.f1!, 2 * 0.75 * 0.6 / 1.35, accuracy: 1e-12)
    }

    func testNoPositivePredictionsGivesZeroNotNaN() {
        let m = SplitMetrics(labels: [1, 0, 1], predicted: [0, 0, 0], numClasses: 2, loss: 1)
        XCTAssertEqual(m.precision!, 0)
        XCTAssertEqual(m.recall!, 0)
        XCTAssertEqual(m.f1!, 0)
        XCTAssertEqual(m.accuracy, 1.0 / 3, accuracy: 1e-12)
    }

    /// Cross-entropy and the book-style loader loss (mean of batch means) on numbers checked with
    /// torch.nn.functional.cross_entropy: logits [[2,0],[0,1],[1,1]] labels [0,0,1] -> per-row
    /// 0.126928, 1.313262, 0.693147.
    func testCrossEntropyAndBookLoss() throws {
        let head = try ClassifierHead(layout: Toy.layout)
        let logits: [[Float]] = [[2, 0], [0, 1], [1, 1]]
        let ce = head.crossEntropy(logits: logits.flatMap { $0 }, labels: [0, 0, 1])
        XCTAssertEqual(ce.loss, Float((0.126928 + 1.313262 + 0.693147) / 3), accuracy: 1e-5)
        XCTAssertEqual(ce.correct, 1)   // row 2's argmax of [1, 1] is 0 (the first), as in torch: wrong
        // Batches of 2: [(0.126928 + 1.313262) / 2, 0.693147] -> mean 0.706621
        XCTAssertEqual(bookLoss(logits: logits, labels: [0, 0, 1], batchSize: 2, head: head), 0.706621, accuracy: 1e-5)
    }

    func testPredictionsCSVQuotesTextsAndNamesClasses() throws {
        let data = ClassifierEvaluation.predictionsCSV(texts: ["hi, \"you\"", "plain"], labels: [0, 1], logits: [[1, 0], [0, 0]],
                                                       classNames: ["ham", "spam"])
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(text, "text,label,predicted,label_name,predicted_name,ham_probability,spam_probability\n"
                           + "\"hi, \"\"you\"\"\",0,0,ham,ham,0.731059,0.268941\nplain,1,0,spam,ham,0.500000,0.500000\n")
        let parsed = try CSV.parse(text, source: "x")
        XCTAssertEqual(parsed[1], ["hi, \"you\"", "0", "0", "ham", "ham", "0.731059", "0.268941"])
        XCTAssertThrowsError(try CSV.parse("a,\"b\nc", source: "f.csv")) { XCTAssertTrue("\($0)".contains("line 1")) }
    }

    /// Per-class scores, averages and the confusion matrix against scikit-learn (classify_cases.json).
    func testPerClassMetricsMatchScikitLearn() throws {
        let cases = try XCTUnwrap(DataPrepFixtures.json("classify_cases.json")["metric_cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String)
            let m = SplitMetrics(labels: try XCTUnwrap(c["labels"] as? [Int]), predicted: try XCTUnwrap(c["predicted"] as? [Int]),
                                 numClasses: try XCTUnwrap(c["num_classes"] as? Int), loss: 0)
            XCTAssertEqual(m.confusion, c["confusion"] as? [[Int]], name)
            XCTAssertEqual(m.classes.map(\.support), c["support"] as? [Int], name)
            for (key, got) in [("precision", m.classes.map(\.precision)), ("recall", m.classes.map(\.recall)), ("f1", m.classes.map(\.f1))] {
                let expected = try XCTUnwrap(c[key] as? [Double])
                for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-12, "\(name) \(key)") }
            }
            for (avg, got) in [("macro", m.macro), ("weighted", m.weighted)] {
                let e = try XCTUnwrap(c[avg] as? [String: Double])
                XCTAssertEqual(got.precision, e["precision"]!, accuracy: 1e-12, "\(name) \(avg)")
                XCTAssertEqual(got.recall, e["recall"]!, accuracy: 1e-12, "\(name) \(avg)")
                XCTAssertEqual(got.f1, e["f1"]!, accuracy: 1e-12, "\(name) \(avg)")
            }
        }
    }

    /// The positive-class fields exist for two classes only; three classes have no positive one.
    func testPositiveClassFieldsAreWrittenForTwoClassesOnly() throws {
        let keys = { (m: SplitMetrics) -> Set<String> in
            Set((try JSONSerialization.jsonObject(with: JSONEncoder().encode(m)) as! [String: Any]).keys)
        }
        let binary = SplitMetrics(labels: [0, 1], predicted: [0, 0], numClasses: 2, loss: 0.5)
        let three = SplitMetrics(labels: [0, 1, 2], predicted: [0, 2, 2], numClasses: 3, loss: 0.5)
        XCTAssertTrue(try keys(binary).isSuperset(of: ["positive_class", "true_positives", "precision", "f1"]))
        XCTAssertTrue(try keys(three).isDisjoint(with: ["positive_class", "true_positives", "precision", "recall", "f1"]))
        XCTAssertTrue(try keys(three).isSuperset(of: ["classes", "macro", "weighted", "confusion"]))
    }

    func testReportShowsPerClassTableAndConfusionMatrix() {
        let m = SplitMetrics(labels: [0, 1, 2, 2], predicted: [0, 2, 2, 1], numClasses: 3, loss: 0.5, classNames: ["rewrite", "question", "generate"])
        let text = SplitMetrics.report(["test": m])
        XCTAssertTrue(text.contains("macro F1"), text)
        XCTAssertTrue(text.contains("weighted avg"), text)
        XCTAssertTrue(text.contains("confusion matrix"), text)
        XCTAssertTrue(text.contains("generate"), text)
    }

    func testPlotsAreWellFormedSVGWithBothAxes() throws {
        var log: [LogRecord] = []
        for step in stride(from: 1, through: 130, by: 50) {
            log.append(try JSONDecoder().decode(LogRecord.self, from: Data("""
            {"kind":"eval","step":\(step),"epoch":1,"epoch_progress":\(Double(step) / 130),"examples_seen":\(step * 8),
             "train_loss":\(1.0 / Double(step)),"val_loss":0.9,"elapsed_seconds":1}
            """.utf8)))
        }
        let svg = TrainingPlots.loss(log, examplesPerEpoch: 1040).svg()
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains("Examples seen") && svg.contains("Epochs") && svg.contains("Validation loss"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        // Parses as XML.
        let doc = try XMLDocument(data: Data(svg.utf8))
        XCTAssertEqual(doc.rootElement()?.name, "svg")
        XCTAssertEqual(LinePlot.ticks(0, 1.03), [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    }
}
