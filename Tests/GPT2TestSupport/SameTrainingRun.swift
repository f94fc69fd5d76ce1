import Foundation
import GPT2Weights
import XCTest

/// Checks that two training output folders hold the same run to `tolerance`: every record of
/// log.jsonl (each number relative to max(1, |value|), wall times excluded) and every tensor of
/// model.safetensors (absolute). Data-parallel runs use it against one process.
public func assertSameTrainingRun(_ a: URL, _ b: URL, tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
    func records(_ dir: URL) throws -> [[String: Any]] {
        try String(contentsOf: dir.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
    }
    let (la, lb) = (try records(a), try records(b))
    XCTAssertEqual(la.count, lb.count, "log records", file: file, line: line)
    for (ra, rb) in zip(la, lb) {
        XCTAssertEqual(Set(ra.keys), Set(rb.keys), file: file, line: line)
        for key in ra.keys.sorted() where key != "elapsed_seconds" {
            if let x = ra[key] as? Double, let y = rb[key] as? Double {
                XCTAssertEqual(x, y, accuracy: tolerance * max(1, abs(x)), "\(key) at step \(ra["step"] ?? "?")", file: file, line: line)
            } else {
                XCTAssertEqual("\(ra[key] ?? "nil")", "\(rb[key] ?? "nil")", key, file: file, line: line)
            }
        }
    }
    let wa = try SafetensorsFile(contentsOf: a.appendingPathComponent("model.safetensors"))
    let wb = try SafetensorsFile(contentsOf: b.appendingPathComponent("model.safetensors"))
    XCTAssertEqual(wa.tensorNames, wb.tensorNames, file: file, line: line)
    for name in wa.tensorNames {
        let diff = zip(try wa.floats(name), try wb.floats(name)).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(Double(diff), tolerance, name, file: file, line: line)
    }
}
