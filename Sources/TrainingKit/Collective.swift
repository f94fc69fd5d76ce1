import ArtifactKit
import Foundation

/// What data-parallel training needs from the processes of one job: each process (a "rank",
/// 0..<size) runs the same program on its share of every batch, and these calls combine what the
/// shares computed. Every rank must make the same calls in the same order (they are collective).
///
/// `SingleProcess` is the job of one process (every call returns its input; nothing is
/// initialised); the `Distributed` module implements it over MPI for `mpirun -np N train ...`.
public protocol Collective: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Where this rank runs (a host name), for messages.
    var host: String { get }
    /// In place: the element-wise sum over every rank's `buffer`, the same on every rank.
    func sum(_ buffer: UnsafeMutableBufferPointer<Float>, what: String) throws
    /// The element-wise sums of every rank's `values` (same count on every rank).
    func sum(_ values: [Double], what: String) throws -> [Double]
    /// Whether `flag` is true on any rank.
    func any(_ flag: Bool, what: String) throws -> Bool
    /// In place: `root`'s bytes on every rank (every rank passes a buffer of the same size).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int, what: String) throws
    /// Every rank's `bytes` (the same count on every rank), in rank order.
    func gather(_ bytes: [UInt8], what: String) throws -> [[UInt8]]
}

extension Collective {
    /// More than one process takes part.
    public var isDistributed: Bool { size > 1 }
    /// Rank 0 alone writes the log, the state, the checkpoints and the manifest.
    public var writesOutputs: Bool { rank == 0 }

    /// In place: the sum over every rank's `array`.
    public func sum(_ array: inout [Float], what: String) throws {
        try array.withUnsafeMutableBufferPointer { try sum($0, what: what) }
    }

    /// In place: `root`'s floats on every rank.
    public func broadcast(_ array: inout [Float], from root: Int = 0, what: String) throws {
        try array.withUnsafeMutableBytes { try broadcast($0, from: root, what: what) }
    }

    /// `root`'s bytes of any length (nil there: nil everywhere) on every rank.
    public func broadcast(_ bytes: [UInt8]?, from root: Int = 0, what: String) throws -> [UInt8]? {
        var count = Int64(rank == root ? bytes.map { $0.count } ?? -1 : 0)
        try withUnsafeMutableBytes(of: &count) { try broadcast($0, from: root, what: what) }
        guard count >= 0 else { return nil }
        var out = rank == root ? bytes! : [UInt8](repeating: 0, count: Int(count))
        try out.withUnsafeMutableBytes { try broadcast($0, from: root, what: what) }
        return out
    }
}

/// The job of one process: no other rank, nothing to combine.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var host: String { ProcessInfo.processInfo.hostName }
    public func sum(_ buffer: UnsafeMutableBufferPointer<Float>, what: String) throws {}
    public func sum(_ values: [Double], what: String) throws -> [Double] { values }
    public func any(_ flag: Bool, what: String) throws -> Bool { flag }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int, what: String) throws {}
    public func gather(_ bytes: [UInt8], what: String) throws -> [[UInt8]] { [bytes] }
}
