import ArtifactKit
import Classification
import Foundation
import GPT2
import GPT2Tokenizer
import Hummingbird
import Instruct
import NIOCore

/// One trained model over HTTP (docs/serve.md): the routes, the bearer token, the metrics, and
/// the worker that batches requests into forward passes. Create it, `run` it (SIGINT or SIGTERM
/// drain the requests in flight and return), or `makeApplication` to run it yourself.
public final class ModelServer: @unchecked Sendable {
    public let model: ServedModel
    public let tokenizer: GPT2BPETokenizer
    public let configuration: ServerConfiguration
    public let metrics = ServerMetrics()
    let classifyService: ClassifyService?
    let generationService: GenerationService?

    public init(model: ServedModel, tokenizer: GPT2BPETokenizer, configuration: ServerConfiguration) throws {
        let limits = configuration.limits
        guard limits.maxBatch >= 1, limits.queue >= 1, limits.maxTexts >= 1, limits.maxBodyBytes >= 1024, limits.requestTimeout >= 1 else {
            throw PipelineError("max batch, queue, max texts and request timeout must be at least 1 and the body limit at least 1024 bytes",
                                location: "serve")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.configuration = configuration
        switch model {
        case .classifier(let classifier):
            classifyService = ClassifyService(classifier: classifier, maxBatch: limits.maxBatch, queueLimit: limits.queue, metrics: metrics)
            generationService = nil
        case .instruct(let trained):
            let context = min(limits.generationContext, trained.model.config.contextLength)
            let session = try GenerationSession(model: trained.model, slots: limits.maxBatch, context: context)
            generationService = GenerationService(session: session, queueLimit: limits.queue, metrics: metrics)
            classifyService = nil
        }
    }

    /// Positions per generation row actually used (the flag, capped at the model's context).
    public var generationContext: Int { min(configuration.limits.generationContext, model.config.contextLength) }

    /// Bytes of the generation key/value cache (0 for a classifier).
    public var cacheBytes: Int {
        guard case .instruct = model else { return 0 }
        let c = model.config
        return 2 * c.nLayers * configuration.limits.maxBatch * generationContext * c.embDim * MemoryLayout<Float>.size
    }

    /// The Hummingbird application; `onListening` gets the bound port.
    public func makeApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let timeout = TimeAmount.seconds(Int64(configuration.limits.requestTimeout))
        return Application(
            router: makeRouter(),
            server: .http1(configuration: .init(additionalChannelHandlers: [RequestReadTimeout(timeout: timeout)], idleTimeout: timeout)),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) })
    }

    /// Serves until SIGINT or SIGTERM, lets the requests in flight finish, then stops the worker.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await makeApplication(onListening: onListening).runService(gracefulShutdownSignals: [.sigterm, .sigint])
        shutdown()
    }

    /// Finishes what the worker holds and stops it.
    public func shutdown() {
        classifyService?.shutdown()
        generationService?.shutdown()
    }

    /// Seconds before each generation step (tests: a tiny model's stream must still be running
    /// when the test hangs up or sends SIGINT). 0 in normal use.
    public var testStepDelay: Double {
        get { generationService?.stepDelay ?? 0 }
        set { generationService?.stepDelay = newValue }
    }

    var queueDepth: Int { classifyService?.queueDepth ?? generationService?.queueDepth ?? 0 }
}
