import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import Hummingbird
import Instruct

/// POST /v1/completions and POST /v1/chat/completions in OpenAI's shapes (docs/serve.md).
struct GenerationAPI: Sendable {
    enum Kind: Sendable {
        case completion, chat

        var object: String { self == .chat ? "chat.completion" : "text_completion" }
        var chunkObject: String { self == .chat ? "chat.completion.chunk" : "text_completion" }
        var idPrefix: String { self == .chat ? "chatcmpl-" : "cmpl-" }
    }

    /// One parsed request: the prompt's tokens and how to sample.
    struct Parsed {
        var kind: Kind
        var prompt: [Int32]
        var options: GenerationOptions
        var stream: Bool
        var stops: [String]
    }

    let style: PromptStyle
    let tokenizer: GPT2BPETokenizer
    let service: GenerationService
    let modelName: String
    let limits: ServerLimits

    static let samplingFields: Set<String> = ["model", "max_tokens", "temperature", "top_k", "seed", "stream", "stop", "n"]

    func parse(_ data: Data, kind: Kind) throws -> Parsed {
        let body = try JSONBody(data, allowed: GenerationAPI.samplingFields.union(kind == .chat ? ["messages", "max_completion_tokens"] : ["prompt"]))
        let text: String
        var stops = try body.strings("stop", single: true) ?? []
        guard stops.count <= 4 else { throw APIError.invalid("at most 4 stop strings", param: "stop") }
        switch kind {
        case .completion:
            guard let prompts = try body.strings("prompt", single: true) else { throw APIError.invalid("missing field \"prompt\"", param: "prompt") }
            guard prompts.count == 1 else { throw APIError.invalid("\"prompt\" must be one string (batch prompts are not supported)", param: "prompt") }
            text = prompts[0]
        case .chat:
            text = chatGenerationPrompt(try ChatRequest.messages(body), style: style)
            if let end = style.responseEnd { stops.append(end) }
        }
        guard !text.isEmpty else { throw APIError.invalid("the prompt is empty", param: kind == .chat ? "messages" : "prompt") }
        guard try body.int("n", in: 1...1) ?? 1 == 1 else { throw APIError.invalid("n must be 1") }
        let prompt = tokenizer.encodeOrdinary(text).map(Int32.init)
        let room = limits.generationContext - prompt.count
        guard room >= 1 else {
            throw APIError.invalid("the prompt has \(prompt.count) tokens; the server's context is \(limits.generationContext) (--context), which must leave room for one new token",
                                   param: kind == .chat ? "messages" : "prompt")
        }
        let maxTokens = try body.int("max_tokens", in: 1...limits.generationContext) ?? body.int("max_completion_tokens", in: 1...limits.generationContext)
            ?? limits.defaultMaxTokens
        let temperature = try body.number("temperature", in: 0...2) ?? 0
        let seed = try body.int("seed", in: Int.min...Int.max).map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 0...UInt64.max)
        let options = GenerationOptions(maxNewTokens: min(maxTokens, room), temperature: Float(temperature),
                                        topK: try body.int("top_k", in: 1...tokenizer.vocabularySize),
                                        eosId: Int32(GPT2BPETokenizer.endOfTextID), seed: seed)
        _ = try body.string("model")
        return Parsed(kind: kind, prompt: prompt, options: options, stream: try body.bool("stream") ?? false, stops: stops)
    }

    func respond(_ data: Data, kind: Kind) async throws -> Response {
        let request = try parse(data, kind: kind)
        let (events, cancel) = try service.generate(prompt: request.prompt, options: request.options)
        let reply = Reply(kind: kind, id: kind.idPrefix + UUID().uuidString.lowercased(), created: Int(Date().timeIntervalSince1970), model: modelName)
        if request.stream {
            let body = ResponseBody { writer in
                defer { cancel.set() }
                try await stream(events, request, reply, cancel: cancel, into: &writer)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
        defer { cancel.set() }
        var text = TextStream(stops: request.stops)
        var out = "", produced = 0, reason = GenerationSession.FinishReason.length
        for await event in events {
            switch event {
            case .token(let id):
                produced += 1
                out += text.push(try tokenizer.decodeBytes([Int(id)]))
                if text.stopped { reason = .endOfText }
            case .finished(let r): reason = r
            case .failed(let message): throw APIError.invalid(message)
            }
            if text.stopped { break }
        }
        out += text.finish()
        return jsonResponse(reply.complete(text: out, finish: reason.rawValue, promptTokens: request.prompt.count, completionTokens: produced))
    }

    /// Server-sent events: one `data: {chunk}` per piece of text, a last chunk with the finish
    /// reason, then `data: [DONE]`. A write to a client that went away throws, which ends this
    /// request only (its row is freed by `cancel`).
    private func stream(_ events: AsyncStream<GenerationEvent>, _ request: Parsed, _ reply: Reply, cancel: CancelFlag,
                        into writer: inout any ResponseBodyWriter) async throws {
        func send(_ value: JSONValue) async throws {
            try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + jsonBytes(value) + Array("\n\n".utf8)))
        }
        if request.kind == .chat { try await send(reply.chunk(role: true, text: "", finish: nil)) }
        var text = TextStream(stops: request.stops)
        var reason = GenerationSession.FinishReason.length
        loop: for await event in events {
            switch event {
            case .token(let id):
                let piece = text.push(try tokenizer.decodeBytes([Int(id)]))
                if !piece.isEmpty { try await send(reply.chunk(role: false, text: piece, finish: nil)) }
                if text.stopped { reason = .endOfText; break loop }
            case .finished(let r):
                reason = r
            case .failed(let message):
                try await send(APIError.invalid(message).json)
                break loop
            }
        }
        cancel.set()
        let tail = text.finish()
        if !tail.isEmpty { try await send(reply.chunk(role: false, text: tail, finish: nil)) }
        try await send(reply.chunk(role: false, text: nil, finish: reason.rawValue))
        try await writer.write(ByteBuffer(bytes: Array("data: [DONE]\n\n".utf8)))
        try await writer.finish(nil)
    }
}

