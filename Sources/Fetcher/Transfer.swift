import ArtifactKit
import CCurlShim
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// libcurl must be initialised once per process before any handle is made.
enum CurlGlobal {
    static let ready: Bool = curl_global_init(3 /* CURL_GLOBAL_SSL | CURL_GLOBAL_WIN32, i.e. DEFAULT */) == CURLE_OK
}

/// Settings of one transfer.
struct TransferRequest {
    var url: String
    /// The partial file to append to; created when missing.
    var partial: URL
    /// Bytes already in `partial` that we ask the server to skip (an HTTP Range request).
    var offset: Int64
    /// The declared size: receiving more than this aborts the transfer.
    var limit: Int64
    var connectTimeout: Double
    var stallTimeout: Int
    var progress: ProgressBar?
}

/// What one libcurl transfer did.
struct TransferOutcome {
    var code: CURLcode
    /// The last HTTP status (0 for file://).
    var httpStatus: Int
    /// libcurl's own detailed message, or its generic one.
    var curlMessage: String
    /// Bytes in the partial file when the transfer ended.
    var bytesInFile: Int64
    /// The server answered 206 for our Range request and we appended.
    var resumed: Bool
    /// The server answered 200 to a Range request, so the partial was restarted from byte 0.
    var serverIgnoredRange: Bool
    /// The server answered a Range request with a range that does not start where we asked.
    var rangeMismatch: Bool
    /// More bytes arrived than the declared size.
    var overLimit: Bool
    /// Writing the partial file failed (disk full, permissions).
    var localWriteError: String?

    var ok: Bool { code == CURLE_OK }
}

/// State shared with libcurl's C callbacks through their user-data pointer.
private final class TransferState {
    let fd: Int32
    let requestedOffset: Int64
    let limit: Int64
    let isHTTP: Bool
    let progress: ProgressBar?
    var bytesInFile: Int64
    var decided = false
    var resumed = false
    var serverIgnoredRange = false
    var rangeMismatch = false
    var overLimit = false
    var writeError: String?
    var status = 0
    var contentRangeStart: Int64?

    init(fd: Int32, offset: Int64, limit: Int64, isHTTP: Bool, progress: ProgressBar?) {
        self.fd = fd
        self.requestedOffset = offset
        self.bytesInFile = offset
        self.limit = limit
        self.isHTTP = isHTTP
        self.progress = progress
    }

    /// Called with each header line; a status line starts a new response (redirects make several).
    func header(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            let parts = trimmed.split(separator: " ")
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            contentRangeStart = nil
        } else if trimmed.lowercased().hasPrefix("content-range:") {
            // "Content-Range: bytes 1000-4999/5000"
            let value = trimmed.dropFirst("content-range:".count).trimmingCharacters(in: .whitespaces)
            if value.lowercased().hasPrefix("bytes "),
               let dash = value.firstIndex(of: "-") {
                contentRangeStart = Int64(value[value.index(value.startIndex, offsetBy: 6)..<dash].trimmingCharacters(in: .whitespaces))
            }
        }
    }

    /// Called with each piece of the body; returns false to abort the transfer.
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !decided {
            decided = true
            if isHTTP && requestedOffset > 0 {
                if status == 206 && contentRangeStart == requestedOffset {
                    resumed = true
                } else if status == 200 {
                    // The server ignored Range and sends the whole file: start over.
                    serverIgnoredRange = true
                    if ftruncate(fd, 0) != 0 {
                        writeError = String(cString: strerror(errno))
                        return false
                    }
                    bytesInFile = 0
                } else {
                    rangeMismatch = true
                    return false
                }
            }
        }
        if bytesInFile + Int64(bytes.count) > limit {
            overLimit = true
            return false
        }
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                writeError = String(cString: strerror(errno))
                return false
            }
            done += n
        }
        bytesInFile += Int64(bytes.count)
        return true
    }
}

private let writeCallback: llmft_data_fn = { ptr, size, nmemb, userdata in
    let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
    let count = size * nmemb
    guard count > 0, let ptr else { return count }
    return state.body(UnsafeRawBufferPointer(start: ptr, count: count)) ? count : 0
}

private let headerCallback: llmft_data_fn = { ptr, size, nmemb, userdata in
    let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
    let count = size * nmemb
    if count > 0, let ptr {
        let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: count), as: UTF8.self)
        state.header(line)
    }
    return count
}

private let progressCallback: llmft_xferinfo_fn = { userdata, _, _, _, _ in
    let state = Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
    state.progress?.update(bytes: state.bytesInFile)
    return 0
}

