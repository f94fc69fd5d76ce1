import ArtifactKit
import CCurlShim
import Foundation

/// libcurl must be initialised once per process before any handle is made.
enum CurlGlobal {
    static let ready: Bool = curl_global_init(3 /* CURL_GLOBAL_SSL | CURL_GLOBAL_WIN32, i.e. DEFAULT */) == CURLE_OK
}

/// One libcurl easy handle with its error buffer: options are set one by one (the first failing
/// one is remembered and returned by `perform`), then the transfer runs.
final class EasyHandle {
    let handle: UnsafeMutableRawPointer
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    private var setupError = CURLE_OK

    /// A handle for `url` restricted to `protocols` ("http,https"), with no signals and the
    /// connect timeout set; nil when libcurl cannot make one.
    init?(url: String, protocols: String, connectTimeout: Double) {
        _ = CurlGlobal.ready
        guard let h = curl_easy_init() else { return nil }
        handle = h
        errorBuffer.withUnsafeMutableBufferPointer { check(llmft_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, $0.baseAddress)) }
        set(CURLOPT_URL, url)
        set(CURLOPT_PROTOCOLS_STR, protocols)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(connectTimeout * 1000)))
    }

    deinit { curl_easy_cleanup(handle) }

    func check(_ rc: CURLcode) { if setupError == CURLE_OK && rc != CURLE_OK { setupError = rc } }
    func set(_ option: CURLoption, _ value: Int) { check(llmft_curl_setopt_long(handle, option, value)) }
    func set(_ option: CURLoption, _ value: String) { check(llmft_curl_setopt_string(handle, option, value)) }
    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) { check(llmft_curl_setopt_pointer(handle, option, pointer)) }

    /// Runs the transfer (or returns the first option that failed); the message is libcurl's
    /// detailed one when it wrote one, else its generic text for the code.
    func perform() -> (code: CURLcode, message: String) {
        let code = setupError != CURLE_OK ? setupError : curl_easy_perform(handle)
        let detailed = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return (code, detailed.isEmpty ? String(cString: curl_easy_strerror(code)) : detailed)
    }

    /// The last HTTP status (0 when there was none).
    var responseCode: Int {
        var status = 0
        return llmft_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK ? status : 0
    }
}
