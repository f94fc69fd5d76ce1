import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer

/// The output of `prepare classification` (data/prepared): the three shards, checked against
/// their manifest and, when given, against the tokenizer files and the model they will meet.
public struct ClassificationDataset {
    public let directory: URL
    public let manifest: Manifest
    public let train: LabeledRows
    public let validation: LabeledRows
    public let test: LabeledRows
    /// sha256 of each shard file, by split name.
    public let shardHashes: [String: String]

    public static let rerunHint = "rerun `pipeline run prepare` (or `prepare classification ...`)"

    public var sequenceLength: Int { train.sequenceLength }
    public var padTokenID: Int { train.padTokenID }
    public var numClasses: Int { train.numClasses }

    /// Class names by id, from the manifest (`label_names`, else the `labels` map of older
    /// manifests, else the ids themselves).
    public var labelNames: [String] { Self.labelNames(in: manifest, numClasses: numClasses) }

    public static func labelNames(in manifest: Manifest, numClasses: Int) -> [String] {
        if case .array(let a)? = manifest.params["label_names"], a.count == numClasses { return a.compactMap(\.stringValue) }
        if case .object(let map)? = manifest.params["labels"], map.count == numClasses {
            return map.sorted { ($0.value.intValue ?? 0) < ($1.value.intValue ?? 0) }.map(\.key)
        }
        return (0..<numClasses).map(String.init)
    }

    public subscript(split: String) -> LabeledRows {
        switch split { case "train": return train; case "validation": return validation; default: return test }
    }

    /// Reads the manifest and the shards. `splits` limits which shards are read (classify needs none).
    public static func load(from dir: URL, splits: [String] = ClassificationPreparer.splitNames) throws -> ClassificationDataset {
        let manifestURL = dir.appendingPathComponent(Manifest.fileName)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw PipelineError("no manifest.json: not a prepared classification directory", location: dir.path, hint: rerunHint)
        }
        let manifest = try Manifest.read(from: manifestURL)
        guard manifest.format == ClassificationPreparer.manifestFormat else {
            throw PipelineError("holds \"\(manifest.format)\", not \"\(ClassificationPreparer.manifestFormat)\"", location: manifestURL.path,
                                hint: "pass the output directory of `prepare classification`")
        }
        guard manifest.formatVersion == ClassificationPreparer.manifestVersion else {
            throw PipelineError("format version \(manifest.formatVersion), but this tool reads version \(ClassificationPreparer.manifestVersion)",
                                location: manifestURL.path, hint: rerunHint + " with this version of the tools")
        }
        var rows: [String: LabeledRows] = [:]
        var hashes: [String: String] = [:]
        for name in splits {
            let url = dir.appendingPathComponent("\(name).bin")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError("shard is missing", location: url.path, hint: rerunHint)
            }
            rows[name] = try ClassificationShard.read(from: url)
            if let recorded = manifest.outputs.first(where: { $0.path == "\(name).bin" }) {
                let actual = try FileHash.sha256(of: url)
                guard recorded.sha256 == actual else {
                    throw PipelineError("the shard does not match the sha256 in manifest.json (changed after `prepare`?)",
                                        location: url.path, hint: rerunHint)
                }
                hashes[name] = actual
            } else {
                hashes[name] = try FileHash.sha256(of: url)
            }
        }
        let empty = LabeledRows(tokens: [], labels: [], lengths: [], sequenceLength: manifest.stats["max_length"]?.intValue ?? 0,
                                padTokenID: manifest.params["pad_token_id"]?.intValue ?? 50256, numClasses: 2)
        let t = rows["train"] ?? empty
        for (name, r) in rows where r.sequenceLength != t.sequenceLength || r.numClasses != t.numClasses || r.padTokenID != t.padTokenID {
            throw PipelineError("the \(name) shard has sequence length \(r.sequenceLength), \(r.numClasses) classes, pad \(r.padTokenID); the train shard \(t.sequenceLength), \(t.numClasses), \(t.padTokenID)",
                                location: dir.appendingPathComponent("\(name).bin").path, hint: rerunHint)
        }
        return ClassificationDataset(directory: dir, manifest: manifest, train: t, validation: rows["validation"] ?? empty,
                            test: rows["test"] ?? empty, shardHashes: hashes)
    }

    /// The maximum length rows are padded or cut to (the book's `train_dataset.max_length`).
    public var maxLength: Int {
        train.rowCount > 0 ? train.sequenceLength : (manifest.stats["max_length"]?.intValue ?? 0)
    }

    /// Checks the tokenizer files the shards were made with are the ones in `vocabDirectory`.
    public func checkTokenizer(vocabDirectory: URL) throws {
        try manifest.checkTokenizer(vocabDirectory: vocabDirectory, stage: "prepare classification")
    }

    /// Checks the shards fit the model: token ids inside its vocabulary, rows inside its context,
    /// labels inside the head, and `numClasses` (when given) equal to the labels' classes.
    public func check(against config: GPT2Config, numClasses requested: Int?) throws {
        if let k = requested, k != numClasses {
            throw PipelineError("--num-classes \(k), but the shards hold labels of \(numClasses) classes",
                                location: directory.path, hint: "leave --num-classes out to take it from the shards")
        }
        guard maxLength <= config.contextLength else {
            throw PipelineError("the shards' rows have \(maxLength) tokens, more than \(config.name)'s context of \(config.contextLength)",
                                location: directory.path, hint: "rerun `prepare` with --max-length context or a smaller integer")
        }
        guard padTokenID < config.vocabSize else {
            throw PipelineError("pad token id \(padTokenID) is outside \(config.name)'s vocabulary of \(config.vocabSize)",
                                location: directory.path, hint: "rerun `prepare` with --pad-token-id 50256 (GPT-2's <|endoftext|>)")
        }
        for (name, rows) in [("train", train), ("validation", validation), ("test", test)] where rows.rowCount > 0 {
            try rows.validate(vocabSize: config.vocabSize, numClasses: numClasses,
                              source: directory.appendingPathComponent("\(name).bin").path)
        }
    }
}
