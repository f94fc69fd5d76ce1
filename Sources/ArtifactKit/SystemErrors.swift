import Foundation

extension PipelineError {
    /// A system error in our words. Errors that are ours, or ArgumentParser's (their type lives
    /// outside Foundation), pass unchanged; Foundation's and POSIX errors become a `PipelineError`
    /// naming the file from their user info and what to do.
    public static func translating(_ error: Error) -> Error {
        if error is PipelineError { return error }
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return error }
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        return PipelineError(SystemProblem(ns).what, location: path, hint: SystemProblem(ns).hint)
    }

    /// Writing `url` failed with a system error: which output, why, and, for a full disk, how much
    /// space the file needed (`bytes`, when known) and how much there was. The previous file at
    /// `url`, if any, is untouched (outputs are written to a temporary file, then renamed).
    public static func writing(_ url: URL, _ error: Error, bytes: Int? = nil) -> PipelineError {
        if let e = error as? PipelineError { return e }
        let problem = SystemProblem(error as NSError)
        var what = "cannot write \(url.lastPathComponent): \(problem.what)"
        if problem.isDiskFull {
            let free = FreeSpace.bytes(at: url.deletingLastPathComponent())
            let needed = bytes.map { "it needs \(TextFormat.bytes($0))" } ?? "its size was not known in advance"
            what += " (\(needed); \(free.map(TextFormat.bytes) ?? "an unknown amount") free on that file system)"
        }
        let kept = FileManager.default.fileExists(atPath: url.path)
            ? "the previous \(url.lastPathComponent) is kept unchanged" : "nothing was written"
        return PipelineError(what, location: url.path, hint: problem.hint + "; " + kept)
    }
}

extension Data {
    /// The bytes of `url`, or an error in our words: "cannot read <what>: <reason>" at the path.
    /// `missingHint` says what to run when the file does not exist (the stage that writes it);
    /// other failures (permissions, ...) get the system problem's own advice.
    public static func reading(_ url: URL, what: String, missingHint: String? = nil,
                               options: Data.ReadingOptions = []) throws -> Data {
        do { return try Data(contentsOf: url, options: options) } catch {
            let problem = SystemProblem(error as NSError)
            let hint = problem.isMissingFile ? (missingHint ?? problem.hint) : problem.hint
            throw PipelineError("cannot read \(what): \(problem.what)", location: url.path, hint: hint)
        }
    }
}

/// What a Foundation/POSIX error means to the user.
struct SystemProblem {
    /// The failures some callers treat apart from the rest.
    enum Kind { case diskFull, missingFile, other }
    let what: String
    let hint: String
    let kind: Kind
    var isDiskFull: Bool { kind == .diskFull }
    var isMissingFile: Bool { kind == .missingFile }

    init(_ ns: NSError) {
        let posix = SystemProblem.posixCode(ns)
        switch (ns.domain, ns.code, posix) {
        case (_, _, ENOSPC?), (NSCocoaErrorDomain, NSFileWriteOutOfSpaceError, _), (_, _, EDQUOT?):
            (what, hint, kind) = ("the disk is full", "free some space (or write the outputs elsewhere) and rerun", .diskFull)
        case (_, _, EACCES?), (_, _, EPERM?), (NSCocoaErrorDomain, NSFileWriteNoPermissionError, _),
             (NSCocoaErrorDomain, NSFileReadNoPermissionError, _):
            (what, hint, kind) = ("permission denied", "check the permissions of the file and its folder", .other)
        case (_, _, EROFS?), (NSCocoaErrorDomain, NSFileWriteVolumeReadOnlyError, _):
            (what, hint, kind) = ("the file system is read-only", "write the outputs to a writable folder", .other)
        case (_, _, ENOENT?), (NSCocoaErrorDomain, NSFileNoSuchFileError, _), (NSCocoaErrorDomain, NSFileReadNoSuchFileError, _):
            (what, hint, kind) = ("no such file or folder", "check the path, or rerun the stage that writes it", .missingFile)
        default:
            let reason = posix.map { String(cString: strerror($0)) } ?? ns.localizedDescription
            (what, hint, kind) = (reason, "check the path and the disk, then rerun", .other)
        }
    }

    /// The POSIX errno behind an error: its own code, or its underlying error's.
    static func posixCode(_ ns: NSError) -> Int32? {
        if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
        if let under = ns.userInfo[NSUnderlyingErrorKey] as? NSError { return posixCode(under) }
        return nil
    }
}

/// Free bytes for an unprivileged writer on the file system holding `url`.
enum FreeSpace {
    static func bytes(at url: URL) -> Int? {
        var s = statvfs()
        guard statvfs(url.path, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }
}
