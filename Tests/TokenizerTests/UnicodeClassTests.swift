import Foundation
@testable import GPT2Tokenizer
import TestSupport
import XCTest

/// The pre-tokenizer's letter / number / whitespace classes must equal those of tiktoken's regex
/// engine for every Unicode scalar, not only the ones the text fixtures happen to contain.
final class UnicodeClassTests: XCTestCase {
    private struct Classes: Decodable {
        let letter: [[UInt32]]
        let number: [[UInt32]]
        let whitespace: [[UInt32]]
    }

    func testEveryScalarIsClassifiedLikeTiktoken() throws {
        let url = TestPaths.fixtures.appendingPathComponent("tokenizer/unicode_classes.json")
        let classes = try JSONDecoder().decode(Classes.self, from: Data(contentsOf: url))
        var expected = [PreTokenizer.ScalarClass](repeating: .other, count: 0x110000)
        for (ranges, scalarClass) in [(classes.letter, PreTokenizer.ScalarClass.letter),
                                      (classes.number, .number), (classes.whitespace, .whitespace)] {
            for range in ranges {
                for value in range[0]...range[1] { expected[Int(value)] = scalarClass }
            }
        }
        XCTAssertEqual(expected.filter { $0 == .whitespace }.count, 25, "White_Space has 25 code points")
        var differences = [String]()
        PreTokenizer.lowClasses.withUnsafeBufferPointer { low in
            for value in UInt32(0)..<0x110000 where Unicode.Scalar(value) != nil {
                let actual = PreTokenizer.classOf(value, low.baseAddress!)
                if actual != expected[Int(value)] {
                    differences.append("U+\(String(value, radix: 16, uppercase: true)): \(actual), tiktoken \(expected[Int(value)])")
                }
            }
        }
        XCTAssertEqual(differences.count, 0, differences.prefix(20).joined(separator: "\n"))
    }
}
