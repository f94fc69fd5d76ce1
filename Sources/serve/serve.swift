import ArgumentParser
import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import ModelServer
import Quantization
import ToolSupport

extension BaseQuantization: ExpressibleByArgument {}

/// `serve`: one trained model (a `train` or `train instruct` output folder) over HTTP: classify,
/// OpenAI-style completions and chat, a web page, health and metrics. See docs/serve.md.
@main
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a trained classifier or instruction model over HTTP (POST /v1/classify, /v1/completions, /v1/chat/completions; GET / is a page).",
        discussion: "Binds 127.0.0.1 unless --host says otherwise; --port 0 picks a free port and prints it. Ctrl-C (SIGINT) or SIGTERM lets the requests in flight finish, then exits. See docs/serve.md.")

    @Option(help: "Output folder of `train` (a classifier) or `train instruct` (an instruction model).") var model: Path
    @Option(help: "Address to bind (0.0.0.0 for every interface: then set --token).") var host = "127.0.0.1"
    @Option(help: "Port (0: a free one, printed).") var port = 8080
    @Option(help: "Tokenizer folder (encoder.json, vocab.bpe) the model was trained with.") var vocab: Path = "data/raw/gpt2"
    @Option(help: "Texts per forward pass (classify), or requests generating together (chat, completions).") var maxBatch = 8
    @Option(help: "Requests that may wait for the model; more are answered 503.") var queue = 64
    @Option(help: "Bearer token that /v1/* and /metrics require (default: $LLMFT_SERVE_TOKEN, or none).") var token: String?
    @Option(help: "Largest request body in bytes (413 past it).") var maxBodyBytes = 1 << 20
    @Option(help: "Most texts in one classify request.") var maxTexts = 256
    @Option(help: "Positions per generation row, prompt plus new tokens (at most the model's context).") var context = 1024
    @Option(help: "max_tokens of a request that does not say.") var defaultMaxTokens = 256
    @Option(help: "Seconds a connection may take to send a whole request or stay idle between requests.") var requestTimeout = 30
    @Option(help: "Instruction models: decode with the base's Linear weights as nf4 or int8 (the tied embedding int8), read packed by the kernels (none: float32).") var quantize = BaseQuantization.none
    @Option(help: .hidden) var testStepDelay = 0.0

    func run() async throws {
        do {
            try await serve()
        } catch let e as PipelineError {
            FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
            throw ExitCode.failure
        }
    }

    func serve() async throws {
        let loaded = try ServedModel.load(from: model.url)
        if let type = quantize.type {
            guard case .instruct(let trained) = loaded else {
                throw PipelineError("--quantize is for instruction models; a classifier is served in float32", location: "--quantize",
                                    hint: "drop --quantize, or serve a `train instruct` output")
            }
            let q = try trained.model.quantizeBase(type)
            print("base quantized to \(type.rawValue) (the tied embedding int8): \(TextFormat.bytes(q.byteCount))")
        }
        let tokenizer = try GPT2BPETokenizer(directory: vocab.url)
        try loaded.check(tokenizer: tokenizer, vocabDirectory: vocab.url)
        var c = ServerConfiguration()
        c.host = host
        c.port = port
        c.token = token ?? ProcessInfo.processInfo.environment["LLMFT_SERVE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        c.modelName = model.url.standardizedFileURL.lastPathComponent
        c.limits.maxBatch = maxBatch
        c.limits.queue = queue
        c.limits.maxBodyBytes = maxBodyBytes
        c.limits.maxTexts = maxTexts
        c.limits.generationContext = context
        c.limits.defaultMaxTokens = defaultMaxTokens
        c.limits.requestTimeout = requestTimeout
        let server = try ModelServer(model: loaded, tokenizer: tokenizer, configuration: c)
        server.testStepDelay = testStepDelay
        let kind = loaded.kind, host = host, auth = c.token != nil, name = c.modelName, limits = c.limits
        let cache = server.cacheBytes > 0 ? String(format: ", KV cache %.0f MiB", Double(server.cacheBytes) / 1_048_576) : ""
        try await server.run { port in
            print("serving \(kind) \(name) on http://\(host):\(port)/ (max batch \(limits.maxBatch), queue \(limits.queue)\(cache)\(auth ? ", bearer token required" : ""))")
            fflush(stdout)
        }
        print("stopped: requests in flight answered")
    }
}
