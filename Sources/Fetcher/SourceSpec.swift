import ArtifactKit
import Foundation
import Yams

/// One file to download, as declared under `params.fetch.sources` in pipeline.yaml.
public struct SourceSpec: Codable, Equatable, Sendable {
    /// A short unique name (`--only NAME` selects by it).
    public var name: String
    /// Where the file lands, relative to the output directory (may contain subdirectories).
    public var file: String
    /// Tried in order: the primary first, then the backups.
    public var urls: [String]
    /// Lowercase hex SHA-256 of the whole file; nil for an unpinned source (`sha256: unpinned` in
    /// the file): one whose hash nobody could check yet. Fetch then records the hash it got,
    /// says so, and later runs hold the file to that recorded hash.
    public var sha256: String?
    /// Exact size in bytes; may be left out only for an unpinned source.
    public var size: Int?
    /// Members to take out of the file when it is a zip archive.
    public var extract: ExtractSpec?

    /// The `sha256` value that declares an unpinned source.
    public static let unpinned = "unpinned"

    public var isPinned: Bool { sha256 != nil }

    public init(name: String, file: String, urls: [String], sha256: String?, size: Int?, extract: ExtractSpec? = nil) {
        self.name = name
        self.file = file
        self.urls = urls
        self.sha256 = sha256
        self.size = size
        self.extract = extract
    }

    static let knownKeys = ["name", "file", "urls", "sha256", "size", "extract"]

    enum CodingKeys: String, CodingKey { case name, file, urls, sha256, size, extract }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, known: SourceSpec.knownKeys, what: "a fetch source")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        file = try c.decode(String.self, forKey: .file)
        urls = try c.decode([String].self, forKey: .urls)
        let hash = try c.decode(String.self, forKey: .sha256).lowercased()
        sha256 = hash == SourceSpec.unpinned ? nil : hash
        size = try c.decodeIfPresent(Int.self, forKey: .size)
        if size == nil && sha256 != nil {
            throw DecodingError.keyNotFound(CodingKeys.size, .init(codingPath: decoder.codingPath,
                                                                   debugDescription: "a pinned source needs its size"))
        }
        extract = try c.decodeIfPresent(ExtractSpec.self, forKey: .extract)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(file, forKey: .file)
        try c.encode(urls, forKey: .urls)
        try c.encode(sha256 ?? SourceSpec.unpinned, forKey: .sha256)
        try c.encodeIfPresent(size, forKey: .size)
        try c.encodeIfPresent(extract, forKey: .extract)
    }
}

/// Which zip members to extract and under which names, with a cap on their total size.
public struct ExtractSpec: Codable, Equatable, Sendable {
    /// Used when `max_uncompressed_bytes` is not given: far above any text data set we fetch,
    /// far below what a zip bomb would expand to.
    public static let defaultMaxUncompressedBytes = 1 << 30

    /// Member name inside the archive -> output path relative to the output directory.
    public var members: [String: String]
    /// The most bytes all extracted members may add up to (declared and actual).
    public var maxUncompressedBytes: Int?

    public init(members: [String: String], maxUncompressedBytes: Int? = nil) {
        self.members = members
        self.maxUncompressedBytes = maxUncompressedBytes
    }

    public var effectiveMaxUncompressedBytes: Int { maxUncompressedBytes ?? ExtractSpec.defaultMaxUncompressedBytes }

    /// Members sorted by name, so that work and output order do not depend on hashing.
    public var sortedMembers: [(member: String, output: String)] {
        members.keys.sorted().map { ($0, members[$0]!) }
    }

    static let knownKeys = ["members", "max_uncompressed_bytes"]

    enum CodingKeys: String, CodingKey {
        case members
        case maxUncompressedBytes = "max_uncompressed_bytes"
    }

