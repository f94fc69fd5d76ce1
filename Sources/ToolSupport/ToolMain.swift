import ArgumentParser
import ArtifactKit
import Foundation

extension ParsableCommand {
    /// ArgumentParser's `main()`, except that our errors print as `error: <what> (<where>) hint`
    /// and exit 1, as in every tool, and an error the libraries did not put in our words (a
    /// Foundation or POSIX error) is translated first: the user sees which file, what happened
    /// and what to do, never `Error Domain=NSCocoaErrorDomain Code=...`. ArgumentParser's own
    /// errors (usage, --help, exit codes) keep its handling.
    public static func mainTranslatingErrors() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            guard let ours = PipelineError.translating(error) as? PipelineError else { exit(withError: error) }
            FileHandle.standardError.write(Data("error: \(ours.description)\n".utf8))
            exit(withError: ExitCode.failure)
        }
    }
}
