import Foundation

/// An error meant for the person at the terminal: what went wrong, where, and what to do.
///
/// Every stage reports bad input with one of these so that the message names the file (and
/// line or key when there is one) and, where it helps, the command to rerun.
public struct PipelineError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var message: String
    /// The file, URL or key the problem is about, when there is one.
    public var location: String?
    /// What the user can do about it ("rerun `pipeline run prepare`").
    public var hint: String?

    public init(_ message: String, location: String? = nil, hint: String? = nil) {
        self.message = message
        self.location = location
        self.hint = hint
    }

    public var description: String {
        var text = location.map { "\($0): \(message)" } ?? message
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }

    public var errorDescription: String? { description }
}
