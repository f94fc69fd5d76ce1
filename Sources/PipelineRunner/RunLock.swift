import ArtifactKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on `.pipeline.run.lock` in the pipeline directory, so that two runs
/// never write the same outputs at once. The holder's pid is written into the file so the
/// refused run can say who holds it. The kernel drops the lock when the holder exits, however it exits.
public final class RunLock {
    public static let fileName = ".pipeline.run.lock"
    public let url: URL
    private var fd: Int32

    private init(url: URL, fd: Int32) {
        self.url = url
        self.fd = fd
    }

    /// Takes the lock for `directory` or throws, naming the pid that holds it.
    public static func acquire(in directory: URL) throws -> RunLock {
        let url = directory.appendingPathComponent(fileName)
        // O_CLOEXEC: stage commands must not inherit (and so keep holding) the lock.
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw PipelineError("cannot open the run lock: \(String(cString: strerror(errno)))", location: url.path)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = readHolder(fd)
            close(fd)
            let who = holder.map { "pid \($0)" } ?? "another process"
            throw PipelineError("another `pipeline run` (\(who)) is already running in \(directory.path)",
                                location: url.path, hint: "wait for it to finish" + (holder.map { ", or stop it with `kill \($0)`" } ?? ""))
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return RunLock(url: url, fd: fd)
    }

    static func readHolder(_ fd: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
