import Foundation
import GPT2
import Classification

/// The chapter-6 cases, on the path `train` and `evaluate` take: `ClassifierModel` over
/// `GPT2Backend` (GPT2Trunk, the last block at the pooled position, ClassifierHead).
extension BenchGPT2 {
    /// The default chapter-6 model (random gpt2 weights, last block + ln_f + head trainable,
    /// `last` pooling) over `rowCount` random rows of T real tokens with alternating labels.
    static func chapter6Model(_ c: GPT2Config, rowCount: Int, T: Int) throws -> (ClassifierModel, DataSplit) {
        let layout = ParameterLayout(config: c, head: .classifier(numClasses: 2))
        let parameters = randomParameters(layout)
        // Two copies of the weights, as in `train`: the model's flat vector and the backend's.
        let backend = try GPT2Backend(layout: layout, parameters: parameters)
        let rows = LabeledRows(tokens: tokens(rowCount * T, c.vocabSize), labels: (0..<rowCount).map { $0 % 2 },
                               lengths: Array(repeating: T, count: rowCount), sequenceLength: T,
                               padTokenID: 50256, numClasses: 2)
        let model = try ClassifierModel(backend: backend, parameters: parameters, pooling: Pooling(),
                                        trainable: .lastBlock)
        return (model, DataSplit(name: "train", rows: rows))
    }

    /// Matrix-product FLOPs of the last block and the head at one position per row, without keys
    /// and values (TrunkSelected.swift): query, W_k q, values, c_proj and the MLP on B rows
    /// (24 B C^2), scores and the weighted sum of xhat over T positions per head (4 B H T C).
    static func selectedLastBlockFlops(_ c: GPT2Config, B: Int, T: Int) -> Double {
        let C = Double(c.embDim)
        return 24 * Double(B) * C * C + 4 * Double(B * c.nHeads * T) * C + 2 * Double(B) * C * 2
    }

    /// One AdamW step over the trainable range, as `ClassifierTrainer` takes it; returns the loss.
    static func step(_ model: ClassifierModel, _ optimizer: AdamW, rows: [Int], of split: DataSplit) throws -> Float {
        let loss = try model.computeGradients(rows: rows, of: split)
        model.modifyParameters(in: model.trainableRange) {
            optimizer.update(parameters: &$0, gradients: model.gradients, range: model.trainableRange)
        }
        return loss
    }

    /// No-grad logits of 8 x 120 tokens, no frozen-trunk cache: blocks 0-10 at every position, then
    /// the last block and the head at the last position (torch: the book's `model(x)[:, -1, :]`).
    static func forwardClassifier(_ c: GPT2Config, reps: Int) throws {
        let B = 8, T = 120
        let (model, split) = try chapter6Model(c, rowCount: B, T: T)
        model.inferenceChunk = B
        var times: [Double] = []
        for i in 0...reps {
            let t = try time { _ = try model.logits(rows: Array(0..<B), of: split) }
            if i > 0 { times.append(t) }   // the first run allocates the workspace
        }
        let med = median(times)
        let flops = forwardFlops(c, B: B, T: T, blocks: c.nLayers - 1, headRows: 0, headWidth: 0)
            + selectedLastBlockFlops(c, B: B, T: T)
        report(["case": "forward-cls", "model": modelLabel, "median_s": med, "times": times,
                "tokens_per_s": Double(B * T) / med, "gflops": flops / med / 1e9])
    }

    /// A chapter-6 step on 8 x 120 tokens without the frozen-trunk cache (torch recomputes the trunk
    /// too): blocks 0-10 forward, the last block at the last position forward and backward, the
    /// head's loss, AdamW over the last block + ln_f + head (lr 5e-5, weight decay 0.1).
    static func trainChapter6(_ c: GPT2Config, reps: Int) throws {
        let B = 8, T = 120
        let (model, split) = try chapter6Model(c, rowCount: B, T: T)
        let optimizer = AdamW(parameterCount: model.trainableRange.count, learningRate: 5e-5, weightDecay: 0.1)
        var times: [Double] = []
        var loss: Float = 0
        for i in 0...reps {
            let t = try time { loss = try step(model, optimizer, rows: Array(0..<B), of: split) }
            if i > 0 { times.append(t) }
        }
        let med = median(times)
        // Backward through the selected last block counted as twice its forward.
        let flops = forwardFlops(c, B: B, T: T, blocks: c.nLayers - 1, headRows: 0, headWidth: 0)
            + 3 * selectedLastBlockFlops(c, B: B, T: T)
        report(["case": "train-ch6", "model": modelLabel, "median_s": med, "times": times, "loss": Double(loss),
                "tokens_per_s": Double(B * T) / med, "gflops": flops / med / 1e9])
    }

    /// One optimizer step of the default chapter-6 run as `train` takes it: the hidden states
    /// entering the last block come from the frozen-trunk cache, the last block runs at the pooled
    /// position (`last`, padded to 120), then the head's loss, the backward pass and AdamW over the
    /// last block + ln_f + head. 650 of these are the training part of the default run
    /// (docs/results.md); the torch script has no counterpart (it recomputes the trunk every step:
    /// see the `train-ch6` case).
    static func trainChapter6Cached(_ c: GPT2Config, reps: Int) throws {
        let B = 8, T = 120
        let (model, split) = try chapter6Model(c, rowCount: 4 * B, T: T)
        try model.fillCache(split)
        let optimizer = AdamW(parameterCount: model.trainableRange.count, learningRate: 5e-5, weightDecay: 0.1)
        var times: [Double] = []
        for i in 0...reps {
            let batch = Array((i % 4 * B)..<(i % 4 * B + B))
            let t = try time { _ = try step(model, optimizer, rows: batch, of: split) }
            if i > 0 { times.append(t) }
        }
        let med = median(times)
        report(["case": "train-ch6-cached", "model": modelLabel, "median_s": med, "times": times,
                "trainable_params": model.trainableRange.count, "gflops": 3 * selectedLastBlockFlops(c, B: B, T: T) / med / 1e9])
    }
}
