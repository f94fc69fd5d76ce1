import Foundation

/// Finds a program as the shell would: the first executable `name` in a directory of `PATH`.
public enum ExecutableSearch {
    /// The executable `name` on `PATH` (`/usr/bin:/bin` when PATH is unset), nil when there is none.
    public static func find(_ name: String) -> URL? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return dirs.map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}
