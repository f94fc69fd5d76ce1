import ArtifactKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Computes the SHA-256 of a file's content. Injectable so tests can count real hash computations.
public protocol ContentHasher: AnyObject {
    func sha256(of url: URL) throws -> String
}

/// The real hasher: streams the file through SHA-256.
public final class SHA256FileHasher: ContentHasher {
    public init() {}
    public func sha256(of url: URL) throws -> String { try FileHash.sha256(of: url) }
}

/// Remembers file hashes by (size, mtime in ns, inode), so unchanged big files are not re-read.
///
/// Kept in `.pipeline-cache/hashes.json` beside the pipeline file, keyed by path relative to the
/// pipeline directory. A file whose size, mtime or inode changed is hashed again (an atomic
/// rewrite gets a new inode even when size and mtime happen to match).
public final class HashCache {
    struct Entry: Codable, Equatable {
        var size: Int
        var mtimeNs: Int64
        var inode: UInt64
        var sha256: String
        /// Wall-clock time the hash was computed (ns since 1970).
        var hashedAtNs: Int64
    }

    struct Stored: Codable {
        var version: Int
        var files: [String: Entry]
    }

    static let version = 1
    public let root: URL
    public let cacheURL: URL?
    public let hasher: ContentHasher
    var entries: [String: Entry] = [:]
    var changed = false

    /// An entry whose file was modified less than this long before it was hashed is not trusted:
    /// file systems stamp mtimes from a coarse clock, so a same-size in-place rewrite right after
    /// hashing could keep the same mtime (git's "racy" entries). Such files are hashed again
    /// until their hash is older than their mtime by this margin.
    public var racyWindowNs: Int64 = 2_000_000_000

    /// `cacheURL` nil keeps the cache in memory only.
    public init(root: URL, cacheURL: URL?, hasher: ContentHasher = SHA256FileHasher()) {
        self.root = root
        self.cacheURL = cacheURL
        self.hasher = hasher
        if let cacheURL, let data = try? Data(contentsOf: cacheURL),
           let stored = try? JSONDecoder().decode(Stored.self, from: data), stored.version == Self.version {
            entries = stored.files
        }
    }

    /// The default cache location for a pipeline directory.
    public static func defaultURL(in directory: URL) -> URL {
        directory.appendingPathComponent(".pipeline-cache/hashes.json")
    }

    struct FileStat {
        var isDirectory: Bool
        var isRegular: Bool
        var size: Int
        var mtimeNs: Int64
        var inode: UInt64
    }

    static func stat(_ url: URL) -> FileStat? {
        guard let st = posixStat(url.path) else { return nil }
        let mode = st.st_mode & S_IFMT
        let ns = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        return FileStat(isDirectory: mode == S_IFDIR, isRegular: mode == S_IFREG,
                        size: Int(st.st_size), mtimeNs: ns, inode: UInt64(st.st_ino))
    }

    func url(for path: String) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path) : root.appendingPathComponent(path)
    }

    /// Hash and size of one regular file, from the cache when its stat matches.
    public func fileRecord(_ path: String) throws -> FileRecord {
        let url = url(for: path)
        guard let st = Self.stat(url), st.isRegular else {
            throw PipelineError("not a regular file", location: url.path)
        }
        if let e = entries[path], e.size == st.size, e.mtimeNs == st.mtimeNs, e.inode == st.inode,
           e.hashedAtNs - e.mtimeNs >= racyWindowNs {
            return FileRecord(path: path, sha256: e.sha256, size: e.size)
        }
        let hashedAt = Self.nowNs()
        let sha = try hasher.sha256(of: url)
        entries[path] = Entry(size: st.size, mtimeNs: st.mtimeNs, inode: st.inode, sha256: sha, hashedAtNs: hashedAt)
        changed = true
        return FileRecord(path: path, sha256: sha, size: st.size)
    }

    static func nowNs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The record of a file or directory, or nil when nothing is at `path`.
    public func record(_ path: String) throws -> PathRecord? {
        let url = url(for: path)
        guard let st = Self.stat(url) else { return nil }
        if st.isRegular {
            let e = try fileRecord(path)
            return PathRecord(path: path, sha256: e.sha256, size: e.size)
        }
        guard st.isDirectory else {
            throw PipelineError("neither a file nor a directory", location: url.path)
        }
        let prefix = path == "." ? "" : path + "/"
        let contents = try DirectoryListing.files(in: url).map { rel -> FileRecord in
            let e = try fileRecord(prefix + rel)
            return FileRecord(path: rel, sha256: e.sha256, size: e.size)
        }
        return PathRecord(path: path, sha256: Self.directoryDigest(contents), size: contents.reduce(0) { $0 + $1.size },
                          files: contents.count, contents: contents)
    }

    /// SHA-256 over the file count and the sorted `sha256  size  path` lines of a directory's files.
    public static func directoryDigest(_ contents: [FileRecord]) -> String {
        var text = "files \(contents.count)\n"
        for e in contents.sorted(by: { $0.path < $1.path }) {
            text += "\(e.sha256)  \(e.size)  \(e.path)\n"
        }
        return FileHash.sha256(of: text)
    }

    /// Writes the cache (atomically), dropping entries of files that no longer exist.
    public func save() throws {
        guard let cacheURL else { return }
        let live = entries.filter { Self.stat(url(for: $0.key)) != nil }
        guard changed || live.count != entries.count else { return }
        entries = live
        try AtomicFile.write(PrettyJSON.data(Stored(version: Self.version, files: entries)), to: cacheURL)
        changed = false
    }
}

/// stat(2), following symlinks; nil when nothing is at `path`.
private func posixStat(_ path: String) -> stat? {
    var st = stat()
    return stat(path, &st) == 0 ? st : nil
}
