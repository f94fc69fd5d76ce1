import ArtifactKit
import CMPIShim
import Foundation
import TrainingKit

/// The ranks of an `mpirun -np N` job, through Open MPI (MPI_COMM_WORLD). Every call is
/// watched by a `CollectiveWatchdog`: a rank that waits longer than the timeout for the others
/// (one of them died or hangs) stops the whole job instead of waiting forever.
///
/// MPI counts are C ints, so buffers past 2^31 elements go in chunks (each chunk is one
/// collective call on every rank, in the same order).
public final class MPICollective: Collective {
    public let rank: Int
    public let size: Int
    public let host: String
    let watchdog: CollectiveWatchdog
    /// Elements per MPI call: 2^28 floats (1 GiB), well inside an int.
    static let chunk = 1 << 28

    /// Whether this process was started by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE in every
    /// process it launches; PMI_SIZE / PMIX_RANK are set by other process managers).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// Initialises MPI; `timeout` seconds is the longest a rank waits for the others in one call.
    init(timeout: Double) throws {
        try Self.check(llmft_mpi_init(), "MPI_Init")
        var r: Int32 = 0, n: Int32 = 0
        try Self.check(llmft_mpi_rank(&r), "MPI_Comm_rank")
        try Self.check(llmft_mpi_size(&n), "MPI_Comm_size")
        rank = Int(r)
        size = Int(n)
        var name = [CChar](repeating: 0, count: 256)
        llmft_mpi_processor_name(&name, Int32(name.count))
        host = String(cString: name)
        watchdog = CollectiveWatchdog(timeout: timeout, rank: rank, size: size, host: host)
    }

    public func sum(_ buffer: UnsafeMutableBufferPointer<Float>, what: String) throws {
        guard let base = buffer.baseAddress else { return }
        for start in stride(from: 0, to: buffer.count, by: Self.chunk) {
            let n = Int32(min(Self.chunk, buffer.count - start))
            try call(what) { llmft_mpi_allreduce_float_sum(base + start, n) }
        }
    }

    public func sum(_ values: [Double], what: String) throws -> [Double] {
        var out = values
        try out.withUnsafeMutableBufferPointer { b in try call(what) { llmft_mpi_allreduce_double_sum(b.baseAddress, Int32(b.count)) } }
        return out
    }

    public func any(_ flag: Bool, what: String) throws -> Bool {
        var v: Int32 = flag ? 1 : 0
        try call(what) { llmft_mpi_allreduce_int_max(&v, 1) }
        return v != 0
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int, what: String) throws {
        guard let base = buffer.baseAddress else { return }
        for start in stride(from: 0, to: buffer.count, by: Self.chunk) {
            let n = Int32(min(Self.chunk, buffer.count - start))
            try call(what) { llmft_mpi_bcast_bytes(base + start, n, Int32(root)) }
        }
    }

    public func gather(_ bytes: [UInt8], what: String) throws -> [[UInt8]] {
        var out = [UInt8](repeating: 0, count: bytes.count * size)
        try out.withUnsafeMutableBytes { o in
            try bytes.withUnsafeBytes { b in try call(what) { llmft_mpi_allgather_bytes(b.baseAddress, Int32(b.count), o.baseAddress) } }
        }
        return (0..<size).map { Array(out[($0 * bytes.count)..<(($0 + 1) * bytes.count)]) }
    }

    /// Runs one MPI call under the watchdog and turns an error code into a message.
    private func call(_ what: String, _ body: () -> Int32) throws {
        watchdog.enter(what)
        let rc = body()
        watchdog.leave()
        try Self.check(rc, "exchanging \(what) (process \(rank) of \(size) on \(host))")
    }

    static func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        llmft_mpi_error_string(rc, &text, Int32(text.count))
        throw PipelineError("MPI failed \(what): \(String(cString: text)) (code \(rc))", location: "mpirun",
                            hint: "check that every host runs the same build and can reach the others (see docs/distributed.md)")
    }
}

/// Stops the job when this rank has waited `timeout` seconds inside one collective call: the
/// other ranks are gone (a killed rank is normally noticed by mpirun itself, which stops the
/// job) or hang (a stopped process, a lost link). It writes which exchange it waited for and
/// exits with code 75; mpirun then ends the other ranks. The last resume state written stays
/// usable (states are written atomically), so `--continue-interrupted` goes on from it.
final class CollectiveWatchdog: @unchecked Sendable {
    let timeout: Double
    let label: String
    private let lock = NSLock()
    private var waiting: (what: String, since: Date)?

    init(timeout: Double, rank: Int, size: Int, host: String) {
        self.timeout = timeout
        label = "process \(rank) of \(size) on \(host)"
        guard timeout > 0 else { return }
        let thread = Thread { [weak self] in
            while let self {
                Thread.sleep(forTimeInterval: min(1, self.timeout / 4))
                self.checkOnce()
            }
        }
        thread.start()
    }

    func enter(_ what: String) {
        lock.lock()
        waiting = (what, Date())
        lock.unlock()
    }

    func leave() {
        lock.lock()
        waiting = nil
        lock.unlock()
    }

    private func checkOnce() {
        lock.lock()
        let w = waiting
        lock.unlock()
        guard let w, Date().timeIntervalSince(w.since) > timeout else { return }
        let message = String(format: "error: %@ waited %.0f s for the other processes while exchanging %@: one of them has stopped or hangs. Stopping the job; the last saved state in the output folder is intact (rerun the same command with --continue-interrupted). The limit is --process-timeout.\n",
                             label, timeout, w.what)
        FileHandle.standardError.write(Data(message.utf8))
        _exit(75)
    }
}
