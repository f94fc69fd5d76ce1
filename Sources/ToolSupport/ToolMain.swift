import ArgumentParser
import ArtifactKit
import Foundation

extension ParsableCommand {
    /// ArgumentParser's `main()`, except that an error the libraries did not put in our words
    /// (a Foundation or POSIX error) is translated first: the user sees which file, what
    /// happened and what to do, never `Error Domain=NSCocoaErrorDomain Code=...`.
    public static func mainTranslatingErrors() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as PipelineError {
            exit(withError: error)
        } catch {
            exit(withError: PipelineError.translating(error))
        }
    }
}
