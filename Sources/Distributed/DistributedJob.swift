import ArtifactKit
import CMPIShim
import Foundation
import TrainingKit

/// The process's part in a training job: alone (no mpirun: nothing is initialised, the
/// trainers run as they always did) or one rank of `mpirun -np N`.
public enum DistributedJob {
    /// Runs `body` with the job's processes. Under mpirun, MPI is initialised first and finalised
    /// after; an error on any rank is printed with the rank and host and ends the whole job
    /// (MPI_Abort), so no rank waits for one that has already given up.
    public static func run(timeout: Double, _ body: (Collective) throws -> Void) throws {
        guard MPICollective.launchedByMPI else { return try body(SingleProcess()) }
        let mpi = try MPICollective(timeout: timeout)
        do {
            try body(mpi)
        } catch {
            let text = (PipelineError.translating(error) as? PipelineError)?.description ?? "\(error)"
            let who = mpi.size > 1 ? " (process \(mpi.rank) of \(mpi.size) on \(mpi.host))" : ""
            FileHandle.standardError.write(Data("error\(who): \(text)\n".utf8))
            if mpi.size > 1 { llmft_mpi_abort(1) }
            _ = llmft_mpi_finalize()
            exit(1)
        }
        _ = llmft_mpi_finalize()
    }
}
