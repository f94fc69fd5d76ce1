import ArtifactKit
import Foundation

/// The recorded state of a dep or out: a file's sha256 and size, or for a directory a hash over
/// its files (see `HashCache.directoryDigest`), their total size and count, and the per-file list.
public struct PathRecord: Codable, Equatable, Sendable {
    public var path: String
    public var sha256: String
    /// Bytes: the file's size, or the sum of a directory's file sizes.
    public var size: Int
    /// Set for directories only: how many files they hold.
    public var files: Int?
    /// Set for directories only: every file, sorted by relative path (`FileRecord`s with paths
    /// relative to the directory, as a manifest's outputs).
    public var contents: [FileRecord]?

    public var isDirectory: Bool { files != nil }

    public init(path: String, sha256: String, size: Int, files: Int? = nil, contents: [FileRecord]? = nil) {
        self.path = path
        self.sha256 = sha256
        self.size = size
        self.files = files
        self.contents = contents
    }

    /// A short description of what differs between `old` (recorded) and `self` (now), for reasons.
    public func difference(from old: PathRecord) -> String? {
        if isDirectory != old.isDirectory { return isDirectory ? "was a file, now a directory" : "was a directory, now a file" }
        guard let now = contents, let before = old.contents else {
            return size != old.size ? "size \(old.size) -> \(size) bytes" : "content differs"
        }
        let a = Dictionary(before.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        let b = Dictionary(now.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        var changes: [String] = []
        for e in now where a[e.path] == nil { changes.append("\(e.path) added") }
        for e in before where b[e.path] == nil { changes.append("\(e.path) removed") }
        for e in now { if let o = a[e.path], o != e { changes.append("\(e.path) modified") } }
        guard !changes.isEmpty else { return nil }
        let shown = changes.prefix(3).joined(separator: ", ")
        return changes.count > 3 ? "\(shown) and \(changes.count - 3) more" : shown
    }
}

/// What a successful run of one stage consumed and produced.
public struct StageLock: Codable, Equatable, Sendable {
    public var cmd: String
    public var params: [String: JSONValue]
    public var deps: [PathRecord]
    public var outs: [PathRecord]

    public init(cmd: String, params: [String: JSONValue], deps: [PathRecord], outs: [PathRecord]) {
        self.cmd = cmd
        self.params = params
        self.deps = deps
        self.outs = outs
    }
}

/// `<stem>.lock` beside the pipeline file: pretty JSON with sorted keys, so a `git diff` or a
/// plain `cat` shows what each stage last ran with. Rewritten atomically after every stage.
public struct LockFile: Codable, Equatable, Sendable {
    public static let currentSchema = 1
    public var schema: Int
    public var stages: [String: StageLock]

    public init(stages: [String: StageLock] = [:]) {
        self.schema = LockFile.currentSchema
        self.stages = stages
    }

    /// Reads the lock file; a missing file is an empty lock (nothing has run yet).
    public static func read(from url: URL) throws -> LockFile {
        guard FileManager.default.fileExists(atPath: url.path) else { return LockFile() }
        let data = try Data(contentsOf: url)
        let lock: LockFile
        do {
            lock = try JSONDecoder().decode(LockFile.self, from: data)
        } catch {
            throw PipelineError("the lock file is not valid: \(error)", location: url.path,
                                hint: "delete it to treat every stage as never run")
        }
        guard lock.schema == currentSchema else {
            throw PipelineError("lock file schema \(lock.schema), this tool reads schema \(currentSchema)", location: url.path,
                                hint: "delete it to treat every stage as never run")
        }
        return lock
    }

    public func encoded() throws -> Data { try PrettyJSON.file(self) }

    public func write(to url: URL) throws {
        try AtomicFile.write(encoded(), to: url)
    }
}

/// The JSON the runner writes (the lock file, the hash cache, experiment.json, `status --json`):
/// pretty-printed, keys sorted, slashes as they are.
public enum PrettyJSON {
    public static func data<T: Encodable>(_ value: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(value)
    }

    /// The text of a file: `data` and a newline.
    public static func file<T: Encodable>(_ value: T) throws -> Data { try data(value) + Data("\n".utf8) }
}
