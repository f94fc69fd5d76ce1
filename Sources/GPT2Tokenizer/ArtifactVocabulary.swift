import ArtifactKit
import Foundation

extension GPT2BPETokenizer {
    /// Finds the GPT-2 vocabulary a shard was made with, so rows can be shown as text: the
    /// `encoder.json` input named in the manifest beside the shard, looked up relative to the
    /// current directory and to each directory above the shard (the stage's working directory).
    public static func forArtifact(at url: URL) -> GPT2BPETokenizer? {
        let manifestURL = url.deletingLastPathComponent().appendingPathComponent(Manifest.fileName)
        guard let manifest = try? Manifest.read(from: manifestURL),
              let encoder = manifest.inputs.first(where: { $0.path.hasSuffix("encoder.json") }) else { return nil }
        var candidates = [URL(fileURLWithPath: encoder.path)]
        var dir = url.deletingLastPathComponent().standardizedFileURL
        while dir.path != "/" {
            candidates.append(dir.appendingPathComponent(encoder.path))
            dir = dir.deletingLastPathComponent()
        }
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate.path) {
            if let tok = try? GPT2BPETokenizer(directory: candidate.deletingLastPathComponent()) { return tok }
        }
        return nil
    }
}
