import ArtifactKit
import Foundation

/// One entry of the chapter-7 instruction data (`instruction-data.json`, the Alpaca shape): a
/// task, an optional input for it, and the desired answer. Also one instruction -> response
/// exchange of any record (`InstructionRecord.exchanges`), which the Alpaca and Phi-3 templates render.
public struct InstructionEntry: Codable, Equatable, Sendable {
    public var instruction: String
    /// Empty when the task needs no input (775 of the book's 1,100 entries).
    public var input: String
    public var output: String

    public init(instruction: String, input: String = "", output: String) {
        self.instruction = instruction
        self.input = input
        self.output = output
    }
}

/// Alpaca entries as the JSON list the book's file is (`InstructionRecords.encoded` of them).
public enum InstructionEntries {
    public static func encoded(_ entries: [InstructionEntry]) -> Data {
        InstructionRecords.encoded(entries.map(InstructionRecord.alpaca))
    }
}

/// The book's file-order split: train = first int(trainFrac*n), test = next int(testFrac*n),
/// validation = the rest (1,100 entries -> 935 / 110 / 55).
public struct InstructionSplit: Equatable, Sendable {
    public var train: Range<Int>
    public var test: Range<Int>
    public var validation: Range<Int>

    public init(count: Int, trainFrac: Double = 0.85, testFrac: Double = 0.1) throws {
        guard trainFrac > 0, trainFrac < 1, testFrac >= 0, testFrac < 1, trainFrac + testFrac < 1 else {
            throw PipelineError("train fraction \(trainFrac) and test fraction \(testFrac) must be in (0, 1) with a sum below 1 (validation is the rest)",
                                location: "--train-frac/--test-frac")
        }
        // Python's int() truncates toward zero, as does Int(Double); the products are computed in
        // the same IEEE doubles, so 0.85 * 1100 = 935.0000000000001 -> 935 exactly as in the book.
        let nTrain = Int(Double(count) * trainFrac)
        let nTest = Int(Double(count) * testFrac)
        train = 0..<nTrain
        test = nTrain..<(nTrain + nTest)
        validation = (nTrain + nTest)..<count
        for (name, range) in [("train", train), ("validation", validation)] where range.isEmpty {
            throw PipelineError("the \(name) split of \(count) entries would be empty (train \(train.count), test \(test.count), validation \(validation.count))",
                                location: "--train-frac/--test-frac", hint: "use more entries or other fractions")
        }
    }
}
