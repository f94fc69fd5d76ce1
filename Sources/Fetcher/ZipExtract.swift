import ArtifactKit
import CZip
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as stored in zip headers.
/// Computed here rather than trusted to libzip, so that every extracted member is checked by us.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (0xEDB8_8320 ^ (c >> 1)) : (c >> 1) }
        return c
    }

    /// Continues `crc` (0 for a fresh start) over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }

    public static func checksum(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { update(0, $0) }
    }

    /// CRC-32 and size of a file, streamed.
    static func ofFile(_ url: URL) throws -> (crc: UInt32, size: Int64) {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw PipelineError("cannot open file", location: url.path)
        }
        defer { try? handle.close() }
        var crc: UInt32 = 0
        var size: Int64 = 0
        while true {
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { break }
            crc = chunk.withUnsafeBytes { update(crc, $0) }
            size += Int64(chunk.count)
        }
        return (crc, size)
    }
}

/// Extracts the declared members of a zip archive with libzip, refusing anything that could
/// write outside the output directory or expand without bound.
struct ZipExtractor {
    let archive: URL
    /// The archive's path relative to the output directory (for messages and provenance).
    let archiveName: String
    let source: String
    let spec: ExtractSpec
    let outDir: URL

    private func error(_ message: String, hint: String? = nil) -> PipelineError {
        PipelineError("source `\(source)`: \(message)", location: archive.path, hint: hint)
    }

    private var corruptHint: String {
        "the archive matches its declared sha256, so the published file itself is broken: check `urls` and `sha256` of this source in the pipeline file"
    }

    func extract() throws -> [FetchResult] {
        let za = try openArchive()
        defer { zip_discard(za) }
        let entries = try entryNames(za)
        let plan = try planMembers(za, entries: entries)
        return try extractAll(za, plan)
    }

    /// One declared member to extract: where it goes and what its header promises.
    private struct PlannedMember {
        let member: String
        let output: String
        let index: zip_uint64_t
        let size: Int64
        let crc: UInt32
    }

    private var uncompressedCap: Int64 { Int64(spec.effectiveMaxUncompressedBytes) }

    private func openArchive() throws -> OpaquePointer {
        var openError: Int32 = 0
        guard let za = zip_open(archive.path, ZIP_RDONLY | ZIP_CHECKCONS, &openError) else {
            var ze = zip_error_t()
            zip_error_init_with_code(&ze, openError)
            let why = String(cString: zip_error_strerror(&ze))
            zip_error_fini(&ze)
            throw error("`\(archiveName)` is not a readable zip archive (corrupt zip): \(why)", hint: corruptHint)
        }
        return za
    }

    /// Names of all entries: a hostile entry anywhere means a hostile archive, even if we
    /// were not going to extract it.
    private func entryNames(_ za: OpaquePointer) throws -> [String] {
        let count = zip_get_num_entries(za, 0)
        var entries: [String] = []
        for i in 0..<max(0, count) {
            guard let cName = zip_get_name(za, zip_uint64_t(i), 0) else { continue }
            let name = String(cString: cName)
            entries.append(name)
            // Directory entries end in "/"; judge the path without that slash.
            let path = name.hasSuffix("/") ? String(name.dropLast()) : name
            if let why = unsafePathReason(path) {
                throw error("`\(archiveName)` holds a member named `\(name)` that \(why) (zip-slip); refusing to extract from it",
                            hint: corruptHint)
            }
        }
        return entries
    }

    /// The declared members with their headers' sizes and CRCs, refusing unsafe names, missing
    /// members and a declared total above the cap before anything is written.
    private func planMembers(_ za: OpaquePointer, entries: [String]) throws -> [PlannedMember] {
        let cap = uncompressedCap
        var plan: [PlannedMember] = []
        var declaredTotal: Int64 = 0
        for (member, output) in spec.sortedMembers {
            if let why = unsafePathReason(member) { throw error("member `\(member)` \(why) (zip-slip)") }
            if let why = unsafePathReason(output) { throw error("output `\(output)` for member `\(member)` \(why) (zip-slip)") }
            let index = zip_name_locate(za, member, 0)
            guard index >= 0 else {
                let shown = entries.prefix(20).map { "`\($0)`" }.joined(separator: ", ")
                throw error("`\(archiveName)` has no member `\(member)` (it holds: \(shown)\(entries.count > 20 ? ", ..." : ""))",
                            hint: "fix `extract.members` of this source in the pipeline file")
            }
            var st = zip_stat_t()
            zip_stat_init(&st)
            guard zip_stat_index(za, zip_uint64_t(index), 0, &st) == 0,
                  st.valid & zip_uint64_t(ZIP_STAT_SIZE) != 0, st.valid & zip_uint64_t(ZIP_STAT_CRC) != 0 else {
                throw error("cannot read the header of member `\(member)` (corrupt zip): \(String(cString: zip_strerror(za)))", hint: corruptHint)
            }
            let size = Int64(clamping: st.size)
            declaredTotal += size
            if declaredTotal > cap {
                throw error("the members to extract declare at least \(declaredTotal) bytes uncompressed, more than max_uncompressed_bytes = \(cap)",
                            hint: "raise `extract.max_uncompressed_bytes` only if you trust this archive")
            }
            plan.append(PlannedMember(member: member, output: output, index: zip_uint64_t(index), size: size, crc: st.crc))
        }
        return plan
    }

