import ArtifactKit
import CCurlShim
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Settings of one download.
public struct DownloadRequest {
    public var url: String
    /// The partial file to append to; created when missing.
    public var partial: URL
    /// Bytes already in `partial` that we ask the server to skip (an HTTP Range request).
    public var offset: Int64
    /// The declared size: receiving more than this aborts the transfer.
    public var limit: Int64
    public var connectTimeout: Double
    public var stallTimeout: Int
    /// Called with the bytes in the partial file as they arrive (`final` on the last call).
    public var progress: ((_ bytes: Int64, _ final: Bool) -> Void)?

    public init(url: String, partial: URL, offset: Int64, limit: Int64, connectTimeout: Double, stallTimeout: Int,
                progress: ((Int64, Bool) -> Void)? = nil) {
        self.url = url
        self.partial = partial
        self.offset = offset
        self.limit = limit
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.progress = progress
    }
}

/// What one download did.
public struct DownloadOutcome {
    var code: CURLcode
    /// The last HTTP status (0 for file://).
    public var httpStatus: Int
    /// libcurl's own detailed message, or its generic one.
    public var curlMessage: String
    /// Bytes in the partial file when the transfer ended.
    public var bytesInFile: Int64
    /// The server answered 206 for our Range request and we appended.
    public var resumed: Bool
    /// The server answered 200 to a Range request, so the partial was restarted from byte 0.
    public var serverIgnoredRange: Bool
    /// The server answered a Range request with a range that does not start where we asked.
    public var rangeMismatch: Bool
    /// More bytes arrived than the declared size.
    public var overLimit: Bool
    /// Writing the partial file failed (disk full, permissions).
    public var localWriteError: String?

    public var ok: Bool { code == CURLE_OK }
    /// libcurl saw the body end before its announced length.
    public var endedEarly: Bool { code == CURLE_PARTIAL_FILE }

    /// A download that failed before or without a transfer.
    static func failed(_ code: CURLcode, _ message: String, bytesInFile: Int64, localWriteError: String?) -> DownloadOutcome {
        DownloadOutcome(code: code, httpStatus: 0, curlMessage: message, bytesInFile: bytesInFile, resumed: false,
                        serverIgnoredRange: false, rangeMismatch: false, overLimit: false, localWriteError: localWriteError)
    }
}

/// State shared with libcurl's C callbacks through their user-data pointer.
private final class TransferState {
    let fd: Int32
    let requestedOffset: Int64
    let limit: Int64
    let isHTTP: Bool
    let progress: ((Int64, Bool) -> Void)?
    var bytesInFile: Int64
    var decided = false
    var resumed = false
    var serverIgnoredRange = false
    var rangeMismatch = false
    var overLimit = false
    var writeError: String?
    var status = 0
    var contentRangeStart: Int64?

    init(fd: Int32, offset: Int64, limit: Int64, isHTTP: Bool, progress: ((Int64, Bool) -> Void)?) {
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
    state.progress?(state.bytesInFile, false)
    return 0
}

/// Downloads `request.url` with libcurl, appending to `request.partial` from `request.offset`.
public func download(_ request: DownloadRequest) -> DownloadOutcome {
    let isHTTP = request.url.lowercased().hasPrefix("http")
    let fd = open(request.partial.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    if fd < 0 {
        return DownloadOutcome.failed(CURLE_WRITE_ERROR, "cannot open the partial file", bytesInFile: 0, localWriteError: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    // Two fetches appending to one partial file would interleave their bytes.
    if flock(fd, LOCK_EX | LOCK_NB) != 0 {
        return DownloadOutcome.failed(CURLE_WRITE_ERROR, "the partial file is locked", bytesInFile: 0, localWriteError: "another fetch is downloading into this file right now")
    }
    // The partial may be longer than `offset` only if the caller decided to restart; make them agree.
    if ftruncate(fd, off_t(request.offset)) != 0 {
        return DownloadOutcome.failed(CURLE_WRITE_ERROR, "cannot truncate the partial file", bytesInFile: 0, localWriteError: String(cString: strerror(errno)))
    }

    let state = TransferState(fd: fd, offset: request.offset, limit: request.limit, isHTTP: isHTTP, progress: request.progress)
    let context = Unmanaged.passRetained(state)
    defer { context.release() }

    guard let easy = EasyHandle(url: request.url, protocols: "http,https,file", connectTimeout: request.connectTimeout) else {
        return DownloadOutcome.failed(CURLE_FAILED_INIT, "curl_easy_init failed", bytesInFile: request.offset, localWriteError: nil)
    }
    // A redirect must not turn a web download into a read of a local file.
    easy.set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
    easy.set(CURLOPT_FOLLOWLOCATION, 1)
    easy.set(CURLOPT_MAXREDIRS, 10)
    easy.set(CURLOPT_FAILONERROR, 1)
    // A stall: fewer than 1 byte/s on average for `stallTimeout` seconds.
    easy.set(CURLOPT_LOW_SPEED_LIMIT, 1)
    easy.set(CURLOPT_LOW_SPEED_TIME, max(1, request.stallTimeout))
    easy.set(CURLOPT_USERAGENT, "llm-finetune-fetch/\(ToolInfo.version)")
    if isHTTP && request.offset > 0 {
        // CURLOPT_RANGE rather than CURLOPT_RESUME_FROM: with the latter libcurl fails outright
        // when the server ignores the range, while we want to restart from zero then.
        easy.set(CURLOPT_RANGE, "\(request.offset)-")
    }
    easy.check(llmft_curl_set_write_callback(easy.handle, writeCallback, context.toOpaque()))
    easy.check(llmft_curl_set_header_callback(easy.handle, headerCallback, context.toOpaque()))
    if request.progress != nil {
        easy.check(llmft_curl_set_xferinfo_callback(easy.handle, progressCallback, context.toOpaque()))
    }
    let (code, message) = easy.perform()
    let status = isHTTP ? easy.responseCode : 0
    request.progress?(state.bytesInFile, true)
    return DownloadOutcome(code: code, httpStatus: status, curlMessage: message, bytesInFile: state.bytesInFile,
                           resumed: state.resumed, serverIgnoredRange: state.serverIgnoredRange,
                           rangeMismatch: state.rangeMismatch, overLimit: state.overLimit,
                           localWriteError: state.writeError)
}

/// Whether a failed transfer is worth retrying: network trouble and server-side errors are;
/// a missing file, a refused request (4xx other than 408 and 429) or a bad URL are not.
public func isTransient(_ outcome: DownloadOutcome) -> Bool {
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
