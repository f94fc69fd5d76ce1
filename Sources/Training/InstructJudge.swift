import ArtifactKit
import CCurl
import CCurlShim
import DataPrep
import Foundation

/// The book's judge (section 7.8): a larger model behind an Ollama-compatible HTTP endpoint rates
/// each response from 0 to 100. Off by default; `evaluate instruct --judge-url ...` turns it on.
public struct JudgeOptions: Sendable {
    /// Base URL, e.g. http://localhost:11434 (the request goes to {url}/api/chat).
    public var url: String
    /// The book uses llama3 (8B).
    public var model: String = "llama3"
    /// Seconds for one reply (a large model on a CPU is slow).
    public var timeoutSeconds: Double = 300
    public var connectTimeoutSeconds: Double = 5

    public init(url: String, model: String = "llama3") {
        self.url = url
        self.model = model
    }
}

/// The endpoint cannot be used at all (refused connection, timeout, HTTP error, not Ollama's reply shape).
public struct JudgeUnavailable: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

public enum Judge {
    /// The book's prompt, with the entry formatted by the chapter's `format_input` (the Alpaca
    /// prompt, whatever style the model was trained with, as in the book).
    public static func prompt(entry: InstructionEntry, modelResponse: String) -> String {
        "Given the input `\(formatPrompt(entry, style: .alpaca))` and correct output `\(entry.output)`, " +
            "score the model response `\(modelResponse)` on a scale from 0 to 100, where 100 is the best score. " +
            "Respond with the integer number only."
    }

    /// The request body of the book's `query_model`.
    public static func requestBody(model: String, prompt: String) -> Data {
        let body: JSONValue = .object([
            "model": .string(model),
            "messages": .array([.object(["role": "user", "content": .string(prompt)])]),
            "options": .object(["seed": 123, "temperature": 0, "num_ctx": 2048]),
            "stream": false,
        ])
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(body)) ?? Data()
    }

    /// The score in a reply, as the book's `int(score)`: the whole reply (surrounding whitespace
    /// allowed) must be an integer; we also require 0...100. nil: not a score.
    public static func parseScore(_ reply: String) -> Int? {
        let t = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = Int(t), (0...100).contains(v) else { return nil }
        return v
    }

    /// Sends one prompt; returns the reply text (`message.content`).
    public static func ask(_ prompt: String, options: JudgeOptions) throws -> String {
        let base = options.url.hasSuffix("/") ? String(options.url.dropLast()) : options.url
        let url = base + "/api/chat"
        let (status, body) = try HTTPClient.postJSON(url: url, body: requestBody(model: options.model, prompt: prompt),
                                                     timeout: options.timeoutSeconds, connectTimeout: options.connectTimeoutSeconds)
        guard status == 200 else {
            let snippet = String(decoding: body.prefix(200), as: UTF8.self)
            throw JudgeUnavailable(message: "\(url) answered HTTP \(status): \(snippet)")
        }
        guard let reply = try? JSONDecoder().decode(JSONValue.self, from: body), let content = reply["message"]?["content"]?.stringValue else {
            throw JudgeUnavailable(message: "\(url) did not answer with Ollama's {\"message\": {\"content\": ...}}: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        return content
    }
}

/// A minimal blocking HTTP POST over libcurl (through the CCurlShim wrappers).
public enum HTTPClient {
    static let ready: Bool = curl_global_init(3 /* CURL_GLOBAL_DEFAULT */) == CURLE_OK

    final class Sink { var data = Data() }

    /// POSTs `body` as application/json; returns the HTTP status and the response body.
    /// Throws `JudgeUnavailable` when no HTTP exchange happened (refused, timeout, bad URL).
    public static func postJSON(url: String, body: Data, timeout: Double, connectTimeout: Double) throws -> (Int, Data) {
        _ = ready
        guard let handle = curl_easy_init() else { throw JudgeUnavailable(message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let sink = Sink()
        let context = Unmanaged.passRetained(sink)
        defer { context.release() }
        let headers: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "Content-Type: application/json")
        defer { curl_slist_free_all(headers) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let write: llmft_data_fn = { ptr, size, nmemb, userdata in
            let sink = Unmanaged<Sink>.fromOpaque(userdata!).takeUnretainedValue()
            let n = size * nmemb
            if let p = ptr, n > 0 { sink.data.append(UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: n) }
            return n
        }
        let code: CURLcode = body.withUnsafeBytes { raw in
            errorBuffer.withUnsafeMutableBufferPointer { errBuf in
                var setupError = CURLE_OK
                func check(_ rc: CURLcode) { if setupError == CURLE_OK && rc != CURLE_OK { setupError = rc } }
                check(llmft_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errBuf.baseAddress))
                check(llmft_curl_setopt_string(handle, CURLOPT_URL, url))
                check(llmft_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
                check(llmft_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
                check(llmft_curl_setopt_long(handle, CURLOPT_POST, 1))
                check(llmft_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress)))
                check(llmft_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count)))
                check(llmft_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers)))
                check(llmft_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(connectTimeout * 1000))))
                check(llmft_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, Int(timeout * 1000))))
                check(llmft_curl_set_write_callback(handle, write, context.toOpaque()))
                if setupError != CURLE_OK { return setupError }
                return curl_easy_perform(handle)
            }
        }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            throw JudgeUnavailable(message: "cannot reach \(url): " + (detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail))
        }
        var status = 0
        _ = llmft_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return (status, sink.data)
    }
}
