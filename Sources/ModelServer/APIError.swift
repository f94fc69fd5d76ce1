import Foundation
import Hummingbird

/// An error answer in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with
/// its HTTP status. Every refusal of the server is one of these (bad JSON and fields 400, token
/// 401, unknown route 404, body too large 413, queue full 503 with Retry-After).
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
    }

    static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(.badRequest, message, type: "invalid_request_error", param: param)
    }

    static func busy(queueLimit: Int) -> APIError {
        APIError(.serviceUnavailable, "the server is busy: \(queueLimit) requests already wait; retry shortly", type: "server_busy")
    }

    static let unauthorized = APIError(.unauthorized, "missing or wrong bearer token (send `Authorization: Bearer <token>`)",
                                       type: "authentication_error")

    static func tooLarge(limit: Int) -> APIError {
        APIError(.contentTooLarge, "the request body is larger than \(limit) bytes", type: "invalid_request_error")
    }

    static func notFound(_ path: String) -> APIError {
        APIError(.notFound, "no route \(path) (see GET / and docs/serve.md)", type: "not_found")
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    var json: JSONBodyValue {
        ["error": ["message": .string(message), "type": .string(type), "param": param.map { .string($0) } ?? .null, "code": .null]]
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = jsonResponse(json, status: status)
        if status == .serviceUnavailable { response.headers[.retryAfter] = "1" }
        return response
    }
}
