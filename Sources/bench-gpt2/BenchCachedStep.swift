import Foundation
import GPT2
import Classification

extension BenchGPT2 {
    /// One optimizer step of the default chapter-6 run as `train` takes it: the hidden states
    /// entering the last block come from the frozen-trunk cache, the last block runs at the pooled
    /// position (`last`, padded to 120), then the head's loss, the backward pass and AdamW over the
    /// last block + ln_f + head. 650 of these are the training part of the default run
    /// (docs/results.md); the torch script has no counterpart (it recomputes the trunk every step:
    /// see the `train-ch6` case). Matrix-product FLOPs per step: c_attn's key/value columns on all
    /// 960 rows forward, and twice that backward (input and weight gradients), plus the pooled rows.
    static func trainChapter6Cached(_ c: GPT2Config, reps: Int) throws {
        let B = 8, T = 120, rowCount = 4 * B
        let base = try randomModel(c, head: .classifier(numClasses: 2))
        let parameters = base.parameters
        let backend = try GPT2Backend(layout: base.layout, parameters: parameters)
        let rows = LabeledRows(tokens: tokens(rowCount * T, c.vocabSize), labels: (0..<rowCount).map { $0 % 2 },
                               lengths: Array(repeating: T, count: rowCount), sequenceLength: T,
                               padTokenID: 50256, numClasses: 2)
        let model = try ClassifierModel(backend: backend, parameters: parameters, pooling: Pooling(),
                                        trainable: .lastBlock)
        let split = DataSplit(name: "train", rows: rows)
        try model.fillCache(split)
        let optimizer = AdamW(parameterCount: model.trainableRange.count, learningRate: 5e-5, weightDecay: 0.1)
        var times: [Double] = []
        for i in 0...reps {
            let batch = Array((i % 4 * B)..<(i % 4 * B + B))
            let t = try time {
                _ = try model.computeGradients(rows: batch, of: split)
                model.modifyParameters(in: model.trainableRange) {
                    optimizer.update(parameters: &$0, gradients: model.gradients, range: model.trainableRange)
                }
            }
            if i > 0 { times.append(t) }
        }
        let med = median(times)
        let C = Double(c.embDim), N = Double(B * T)
        let flops = 3 * 2 * N * C * 2 * C + 3 * 2 * Double(B) * C * 10 * C
        report(["case": "train-ch6-cached", "model": modelLabel, "median_s": med, "times": times,
                "trainable_params": model.trainableRange.count, "gflops": flops / med / 1e9])
    }
}
