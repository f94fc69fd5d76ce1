import ArtifactKit
import Foundation

/// How `Runner.run` chooses and runs stages (the flags of `pipeline run`).
public struct RunOptions: Sendable {
    /// Stages named on the command line; empty means every stage.
    public var targets: [String]
    /// Only the targets, not their stale upstream.
    public var single: Bool
    /// Run the targets even when up to date (every stage when there are no targets).
    public var force: Bool
    /// Print what would run, run nothing, write nothing but the hash cache.
    public var dry: Bool
    /// The targets and every stage after them (not their upstream).
    public var downstream: Bool
    /// Prepended to PATH for the commands (the directory of the `pipeline` executable, so
    /// `fetch`, `prepare`, ... resolve to the sibling tools).
    public var toolDirectory: URL?

    public init(targets: [String] = [], single: Bool = false, force: Bool = false, dry: Bool = false,
                downstream: Bool = false, toolDirectory: URL? = nil) {
        self.targets = targets
        self.single = single
        self.force = force
        self.dry = dry
        self.downstream = downstream
        self.toolDirectory = toolDirectory
    }
}

/// What happened to one stage in a run.
public struct StageOutcome: Equatable, Sendable {
    public enum Action: String, Sendable {
        case ran = "ran"
        case wouldRun = "would run"
        case upToDate = "up to date"
        case notSelected = "not selected"
    }
    public var name: String
    public var action: Action
    public var reasons: [StaleReason]
    public var command: String
}

public struct RunReport: Sendable {
    public var outcomes: [StageOutcome]
    public func outcome(_ name: String) -> StageOutcome? { outcomes.first { $0.name == name } }
    public var ran: [String] { outcomes.filter { $0.action == .ran }.map(\.name) }
    public var wouldRun: [String] { outcomes.filter { $0.action == .wouldRun }.map(\.name) }
}

/// A stage's command exited non-zero (or was killed). Earlier stages' lock entries are kept.
public struct StageFailedError: Error, CustomStringConvertible, LocalizedError {
    public var stage: String
    public var exitCode: Int32
    public var signal: Int32?

    public var description: String {
        let how = signal.map { "was killed by signal \($0)" } ?? "failed with exit code \(exitCode)"
        return "stage \(stage) \(how); the stages before it are recorded in the lock file\n  hint: fix the problem, then `pipeline run \(stage)` to continue from there"
    }
    public var errorDescription: String? { description }
}

/// Decides what is stale and runs it, keeping the lock file and the hash cache up to date.
public final class Runner {
    public let pipeline: Pipeline
    public let cache: HashCache
    /// Receives every line the runner prints about its decisions.
    public var log: (String) -> Void
    /// Where commands' stdout and stderr go; nil lets them stream to this process's own.
    public var childOutput: FileHandle?

    /// `cacheURL` defaults to `.pipeline-cache/hashes.json` beside the pipeline file.
    public init(pipeline: Pipeline, hasher: ContentHasher = SHA256FileHasher(), cacheURL: URL? = nil,
                log: @escaping (String) -> Void = { print($0) }) {
        self.pipeline = pipeline
        self.cache = HashCache(root: pipeline.directory, cacheURL: cacheURL ?? HashCache.defaultURL(in: pipeline.directory),
                               hasher: hasher)
        self.log = log
    }

    public var lockURL: URL { pipeline.file.lockURL }

    func checkTargets(_ targets: [String]) throws {
        for t in targets where pipeline.stage(named: t) == nil {
            throw PipelineError("no stage named `\(t)`", location: pipeline.file.url.path,
                                hint: "stages: \(pipeline.stages.map(\.name).joined(separator: ", "))")
        }
    }

    /// Every stage (or the targets and their upstream) with the reasons it is stale, in run order.
    /// A stage whose upstream is stale is stale too. Reads only; saves the hash cache.
    public func status(targets: [String] = []) throws -> [StageStatus] {
        try checkTargets(targets)
        let selected = targets.isEmpty ? Set(pipeline.stages.map(\.name)) : pipeline.upstreamClosure(of: targets)
        let lock = try LockFile.read(from: lockURL)
        var stale = Set<String>()
        var result: [StageStatus] = []
        for stage in pipeline.stages where selected.contains(stage.name) {
            var reasons = try pipeline.ownReasons(of: stage, lock: lock.stages[stage.name], cache: cache)
            reasons += stage.upstream.filter { stale.contains($0) }.map { StaleReason.upstream(stage: $0, ran: false) }
            if !reasons.isEmpty { stale.insert(stage.name) }
            result.append(StageStatus(name: stage.name, command: stage.command, reasons: reasons))
        }
        try cache.save()
        return result
    }

