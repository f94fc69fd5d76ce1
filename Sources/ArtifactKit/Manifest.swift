import Foundation

/// The version of this tool set, recorded as provenance in every manifest.
public enum ToolInfo {
    public static let version = "0.1.0"
}

/// A file an artifact was made from or consists of, identified by content (also a file of a
/// directory dep or out in the pipeline's lock file).
public struct FileRecord: Codable, Equatable, Sendable {
    /// Path relative to the manifest's directory for outputs (to the directory in a lock file);
    /// as given for inputs.
    public var path: String
    public var sha256: String
    public var size: Int

    public init(path: String, sha256: String, size: Int) {
        self.path = path
        self.sha256 = sha256
        self.size = size
    }

    /// Hashes the file at `url`, recording it under `path`.
    public static func of(_ url: URL, as path: String? = nil) throws -> FileRecord {
        let attrs = try FileManager.default.attributesOfItem(atPath: url.path)
        let size = (attrs[.size] as? NSNumber)?.intValue ?? 0
        return FileRecord(path: path ?? url.path, sha256: try FileHash.sha256(of: url), size: size)
    }
}

/// `manifest.json`, written beside every artifact: what it is (format + version), who made it
/// (tool, version, time), from what (inputs with hashes) and how (params), what it holds
/// (outputs with hashes) and a few numbers worth seeing without opening the files (stats).
public struct Manifest: Codable, Equatable, Sendable {
    public static let fileName = "manifest.json"

    public var format: String
    public var formatVersion: Int
    public var tool: String
    public var toolVersion: String
    public var createdAt: String
    public var params: [String: JSONValue]
    public var inputs: [FileRecord]
    public var outputs: [FileRecord]
    public var stats: [String: JSONValue]

    public init(format: String, formatVersion: Int, tool: String, params: [String: JSONValue] = [:],
                inputs: [FileRecord] = [], outputs: [FileRecord] = [], stats: [String: JSONValue] = [:]) {
        self.format = format
        self.formatVersion = formatVersion
        self.tool = tool
        self.toolVersion = ToolInfo.version
        self.createdAt = ISO8601DateFormatter().string(from: Date())
        self.params = params
        self.inputs = inputs
        self.outputs = outputs
        self.stats = stats
    }

    public func encoded() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try enc.encode(self)
        data.append(0x0A)
        return data
    }

    /// Writes `manifest.json` into `directory` atomically.
    public func write(into directory: URL) throws {
        try AtomicFile.write(encoded(), to: directory.appendingPathComponent(Manifest.fileName))
    }

    public static func read(from url: URL) throws -> Manifest {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PipelineError("cannot read manifest", location: url.path, hint: "rerun the stage that writes this directory")
        }
        do { return try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw PipelineError("not a valid manifest: \(error)", location: url.path, hint: "rerun the stage that writes this directory")
        }
    }
}
