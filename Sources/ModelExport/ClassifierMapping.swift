import ArtifactKit
import Foundation
import GPT2

/// How our classifier becomes transformers' GPT2ForSequenceClassification, or why it cannot.
///
/// GPT2ForSequenceClassification computes `score(h)` at every position (score: Linear(C, K),
/// no bias) and keeps the rightmost position whose token is not `config.pad_token_id`. Ours
/// computes `W h + b` on the pooled final state (ClassifierHead, ClassifierSettings.Pooling):
///
/// - token_position flexible (the last real token): pad_token_id = the pad id of training; the
///   rightmost non-pad token is the last real one. Exact.
/// - token_position last (the book: the last position of the row padded to max_length):
///   pad_token_id = -1, an id no token has, so the rightmost non-pad position is the last
///   position; texts must be padded to max_length as in training (the tokenizer's
///   `padding="max_length"`). Exact.
/// - token_position first, or average_embeddings true: the model reads one position at the
///   end of the row; refused.
/// - the bias b: folded into the final LayerNorm's bias. ln_f's output h = g * n + beta feeds
///   only the score layer, so with beta' = beta + d where W d = b, score(h') = W h + W d = W h + b
///   at every position. d = W^T (W W^T)^-1 b (the shortest such d) exists when W's K rows are
///   independent (K <= C); otherwise the export is refused. Exact up to float rounding.
struct ClassifierMapping {
    /// config.json's pad_token_id.
    var padTokenID: Int
    /// ln_f.bias with the head's bias folded in.
    var finalNormBias: [Float]
    /// max_k |W d - b|_k in Double for the change d of ln_f.bias as stored in Float: how exactly the fold holds.
    var foldResidual: Double

    static let unusedPadTokenID = -1

    init(info: TrainOutput.ClassifierInfo, layout: ParameterLayout, params: [Float], location: String) throws {
        if info.averageEmbeddings {
            throw PipelineError("average_embeddings true (the mean of the final hidden states over the real tokens) cannot be expressed by GPT2ForSequenceClassification, which reads one position",
                                location: location, hint: "export a run trained with average_embeddings false (train.average_embeddings)")
        }
        switch info.tokenPosition {
        case "last": padTokenID = Self.unusedPadTokenID
        case "flexible": padTokenID = info.padTokenID
        default:
            throw PipelineError("token_position \(info.tokenPosition) cannot be expressed by GPT2ForSequenceClassification, which reads the last non-padding position",
                                location: location, hint: "export a run trained with token_position last or flexible (train.token_position)")
        }
        let w = layout.spec(named: "out_head.weight")!, b = layout.spec(named: "out_head.bias")!
        let lnf = layout.spec(named: "ln_f.bias")!
        let weight = Array(params[w.range]), bias = Array(params[b.range])
        var beta = Array(params[lnf.range])
        guard bias.contains(where: { $0 != 0 }) else {
            (finalNormBias, foldResidual) = (beta, 0)
            return
        }
        let d = try Self.shortestSolution(weight, rows: w.shape[0], columns: w.shape[1], bias, location: location)
        let before = beta
        for c in beta.indices { beta[c] += d[c] }
        finalNormBias = beta
        // The change that really happened (beta + d rounded to Float), not d itself.
        let applied = beta.indices.map { Double(beta[$0]) - Double(before[$0]) }
        foldResidual = Self.residual(weight, columns: w.shape[1], d: applied, bias: bias)
        guard foldResidual <= 1e-5 * max(1, Double(bias.map(abs).max()!)) else {
            throw Self.cannotFold(location, why: "folding it leaves an error of \(foldResidual)")
        }
    }

    /// d = W^T (W W^T)^-1 b in Double, W [K, C] row-major.
    static func shortestSolution(_ w: [Float], rows k: Int, columns c: Int, _ b: [Float], location: String) throws -> [Float] {
        var gram = [Double](repeating: 0, count: k * k)
        for i in 0..<k { for j in 0..<k { gram[i * k + j] = (0..<c).reduce(0.0) { $0 + Double(w[i * c + $1]) * Double(w[j * c + $1]) } } }
        guard let y = solve(gram, Array(b.map(Double.init)), n: k) else {
            throw cannotFold(location, why: "the rows of out_head.weight are not independent")
        }
        return (0..<c).map { col in Float((0..<k).reduce(0.0) { $0 + Double(w[$1 * c + col]) * y[$1] }) }
    }

    /// Gaussian elimination with partial pivoting; nil for a (numerically) singular matrix.
    static func solve(_ a: [Double], _ b: [Double], n: Int) -> [Double]? {
        var (m, r) = (a, b)
        let scale = a.map(abs).max() ?? 0
        for col in 0..<n {
            let p = (col..<n).max { abs(m[$0 * n + col]) < abs(m[$1 * n + col]) }!
            guard abs(m[p * n + col]) > 1e-12 * scale, scale > 0 else { return nil }
            if p != col {
                for j in 0..<n { m.swapAt(p * n + j, col * n + j) }
                r.swapAt(p, col)
            }
            for row in (col + 1)..<n {
                let f = m[row * n + col] / m[col * n + col]
                for j in col..<n { m[row * n + j] -= f * m[col * n + j] }
                r[row] -= f * r[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            let s = ((row + 1)..<n).reduce(r[row]) { $0 - m[row * n + $1] * x[$1] }
            x[row] = s / m[row * n + row]
        }
        return x
    }

    static func residual(_ w: [Float], columns c: Int, d: [Double], bias: [Float]) -> Double {
        bias.indices.map { k in abs((0..<c).reduce(0.0) { $0 + Double(w[k * c + $1]) * d[$1] } - Double(bias[k])) }.max() ?? 0
    }

    static func cannotFold(_ location: String, why: String) -> PipelineError {
        PipelineError("the classification head's bias (out_head.bias) cannot be folded into the final LayerNorm: \(why); GPT2ForSequenceClassification's score layer has no bias",
                      location: location, hint: "this head cannot be exported to Hugging Face exactly")
    }
}
