import ArgumentParser
import ArtifactKit
import Fetcher
import Foundation
import ToolSupport
#if canImport(Glibc)
import Glibc
#endif

/// `fetch`: downloads the sources declared under `params.fetch.sources` in pipeline.yaml,
/// verifies them, extracts declared zip members, and writes `manifest.json` beside them.
@main
struct FetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Download, verify and unpack the pipeline's raw inputs.",
        discussion: """
            Each source is taken, in this order, from: the output directory (skipped when its size and \
            sha256 already match), the mirror directory (--mirror or $LLMFT_MIRROR), then its URLs \
            (primary, then backups). Nothing unverified is ever left under a final file name.
            """)

    static func main() { mainTranslatingErrors() }

    @Option(name: .long, help: ArgumentHelp("The pipeline file declaring params.fetch.sources.", valueName: "file"))
    var config: Path = "pipeline.yaml"

    @Option(name: .long, help: ArgumentHelp("Output directory.", valueName: "dir"))
    var out: Path = "data/raw"

    @Option(name: .long, help: ArgumentHelp("A local directory with verified copies (DIR/<file> or DIR/<basename>); default $LLMFT_MIRROR.", valueName: "dir"))
    var mirror: String?

    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Fetch only these sources (by name).", valueName: "name"))
    var only: [String] = []

    @Option(name: .long, help: "Extra attempts per URL after transient errors.")
    var retries: Int = 3

    @Option(name: .long, help: "Seconds before the first retry (doubled each time).")
    var backoff: Double = 1.0

    @Option(name: .long, help: "Seconds to wait for a connection.")
    var connectTimeout: Double = 30

    @Option(name: .long, help: "Seconds without any received byte before a transfer is retried.")
    var stallTimeout: Int = 60

    @Flag(name: .long, help: "No progress bar even on a terminal.")
    var noProgress = false

    func validate() throws {
        if retries < 0 { throw ValidationError("--retries must be 0 or more") }
        if backoff < 0 { throw ValidationError("--backoff must be 0 or more") }
        if connectTimeout <= 0 { throw ValidationError("--connect-timeout must be positive") }
        if stallTimeout < 1 { throw ValidationError("--stall-timeout must be at least 1 second") }
    }

    func run() throws {
        let fetcher = Fetcher(options: FetchOptions(
            outDir: out.url,
            mirror: FetchOptions.resolveMirror(flag: mirror),
            retries: retries, backoff: backoff, connectTimeout: connectTimeout, stallTimeout: stallTimeout,
            progress: !noProgress && isatty(STDERR_FILENO) != 0,
            report: { line in print(line); fflush(stdout) }))
        do {
            try fetcher.fetch(try selectedSources())
        } catch let error as FetchFailure {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode.failure
        }
        print("manifest    \(fetcher.manifestURL.path)")
    }

    /// The sources of the pipeline file, only those of `--only` when given.
    func selectedSources() throws -> [SourceSpec] {
        let sources = try loadSources(fromPipelineFile: config.url)
        guard !only.isEmpty else { return sources }
        let known = Set(sources.map(\.name))
        if let unknown = only.first(where: { !known.contains($0) }) {
            throw PipelineError("--only \(unknown): no such source (sources: \(sources.map(\.name).joined(separator: ", ")))",
                                location: config.text)
        }
        return sources.filter { only.contains($0.name) }
    }
}
