import ArtifactKit
import Foundation

/// `train --processes N` without mpirun: the command starts itself again under
/// `mpirun -np N` (with the same arguments), so a pipeline param can choose the number of
/// processes. Under mpirun the option only has to agree with the job's size.
public enum MPILauncher {
    /// Replaces this process with `mpirun -np N <this executable> <the same arguments>` when
    /// `processes` > 1 and it is not already one of an MPI job's processes; returns otherwise.
    /// `hostfile` (nil: this machine) lists the machines; on one machine more processes than
    /// cores need --oversubscribe, and root needs --allow-run-as-root (our test hosts run as root).
    public static func relaunchIfNeeded(processes: Int, hostfile: String?) throws {
        guard processes > 1, !MPICollective.launchedByMPI else { return }
        guard let mpirun = ExecutableSearch.find("mpirun")?.path else {
            throw PipelineError("--processes \(processes) needs Open MPI's mpirun, which is not on PATH", location: "train.processes",
                                hint: "install it (apt-get install openmpi-bin libopenmpi-dev; scripts/install-deps.sh does), or use --processes 1")
        }
        var args = [mpirun, "-np", String(processes)]
        if let hostfile {
            guard FileManager.default.fileExists(atPath: hostfile) else {
                throw PipelineError("the hostfile does not exist", location: hostfile, hint: "give an Open MPI hostfile (docs/distributed.md) or none")
            }
            // Machines of their own: a process uses all the cores it finds (Open MPI would
            // otherwise bind 1-2 processes per host to one core each).
            args += ["--hostfile", hostfile, "--bind-to", "none"]
        } else if processes > ProcessInfo.processInfo.activeProcessorCount {
            args += ["--oversubscribe"]
        }
        if geteuid() == 0 { args += ["--allow-run-as-root"] }
        args += [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path] + CommandLine.arguments.dropFirst()
        FileHandle.standardError.write(Data("$ \(args.joined(separator: " "))\n".utf8))
        let argv = args.map { strdup($0) } + [nil]
        execv(mpirun, argv)
        throw PipelineError("could not start \(mpirun): \(String(cString: strerror(errno)))", location: "train.processes")
    }

    /// Refuses `--processes N` under an mpirun job of another size.
    public static func check(processes: Int, jobSize: Int) throws {
        guard processes > 1, processes != jobSize else { return }
        throw PipelineError("--processes \(processes), but mpirun started \(jobSize) processes", location: "train.processes",
                            hint: "give mpirun -np \(processes), or drop --processes (mpirun's -np decides)")
    }
}
