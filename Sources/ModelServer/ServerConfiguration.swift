import Foundation

/// Limits of one server (flags of `serve`; docs/serve.md "Limits").
public struct ServerLimits: Sendable {
    /// Largest request body; a larger one is refused with 413 before it is read whole.
    public var maxBodyBytes = 1 << 20
    /// Most texts in one classify request.
    public var maxTexts = 256
    /// Rows per forward pass (classify) or requests generating together (chat and completions).
    public var maxBatch = 8
    /// Requests that may wait for the model; one more is answered 503.
    public var queue = 64
    /// Positions per generation row (prompt + new tokens), at most the model's context.
    public var generationContext = 1024
    /// `max_tokens` when a request does not say (the book's max_new_tokens).
    public var defaultMaxTokens = 256
    /// Seconds a connection may take to send a whole request, or stay idle between requests.
    public var requestTimeout = 30

    public init() {}
}

/// Where and how a server listens.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (reported through `onListening`).
    public var port = 8080
    /// When set, /v1/* and /metrics need `Authorization: Bearer <token>`.
    public var token: String?
    /// The model's name in responses (`model`): the model folder's name by default.
    public var modelName = "llm-finetune"
    public var limits = ServerLimits()

    public init() {}
}
