import ArgumentParser
import Foundation

/// A file or folder named on the command line (relative to the current directory), kept as a
/// URL for the libraries and shown as typed in help texts and messages.
public struct Path: ExpressibleByArgument, ExpressibleByStringLiteral, CustomStringConvertible, Sendable {
    public let text: String
    public var url: URL { URL(fileURLWithPath: text) }

    public init(_ text: String) { self.text = text }
    public init?(argument: String) {
        guard !argument.isEmpty else { return nil }
        self.init(argument)
    }
    public init(stringLiteral value: String) { self.init(value) }

    public var description: String { text }
    /// `path/name`, as text (for messages).
    public func appending(_ name: String) -> String { (text as NSString).appendingPathComponent(name) }
}
