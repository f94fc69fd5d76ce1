import Foundation

/// Shows one kind of artifact for `pipeline show`. Modules register their own (for example a
/// decoder of classification shards that turns token ids back into text).
public protocol ArtifactInspector {
    /// `magic` is the file's first 8 bytes when they are printable ASCII (an `ArtifactHeader`), else nil.
    func canInspect(url: URL, magic: String?) -> Bool
    /// A human-readable description; `rows` bounds how many rows/lines/records to show.
    func inspect(url: URL, rows: Int) throws -> String
}

/// The 8-byte magic and u32 version at the start of a binary artifact (see `ArtifactHeader`).
public enum ArtifactMagic {
    public static func read(_ url: URL) -> (magic: String, version: UInt32?)? {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 12), head.count >= 8 else { return nil }
        let bytes = [UInt8](head)
        guard bytes[0..<8].allSatisfy({ (0x21...0x7E).contains($0) }) else { return nil }
        let magic = String(decoding: bytes[0..<8], as: UTF8.self)
        var version: UInt32?
        if bytes.count >= 12 {
            version = UInt32(bytes[8]) | UInt32(bytes[9]) << 8 | UInt32(bytes[10]) << 16 | UInt32(bytes[11]) << 24
        }
        return (magic, version)
    }
}

/// Sizes and tables for inspectors' text.
public enum TextFormat {
    /// A duration for progress lines: "42s", "3m05s", "1h02m".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, s % 3600 / 60)
    }

    public static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var v = Double(n) / 1024
        var i = 0
        while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
        return String(format: "%.1f %@", v, units[i])
    }

    public static func fileSize(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// Left-aligned columns with a rule under the header; cells are cut to `maxWidth`.
    public static func table(_ header: [String], _ rows: [[String]], maxWidth: Int = 60) -> String {
        let clean = { (s: String) -> String in
            let flat = s.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: " ")
            return flat.count > maxWidth ? String(flat.prefix(maxWidth - 3)) + "..." : flat
        }
        let all = ([header] + rows).map { $0.map(clean) }
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ row: [String]) -> String {
            row.enumerated().map { i, c in
                i == row.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var out = [line(all[0]), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        out += all.dropFirst().map(line)
        return out.joined(separator: "\n")
    }
}