    public init(from decoder: Decoder) throws {
        try rejectUnknownKeys(decoder, known: ExtractSpec.knownKeys, what: "`extract`")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        members = try c.decode([String: String].self, forKey: .members)
        maxUncompressedBytes = try c.decodeIfPresent(Int.self, forKey: .maxUncompressedBytes)
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}

/// A misspelled key would otherwise be ignored silently (and, e.g., a typo in `sha256` would
/// fall back to a missing-key error that does not say what was wrong), so unknown keys are errors.
private func rejectUnknownKeys(_ decoder: Decoder, known: [String], what: String) throws {
    let raw = try decoder.container(keyedBy: AnyCodingKey.self)
    for key in raw.allKeys where !known.contains(key.stringValue) {
        throw DecodingError.dataCorrupted(.init(
            codingPath: decoder.codingPath + [key],
            debugDescription: "unknown key `\(key.stringValue)` in \(what) (known keys: \(known.joined(separator: ", ")))"))
    }
}

// MARK: - Loading pipeline.yaml

/// The part of pipeline.yaml that `fetch` reads; everything else (other stages' params,
/// `stages`) belongs to other tools and is ignored here.
private struct PipelineFetchSection: Decodable {
    struct Params: Decodable { var fetch: FetchParams }
    struct FetchParams: Decodable {
        var sources: [SourceSpec]
        init(from decoder: Decoder) throws {
            try rejectUnknownKeys(decoder, known: ["sources"], what: "`params.fetch`")
            let c = try decoder.container(keyedBy: AnyCodingKey.self)
            sources = try c.decode([SourceSpec].self, forKey: AnyCodingKey(stringValue: "sources"))
        }
    }
    var params: Params
}

/// Reads `params.fetch.sources` from a pipeline file and checks every source (see `validate`).
public func loadSources(fromPipelineFile url: URL) throws -> [SourceSpec] {
    let text: String
    do { text = try String(contentsOf: url, encoding: .utf8) } catch {
        throw PipelineError("cannot read the pipeline file", location: url.path,
                            hint: "pass the path of pipeline.yaml with --config")
    }
    return try loadSources(fromYAML: text, file: url.path)
}

/// Parses pipeline YAML text; `file` names it in error messages.
public func loadSources(fromYAML text: String, file: String) throws -> [SourceSpec] {
    let section: PipelineFetchSection
    do {
        section = try YAMLDecoder().decode(PipelineFetchSection.self, from: text)
    } catch let error as DecodingError {
        throw PipelineError(describe(error), location: file,
                            hint: "fix `params.fetch.sources` (each source has name, file, urls, sha256 (64 hex digits, or `unpinned`), size, and optionally extract)")
    } catch {
        throw PipelineError("not valid YAML: \(error)", location: file)
    }
    let sources = section.params.fetch.sources
    try validate(sources, file: file)
    return sources
}

private func pathText(_ path: [CodingKey]) -> String {
    var out = ""
    for key in path {
        if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
    }
    return out
}

private func describe(_ error: DecodingError) -> String {
    switch error {
    case .keyNotFound(let key, let ctx):
        let at = pathText(ctx.codingPath)
        return "missing key `\(key.stringValue)`" + (at.isEmpty ? "" : " in \(at)")
    case .typeMismatch(let type, let ctx):
        return "\(pathText(ctx.codingPath)): expected \(type)"
    case .valueNotFound(let type, let ctx):
        return "\(pathText(ctx.codingPath)): expected \(type), found nothing"
    case .dataCorrupted(let ctx):
        let at = pathText(ctx.codingPath)
        return at.isEmpty ? ctx.debugDescription : "\(at): \(ctx.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

// MARK: - Validation

/// Why a relative path from a config file or an archive could escape the output directory,
/// or nil when it is safe: relative, no `..`, no empty or `.` components, no backslashes
/// (a Windows separator in a zip entry), no NUL.
public func unsafePathReason(_ path: String) -> String? {
    if path.isEmpty { return "is empty" }
    if path.hasPrefix("/") { return "is an absolute path" }
    if path.contains("\\") { return "contains a backslash" }
    if path.contains("\0") { return "contains a NUL byte" }
    if path.count >= 2, path.dropFirst().first == ":" { return "starts with a drive letter" }
    for component in path.split(separator: "/", omittingEmptySubsequences: false) {
        if component == ".." { return "contains a `..` component" }
        if component.isEmpty || component == "." { return "contains an empty or `.` component" }
    }
    return nil
}

/// Checks what decoding cannot: names and output files unique, paths safe, hashes well formed,
/// URLs with a supported scheme. Errors name the source, the key and the file.
public func validate(_ sources: [SourceSpec], file: String) throws {
    var names = Set<String>()
    var outputs = [String: String]()   // output path -> source name
    func fail(_ index: Int, _ key: String, _ message: String) -> PipelineError {
        let name = sources[index].name.isEmpty ? "#\(index)" : "`\(sources[index].name)`"
        return PipelineError("source \(name) (params.fetch.sources[\(index)].\(key)): \(message)", location: file)
    }
    for (i, s) in sources.enumerated() {
        if s.name.isEmpty { throw fail(i, "name", "is empty") }
        if !names.insert(s.name).inserted { throw fail(i, "name", "another source has the same name") }
        if let why = unsafePathReason(s.file) { throw fail(i, "file", "`\(s.file)` \(why)") }
        if s.file == Manifest.fileName { throw fail(i, "file", "`\(Manifest.fileName)` is written by fetch itself") }
        if let other = outputs.updateValue(s.name, forKey: s.file) { throw fail(i, "file", "`\(s.file)` is also written by source `\(other)`") }
        if s.urls.isEmpty { throw fail(i, "urls", "needs at least one URL") }
        for u in s.urls {
            guard let scheme = URL(string: u)?.scheme?.lowercased(), ["http", "https", "file"].contains(scheme) else {
                throw fail(i, "urls", "`\(u)` is not an http://, https:// or file:// URL")
            }
        }
        let hex = Set("0123456789abcdef")
        if let sha = s.sha256, sha.count != 64 || !sha.allSatisfy({ hex.contains($0) }) {
            throw fail(i, "sha256", "`\(sha)` is not 64 hex digits (nor `\(SourceSpec.unpinned)`)")
        }
        if s.isPinned && s.size == nil { throw fail(i, "size", "is missing (only an unpinned source may leave it out)") }
        if let size = s.size, size < 0 { throw fail(i, "size", "must not be negative") }
        if !s.isPinned && s.extract != nil {
            throw fail(i, "extract", "an unpinned source cannot be extracted: pin its sha256 and size first")
        }
        if let ex = s.extract {
            if ex.members.isEmpty { throw fail(i, "extract.members", "names no member") }
            if let cap = ex.maxUncompressedBytes, cap <= 0 { throw fail(i, "extract.max_uncompressed_bytes", "must be positive") }
            for (member, output) in ex.sortedMembers {
                if let why = unsafePathReason(member) { throw fail(i, "extract.members", "member `\(member)` \(why) (zip-slip)") }
                if let why = unsafePathReason(output) { throw fail(i, "extract.members.\(member)", "output `\(output)` \(why) (zip-slip)") }
                if output == Manifest.fileName { throw fail(i, "extract.members.\(member)", "`\(Manifest.fileName)` is written by fetch itself") }
                if let other = outputs.updateValue(s.name, forKey: output) {
                    throw fail(i, "extract.members.\(member)", "output `\(output)` is also written by source `\(other)`")
                }
            }
        }
    }
    // A file cannot also be a directory that holds another output.
    let all = outputs.keys.sorted()
    for a in all {
        if let b = all.first(where: { $0.hasPrefix(a + "/") }) {
            throw PipelineError("`\(a)` (source `\(outputs[a]!)`) is also a directory holding `\(b)` (source `\(outputs[b]!)`)",
                                location: file, hint: "give the two outputs paths that do not nest")
        }
    }
}
