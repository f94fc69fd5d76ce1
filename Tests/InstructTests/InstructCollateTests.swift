import Instruct
import XCTest

final class InstructCollateTests: XCTestCase {
    private func rows(_ values: [Int32], width: Int) -> [[Int]] {
        stride(from: 0, to: values.count, by: width).map { values[$0..<($0 + width)].map(Int.init) }
    }

    /// The book's worked example (section 7.3): three rows of different lengths.
    func testBookWorkedExample() {
        let batch = collateInstructionBatch([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
        XCTAssertEqual(batch.batchSize, 3)
        XCTAssertEqual(batch.seqLen, 5)
        XCTAssertEqual(rows(batch.inputs, width: 5), [[0, 1, 2, 3, 4], [5, 6, 50256, 50256, 50256], [7, 8, 9, 50256, 50256]])
        XCTAssertEqual(rows(batch.targets, width: 5), [[1, 2, 3, 4, 50256], [6, 50256, -100, -100, -100], [8, 9, 50256, -100, -100]])
        XCTAssertEqual(batch.countedTargets(), 5 + 2 + 3)
    }

    func testWorkedExampleMatchesPythonReference() throws {
        let ref = try InstructReference.load().worked_example
        let batch = collateInstructionBatch(ref.rows, allowedMaxLength: nil)
        XCTAssertEqual(rows(batch.inputs, width: batch.seqLen), ref.inputs)
        XCTAssertEqual(rows(batch.targets, width: batch.seqLen), ref.targets)
    }

    func testTruncationCutsInputsAndTargetsAfterMasking() {
        let batch = collateInstructionBatch([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]], allowedMaxLength: 3)
        XCTAssertEqual(batch.seqLen, 3)
        XCTAssertEqual(rows(batch.inputs, width: 3), [[0, 1, 2], [5, 6, 50256], [7, 8, 9]])
        // Row 0 loses its end-of-text target: the cut comes after padding, as in the book.
        XCTAssertEqual(rows(batch.targets, width: 3), [[1, 2, 3], [6, 50256, -100], [8, 9, 50256]])
        // A limit above the batch width changes nothing.
        XCTAssertEqual(collateInstructionBatch([[1, 2]], allowedMaxLength: 1024),
                       collateInstructionBatch([[1, 2]], allowedMaxLength: nil))
    }

    /// Exercise 7.2: targets[0 ..< promptLength-1] are the prompt's own tokens and are ignored.
    func testPromptMasking() {
        let batch = collateInstructionBatch([[10, 11, 12, 13, 14], [20, 21, 22]], maskPromptLengths: [3, 1])
        XCTAssertEqual(rows(batch.inputs, width: 5), [[10, 11, 12, 13, 14], [20, 21, 22, 50256, 50256]])
        // Row 0: prompt 10 11 12, response 13 14: targets 11, 12 are prompt tokens -> ignored.
        // Row 1: prompt of one token: nothing in the targets belongs to it.
        XCTAssertEqual(rows(batch.targets, width: 5), [[-100, -100, 13, 14, 50256], [21, 22, 50256, -100, -100]])
        XCTAssertEqual(batch.countedTargets(), 3 + 3)
        // A prompt length of 0 masks nothing (the book's slice [:−1] would mask all but the last;
        // neither template can produce an empty prompt).
        XCTAssertEqual(collateInstructionBatch([[1, 2]], maskPromptLengths: [0]), collateInstructionBatch([[1, 2]]))
    }

    func testCustomPadAndIgnore() {
        let batch = collateInstructionBatch([[1, 2, 3], [4]], padTokenID: 0, ignoreIndex: -1, allowedMaxLength: nil)
        XCTAssertEqual(rows(batch.inputs, width: 3), [[1, 2, 3], [4, 0, 0]])
        XCTAssertEqual(rows(batch.targets, width: 3), [[2, 3, 0], [0, -1, -1]])
    }

    /// The book ignores every pad-valued target after the first, even one inside the text.
    func testPadValueInsideRowFollowsTheBook() {
        let batch = collateInstructionBatch([[1, 50256, 2, 50256]], allowedMaxLength: nil)
        XCTAssertEqual(rows(batch.targets, width: 4), [[50256, 2, -100, -100]])
    }

    /// Batches of real token rows (train split, both styles, plain / untruncated / truncated /
    /// masked) against the PyTorch reference.
    func testBatchesMatchPythonReference() throws {
        let ref = try InstructReference.load()
        XCTAssertEqual(ref.batches.count, 30)
        for b in ref.batches {
            let group = try XCTUnwrap(ref.groups[b.style]?[b.group])
            let batch = collateInstructionBatch(group.rows, allowedMaxLength: b.allowed_max_length,
                                                maskPromptLengths: b.mask_prompt ? group.prompt_lengths : nil)
            let label = "\(b.style)/\(b.group)/\(b.variant)"
            XCTAssertEqual(batch.batchSize, b.inputs.count, label)
            XCTAssertEqual(batch.seqLen, b.inputs[0].count, label)
            XCTAssertEqual(rows(batch.inputs, width: batch.seqLen), b.inputs, label)
            XCTAssertEqual(rows(batch.targets, width: batch.seqLen), b.targets, label)
        }
    }

    func testShardOverloadUsesResponseStarts() throws {
        let shard = try InstructionShard(rows: [[10, 11, 12, 13, 14], [20, 21, 22]], responseStarts: [3, 1])
        XCTAssertEqual(collateInstructionBatch(shard, indices: [0, 1], maskPrompt: true),
                       collateInstructionBatch([[10, 11, 12, 13, 14], [20, 21, 22]], maskPromptLengths: [3, 1]))
        XCTAssertEqual(collateInstructionBatch(shard, indices: [1]), collateInstructionBatch([[20, 21, 22]]))
    }
}
