import ArtifactKit
import Classification
import Foundation
import GPT2Tokenizer
import Hummingbird

extension ModelServer {
    /// GET /, /health, /metrics, /v1/models; POST /v1/classify (classifier) or /v1/completions and
    /// /v1/chat/completions (instruction model). The other kind's routes answer 404 with a JSON
    /// error saying which model is loaded.
    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MetricsAndErrors(metrics: metrics))
        router.add(middleware: BearerToken(token: configuration.token))
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.index_html)))
        }
        router.get("/health") { [self] _, _ in jsonResponse(healthJSON) }
        router.get("/metrics") { [self] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.text(queueDepth: queueDepth))))
        }
        router.get("/v1/models") { [self] _, _ in
            jsonResponse(["object": "list", "data": [["id": .string(configuration.modelName), "object": "model", "owned_by": "llm-finetune"]]])
        }
        router.post("/v1/classify") { [self] request, _ in try await classify(try await readBody(request)) }
        router.post("/v1/completions") { [self] request, _ in
            try await generation(for: "/v1/completions").respond(try await readBody(request), kind: .completion)
        }
        router.post("/v1/chat/completions") { [self] request, _ in
            try await generation(for: "/v1/chat/completions").respond(try await readBody(request), kind: .chat)
        }
        return router
    }

    /// What the page and a health check need: the model's kind, its labels or template, the limits.
    var healthJSON: JSONValue {
        var info: [String: JSONValue] = ["status": "ok", "kind": .string(model.kind), "model": .string(configuration.modelName),
                                         "auth": .bool(configuration.token != nil), "max_texts": .int(configuration.limits.maxTexts)]
        switch model {
        case .classifier(let c):
            info["labels"] = .array(c.checkpoint.labelNames.map { .string($0) })
            info["max_length"] = .int(c.checkpoint.maxLength)
        case .instruct(let t):
            info["template"] = .string(t.style.rawValue)
            info["context"] = .int(generationContext)
        }
        return .object(info)
    }

    /// The body, refused with 413 past the limit (by its Content-Length before reading, or while
    /// reading a chunked one). Slow bodies are cut by `RequestReadTimeout`.
    func readBody(_ request: Request) async throws -> Data {
        let limit = configuration.limits.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw APIError.tooLarge(limit: limit) }
        var buffer = ByteBuffer()
        for try await part in request.body {
            guard buffer.readableBytes + part.readableBytes <= limit else { throw APIError.tooLarge(limit: limit) }
            var part = part
            buffer.writeBuffer(&part)
        }
        return Data(buffer.readableBytesView)
    }

    func generation(for path: String) throws -> GenerationAPI {
        guard case .instruct(let trained) = model, let service = generationService else {
            throw APIError(.notFound, "\(path) needs an instruction model; this server has a classifier (use POST /v1/classify)", type: "not_found")
        }
        return GenerationAPI(style: trained.style, tokenizer: tokenizer, service: service, modelName: configuration.modelName,
                             limits: ServerLimits(copying: configuration.limits, generationContext: generationContext))
    }

    /// POST /v1/classify {"texts": [...]}: per text its label, the probability of every class,
    /// and whether it was cut to the training length (`truncated`, `tokens`, `used_tokens`).
    func classify(_ data: Data) async throws -> Response {
        guard case .classifier(let classifier) = model, let service = classifyService else {
            throw APIError(.notFound, "/v1/classify needs a classifier; this server has an instruction model (use POST /v1/chat/completions)",
                           type: "not_found")
        }
        let body = try JSONBody(data, allowed: ["texts"])
        let texts = try body.required("texts") { try body.strings($0) }
        let limit = configuration.limits.maxTexts
        guard !texts.isEmpty else { throw APIError.invalid("\"texts\" is empty: give at least one text", param: "texts") }
        guard texts.count <= limit else { throw APIError.invalid("\(texts.count) texts: at most \(limit) per request (--max-texts)", param: "texts") }
        let encoded = tokenizer.encodeOrdinaryBatch(texts)
        if let empty = encoded.firstIndex(where: \.isEmpty) {
            throw APIError.invalid("texts[\(empty)] is empty (no tokens to classify)", param: "texts")
        }
        let predictions = try await service.classify(encoded)
        let names = classifier.checkpoint.labelNames
        let results: [JSONValue] = predictions.map { p in
            let best = p.probabilities.indices.max { p.probabilities[$0] < p.probabilities[$1] } ?? 0
            return ["label": .string(names[best]),
                    "probabilities": .object(Dictionary(zip(names, p.probabilities.map { .double(Double($0)) }), uniquingKeysWith: { first, _ in first })),
                    "tokens": .int(p.tokens), "used_tokens": .int(p.usedTokens), "truncated": .bool(p.truncated)]
        }
        return jsonResponse(["model": .string(configuration.modelName), "labels": .array(names.map { .string($0) }), "results": .array(results)])
    }
}

extension ServerLimits {
    init(copying other: ServerLimits, generationContext: Int) {
        self = other
        self.generationContext = generationContext
    }
}
