import Foundation

/// Lists a directory's regular files (recursively, sorted, relative paths), skipping hidden
/// temporaries, so that artifacts made of several files can be hashed and recorded.
public enum DirectoryListing {
    public static func files(in dir: URL) throws -> [String] {
        let fm = FileManager.default
        guard let en = fm.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw PipelineError("cannot list directory", location: dir.path)
        }
        var out: [String] = []
        let base = dir.standardizedFileURL.path
        for case let url as URL in en {
            let isFile = (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) ?? false
            guard isFile else { continue }
            var rel = url.standardizedFileURL.path
            if rel.hasPrefix(base) { rel = String(rel.dropFirst(base.count)) }
            while rel.hasPrefix("/") { rel.removeFirst() }
            if rel.split(separator: "/").contains(where: { $0.hasPrefix(".") && $0.hasSuffix(".tmp") }) { continue }
            out.append(rel)
        }
        return out.sorted()
    }
}
