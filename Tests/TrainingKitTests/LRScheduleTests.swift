import ArtifactKit
import Foundation
import TestSupport
import TrainingKit
import XCTest

final class LRScheduleTests: XCTestCase {
    /// Every optimizer step's rate equals transformers' schedulers (constant, linear and cosine with
    /// warmup 0, warmup steps and a warmup ratio; cosine with min_lr) and the book's appendix D loop,
    /// to 1e-7 relative (zeros exactly).
    func testRatesEqualTransformersAndAppendixD() throws {
        let reference = try TrainingControlsReference.load()
        XCTAssertGreaterThanOrEqual(reference.schedules.count, 20)
        for c in reference.schedules {
            let kind = try XCTUnwrap(LRScheduleKind(rawValue: c.kind))
            if let ratio = c.warmup_ratio {
                XCTAssertEqual(LRSchedule.warmupSteps(ratio: ratio, totalSteps: c.total_steps), c.warmup_steps, c.source)
            }
            let schedule = LRSchedule(kind: kind, peak: c.lr, totalSteps: c.total_steps, warmupSteps: c.warmup_steps,
                                      initialLR: c.initial_lr, minLR: c.min_lr)
            XCTAssertEqual(c.lrs.count, c.total_steps)
            for (step, expected) in c.lrs.enumerated() {
                let got = schedule.rate(at: step)
                let what = "\(c.source) \(c.kind) T=\(c.total_steps) W=\(c.warmup_steps) step \(step)"
                if expected == 0 { XCTAssertEqual(got, 0, what) } else {
                    XCTAssertEqual(got, expected, accuracy: 1e-7 * abs(expected), what)
                }
                // What the optimizer gets: the float32 of that rate.
                XCTAssertEqual(schedule.learningRate(at: step), Float(got))
            }
        }
    }

    /// A constant schedule without warmup hands the optimizer `lr` itself: the book's runs are unchanged.
    func testConstantScheduleIsTheLearningRateItself() {
        for lr: Float in [5e-5, 1e-3, 3e-2, 0.1] {
            let s = LRSchedule(TrainingControls(), learningRate: lr, totalSteps: 130)
            for step in [0, 1, 64, 129] { XCTAssertEqual(s.learningRate(at: step), lr) }
        }
    }

    /// The settings' schedule: warmup from warmup_steps or from a ratio of the run.
    func testScheduleOfTheSettings() {
        var c = TrainingControls()
        c.lrSchedule = .cosine
        c.warmupRatio = 0.1
        c.minLR = 1e-6
        let s = LRSchedule(c, learningRate: 1e-4, totalSteps: 95)
        XCTAssertEqual(s.warmupSteps, 10)   // ceil(9.5)
        XCTAssertEqual(s.rate(at: 0), 0)
        XCTAssertEqual(s.rate(at: 10), Double(Float(1e-4)))
        // The last step is 84/85 of the way down (transformers' too): close to min_lr, not at it.
        let last = 1e-6 + (Double(Float(1e-4)) - 1e-6) * 0.5 * (1 + cos(Double.pi * 84 / 85))
        XCTAssertEqual(s.rate(at: 94), last, accuracy: 1e-7 * last)
        XCTAssertGreaterThan(s.rate(at: 94), 1e-6)
        c.warmupRatio = 0
        c.warmupSteps = 3
        c.initialLR = 1e-5
        XCTAssertEqual(LRSchedule(c, learningRate: 1e-4, totalSteps: 95).rate(at: 0), 1e-5)
    }
}
