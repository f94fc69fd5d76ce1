import ArtifactKit
import Foundation
import GPT2
import GPT2Weights
import ModelExport
import TestSupport
import XCTest

/// `export --to hf` against transformers / PEFT (Tests/Fixtures/hf-export/expected.json, from
/// tools/reference/hf_export_parity.py), the round trip through our own loaders, and bad input.
final class HFExportTests: ExportTestCase {

    struct Fixture: Decodable {
        struct Case: Decodable {
            var kind: String
            var tokens: [[Int]]
            var columns: [Int]
            /// [rows][positions][columns]
            var logits: [[[Double]]]
            var argmax: [[Int]]
            var files_sha256: [String: String]
            var max_abs_diff: Double
        }
        var tolerance: Double
        var cases: [String: Case]
    }

    func fixture() throws -> Fixture {
        let url = TestPaths.fixtures.appendingPathComponent("hf-export/expected.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    /// Writes every case's export, with our logits (ours.f32, float32 [rows, positions, width])
    /// and cases.json, into $LLMFT_HF_EXPORT_DIR for the reference script. Skipped without it.
    func testWriteExportsForReference() throws {
        guard let dir = ProcessInfo.processInfo.environment["LLMFT_HF_EXPORT_DIR"] else {
            throw XCTSkip("set LLMFT_HF_EXPORT_DIR to write the exports for tools/reference/hf_export_parity.py")
        }
        let out = URL(fileURLWithPath: dir)
        try? FileManager.default.removeItem(at: out)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var listing: [String: JSONValue] = [:]
        for c in ExportTestRuns.cases {
            _ = try ExportTestRuns.export(c, under: out)
            let logits = try ExportTestRuns.ourLogits(c, run: out.appendingPathComponent(c.name + "-run"))
            let flat = logits.flatMap { $0.flatMap { $0 } }
            try flat.withUnsafeBytes { try Data($0).write(to: out.appendingPathComponent(c.name + "-ours.f32")) }
            let tokens = c.kind == "lm" ? ExportTestRuns.lmTokens : ExportTestRuns.classifierTokens
            listing[c.name] = ["kind": .string(c.kind), "merge": .bool(c.merge), "folder": .string(c.name + "-hf"),
                               "tokens": .array(tokens.map { .array($0.map { .int($0) }) }),
                               "ours_shape": .array([logits.count, logits[0].count, logits[0][0].count].map { .int($0) })]
        }
        try Data(JSONValue.object(listing).canonicalString.utf8).write(to: out.appendingPathComponent("cases.json"))
    }

    /// Each export is the same bytes as the one the reference loaded, and our logits equal
    /// transformers' (PEFT's for the adapter) within the fixture's tolerance (1e-4).
    func testExportsMatchTransformers() throws {
        let f = try fixture()
        var worst = 0.0
        for c in ExportTestRuns.cases {
            let want = try XCTUnwrap(f.cases[c.name], "fixture lacks case \(c.name)")
            let dest = try ExportTestRuns.export(c, under: root)
            let files = try DirectoryListing.files(in: dest).filter { $0 != Manifest.fileName }
            XCTAssertEqual(files.sorted(), want.files_sha256.keys.sorted(), "\(c.name): the exported files")
            for (file, sha) in want.files_sha256 {
                XCTAssertEqual(try FileHash.sha256(of: dest.appendingPathComponent(file)), sha, "\(c.name)/\(file) differs from the exported file the reference loaded")
            }
            let ours = try ExportTestRuns.ourLogits(c, run: root.appendingPathComponent(c.name + "-run"))
            XCTAssertEqual(ours.count, want.logits.count)
            for (b, row) in want.logits.enumerated() {
                for (t, values) in row.enumerated() {
                    for (j, column) in want.columns.enumerated() {
                        let d = abs(Double(ours[b][t][column]) - values[j])
                        worst = max(worst, d)
                        XCTAssertLessThanOrEqual(d, f.tolerance, "\(c.name) row \(b) position \(t) column \(column)")
                    }
                    XCTAssertEqual(argmax(ours[b][t]), want.argmax[b][t], "\(c.name) row \(b) position \(t): argmax")
                }
            }
            XCTAssertLessThanOrEqual(want.max_abs_diff, f.tolerance, "\(c.name): the reference measured a larger difference")
        }
        print("hf-export parity: max |ours - transformers| over the fixture's columns = \(worst)")
    }

    func argmax(_ x: [Float]) -> Int { x.indices.max { x[$0] < x[$1] || (x[$0] == x[$1] && $0 > $1) }! }

    /// What --to hf wrote comes back bit for bit through GPT2Weights' loaders (inferConfig,
    /// loadHFWeights) and is the checkpoint's parameters: merged for a merged run, the frozen
    /// base in DEST/base for an adapter (a classifier's ln_f.bias carries the folded head bias,
    /// and its out_head.bias reads back as zero).
    func testRoundTripThroughOurLoadersIsBitForBit() throws {
        for c in ExportTestRuns.cases {
            let adapter = c.name.hasSuffix("-peft")
            let dest = try ExportTestRuns.export(c, under: root)
            let folder = adapter ? dest.appendingPathComponent("base") : dest
            let back = try HFModelFolder(folder)
            let written = try SafetensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
            for spec in back.layout.tensors {
                let name = spec.name == "out_head.weight" ? "score.weight" : "transformer." + spec.name
                guard spec.name != "out_head.bias" else {
                    XCTAssertTrue(back.params[spec.range].allSatisfy { $0 == 0 }); continue
                }
                XCTAssertEqual(try written.floats(name).map(\.bitPattern), back.params[spec.range].map(\.bitPattern), "\(c.name): \(name)")
            }
            let run = try TrainOutput(folder: root.appendingPathComponent(c.name + "-run"))
            let expected = adapter ? run.checkpoint.params : try run.mergedParameters().params
            XCTAssertEqual(back.layout.config.embDim, run.config.embDim)
            for spec in run.layout.tensors where !["ln_f.bias", "out_head.bias"].contains(spec.name) || c.kind == "lm" {
                XCTAssertEqual(back.params[spec.range].map(\.bitPattern), expected[spec.range].map(\.bitPattern), "\(c.name): \(spec.name)")
            }
            XCTAssertEqual(back.untiedHead != nil, c.name == "instruct-lora-merged", "\(c.name): the head is untied exactly when an adapted LM head was merged")
        }
    }
}
