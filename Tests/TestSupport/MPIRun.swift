import ArtifactKit
import Foundation
import XCTest

/// Open MPI's mpirun for the data-parallel tests (skipped with a message when it is missing).
public enum MPIRun {
    /// The mpirun executable on PATH.
    public static func executable() throws -> URL {
        guard let url = ExecutableSearch.find("mpirun") else {
            throw XCTSkip("Open MPI's mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev; scripts/install-deps.sh does): the data-parallel tests need it")
        }
        return url
    }

    /// Runs `mpirun -np N <built tool> arguments` on this machine (--oversubscribe: more
    /// processes than cores are allowed; --allow-run-as-root: our test hosts run as root).
    public static func tool(_ name: String, processes: Int, _ arguments: [String]) throws -> ToolRun {
        try runProcess(executable(), ["--allow-run-as-root", "--oversubscribe", "-np", String(processes),
                                      TestPaths.builtExecutable(name).path] + arguments)
    }

    /// `mpirun` with its own argument list (e.g. two app contexts separated by ":").
    public static func raw(_ arguments: [String]) throws -> ToolRun {
        try runProcess(executable(), ["--allow-run-as-root", "--oversubscribe"] + arguments)
    }
}