    /// Runs what is stale among the selected stages in dependency order, printing for every
    /// stage why it runs or why not. Throws `StageFailedError` when a command fails.
    @discardableResult
    public func run(_ options: RunOptions = RunOptions()) throws -> RunReport {
        try checkTargets(options.targets)
        let all = pipeline.stages.map(\.name)
        let selected: Set<String>
        if options.targets.isEmpty { selected = Set(all) }
        else if options.downstream { selected = pipeline.downstreamClosure(of: options.targets) }
        else if options.single { selected = Set(options.targets) }
        else { selected = pipeline.upstreamClosure(of: options.targets) }
        let forced: Set<String> = options.force ? (options.targets.isEmpty ? Set(all) : Set(options.targets)) : []

        let runLock = options.dry ? nil : try RunLock.acquire(in: pipeline.directory)
        defer { runLock?.release() }
        defer { try? cache.save() }

        var lock = try LockFile.read(from: lockURL)
        var ranOrWouldRun = Set<String>()
        var outcomes: [StageOutcome] = []
        for stage in pipeline.stages {
            guard selected.contains(stage.name) else {
                log("- \(stage.name): not selected")
                outcomes.append(StageOutcome(name: stage.name, action: .notSelected, reasons: [], command: stage.command))
                continue
            }
            var reasons = try pipeline.ownReasons(of: stage, lock: lock.stages[stage.name], cache: cache)
            if forced.contains(stage.name) { reasons.insert(.forced, at: 0) }
            reasons += stage.upstream.filter { ranOrWouldRun.contains($0) }
                .map { StaleReason.upstream(stage: $0, ran: !options.dry) }
            if reasons.isEmpty {
                log("- \(stage.name): up to date")
                outcomes.append(StageOutcome(name: stage.name, action: .upToDate, reasons: [], command: stage.command))
                continue
            }
            let why = reasons.map(\.description).joined(separator: "; ")
            if options.dry {
                log("- \(stage.name): would run (\(why))\n  $ \(stage.command)")
                outcomes.append(StageOutcome(name: stage.name, action: .wouldRun, reasons: reasons, command: stage.command))
                ranOrWouldRun.insert(stage.name)
                continue
            }
            let deps = try recordDeps(of: stage)
            log("- \(stage.name): running (\(why))\n  $ \(stage.command)")
            lock.stages[stage.name] = try execute(stage, deps: deps, options: options)
            // Entries of stages that were removed from the file would never be read again.
            lock.stages = lock.stages.filter { name, _ in pipeline.stage(named: name) != nil }
            try lock.write(to: lockURL)
            try cache.save()
            outcomes.append(StageOutcome(name: stage.name, action: .ran, reasons: reasons, command: stage.command))
            ranOrWouldRun.insert(stage.name)
        }
        let counted = { (a: StageOutcome.Action) in outcomes.filter { $0.action == a }.count }
        if options.dry {
            log("dry run: \(counted(.wouldRun)) stage(s) would run, \(counted(.upToDate)) up to date; nothing was run")
        } else {
            log("\(counted(.ran)) stage(s) ran, \(counted(.upToDate)) up to date")
        }
        return RunReport(outcomes: outcomes)
    }

    /// Hashes the deps a stage is about to read; a missing one is an error naming its producer.
    func recordDeps(of stage: PlannedStage) throws -> [PathRecord] {
        var deps: [PathRecord] = []
        for dep in stage.deps {
            guard let record = try cache.record(dep) else {
                let producer = pipeline.edges.first { $0.to == stage.name && $0.dep == dep }?.from
                throw PipelineError("stage \(stage.name): dep `\(dep)` is missing", location: pipeline.url(for: dep).path,
                                    hint: producer.map { "run `pipeline run \($0)` first (it writes it)" } ?? "create it or fix the path")
            }
            deps.append(record)
        }
        return deps
    }

    /// Runs one stage's command and returns its new lock entry (`deps` as hashed before it ran).
    func execute(_ stage: PlannedStage, deps: [PathRecord], options: RunOptions) throws -> StageLock {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", stage.command]
        process.currentDirectoryURL = pipeline.directory
        var env = ProcessInfo.processInfo.environment
        if let tools = options.toolDirectory {
            env["PATH"] = tools.path + (env["PATH"].map { ":" + $0 } ?? "")
        }
        process.environment = env
        if let childOutput {
            process.standardOutput = childOutput
            process.standardError = childOutput
        }
        fflush(stdout)
        do { try process.run() } catch {
            throw PipelineError("cannot start /bin/sh for stage \(stage.name): \(error)")
        }
        process.waitUntilExit()
        if process.terminationReason == .uncaughtSignal {
            throw StageFailedError(stage: stage.name, exitCode: 128 + process.terminationStatus, signal: process.terminationStatus)
        }
        guard process.terminationStatus == 0 else {
            throw StageFailedError(stage: stage.name, exitCode: process.terminationStatus, signal: nil)
        }

        var outs: [PathRecord] = []
        for out in stage.outs {
            guard let record = try cache.record(out) else {
                throw PipelineError("stage \(stage.name) finished but did not write its out `\(out)`",
                                    location: pipeline.url(for: out).path, hint: "fix the stage's cmd or its `outs` list")
            }
            outs.append(record)
        }
        return StageLock(cmd: stage.recordedCommand, params: stage.params, deps: deps, outs: outs)
    }
}
