import Foundation
import TestSupport

/// `Tests/Fixtures/training-controls/reference.json`, written by
/// tools/reference/make_training_controls_fixture.py (torch + transformers, and the book's appendix D loop).
struct TrainingControlsReference: Decodable {
    struct Schedule: Decodable {
        var source: String
        var kind: String
        var lr: Double
        var total_steps: Int
        var warmup_steps: Int
        var warmup_ratio: Double?
        var initial_lr: Double
        var min_lr: Double
        var lrs: [Double]
    }

    var torch: String
    var transformers: String
    var schedules: [Schedule]

    static func load() throws -> TrainingControlsReference {
        let url = TestPaths.fixtures.appendingPathComponent("training-controls/reference.json")
        return try JSONDecoder().decode(TrainingControlsReference.self, from: Data(contentsOf: url))
    }
}
