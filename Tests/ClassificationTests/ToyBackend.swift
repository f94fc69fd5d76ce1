import ArtifactKit
import Foundation
import GPT2
@testable import Classification
import TrainingKit

/// A test double for the transformer: tiny, pure Swift, exact gradients, and the two properties
/// the trainer relies on — causal (position t sees only 0...t) and organised in blocks over the
/// real `ParameterLayout` buffer — so that caching, trimming and resuming can be checked against
/// recomputation. Not GPT-2: each block is h_t += tanh(W · mean(h_0...h_t) + b) with W, b taken
/// from the block's `attn.c_proj` tensors, and the final "LayerNorm" is an elementwise affine map.
final class ToyBackend: ClassifierBackend {
    let layout: ParameterLayout
    /// Counts forward passes through blocks, to check the cache really skips work.
    var blockForwardCount = 0

    private struct Saved {
        var tokens: [Int32]?
        var batch: Int, length: Int, startBlock: Int
        var blockInputs: [[Float]]   // h entering each block that ran
        var prefixMeans: [[Float]]
        var preActivations: [[Float]]
        var finalInput: [Float]
    }
    private var saved: Saved?

    private var p: [Float] = []

    init(layout: ParameterLayout) { self.layout = layout }

    func loadParameters(_ values: [Float], range: Range<Int>) {
        if p.count != values.count { p = values } else { p.replaceSubrange(range, with: values[range]) }
    }

    private var C: Int { layout.config.embDim }

    func embed(_ tokens: [Int32], batch: Int, length: Int, _ p: [Float]) -> [Float] {
        let wte = layout.spec(named: "wte.weight")!.offset, wpe = layout.spec(named: "wpe.weight")!.offset
        var h = [Float](repeating: 0, count: batch * length * C)
        for b in 0..<batch {
            for t in 0..<length {
                let tok = Int(tokens[b * length + t])
                for c in 0..<C { h[(b * length + t) * C + c] = p[wte + tok * C + c] + p[wpe + t * C + c] }
            }
        }
        return h
    }

    private func blockForward(_ i: Int, _ h: [Float], batch: Int, length: Int, _ p: [Float]) -> (out: [Float], mean: [Float], z: [Float]) {
        blockForwardCount += 1
        let W = layout.spec(named: "h.\(i).attn.c_proj.weight")!.offset, bias = layout.spec(named: "h.\(i).attn.c_proj.bias")!.offset
        var mean = [Float](repeating: 0, count: h.count), z = mean, out = h
        for b in 0..<batch {
            var running = [Float](repeating: 0, count: C)
            for t in 0..<length {
                let base = (b * length + t) * C
                for c in 0..<C { running[c] += h[base + c]; mean[base + c] = running[c] / Float(t + 1) }
                for o in 0..<C {
                    var s = p[bias + o]
                    for c in 0..<C { s += mean[base + c] * p[W + c * C + o] }
                    z[base + o] = s
                    out[base + o] += tanh(s)
                }
            }
        }
        return (out, mean, z)
    }

    func hiddenStates(tokens: [Int32], batch: Int, length: Int, endBlock: Int) throws -> [Float] {
        var h = embed(tokens, batch: batch, length: length, p)
        for i in 0..<endBlock { h = blockForward(i, h, batch: batch, length: length, p).out }
        return h
    }

    func forwardTop(_ input: TrunkInput, batch: Int, length: Int, startBlock: Int, keepActivations: Bool) throws -> [Float] {
        var h: [Float]
        var tokens: [Int32]? = nil
        switch input {
        case .tokens(let t): precondition(startBlock == 0); tokens = t; h = embed(t, batch: batch, length: length, p)
        case .hidden(let x): h = x
        }
        var inputs: [[Float]] = [], means: [[Float]] = [], zs: [[Float]] = []
        for i in startBlock..<layout.config.nLayers {
            inputs.append(h)
            let r = blockForward(i, h, batch: batch, length: length, p)
            means.append(r.mean); zs.append(r.z); h = r.out
        }
        let g = layout.spec(named: "ln_f.weight")!.offset, beta = layout.spec(named: "ln_f.bias")!.offset
        var y = h
        for j in 0..<h.count { let c = j % C; y[j] = h[j] * p[g + c] + p[beta + c] }
        saved = keepActivations ? Saved(tokens: tokens, batch: batch, length: length, startBlock: startBlock,
                                        blockInputs: inputs, prefixMeans: means, preActivations: zs, finalInput: h) : nil
        return y
    }

    func backwardTop(dOutput: [Float], gradients: inout [Float]) throws {
        guard let s = saved else { fatalError("backwardTop without a kept forwardTop") }
        let g = layout.spec(named: "ln_f.weight")!.offset, beta = layout.spec(named: "ln_f.bias")!.offset
        var dh = [Float](repeating: 0, count: dOutput.count)
        for j in 0..<dOutput.count {
            let c = j % C
            gradients[g + c] += dOutput[j] * s.finalInput[j]
            gradients[beta + c] += dOutput[j]
            dh[j] = dOutput[j] * p[g + c]
        }
        for (idx, i) in (s.startBlock..<layout.config.nLayers).enumerated().reversed() {
            let W = layout.spec(named: "h.\(i).attn.c_proj.weight")!.offset, bias = layout.spec(named: "h.\(i).attn.c_proj.bias")!.offset
            let mean = s.prefixMeans[idx], z = s.preActivations[idx]
            var dIn = dh
            for b in 0..<s.batch {
                var da = [[Float]](repeating: [Float](repeating: 0, count: C), count: s.length)
                for t in 0..<s.length {
                    let base = (b * s.length + t) * C
                    for o in 0..<C {
                        let th = tanh(z[base + o])
                        let dz = dh[base + o] * (1 - th * th)
                        gradients[bias + o] += dz
                        for c in 0..<C {
                            gradients[W + c * C + o] += mean[base + c] * dz
                            da[t][c] += p[W + c * C + o] * dz
                        }
                    }
                }
                // mean_t = (h_0 + ... + h_t) / (t+1), so dh_s gets sum over t >= s of da_t / (t+1).
                var suffix = [Float](repeating: 0, count: C)
                for t in stride(from: s.length - 1, through: 0, by: -1) {
                    for c in 0..<C { suffix[c] += da[t][c] / Float(t + 1) }
                    for c in 0..<C { dIn[(b * s.length + t) * C + c] += suffix[c] }
                }
            }
            dh = dIn
        }
        if let tokens = s.tokens {
            let wte = layout.spec(named: "wte.weight")!.offset, wpe = layout.spec(named: "wpe.weight")!.offset
            for b in 0..<s.batch {
                for t in 0..<s.length {
                    let tok = Int(tokens[b * s.length + t])
                    for c in 0..<C {
                        gradients[wte + tok * C + c] += dh[(b * s.length + t) * C + c]
                        gradients[wpe + t * C + c] += dh[(b * s.length + t) * C + c]
                    }
                }
            }
        }
    }
}
