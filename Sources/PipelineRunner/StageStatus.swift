import ArtifactKit
import Foundation

/// Why a stage must run. Every stage that runs, or would run, has at least one.
public enum StaleReason: Equatable, Sendable, CustomStringConvertible {
    /// The lock file has no entry for the stage.
    case neverRun
    /// `--force` was given.
    case forced
    case commandChanged(old: String, new: String)
    /// A listed param has another value than at the last run (nil: absent then or now).
    case paramChanged(key: String, old: JSONValue?, new: JSONValue?)
    case depMissing(path: String)
    case depChanged(path: String, detail: String?)
    case outMissing(path: String)
    case outModified(path: String, detail: String?)
    /// A stage this one reads from ran in this run (`ran`), or is stale and would run.
    case upstream(stage: String, ran: Bool)

    public var description: String {
        switch self {
        case .neverRun: return "never run"
        case .forced: return "forced (--force)"
        case .commandChanged: return "cmd changed"
        case let .paramChanged(key, old, new):
            if old == nil { return "param \(key) added (\(Params.brief(new)))" }
            if new == nil { return "param \(key) no longer listed" }
            return "param \(key) changed (\(Params.brief(old)) -> \(Params.brief(new)))"
        case .depMissing(let path): return "dep missing: \(path)"
        case let .depChanged(path, detail): return "dep changed: \(path)" + (detail.map { " (\($0))" } ?? "")
        case .outMissing(let path): return "out missing: \(path)"
        case let .outModified(path, detail): return "out modified: \(path)" + (detail.map { " (\($0))" } ?? "")
        case let .upstream(stage, ran): return ran ? "upstream stage \(stage) ran" : "upstream stage \(stage) is stale"
        }
    }

    /// A stable machine-readable kind, for `status --json`.
    public var kind: String {
        switch self {
        case .neverRun: return "never-run"
        case .forced: return "forced"
        case .commandChanged: return "cmd-changed"
        case .paramChanged: return "param-changed"
        case .depMissing: return "dep-missing"
        case .depChanged: return "dep-changed"
        case .outMissing: return "out-missing"
        case .outModified: return "out-modified"
        case .upstream: return "upstream"
        }
    }
}

/// A stage and the reasons it is stale; no reasons means up to date.
public struct StageStatus: Equatable, Sendable {
    public var name: String
    public var command: String
    public var reasons: [StaleReason]
    public var isStale: Bool { !reasons.isEmpty }

    public init(name: String, command: String, reasons: [StaleReason]) {
        self.name = name
        self.command = command
        self.reasons = reasons
    }
}

extension Pipeline {
    /// Why `stage` differs from its lock entry, looking only at the stage itself (not upstream).
    /// Deps and outs are hashed through `cache`.
    public func ownReasons(of stage: PlannedStage, lock: StageLock?, cache: HashCache) throws -> [StaleReason] {
        guard let lock else { return [.neverRun] }
        var reasons: [StaleReason] = []
        if lock.cmd != stage.recordedCommand { reasons.append(.commandChanged(old: lock.cmd, new: stage.recordedCommand)) }
        for key in stage.params.keys.sorted() {
            let now = stage.params[key]!
            let before = lock.params[key]
            if before == nil || !Params.same(before!, now) {
                reasons.append(.paramChanged(key: key, old: before, new: now))
            }
        }
        for key in lock.params.keys.sorted() where stage.params[key] == nil {
            reasons.append(.paramChanged(key: key, old: lock.params[key], new: nil))
        }
        for dep in stage.deps {
            guard let now = try cache.record(dep) else { reasons.append(.depMissing(path: dep)); continue }
            guard let before = lock.deps.first(where: { $0.path == dep }) else {
                reasons.append(.depChanged(path: dep, detail: "not recorded at the last run")); continue
            }
            if now.sha256 != before.sha256 { reasons.append(.depChanged(path: dep, detail: now.difference(from: before))) }
        }
        for out in stage.outs {
            guard let now = try cache.record(out) else { reasons.append(.outMissing(path: out)); continue }
            guard let before = lock.outs.first(where: { $0.path == out }) else {
                reasons.append(.outModified(path: out, detail: "not recorded at the last run")); continue
            }
            if now.sha256 != before.sha256 { reasons.append(.outModified(path: out, detail: now.difference(from: before))) }
        }
        return reasons
    }
}
