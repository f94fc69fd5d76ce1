import Foundation

/// The memory this process used, for the last line of a long run.
public enum ProcessMemory {
    /// The machine's memory.
    public static var physicalBytes: Int { Int(ProcessInfo.processInfo.physicalMemory) }

    /// The peak resident set size so far (getrusage's ru_maxrss, which Linux gives in KiB).
    public static var peakResidentBytes: Int? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss) * 1024
    }
}
