import ArtifactKit
import CCurlShim
import Foundation

/// No HTTP exchange happened: refused, timed out, bad URL.
public struct HTTPUnreachable: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A minimal blocking HTTP POST.
public enum HTTPPost {
    private final class Sink { var data = Data() }

    /// POSTs `body` as application/json; returns the HTTP status and the response body.
    /// Throws `HTTPUnreachable` when no HTTP exchange happened.
    public static func json(url: String, body: Data, timeout: Double, connectTimeout: Double) throws -> (status: Int, body: Data) {
        guard let easy = EasyHandle(url: url, protocols: "http,https", connectTimeout: connectTimeout) else {
            throw HTTPUnreachable(message: "curl_easy_init failed")
        }
        let sink = Sink()
        let context = Unmanaged.passRetained(sink)
        defer { context.release() }
        let headers: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "Content-Type: application/json")
        defer { curl_slist_free_all(headers) }
        let write: llmft_data_fn = { ptr, size, nmemb, userdata in
            let sink = Unmanaged<Sink>.fromOpaque(userdata!).takeUnretainedValue()
            let n = size * nmemb
            if let p = ptr, n > 0 { sink.data.append(UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: n) }
            return n
        }
        let (code, message): (CURLcode, String) = body.withUnsafeBytes { raw in
            easy.set(CURLOPT_POST, 1)
            easy.set(CURLOPT_POSTFIELDS, pointer: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            easy.check(llmft_curl_setopt_off_t(easy.handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count)))
            easy.set(CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(headers))
            easy.set(CURLOPT_TIMEOUT_MS, max(1, Int(timeout * 1000)))
            easy.check(llmft_curl_set_write_callback(easy.handle, write, context.toOpaque()))
            return easy.perform()
        }
        guard code == CURLE_OK else { throw HTTPUnreachable(message: "cannot reach \(url): \(message)") }
        return (easy.responseCode, sink.data)
    }
}
