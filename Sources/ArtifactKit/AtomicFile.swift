import Foundation

/// Writes files so that a reader never sees a half-written one: the bytes go to a temporary
/// path in the same directory, and only a complete file is renamed over the final name.
public enum AtomicFile {
    /// A fresh temporary path beside `url` (same directory, so the rename cannot cross devices).
    public static func temporaryURL(for url: URL) -> URL {
        let dir = url.deletingLastPathComponent()
        return dir.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).\(UUID().uuidString.prefix(8)).tmp")
    }

    /// Writes `data` to `url` atomically, creating the parent directory if needed.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url, bytes: data.count) { tmp in try data.write(to: tmp) }
    }

    /// Lets `body` produce the file at a temporary path, then renames it into place.
    /// If `body` throws, the temporary file is removed and `url` is left untouched; a system
    /// error (full disk, no permission) is put in our words, naming `url` and, when the size is
    /// known (`bytes`), how much space it needed.
    public static func write(to url: URL, bytes: Int? = nil, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let tmp = temporaryURL(for: url)
        do {
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try body(tmp)
            try moveIntoPlace(tmp, url)
        } catch {
            try? fm.removeItem(at: tmp)
            throw PipelineError.writing(url, error, bytes: bytes)
        }
    }

    /// Removes the temporary files (`temporaryURL`'s `.NAME.PID.XXXXXXXX.tmp`) that processes no
    /// longer running left in `directory` when they were killed mid-write (kill -9, a rank of a
    /// data-parallel job ended by mpirun): the final files are intact, the temporaries are junk.
    /// Files of a process that is still running (kill(pid, 0) finds it) are kept. Returns the
    /// names removed.
    @discardableResult
    public static func removeStaleTemporaries(in directory: URL) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return names.filter { name in
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            guard name.hasPrefix("."), parts.count >= 5, parts.last == "tmp", let pid = Int32(parts[parts.count - 3]),
                  parts[parts.count - 2].count == 8, kill(pid, 0) != 0 && errno == ESRCH else { return false }
            return (try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))) != nil
        }
    }

    /// Renames `from` over `to` (replacing an existing file) with POSIX rename(2), which is atomic.
    public static func moveIntoPlace(_ from: URL, _ to: URL) throws {
        if rename(from.path, to.path) != 0 {
            let err = String(cString: strerror(errno))
            throw PipelineError("cannot move \(from.lastPathComponent) into place: \(err)", location: to.path)
        }
    }
}

/// A stage's output folder: files are put into it atomically and remembered, for the manifest.
public struct OutputFolder {
    public let url: URL
    /// Names of the files put so far, in order.
    public var written: [String] = []

    public init(_ url: URL) { self.url = url }

    public mutating func put(_ name: String, _ bytes: Data) throws {
        try AtomicFile.write(bytes, to: url.appendingPathComponent(name))
        written.append(name)
    }
}
