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

extension Manifest {
    /// Checks that the tokenizer files in `vocabDirectory` are the ones this prepared data was
    /// tokenized with (their sha256 are among the manifest's inputs); `stage` is the command that
    /// prepared it, named in the hint.
    public func checkTokenizer(vocabDirectory: URL, stage: String) throws {
        for name in ["encoder.json", "vocab.bpe"] {
            let url = vocabDirectory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError("the tokenizer file \(name) is missing", location: url.path,
                                    hint: "pass --vocab with the folder holding encoder.json and vocab.bpe")
            }
            guard let recorded = inputs.first(where: { $0.path.hasSuffix(name) }) else { continue }
            let actual = try FileHash.sha256(of: url)
            guard actual == recorded.sha256 else {
                throw PipelineError("\(name) differs from the one the data was tokenized with (sha256 \(actual.prefix(12))..., \(recorded.path): \(recorded.sha256.prefix(12))...)",
                                    location: url.path, hint: "use the vocabulary files given to `\(stage)`, or rerun `\(stage)` with these")
            }
        }
    }
}
