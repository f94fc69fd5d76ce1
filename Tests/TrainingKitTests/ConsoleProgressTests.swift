import ArtifactKit
import TrainingKit
import XCTest

/// Progress written to a log file (not a terminal): plain lines with the ETA, at most one per
/// `quietInterval` apart from the last, so long phases are never silent and logs stay short.
final class ConsoleProgressTests: XCTestCase {
    private func lines(quietInterval: Double, _ events: [ProgressEvent]) -> [String] {
        var text = ""
        let console = ConsoleProgress(isTerminal: false, sink: { text += $0 })
        console.quietInterval = quietInterval
        events.forEach(console.handle)
        return text.split(separator: "\n").map(String.init)
    }

    func testAPhaseInALogFilePrintsPlainLinesWithTheETA() {
        let got = lines(quietInterval: 0, (0...4).map { .phase(name: "frozen layers", done: $0, total: 4) })
        XCTAssertEqual(got.count, 5, "\(got)")
        XCTAssertTrue(got[0].hasPrefix("frozen layers: 0/4  0s (eta ?)"), got[0])
        XCTAssertTrue(got[4].hasPrefix("frozen layers: 4/4  0s (eta 0s)"), got[4])
        XCTAssertFalse(got.joined().contains("\u{1B}"), "no terminal escapes in a log file")
    }

    func testBetweenQuietIntervalsOnlyTheFirstAndTheLastUnitArePrinted() {
        let steps = (1...50).map { ProgressEvent.step(step: $0, totalSteps: 50, epoch: 1, loss: 0.5, lr: 5e-5, gradNorm: nil) }
        let got = lines(quietInterval: 3600, steps)
        XCTAssertEqual(got.count, 2, "\(got)")
        XCTAssertTrue(got[0].hasPrefix("step 1/50  epoch 1  loss 0.500  lr 5e-05"), got[0])
        XCTAssertTrue(got[1].hasPrefix("step 50/50"), got[1])
    }

    func testDurationsReadAsSecondsMinutesAndHours() {
        XCTAssertEqual(TextFormat.duration(42.4), "42s")
        XCTAssertEqual(TextFormat.duration(185), "3m05s")
        XCTAssertEqual(TextFormat.duration(3720), "1h02m")
    }
}
