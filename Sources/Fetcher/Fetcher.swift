import ArtifactKit
import CurlClient
import Foundation

/// How `Fetcher` downloads: where to, from which mirror, how hard to try.
public struct FetchOptions {
    /// The output directory (`data/raw`); sources' `file` paths are relative to it.
    public var outDir: URL
    /// A local directory holding verified copies (`DIR/<file>` or `DIR/<basename of file>`).
    public var mirror: URL?
    /// Extra attempts per URL after the first one, for transient errors only.
    public var retries: Int
    /// Seconds to wait before the first retry; doubled for each further one.
    public var backoff: Double
    /// The longest wait between two attempts.
    public var maxBackoff: Double
    /// Seconds to wait for a TCP/TLS connection.
    public var connectTimeout: Double
    /// Whole seconds without a single byte after which a transfer is abandoned (and retried).
    public var stallTimeout: Int
    /// Draw a progress bar on standard error (meant for terminals).
    public var progress: Bool
    /// Receives one line per file: downloaded, taken from the mirror, skipped, extracted.
    public var report: (String) -> Void
    /// Receives warnings and retry notices.
    public var warn: (String) -> Void

    public init(outDir: URL, mirror: URL? = nil, retries: Int = 3, backoff: Double = 1.0, maxBackoff: Double = 30,
                connectTimeout: Double = 30, stallTimeout: Int = 60, progress: Bool = false,
                report: @escaping (String) -> Void = { print($0) },
                warn: @escaping (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) }) {
        self.outDir = outDir
        self.mirror = mirror
        self.retries = retries
        self.backoff = backoff
        self.maxBackoff = maxBackoff
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.progress = progress
        self.report = report
        self.warn = warn
    }

    /// The environment variable naming a mirror directory when `--mirror` is not given.
    public static let mirrorEnvironmentVariable = "LLMFT_MIRROR"

    /// `--mirror` wins over `$LLMFT_MIRROR`; an empty value means none.
    public static func resolveMirror(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        let value = flag ?? environment[mirrorEnvironmentVariable]
        guard let value, !value.isEmpty else { return nil }
        return URL(fileURLWithPath: value)
    }
}

/// One file that `fetch` put in (or found in) the output directory.
public struct FetchResult: Equatable, Sendable {
    public enum Action: String, Sendable {
        case downloaded
        case mirrored = "mirror"
        case alreadyVerified = "already-verified"
        case extracted
        case extractedAlreadyVerified = "extracted-already-verified"
    }
    /// The source's name.
    public var source: String
    /// Path relative to the output directory.
    public var file: String
    public var sha256: String
    public var size: Int
    public var action: Action
    /// The URL, mirror path, or `archive:member` it came from; empty when it was already there.
    public var from: String
    /// A download continued a partial file with an HTTP Range request.
    public var resumed: Bool
    /// The source is unpinned: `sha256` is what this file has (or had when it was first fetched),
    /// not a declared value it was checked against.
    public var unpinned: Bool

    public init(source: String, file: String, sha256: String, size: Int, action: Action, from: String, resumed: Bool = false,
                unpinned: Bool = false) {
        self.source = source
        self.file = file
        self.sha256 = sha256
        self.size = size
        self.action = action
        self.from = from
        self.resumed = resumed
        self.unpinned = unpinned
    }

    /// The line printed for this file.
    public var line: String {
        if unpinned {
            switch action {
            case .downloaded:
                return "downloaded  \(file) (\(size) bytes, UNPINNED: sha256 \(sha256) recorded, not verified) from \(from)\(resumed ? " (resumed)" : "")"
            case .mirrored:
                return "mirror      \(file) (\(size) bytes, UNPINNED: sha256 \(sha256) recorded, not verified) from \(from)"
            case .alreadyVerified:
                return "skipped     \(file) (already present with the size and sha256 recorded when it was fetched; unpinned)"
            case .extracted, .extractedAlreadyVerified:
                break
            }
        }
        switch action {
        case .downloaded: return "downloaded  \(file) (\(size) bytes, sha256 verified) from \(from)\(resumed ? " (resumed)" : "")"
        case .mirrored: return "mirror      \(file) (\(size) bytes, sha256 verified) from \(from)"
        case .alreadyVerified: return "skipped     \(file) (already present, size and sha256 verified)"
        case .extracted: return "extracted   \(file) (\(size) bytes, CRC32 verified) from \(from)"
        case .extractedAlreadyVerified: return "skipped     \(file) (already extracted, size and CRC32 match \(from))"
        }
    }
}