    /// Extracts every member to a temporary file first and moves them into place only when all
    /// succeeded, so a failure leaves no output of this archive half-updated. An output that
    /// already matches its member's size and CRC is kept as it is.
    private func extractAll(_ za: OpaquePointer, _ plan: [PlannedMember]) throws -> [FetchResult] {
        let cap = uncompressedCap
        var staged: [(tmp: URL, final: URL, member: String, output: String)] = []
        var results: [FetchResult] = []
        var written: Int64 = 0
        do {
            for item in plan {
                let final = outDir.appendingPathComponent(item.output)
                if let existing = try? CRC32.ofFile(final), existing.size == item.size, existing.crc == item.crc {
                    let record = try FileRecord.of(final, as: item.output)
                    results.append(FetchResult(source: source, file: item.output, sha256: record.sha256, size: record.size,
                                               action: .extractedAlreadyVerified, from: "\(archiveName):\(item.member)"))
                    continue
                }
                try FileManager.default.createDirectory(at: final.deletingLastPathComponent(), withIntermediateDirectories: true)
                let tmp = AtomicFile.temporaryURL(for: final)
                staged.append((tmp, final, item.member, item.output))
                written += try extractMember(za, item.index, item.member, expectedSize: item.size, expectedCRC: item.crc,
                                             to: tmp, budget: cap - written)
            }
            for s in staged {
                try AtomicFile.moveIntoPlace(s.tmp, s.final)
                let record = try FileRecord.of(s.final, as: s.output)
                results.append(FetchResult(source: source, file: s.output, sha256: record.sha256, size: record.size,
                                           action: .extracted, from: "\(archiveName):\(s.member)"))
            }
        } catch {
            for s in staged { try? FileManager.default.removeItem(at: s.tmp) }
            throw error
        }
        return results.sorted { $0.file < $1.file }
    }

    /// Streams one member to `tmp`, checking its size against the header and the cap while
    /// decompressing (a lying header cannot make us write more), and its CRC-32 at the end.
    private func extractMember(_ za: OpaquePointer, _ index: zip_uint64_t, _ member: String,
                               expectedSize: Int64, expectedCRC: UInt32, to tmp: URL, budget: Int64) throws -> Int64 {
        guard let zf = zip_fopen_index(za, index, 0) else {
            throw error("cannot open member `\(member)` (corrupt zip): \(String(cString: zip_strerror(za)))", hint: corruptHint)
        }
        defer { zip_fclose(zf) }
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw PipelineError("cannot create file: \(String(cString: strerror(errno)))", location: tmp.path)
        }
        defer { close(fd) }

        let bufferSize = 1 << 16
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        var crc: UInt32 = 0
        while true {
            let n = zip_fread(zf, buffer, zip_uint64_t(bufferSize))
            if n < 0 {
                let code = zip_error_code_zip(zip_file_get_error(zf))
                let why = String(cString: zip_file_strerror(zf))
                if code == ZIP_ER_CRC {
                    throw error("CRC32 mismatch in member `\(member)` (detected by libzip: \(why)); the archive is corrupt", hint: corruptHint)
                }
                throw error("cannot decompress member `\(member)` (corrupt zip): \(why)", hint: corruptHint)
            }
            if n == 0 { break }
            total += Int64(n)
            if total > expectedSize {
                throw error("member `\(member)` decompresses to more than the \(expectedSize) bytes its header declares; the archive is corrupt or hostile",
                            hint: corruptHint)
            }
            if total > budget {
                throw error("extracting would exceed max_uncompressed_bytes (stopped in member `\(member)`)",
                            hint: "raise `extract.max_uncompressed_bytes` only if you trust this archive")
            }
            let chunk = UnsafeRawBufferPointer(start: buffer, count: Int(n))
            crc = CRC32.update(crc, chunk)
            var done = 0
            while done < chunk.count {
                let w = write(fd, chunk.baseAddress! + done, chunk.count - done)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw PipelineError("cannot write: \(String(cString: strerror(errno)))", location: tmp.path)
                }
                done += w
            }
        }
        if total != expectedSize {
            throw error("member `\(member)` decompressed to \(total) bytes, but its header declares \(expectedSize) (corrupt zip)", hint: corruptHint)
        }
        if crc != expectedCRC {
            throw error(String(format: "CRC32 mismatch in member `\(member)`: computed %08x, the archive says %08x (corrupt zip)", crc, expectedCRC),
                        hint: corruptHint)
        }
        return total
    }
}
