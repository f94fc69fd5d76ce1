import ArtifactKit
import Foundation
import PipelineRunner
import TestSupport
import XCTest

/// Both pipeline files list every training control as a `train` param (so changing one makes
/// the stage stale) and pass it to `train` with the book-loop defaults.
final class TrainControlsPipelineTests: XCTestCase {
    func testPipelinesPassTheTrainingControls() throws {
        let common = ["lr_schedule": "constant", "warmup_steps": "0", "warmup_ratio": "0", "initial_lr": "0", "min_lr": "0",
                      "max_grad_norm": "0", "grad_accum": "1", "eval_strategy": "steps", "save_best": "false",
                      "early_stopping_patience": "0"]
        for (file, extra) in [("pipeline.yaml", ["best_metric": "loss"]), ("pipelines/instruct.yaml", [:])] {
            let p = try Pipeline.load(url: TestPaths.repoRoot.appendingPathComponent(file), checkDisk: false)
            let train = try XCTUnwrap(p.stage(named: "train"))
            for (key, value) in common.merging(extra, uniquingKeysWith: { a, _ in a }) {
                XCTAssertNotNil(train.params["train.\(key)"], "\(file): train.\(key) is not a param of the stage")
                let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
                XCTAssertTrue(train.command.contains("\(flag) \(value) "), "\(file): \(flag) \(value) missing in \(train.command)")
            }
        }
    }
}
