import ArtifactKit
import Foundation

/// The inspectors `pipeline show` tries, first match wins.
public struct InspectorRegistry {
    public private(set) var inspectors: [ArtifactInspector]

    public init(_ inspectors: [ArtifactInspector] = []) {
        self.inspectors = inspectors
    }

    /// The generic inspectors: metrics.json as a table, directories with a manifest, manifest.json, CSV/TSV, JSON, JSONL,
    /// binary artifacts with an 8-byte magic, and plain text.
    public static func standard() -> InspectorRegistry {
        InspectorRegistry([MetricsInspector(), DirectoryInspector(), ManifestInspector(), CSVInspector(), JSONInspector(),
                           JSONLinesInspector(), BinaryHeaderInspector(), TextInspector()])
    }

    /// Adds an inspector in front of the others, so specific decoders win over generic ones.
    public mutating func register(_ inspector: ArtifactInspector) {
        inspectors.insert(inspector, at: 0)
    }

    public func inspect(url: URL, rows: Int = 5) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw PipelineError("no such file or directory", location: url.path)
        }
        let magic = isDir.boolValue ? nil : ArtifactMagic.read(url)?.magic
        guard let inspector = inspectors.first(where: { $0.canInspect(url: url, magic: magic) }) else {
            throw PipelineError("no inspector knows this kind of file", location: url.path)
        }
        return try inspector.inspect(url: url, rows: rows)
    }
}

extension TextFormat {
    static func prettyJSON(_ value: JSONValue) -> String {
        (try? String(decoding: PrettyJSON.data(value), as: UTF8.self)) ?? value.description
    }
}

/// `manifest.json` on its own: what, by which tool, from what, with which params, and the numbers.
public struct ManifestInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool { url.lastPathComponent == Manifest.fileName }
    public func inspect(url: URL, rows: Int) throws -> String {
        Self.summary(try Manifest.read(from: url))
    }

    static func summary(_ m: Manifest) -> String {
        var lines = ["format:   \(m.format) v\(m.formatVersion)",
                     "tool:     \(m.tool) \(m.toolVersion)",
                     "created:  \(m.createdAt)"]
        func section(_ title: String, _ dict: [String: JSONValue]) {
            guard !dict.isEmpty else { return }
            lines.append("\(title):")
            let width = dict.keys.map(\.count).max() ?? 0
            for key in dict.keys.sorted() {
                lines.append("  \(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(Params.brief(dict[key]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")))")
            }
        }
        section("params", m.params)
        section("stats", m.stats)
        func files(_ title: String, _ records: [FileRecord]) {
            guard !records.isEmpty else { return }
            lines.append("\(title):")
            let rows = records.map { [$0.path, TextFormat.bytes($0.size), String($0.sha256.prefix(12))] }
            lines.append(contentsOf: TextFormat.table(["path", "size", "sha256"], rows).split(separator: "\n").map { "  " + $0 })
        }
        files("inputs", m.inputs)
        files("outputs", m.outputs)
        return lines.joined(separator: "\n")
    }
}

/// A directory artifact: its manifest summarized, then every file with its size.
public struct DirectoryInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
    }
    public func inspect(url: URL, rows: Int) throws -> String {
        var parts: [String] = ["directory: \(url.path)"]
        let manifestURL = url.appendingPathComponent(Manifest.fileName)
        if FileManager.default.fileExists(atPath: manifestURL.path) {
            parts.append(ManifestInspector.summary(try Manifest.read(from: manifestURL)))
        } else {
            parts.append("(no manifest.json)")
        }
        let files = try DirectoryListing.files(in: url)
        let rowsOut = files.map { rel -> [String] in
            let fileURL = url.appendingPathComponent(rel)
            let magic = ArtifactMagic.read(fileURL).map { m in m.version.map { "\(m.magic) v\($0)" } ?? m.magic } ?? ""
            return [rel, TextFormat.bytes(TextFormat.fileSize(fileURL)), magic]
        }
        // The magic column only when some file has one.
        let anyMagic = rowsOut.contains { !$0[2].isEmpty }
        let header = anyMagic ? ["path", "size", "magic"] : ["path", "size"]
        parts.append("files (\(files.count)):\n" + TextFormat.table(header, anyMagic ? rowsOut : rowsOut.map { Array($0.prefix(2)) })
            .split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        return parts.joined(separator: "\n\n")
    }
}