/// Runs one libcurl transfer of `request.url`, appending to `request.partial` from `request.offset`.
func runTransfer(_ request: TransferRequest) -> TransferOutcome {
    _ = CurlGlobal.ready
    let isHTTP = request.url.lowercased().hasPrefix("http")
    let fd = open(request.partial.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    if fd < 0 {
        return TransferOutcome(code: CURLE_WRITE_ERROR, httpStatus: 0, curlMessage: "cannot open the partial file",
                               bytesInFile: 0, resumed: false, serverIgnoredRange: false, rangeMismatch: false,
                               overLimit: false, localWriteError: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    // Two fetches appending to one partial file would interleave their bytes.
    if flock(fd, LOCK_EX | LOCK_NB) != 0 {
        return TransferOutcome(code: CURLE_WRITE_ERROR, httpStatus: 0, curlMessage: "the partial file is locked",
                               bytesInFile: 0, resumed: false, serverIgnoredRange: false, rangeMismatch: false,
                               overLimit: false, localWriteError: "another fetch is downloading into this file right now")
    }
    // The partial may be longer than `offset` only if the caller decided to restart; make them agree.
    if ftruncate(fd, off_t(request.offset)) != 0 {
        return TransferOutcome(code: CURLE_WRITE_ERROR, httpStatus: 0, curlMessage: "cannot truncate the partial file",
                               bytesInFile: 0, resumed: false, serverIgnoredRange: false, rangeMismatch: false,
                               overLimit: false, localWriteError: String(cString: strerror(errno)))
    }

    let state = TransferState(fd: fd, offset: request.offset, limit: request.limit, isHTTP: isHTTP, progress: request.progress)
    let context = Unmanaged.passRetained(state)
    defer { context.release() }

    guard let handle = curl_easy_init() else {
        return TransferOutcome(code: CURLE_FAILED_INIT, httpStatus: 0, curlMessage: "curl_easy_init failed",
                               bytesInFile: request.offset, resumed: false, serverIgnoredRange: false,
                               rangeMismatch: false, overLimit: false, localWriteError: nil)
    }
    defer { curl_easy_cleanup(handle) }

    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errBuf in
        var setupError = CURLE_OK
        func check(_ rc: CURLcode) { if setupError == CURLE_OK && rc != CURLE_OK { setupError = rc } }
        check(llmft_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errBuf.baseAddress))
        check(llmft_curl_setopt_string(handle, CURLOPT_URL, request.url))
        check(llmft_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https,file"))
        // A redirect must not turn a web download into a read of a local file.
        check(llmft_curl_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        check(llmft_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 1))
        check(llmft_curl_setopt_long(handle, CURLOPT_MAXREDIRS, 10))
        check(llmft_curl_setopt_long(handle, CURLOPT_FAILONERROR, 1))
        check(llmft_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(llmft_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(request.connectTimeout * 1000))))
        // A stall: fewer than 1 byte/s on average for `stallTimeout` seconds.
        check(llmft_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1))
        check(llmft_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, request.stallTimeout)))
        check(llmft_curl_setopt_string(handle, CURLOPT_USERAGENT, "llm-finetune-fetch/\(ToolInfo.version)"))
        if isHTTP && request.offset > 0 {
            // CURLOPT_RANGE rather than CURLOPT_RESUME_FROM: with the latter libcurl fails outright
            // when the server ignores the range, while we want to restart from zero then.
            check(llmft_curl_setopt_string(handle, CURLOPT_RANGE, "\(request.offset)-"))
        }
        check(llmft_curl_set_write_callback(handle, writeCallback, context.toOpaque()))
        check(llmft_curl_set_header_callback(handle, headerCallback, context.toOpaque()))
        if request.progress != nil {
            check(llmft_curl_set_xferinfo_callback(handle, progressCallback, context.toOpaque()))
        }
        if setupError != CURLE_OK { return setupError }
        return curl_easy_perform(handle)
    }

    var status = 0
    if isHTTP {
        var responseCode = 0
        if llmft_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &responseCode) == CURLE_OK { status = responseCode }
    }
    let detailed = String(cString: errorBuffer)
    let message = detailed.isEmpty ? String(cString: curl_easy_strerror(code)) : detailed
    request.progress?.update(bytes: state.bytesInFile, force: true)
    return TransferOutcome(code: code, httpStatus: status, curlMessage: message, bytesInFile: state.bytesInFile,
                           resumed: state.resumed, serverIgnoredRange: state.serverIgnoredRange,
                           rangeMismatch: state.rangeMismatch, overLimit: state.overLimit,
                           localWriteError: state.writeError)
}

/// Whether a failed transfer is worth retrying: network trouble and server-side errors are;
/// a missing file, a refused request (4xx other than 408 and 429) or a bad URL are not.
func isTransient(_ outcome: TransferOutcome) -> Bool {
    let transientCodes: [CURLcode] = [
        CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
        CURLE_OPERATION_TIMEDOUT, CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
        CURLE_GOT_NOTHING, CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_HTTP3,
        CURLE_AGAIN,
    ]
    if outcome.code == CURLE_HTTP_RETURNED_ERROR {
        let s = outcome.httpStatus
        return s == 408 || s == 429 || s >= 500
    }
    return transientCodes.contains(outcome.code)
}