/// Some sources failed; the others were fetched and are listed in `results`.
public struct FetchFailure: Error, CustomStringConvertible, LocalizedError {
    public var errors: [PipelineError]
    public var results: [FetchResult]
    public var description: String {
        let head = errors.count == 1 ? "" : "\(errors.count) sources failed:\n"
        return head + errors.map(\.description).joined(separator: "\n")
    }
    public var errorDescription: String? { description }
}

/// Downloads declared sources with libcurl, verifies them, extracts zip members, and writes
/// `manifest.json` (format `raw-sources`) into the output directory.
public final class Fetcher {
    public static let manifestFormat = "raw-sources"
    public static let manifestFormatVersion = 1
    /// The most bytes an unpinned source without a declared `size` may have (the largest GPT-2,
    /// XL, has 1.56 billion F32 parameters: about 6.2 GB).
    public static let unknownSizeCap: Int64 = 16 << 30

    public let options: FetchOptions
    private let fm = FileManager.default

    public init(options: FetchOptions) {
        self.options = options
    }

    /// Fetches every source (continuing past failures), then writes the manifest when all
    /// succeeded. Throws `FetchFailure` naming each failed source.
    @discardableResult
    public func fetch(_ sources: [SourceSpec]) throws -> [FetchResult] {
        try validate(sources, file: "(sources given to Fetcher)")
        if let mirror = options.mirror {
            // A mistyped mirror path would otherwise send an offline machine to the network.
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: mirror.path, isDirectory: &isDir), isDir.boolValue else {
                throw PipelineError("the mirror directory does not exist", location: mirror.path,
                                    hint: "pass an existing directory with --mirror (or \(FetchOptions.mirrorEnvironmentVariable)), or neither")
            }
        }
        try fm.createDirectory(at: options.outDir, withIntermediateDirectories: true)
        let previous = try? Manifest.read(from: manifestURL)
        var results: [FetchResult] = []
        var errors: [PipelineError] = []
        for source in sources {
            do {
                let fetched = try fetchOne(source, previous: previous)
                for r in fetched { options.report(r.line) }
                results += fetched
            } catch let e as PipelineError {
                errors.append(e)
            } catch {
                errors.append(PipelineError("source `\(source.name)`: \(error)", location: source.file))
            }
        }
        if !errors.isEmpty {
            // The directory no longer matches an old manifest for sure; the next successful run writes a new one.
            try? fm.removeItem(at: manifestURL)
            throw FetchFailure(errors: errors, results: results)
        }
        try writeManifest(results: results, previous: previous)
        return results
    }

    public var manifestURL: URL { options.outDir.appendingPathComponent(Manifest.fileName) }

    // MARK: - One source

    private func fetchOne(_ s: SourceSpec, previous: Manifest?) throws -> [FetchResult] {
        let dest = options.outDir.appendingPathComponent(s.file)
        var main: FetchResult
        // What the file in place must be: the declared hash, or for an unpinned source the one
        // recorded when it was fetched (and only if that record agrees with a declared size).
        let recorded = previous?.outputs.first { $0.path == s.file && (s.size == nil || $0.size == s.size) }
        let expected: (sha256: String, size: Int)? = s.sha256.map { ($0, s.size ?? -1) } ?? recorded.map { ($0.sha256, $0.size) }
        if let expected, let sha = try verifiedSHA(of: dest, size: expected.size), sha == expected.sha256 {
            main = FetchResult(source: s.name, file: s.file, sha256: sha, size: expected.size, action: .alreadyVerified, from: "",
                               unpinned: !s.isPinned)
        } else {
            if let attrs = try? fm.attributesOfItem(atPath: dest.path) {
                guard (attrs[.type] as? FileAttributeType) == .typeRegular else {
                    throw PipelineError("source `\(s.name)`: `\(s.file)` exists and is not a regular file", location: dest.path,
                                        hint: "move it away; fetch replaces only files")
                }
                // Everything under a final name must be verified, so a stale or damaged file goes now.
                let against = s.isPinned ? "the declared size and sha256" : (recorded == nil ? "any fetch recorded in \(Manifest.fileName)" : "the size and sha256 recorded when it was fetched")
                options.warn("`\(s.file)` exists but does not match \(against) of source `\(s.name)`; removing it and fetching again")
                try fm.removeItem(at: dest)
            }
            try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            if let fromMirror = try takeFromMirror(s, dest: dest) {
                main = fromMirror
            } else {
                main = try download(s, dest: dest)
            }
        }
        // A partial left by an interrupted run is of no use once the file is in place, and must
        // not linger in the artifact directory.
        try? fm.removeItem(at: partialURL(for: dest))
        var out = [main]
        if main.unpinned && main.action != .alreadyVerified {
            options.warn("source `\(s.name)` is unpinned (no sha256 declared): `\(s.file)` was checked for completeness only. It has \(main.size) bytes and sha256 \(main.sha256); once you trust it, pin it with `sha256: \(main.sha256)` and `size: \(main.size)` in the pipeline file")
        }
        if let ex = s.extract {
            out += try ZipExtractor(archive: dest, archiveName: s.file, source: s.name, spec: ex, outDir: options.outDir).extract()
        }
        return out
    }

    /// The sha256 of `url` when it exists with exactly `size` bytes, else nil (no hashing needed).
    private func verifiedSHA(of url: URL, size: Int) throws -> String? {
        guard let attrs = try? fm.attributesOfItem(atPath: url.path),
              (attrs[.type] as? FileAttributeType) == .typeRegular,
              (attrs[.size] as? NSNumber)?.intValue == size else { return nil }
        return try FileHash.sha256(of: url)
    }

    private func fileSize(_ url: URL) -> Int64? {
        guard let attrs = try? fm.attributesOfItem(atPath: url.path) else { return nil }
        return (attrs[.size] as? NSNumber)?.int64Value
    }

    /// The hidden file a download of `dest` grows in: `.<name>.part` beside it.
    func partialURL(for dest: URL) -> URL {
        dest.deletingLastPathComponent().appendingPathComponent(".\(dest.lastPathComponent).part")
    }

    // MARK: - Mirror

    /// Copies a verified file from the mirror, or returns nil (after saying why) so the URLs are tried.
    /// A mirror copy with the wrong size or hash is reported and skipped, never used.
    private func takeFromMirror(_ s: SourceSpec, dest: URL) throws -> FetchResult? {
        guard let mirror = options.mirror else { return nil }
        var candidates = [mirror.appendingPathComponent(s.file)]
        let base = mirror.appendingPathComponent((s.file as NSString).lastPathComponent)
        // Without a hash to tell files apart, a bare basename (every weights file is model.safetensors) could be any of them.
        if base.path != candidates[0].path && s.isPinned { candidates.append(base) }
        let existing = candidates.filter { fm.fileExists(atPath: $0.path) }
        if existing.isEmpty {
            options.warn("source `\(s.name)`: not in the mirror (looked for \(candidates.map(\.path).joined(separator: " and "))); trying the URLs")
            return nil
        }
        for candidate in existing {
            let tmp = AtomicFile.temporaryURL(for: dest)
            do {
                try fm.copyItem(at: candidate, to: tmp)
                // A read-only mirror (like ../shared/assets) must not make our outputs read-only.
                try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tmp.path)
                // Verify the copy, not the original: it is the copy that goes into place.
                let size = fileSize(tmp) ?? -1
                let sha = s.size.map({ Int64($0) == size }) ?? true ? try FileHash.sha256(of: tmp) : nil
                if let sha, s.sha256 == nil || sha == s.sha256 {
                    try AtomicFile.moveIntoPlace(tmp, dest)
                    return FetchResult(source: s.name, file: s.file, sha256: sha, size: Int(size), action: .mirrored, from: candidate.path,
                                       unpinned: !s.isPinned)
                }
                try? fm.removeItem(at: tmp)
                let got = sha.map { "sha256 \($0)" } ?? "\(size) bytes"
                let want = sha == nil ? "\(s.size ?? -1) bytes" : "sha256 \(s.sha256 ?? "")"
                options.warn("source `\(s.name)`: mirror file \(candidate.path) has \(got), but the source declares \(want); ignoring it and trying the URLs")
            } catch {
                try? fm.removeItem(at: tmp)
                options.warn("source `\(s.name)`: cannot copy mirror file \(candidate.path): \(error); trying the URLs")
            }
        }
        return nil
    }

    // MARK: - Download

    private enum URLFailure {
        case checksum(String)
        case truncated(String)
        case other(String)
        var text: String {
            switch self { case .checksum(let t), .truncated(let t), .other(let t): return t }
        }
        /// The same failure with `suffix` added to its text.
        func appending(_ suffix: String) -> URLFailure {
            switch self {
            case .checksum(let t): return .checksum(t + suffix)
            case .truncated(let t): return .truncated(t + suffix)
            case .other(let t): return .other(t + suffix)
            }
        }
    }

    private func download(_ s: SourceSpec, dest: URL) throws -> FetchResult {
        let partial = partialURL(for: dest)
        var failures: [URLFailure] = []
        for url in s.urls {
            switch try download(s, from: url, partial: partial, dest: dest) {
            case .success(let result): return result
            case .failure(let why): failures.append(why)
            }
        }
        if fileSize(partial) == 0 { try? fm.removeItem(at: partial) }   // nothing worth resuming
        var hint = "rerun `fetch` to retry (a partial download is resumed), or put a verified copy of `\(s.file)` in a mirror directory and pass --mirror DIR (or set \(FetchOptions.mirrorEnvironmentVariable)); offline machines can use ../shared/assets"
        if failures.contains(where: { if case .checksum = $0 { return true }; return false }) {
            hint = "the server sent a different file than declared; check the URL, and change `sha256`/`size` in the pipeline file only if you trust the new file. " + hint
        }
        let list = failures.map { "\n    " + $0.text }.joined()
        throw PipelineError("source `\(s.name)`: could not fetch `\(s.file)` from any URL:\(list)",
                            location: dest.path, hint: hint)
    }

    private enum URLAttempt {
        case success(FetchResult)
        case failure(URLFailure)
    }

    private func download(_ s: SourceSpec, from url: String, partial: URL, dest: URL) throws -> URLAttempt {
        // An unpinned source of unknown size: no cap but a sanity one, and completeness rests on
        // the transfer itself (libcurl fails a body shorter than its Content-Length).
        let knownSize = s.size != nil
        let size = s.size.map { Int64($0) } ?? Fetcher.unknownSizeCap
        let isFile = url.lowercased().hasPrefix("file:")
        var attempt = 0
        var restartedAfterMismatch = false
        var resumedAny = false
        while true {
            attempt += 1
            var offset = fileSize(partial) ?? 0
            if offset > size || isFile { offset = 0 }   // a local file is cheap to read again from the start
            var usedPartial = offset > 0
            var verdict: URLVerdict?

            if offset == size && fm.fileExists(atPath: partial.path) {
                // A previous run got every byte but stopped before verifying; no request needed.
                usedPartial = true
            } else {
                let outcome = try transfer(s, from: url, partial: partial, offset: offset, limit: size, knownSize: knownSize)
                if outcome.resumed { resumedAny = true }
                if outcome.serverIgnoredRange { usedPartial = false }
                verdict = judge(outcome, url: url, partial: partial, offset: offset, limit: size, knownSize: knownSize)
            }

            if verdict == nil {
                let sha = try FileHash.sha256(of: partial)
                if s.sha256 == nil || sha == s.sha256 {
                    let got = Int(fileSize(partial) ?? -1)
                    try AtomicFile.moveIntoPlace(partial, dest)
                    return .success(FetchResult(source: s.name, file: s.file, sha256: sha, size: got, action: .downloaded,
                                                from: url, resumed: resumedAny, unpinned: !s.isPinned))
                }
                try? fm.removeItem(at: partial)
                if usedPartial && !restartedAfterMismatch {
                    // The partial may be left from another URL or an older version of the file: try once from scratch.
                    restartedAfterMismatch = true
                    resumedAny = false
                    options.warn("source `\(s.name)`: the resumed download of \(s.file) does not match its sha256; downloading it again from byte 0")
                    attempt -= 1
                    continue
                }
                return .failure(.checksum("\(url): checksum mismatch: got sha256 \(sha), declared \(s.sha256 ?? "")"))
            }

            let (failure, transient) = verdict!
            if transient && attempt <= options.retries {
                waitBeforeRetry(s, after: failure, attempt: attempt)
                continue
            }
            return .failure(failure.appending(attempt == 1 ? "" : " (after \(attempt) attempts)"))
        }
    }

    /// Why one request failed, and whether trying the same URL again may help.
    private typealias URLVerdict = (failure: URLFailure, transient: Bool)

    /// One request for bytes `offset`..< `limit` into `partial`, with a progress bar when asked for.
    /// A local write error is thrown: no other URL or retry can fix it.
    private func transfer(_ s: SourceSpec, from url: String, partial: URL, offset: Int64, limit: Int64,
                          knownSize: Bool) throws -> DownloadOutcome {
        let bar = options.progress ? ProgressBar(label: s.file, total: knownSize ? limit : 0) : nil
        let outcome = CurlClient.download(DownloadRequest(
            url: url, partial: partial, offset: offset, limit: limit, connectTimeout: options.connectTimeout,
            stallTimeout: options.stallTimeout, progress: bar.map { bar in { bar.update(bytes: $0, force: $1) } }))
        bar?.finish()
        if outcome.serverIgnoredRange {
            options.warn("source `\(s.name)`: \(url) ignored the Range request (answered 200, not 206); downloading from byte 0")
        }
        if let local = outcome.localWriteError {
            throw PipelineError("source `\(s.name)`: cannot write the download: \(local)", location: partial.path,
                                hint: "check free disk space and permissions of the output directory")
        }
        return outcome
    }

    /// What went wrong with a request, or nil when it delivered the whole file. A partial that
    /// cannot be resumed (too long, or the server botched the range) is removed.
    private func judge(_ outcome: DownloadOutcome, url: String, partial: URL, offset: Int64, limit size: Int64,
                       knownSize: Bool) -> URLVerdict? {
        if outcome.overLimit {
            try? fm.removeItem(at: partial)
            return (.other(knownSize ? "\(url): the server sent more than the declared \(size) bytes (wrong file, or `size` is out of date)"
                                     : "\(url): the server sent more than \(size) bytes, the cap for an unpinned source without a size (declare `size`)"), false)
        } else if outcome.rangeMismatch || outcome.httpStatus == 416 {
            try? fm.removeItem(at: partial)
            return (.other("\(url): the server answered the Range request for bytes \(offset)- with HTTP \(outcome.httpStatus); restarting from byte 0"), true)
        } else if !outcome.ok {
            let status = outcome.httpStatus > 0 ? " (HTTP \(outcome.httpStatus))" : ""
            let got = outcome.bytesInFile > 0 ? "; got \(outcome.bytesInFile) of \(knownSize ? String(size) : "?") bytes, kept for resuming" : ""
            let receivedSome = outcome.bytesInFile > (outcome.serverIgnoredRange ? 0 : offset)
            if outcome.endedEarly || (receivedSome && outcome.bytesInFile < size) {
                return (.truncated("\(url): truncated download: \(outcome.curlMessage)\(got)"), isTransient(outcome))
            }
            return (.other("\(url): \(outcome.curlMessage)\(status)"), isTransient(outcome))
        } else if knownSize && outcome.bytesInFile < size {
            // The server closed cleanly but short (no Content-Length to tell libcurl).
            return (.truncated("\(url): truncated download: got \(outcome.bytesInFile) of \(size) bytes, kept for resuming"), true)
        }
        return nil
    }

    /// Says why and sleeps the exponential backoff (capped) before retry number `attempt`.
    private func waitBeforeRetry(_ s: SourceSpec, after failure: URLFailure, attempt: Int) {
        let wait = min(options.maxBackoff, options.backoff * pow(2, Double(attempt - 1)))
        options.warn("source `\(s.name)`: \(failure.text); retry \(attempt) of \(options.retries) in \(String(format: "%.1f", wait)) s")
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
    }

    // MARK: - Manifest

    /// Lists this run's files, plus files recorded by an earlier run (e.g. before `--only`)
    /// that are still present with the recorded hash.
    private func writeManifest(results: [FetchResult], previous: Manifest?) throws {
        let oldProvenance = previous?.stats["provenance"]
        var provenance: [String: JSONValue] = [:]
        var outputs: [String: FileRecord] = [:]
        var sources = Set<String>()
        for r in results {
            outputs[r.file] = FileRecord(path: r.file, sha256: r.sha256, size: r.size)
            sources.insert(r.source)
            var entry: JSONValue
            switch r.action {
            case .downloaded, .mirrored:
                entry = ["source": .string(r.source), "action": .string(r.action.rawValue), "from": .string(r.from)]
            case .extracted, .extractedAlreadyVerified:
                let member = r.from.split(separator: ":", maxSplits: 1).map(String.init)
                entry = ["source": .string(r.source), "action": "extracted", "from": .string(member.first ?? ""),
                         "member": .string(member.count > 1 ? member[1] : "")]
            case .alreadyVerified:
                // Keep where it originally came from, when an earlier manifest knows it for this content.
                if let old = oldProvenance?[r.file], previous?.outputs.contains(where: { $0.path == r.file && $0.sha256 == r.sha256 }) == true {
                    entry = old
                } else {
                    entry = ["source": .string(r.source), "action": "already-present", "from": ""]
                }
            }
            if r.unpinned, case .object(var fields) = entry, fields["unpinned"] == nil {
                // Says the recorded sha256 was not checked against a declared one.
                fields["unpinned"] = true
                entry = .object(fields)
            }
            provenance[r.file] = entry
        }
        if let previous {
            for old in previous.outputs where outputs[old.path] == nil {
                let url = options.outDir.appendingPathComponent(old.path)
                guard unsafePathReason(old.path) == nil, let sha = try verifiedSHA(of: url, size: old.size), sha == old.sha256 else { continue }
                outputs[old.path] = old
                if let p = oldProvenance?[old.path] {
                    provenance[old.path] = p
                    if let name = p["source"]?.stringValue { sources.insert(name) }
                }
            }
        }
        let outputList = outputs.keys.sorted().map { outputs[$0]! }
        var inputs: [FileRecord] = []
        for record in outputList {
            if let p = provenance[record.path], let from = p["from"]?.stringValue, !from.isEmpty,
               let action = p["action"]?.stringValue, action == "downloaded" || action == "mirror" {
                inputs.append(FileRecord(path: from, sha256: record.sha256, size: record.size))
            }
        }
        var manifest = Manifest(
            format: Fetcher.manifestFormat, formatVersion: Fetcher.manifestFormatVersion, tool: "fetch",
            params: ["sources": .array(sources.sorted().map { .string($0) })],
            inputs: inputs, outputs: outputList,
            stats: ["provenance": .object(provenance),
                    "files": .int(outputList.count),
                    "bytes": .int(outputList.reduce(0) { $0 + $1.size })])
        if let previous, previous.toolVersion == manifest.toolVersion {
            // Nothing changed: keep the old file byte for byte, so that a runner hashing this
            // directory does not see a new timestamp as a new input for later stages.
            manifest.createdAt = previous.createdAt
            if manifest == previous { return }
        }
        try manifest.write(into: options.outDir)
    }
}