/// The messages of a chat request: a non-empty list of {role, content} with roles system, user
/// and assistant, ending with a user (or system) message.
enum ChatRequest {
    static func messages(_ body: JSONBody) throws -> [ChatMessage] {
        guard let value = body.value("messages") else { throw APIError.invalid("missing field \"messages\"", param: "messages") }
        guard case .array(let items) = value, !items.isEmpty else {
            throw APIError.invalid("\"messages\" must be a non-empty list of {\"role\", \"content\"}", param: "messages")
        }
        let messages = try items.enumerated().map { i, item -> ChatMessage in
            guard case .object(let fields) = item, Set(fields.keys).isSubset(of: ["role", "content", "name"]),
                  let role = fields["role"]?.stringValue.flatMap(ChatRole.init(rawValue:)), let content = fields["content"]?.stringValue else {
                throw APIError.invalid("messages[\(i)] must be {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": \"...\"}", param: "messages")
            }
            return ChatMessage(role, content)
        }
        guard messages.last?.role != .assistant else {
            throw APIError.invalid("the last message must be the user's (the model answers it)", param: "messages")
        }
        return messages
    }
}

/// The identity of one answer and its JSON shapes.
struct Reply {
    var kind: GenerationAPI.Kind
    var id: String
    var created: Int
    var model: String

    func complete(text: String, finish: String, promptTokens: Int, completionTokens: Int) -> JSONValue {
        let choice: JSONValue = kind == .chat
            ? ["index": 0, "message": ["role": "assistant", "content": .string(text)], "finish_reason": .string(finish)]
            : ["index": 0, "text": .string(text), "logprobs": .null, "finish_reason": .string(finish)]
        return ["id": .string(id), "object": .string(kind.object), "created": .int(created), "model": .string(model),
                "choices": [choice],
                "usage": ["prompt_tokens": .int(promptTokens), "completion_tokens": .int(completionTokens),
                          "total_tokens": .int(promptTokens + completionTokens)]]
    }

    /// A streamed piece; `text` nil with a finish reason is the last chunk (an empty delta).
    func chunk(role: Bool, text: String?, finish: String?) -> JSONValue {
        let choice: JSONValue
        if kind == .chat {
            var delta: [String: JSONValue] = [:]
            if role { delta["role"] = "assistant" }
            if let text { delta["content"] = .string(text) }
            choice = ["index": 0, "delta": .object(delta), "finish_reason": finish.map { .string($0) } ?? .null]
        } else {
            choice = ["index": 0, "text": .string(text ?? ""), "logprobs": .null, "finish_reason": finish.map { .string($0) } ?? .null]
        }
        return ["id": .string(id), "object": .string(kind.chunkObject), "created": .int(created), "model": .string(model), "choices": [choice]]
    }
}
