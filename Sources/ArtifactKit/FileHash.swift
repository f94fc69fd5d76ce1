import Crypto
import Foundation

/// SHA-256 of files and bytes, as lowercase hex.
public enum FileHash {
    /// Streams the file through SHA-256 in 1 MiB chunks.
    public static func sha256(of url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw PipelineError("cannot open file for hashing", location: url.path)
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return hex(hasher.finalize())
    }

    public static func sha256(of data: Data) -> String {
        hex(SHA256.hash(data: data))
    }

    /// SHA-256 of raw memory (for example a parameter buffer), without copying it into a `Data`.
    public static func sha256(of bytes: UnsafeRawBufferPointer) -> String {
        hex(SHA256.hash(data: bytes))
    }

    public static func sha256(of string: String) -> String {
        sha256(of: Data(string.utf8))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}

/// SHA-256 over bytes fed in pieces (e.g. a model's tensors one at a time), as lowercase hex.
public struct StreamingSHA256 {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    public func hexDigest() -> String { FileHash.hex(hasher.finalize()) }
}