/// `.csv` (RFC 4180 quoting) and `.tsv`: the header and the first rows as a table.
public struct CSVInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool { ["csv", "tsv"].contains(url.pathExtension.lowercased()) }
    public func inspect(url: URL, rows: Int) throws -> String {
        let text = try String(contentsOf: url, encoding: .utf8)
        let tsv = url.pathExtension.lowercased() == "tsv"
        let records = tsv
            ? text.split(separator: "\n", omittingEmptySubsequences: true).map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
            : Self.parseCSV(text)
        guard let header = records.first else { return "\(url.lastPathComponent): empty" }
        let body = records.dropFirst()
        let shown = Array(body.prefix(rows))
        var out = TextFormat.table(header, shown)
        out += "\n(\(shown.count) of \(body.count) rows, \(header.count) columns)"
        return out
    }

    /// Splits CSV text into records, honouring double-quoted fields with `""` escapes and newlines.
    public static func parseCSV(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var chars = text.makeIterator()
        var pending: Character? = nil
        func next() -> Character? {
            if let p = pending { pending = nil; return p }
            return chars.next()
        }
        while let c = next() {
            if quoted {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else { field.append(c) }
                continue
            }
            switch c {
            case "\"": quoted = true
            case ",": record.append(field); field = ""
            case "\n", "\r\n":
                record.append(field); field = ""
                records.append(record); record = []
            case "\r": break
            default: field.append(c)
            }
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        return records
    }
}

/// `.json`: pretty-printed with sorted keys; a big top-level array or object shows its first `rows` entries.
public struct JSONInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool { url.pathExtension.lowercased() == "json" }
    public func inspect(url: URL, rows: Int) throws -> String {
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: url)) } catch {
            throw PipelineError("not valid JSON: \(error.localizedDescription)", location: url.path)
        }
        let limit = max(rows, 1) * 10
        switch value {
        case .array(let a) where a.count > limit:
            return TextFormat.prettyJSON(.array(Array(a.prefix(rows)))) + "\n(first \(rows) of \(a.count) elements)"
        case .object(let o) where o.count > limit:
            let keys = o.keys.sorted().prefix(rows)
            return TextFormat.prettyJSON(.object(Dictionary(uniqueKeysWithValues: keys.map { ($0, o[$0]!) })))
                + "\n(first \(rows) of \(o.count) keys, sorted)"
        default:
            return TextFormat.prettyJSON(value)
        }
    }
}

/// `.jsonl`: the first `rows` records, each pretty-printed.
public struct JSONLinesInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool { url.pathExtension.lowercased() == "jsonl" }
    public func inspect(url: URL, rows: Int) throws -> String {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        var parts: [String] = []
        for (i, line) in lines.prefix(rows).enumerated() {
            if let v = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) {
                parts.append("[\(i + 1)] " + TextFormat.prettyJSON(v))
            } else {
                parts.append("[\(i + 1)] (not JSON) \(line)")
            }
        }
        parts.append("(\(min(rows, lines.count)) of \(lines.count) lines)")
        return parts.joined(separator: "\n")
    }
}

/// Any file starting with an 8-byte ASCII magic: the magic, the format version and the size.
/// Specific decoders for known magics are registered in front of this one.
public struct BinaryHeaderInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool {
        guard magic != nil else { return false }
        return !TextInspector.looksLikeText(url)
    }
    public func inspect(url: URL, rows: Int) throws -> String {
        guard let m = ArtifactMagic.read(url) else { throw PipelineError("cannot read the file header", location: url.path) }
        return """
        file:    \(url.path)
        magic:   \(m.magic)
        version: \(m.version.map(String.init) ?? "(file too short)")
        size:    \(TextFormat.bytes(TextFormat.fileSize(url))) (\(TextFormat.fileSize(url)) bytes)
        (no decoder registered for magic \(m.magic); the manifest.json beside it describes the contents)
        """
    }
}

/// Fallback: text files show their first lines; other binaries their size and first bytes in hex.
public struct TextInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool { true }

    static func head(_ url: URL, _ n: Int) -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: url.path) else { return [] }
        defer { try? h.close() }
        return [UInt8]((try? h.read(upToCount: n)) ?? Data())
    }

    static func looksLikeText(_ url: URL) -> Bool {
        let bytes = head(url, 4096)
        // Control bytes other than tab, newline, vertical tab, form feed and carriage return mean binary.
        return !bytes.contains { $0 < 9 || ($0 > 13 && $0 < 32) }
    }

    public func inspect(url: URL, rows: Int) throws -> String {
        let size = TextFormat.fileSize(url)
        if Self.looksLikeText(url) {
            let text = try String(contentsOf: url, encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            return lines.prefix(rows).joined(separator: "\n") + "\n(\(min(rows, lines.count)) of \(lines.count) lines, \(TextFormat.bytes(size)))"
        }
        let hex = Self.head(url, 16).map { String(format: "%02x", $0) }.joined(separator: " ")
        return "binary file, \(TextFormat.bytes(size)) (\(size) bytes), no known header\nfirst bytes: \(hex)"
    }
}
