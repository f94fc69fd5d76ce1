import Foundation
import Hummingbird

/// The outermost middleware: times every request, turns every error into a JSON answer
/// (`APIError`; Hummingbird's own 404/405/413 and anything unexpected as 500) and counts it in
/// the metrics under its route (unknown paths together as "other", so the labels stay few).
struct MetricsAndErrors<Context: RequestContext>: RouterMiddleware {
    /// The routes and the method each takes.
    static var routes: [String: String] {
        ["/": "GET", "/health": "GET", "/metrics": "GET", "/v1/models": "GET",
         "/v1/classify": "POST", "/v1/completions": "POST", "/v1/chat/completions": "POST"]
    }

    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let route = Self.routes[request.uri.path] != nil ? request.uri.path : "other"
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = try Self.apiError(error, path: request.uri.path).response(from: request, context: context)
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        metrics.record(route: route, method: request.method.rawValue, status: response.status.code, seconds: seconds)
        return response
    }

    static func apiError(_ error: Error, path: String) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? HTTPError {
            switch e.status {
            case .notFound, .methodNotAllowed:
                // Hummingbird answers a known path with another method as not found.
                guard let method = routes[path] else { return .notFound(path) }
                return APIError(.methodNotAllowed, "\(path) takes \(method) (docs/serve.md)", type: "invalid_request_error")
            case .contentTooLarge: return APIError(.contentTooLarge, e.body ?? "the request body is too large", type: "invalid_request_error")
            default: return APIError(e.status, e.body ?? e.status.reasonPhrase, type: e.status.code < 500 ? "invalid_request_error" : "server_error")
            }
        }
        return APIError(.internalServerError, "\(error)", type: "server_error")
    }
}

/// With a token set, /v1/* and /metrics need `Authorization: Bearer <token>` (compared in
/// constant time); the page and /health stay open (the page asks for the token).
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if let token, path.hasPrefix("/v1/") || path == "/metrics" {
            let given = request.headers[.authorization] ?? ""
            guard Self.equalInConstantTime(Array(given.utf8), Array("Bearer \(token)".utf8)) else { throw APIError.unauthorized }
        }
        return try await next(request, context)
    }

    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
