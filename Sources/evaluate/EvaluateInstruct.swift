import ArgumentParser
import Quantization

extension BaseQuantization: ExpressibleByArgument {}
import ArtifactKit
import Foundation
import Instruct
import TrainingKit
import ToolSupport

/// `evaluate instruct`: losses, perplexities, a response for every test entry, overlap scores and
/// an optional judge score for a model trained by `train instruct`. See docs/instruct.md.
struct EvaluateInstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct",
        abstract: "Evaluate an instruction-tuned model: validation/test loss and perplexity, greedy responses to every test entry, overlap scores, optional judge.",
        discussion: "Writes instruction-data-with-response.json (the book's file), scores.jsonl, metrics.json, loss.svg and manifest.json into --out.")

    @Option(help: "Output directory of `train instruct`.") var model: Path = "data/instruct-train"
    @Option(help: "Output directory of `prepare instruct`.") var prepared: Path = "data/instruct"
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe).") var vocab: Path = "data/instruct-raw/gpt2"
    @Option(help: "Output directory.") var out: Path = "data/instruct-eval"
    @Option(help: "Batch size of the losses.") var batchSize = 8
    @Option(help: "Prompts generated together with the KV cache (see docs/instruct.md for the measurements behind 32).") var generationBatch = 32
    @Option(help: "Most tokens generated per response.") var maxNewTokens = 256
    @Option(help: "Only the first N test entries get responses (default: all).") var limit: Int?
    @Option(help: "Ollama-compatible endpoint of the judge model, e.g. http://localhost:11434 (default: no judge).") var judgeUrl: String?
    @Option(help: "Judge model name.") var judgeModel = "llama3"
    @Option(help: "Decode (and compute the losses) with the base's Linear weights as nf4 or int8, read packed by the kernels (none: float32).") var quantize = BaseQuantization.none

    func run() throws {
        var o = InstructEvaluateOptions(model: model.url, prepared: prepared.url, output: out.url, vocabDirectory: vocab.url)
        o.batchSize = batchSize
        o.generationBatch = generationBatch
        o.maxNewTokens = maxNewTokens
        o.limit = limit
        o.quantize = quantize
        if let url = judgeUrl, !url.isEmpty { o.judge = JudgeOptions(url: url, model: judgeModel) }
        func err(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
        let console = ConsoleProgress()
        let r = try InstructEvaluateStage.run(o, progress: console.callback)
        let m = r.metrics
        func d(_ v: JSONValue?) -> String { v?.doubleValue.map { String(format: "%.4f", $0) } ?? "-" }
        print("validation loss \(d(m["validation"]?["loss"])) perplexity \(d(m["validation"]?["perplexity"]))")
        print("test       loss \(d(m["test"]?["loss"])) perplexity \(d(m["test"]?["perplexity"]))")
        print("overlap: token F1 \(d(m["overlap"]?["token_f1_mean"])), ROUGE-L \(d(m["overlap"]?["rouge_l_mean"])) over \(r.responses.count) responses")
        print("generation: \(m["generation"]?["new_tokens"]?.intValue ?? 0) tokens in \(d(m["generation"]?["seconds"]))s (\(d(m["generation"]?["tokens_per_second"])) tokens/s)")
        if let p = r.judgeProblem { err("warning: \(p)") }
        if let mean = m["judge"]?["mean"]?.doubleValue { print(String(format: "judge mean score %.2f", mean)) }
        print("wrote \(out)/" + r.files.joined(separator: ", "))
        console.notePeakMemory()
    }
}
