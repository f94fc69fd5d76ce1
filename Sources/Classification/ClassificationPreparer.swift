import ArtifactKit
import Foundation

/// How long every token sequence is made: the book pads to the longest training text
/// (`max_length=None`), or a fixed length, or the model's context length.
public enum MaxLengthSetting: Equatable, CustomStringConvertible {
    case longest
    case fixed(Int)
    case context

    /// Parses `longest`, `context` or a positive integer.
    public init(parsing text: String) throws {
        switch text {
        case "longest": self = .longest
        case "context": self = .context
        default:
            guard let n = Int(text), n > 0 else {
                throw PipelineError("--max-length must be `longest`, `context` or a positive integer, not \"\(text)\"", location: "--max-length")
            }
            self = .fixed(n)
        }
    }

    public var description: String {
        switch self {
        case .longest: return "longest"
        case .context: return "context"
        case .fixed(let n): return String(n)
        }
    }
}

/// Everything `prepare classification` needs (the flags of pipeline.yaml's prepare stage).
public struct ClassificationPrepareOptions {
    public var input: URL
    public var vocabDirectory: URL
    public var output: URL
    public var seed: UInt32 = 123
    public var trainFraction = 0.7
    public var validationFraction = 0.1
    public var maxLength = MaxLengthSetting.longest
    public var contextLength = 1024
    public var padTokenID = 50256
    /// Format, columns and class names of the input file (defaults: the SMS TSV).
    public var inputFormat = ClassificationInputOptions()
    public var balance = BalanceMode.undersample
    public var stratify = false
    /// Keep a seeded random subset of this many rows (before balancing).
    public var limit: Int?
    /// Given train, validation and test files (`input` is then the train file); nil: split `input`.
    public var splitFiles: [URL]?

    var splitOptions: BookSplit.Options {
        var o = BookSplit.Options()
        (o.seed, o.trainFraction, o.validationFraction) = (seed, trainFraction, validationFraction)
        (o.balance, o.stratify, o.limit) = (balance, stratify, limit)
        return o
    }

    public init(input: URL, vocabDirectory: URL, output: URL) {
        self.input = input
        self.vocabDirectory = vocabDirectory
        self.output = output
    }
}

/// Turns a labelled-text file (by default the SMS Spam Collection TSV) into the book's balanced,
/// split, tokenized data set:
/// `train|validation|test.csv` (as the book's `to_csv`), `train|validation|test.bin`
/// (`ClassificationShard` files of `LabeledRows`) and `manifest.json`, all in one output directory.
///
/// The directory is built under a hidden temporary name beside `output` and renamed into place
/// only when complete, so a failure never leaves a half-written file under a final name.
public enum ClassificationPreparer {
    public static let manifestFormat = "classification-dataset"
    public static let manifestVersion = 1
    public static let splitNames = ["train", "validation", "test"]
    /// The files this stage writes; an existing output directory holding anything else is not replaced.
    public static let outputFileNames: Set<String> =
        Set(splitNames.flatMap { ["\($0).csv", "\($0).bin"] } + [Manifest.fileName])

    /// Per-split numbers recorded in the manifest.
    public struct SplitStats: Equatable {
        public var rows = 0, longestTokens = 0, truncated = 0
        /// Tokens the texts encode to, before truncation.
        public var tokens = 0
        /// Rows of each class, by id.
        public var perClass: [Int] = []
    }

    /// Runs the whole stage with `encode` as the tokenizer and returns the manifest written.
    /// The book calls tiktoken's `encode`, which raises on special-token text; callers pass the
    /// GPT-2 tokenizer's ordinary encoding, which reads `<|endoftext|>` as plain text instead.
    public static func run(_ options: ClassificationPrepareOptions, encode: @escaping (String) throws -> [Int]) throws -> Manifest {
        try run(options, loadEncoder: { encode })
    }

    /// As `run(_:encode:)`, loading the tokenizer only after the input has been read and split,
    /// so that a bad TSV is reported before a missing vocabulary.
    static func run(_ options: ClassificationPrepareOptions,
                    loadEncoder: () throws -> (String) throws -> [Int]) throws -> Manifest {
        try validateTokenOptions(options)
        let (table, split) = try withRerunHint {
            let table = try options.splitFiles.map { try LabeledTextTable.load(splitFiles: $0, options: options.inputFormat) }
                ?? LabeledTextTable.load(from: options.input, options: options.inputFormat)
            return (table, try BookSplit(rows: table.rows, labelNames: table.labelNames, options: options.splitOptions))
        }
        let parts = [split.train, split.validation, split.test]
        let encode = try loadEncoder()
        let encoded = try parts.map { try encodeTexts($0, encode: encode, source: options.input) }
        let sequenceLength = try paddedLength(options, longestTraining: encoded[0].map(\.count).max() ?? 0)
        let (shards, stats) = padIntoShards(parts, encoded, sequenceLength: sequenceLength, padTokenID: options.padTokenID,
                                            numClasses: table.labelNames.count)
        let inputRecords = try recordInputs(options)

        return try replaceDirectory(options.output) { dir in
            let outputs = try writeSplits(parts, shards, into: dir)
            let manifest = Manifest(
                format: manifestFormat, formatVersion: manifestVersion, tool: "prepare classification",
                params: params(options, table: table), inputs: inputRecords, outputs: outputs,
                stats: statistics(table: table, split: split, stats: stats, sequenceLength: sequenceLength))
            try manifest.write(into: dir)
            return manifest
        }
    }

    /// Runs `body`, ending the hint of an input error with the command to rerun.
    static func withRerunHint<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch var e as PipelineError {
            let hint = e.hint ?? "fix the input"
            e.hint = hint.contains("rerun") ? hint : hint + ", then rerun `prepare classification` (or `pipeline run prepare`)"
            throw e
        }
    }

    private static func validateTokenOptions(_ options: ClassificationPrepareOptions) throws {
        guard (0...Int(UInt16.max)).contains(options.padTokenID) else {
            throw PipelineError("--pad-token-id \(options.padTokenID) does not fit the shards' 16-bit tokens", location: "--pad-token-id")
        }
        guard options.contextLength > 0 else {
            throw PipelineError("--context-length must be positive", location: "--context-length")
        }
    }

    /// Token ids of each row's text; every id must fit the shards' 16 bits.
    private static func encodeTexts(_ part: [LabeledText], encode: (String) throws -> [Int], source: URL) throws -> [[Int]] {
        try part.map { row in
            let ids = try encode(row.text)
            if let bad = ids.first(where: { $0 < 0 || $0 > Int(UInt16.max) }) {
                throw PipelineError("token id \(bad) of the text on line \(row.line) does not fit 16 bits", location: source.path)
            }
            return ids
        }
    }

    /// The length every sequence is padded (or cut) to, given the longest training text's token count.
    private static func paddedLength(_ options: ClassificationPrepareOptions, longestTraining: Int) throws -> Int {
        let sequenceLength: Int
        switch options.maxLength {
        case .longest: sequenceLength = longestTraining
        case .fixed(let n): sequenceLength = n
        case .context: sequenceLength = options.contextLength
        }
        // The book asserts this before training: a longer sequence cannot enter the model.
        guard sequenceLength <= options.contextLength else {
            let what = options.maxLength == .longest ? "the longest training text has \(sequenceLength) tokens"
                                                      : "--max-length \(sequenceLength) is"
            throw PipelineError("\(what), more than the context length \(options.contextLength)",
                                location: "--max-length", hint: "pass --max-length context (truncate to the context length) or a smaller integer")
        }
        guard sequenceLength > 0 else {
            throw PipelineError("the training split is empty or all its texts encode to no tokens; nothing to pad to",
                                location: "--train-frac", hint: "use a larger --train-frac or pass --max-length as an integer")
        }
        return sequenceLength
    }

    /// Each split's sequences cut to `sequenceLength` and padded to it, as rows, with their statistics.
    private static func padIntoShards(_ parts: [[LabeledText]], _ encoded: [[[Int]]], sequenceLength: Int,
                                      padTokenID: Int, numClasses: Int) -> (shards: [LabeledRows], stats: [SplitStats]) {
        var shards: [LabeledRows] = []
        var stats: [SplitStats] = []
        for (part, ids) in zip(parts, encoded) {
            var tokens: [Int32] = []
            tokens.reserveCapacity(part.count * sequenceLength)
            var s = SplitStats()
            var lengths: [Int] = []
            for seq in ids {
                let kept = seq.prefix(sequenceLength)
                tokens.append(contentsOf: kept.map { Int32($0) })
                tokens.append(contentsOf: repeatElement(Int32(padTokenID), count: sequenceLength - kept.count))
                lengths.append(kept.count)
                s.longestTokens = max(s.longestTokens, seq.count)
                s.tokens += seq.count
                if seq.count > sequenceLength { s.truncated += 1 }
            }
            s.rows = part.count
            s.perClass = (0..<numClasses).map { c in part.filter { $0.label == c }.count }
            stats.append(s)
            shards.append(LabeledRows(tokens: tokens, labels: part.map(\.label), lengths: lengths, sequenceLength: sequenceLength,
                                      padTokenID: padTokenID, numClasses: numClasses))
        }
        return (shards, stats)
    }

    /// The input file and the vocabulary files, for the manifest.
    private static func recordInputs(_ options: ClassificationPrepareOptions) throws -> [FileRecord] {
        let inputs = (options.splitFiles ?? [options.input]) + [options.vocabDirectory.appendingPathComponent("encoder.json"),
                      options.vocabDirectory.appendingPathComponent("vocab.bpe")]
        return try inputs.map { url in
            // Recorded as given on the command line (relative stays relative), so manifests compare across checkouts.
            do { return try FileRecord.of(url, as: url.relativePath) } catch {
                throw PipelineError("cannot read input file: \(error.localizedDescription)", location: url.path,
                                    hint: "run `pipeline run fetch` first, or pass the right --input / --vocab")
            }
        }
    }

    /// Writes each split's CSV and shard into `dir`; returns their records.
    private static func writeSplits(_ parts: [[LabeledText]], _ shards: [LabeledRows], into dir: URL) throws -> [FileRecord] {
        var outputs: [FileRecord] = []
        for (name, (part, shard)) in zip(splitNames, zip(parts, shards)) {
            let csv = dir.appendingPathComponent("\(name).csv")
            try AtomicFile.write(PandasCSV.labelTextCSV(part), to: csv)
            let bin = dir.appendingPathComponent("\(name).bin")
            try ClassificationShard.write(shard, to: bin)
            outputs.append(try FileRecord.of(csv, as: csv.lastPathComponent))
            outputs.append(try FileRecord.of(bin, as: bin.lastPathComponent))
        }
        return outputs
    }

    static func params(_ o: ClassificationPrepareOptions, table: LabeledTable) -> [String: JSONValue] {
        let (labelColumn, textColumn) = o.inputFormat.columns(for: table.format)
        var p: [String: JSONValue] = [
            "seed": .int(Int(o.seed)),
            "train_frac": .double(o.trainFraction),
            "validation_frac": .double(o.validationFraction),
            "max_length": .string(o.maxLength.description),
            "context_length": .int(o.contextLength),
            "pad_token_id": .int(o.padTokenID),
            "labels": .object(Dictionary(uniqueKeysWithValues: table.labelNames.enumerated().map { ($1, .int($0)) })),
            "label_names": .array(table.labelNames.map { .string($0) }),
            "label_order": .string(o.inputFormat.labelOrder),
            "format": .string(table.format.rawValue),
            "label_column": .string(labelColumn.description),
            "text_column": .string(textColumn.description),
            "balance": .string(o.balance.rawValue),
            "stratify": .bool(o.stratify),
            "tokenizer": "gpt2 byte-level BPE, ordinary encoding (special-token text is not special)",
            "reader": .string(table.format == .jsonl ? "JSON Lines, one object per line"
                : "pandas read_csv(sep=\(table.format == .csv ? "\",\"" : "\"\\t\""), header=\(labelColumn.isName || textColumn.isName ? "0" : "None")) semantics"),
            "sampling": "numpy RandomState(seed): DataFrame.sample(n=smallest class) of each larger class (balance undersample), concat in label order, sample(frac=1)",
        ]
        if let limit = o.limit { p["limit"] = .int(limit) }
        if let split = o.inputFormat.splitColumn { p["split_column"] = .string(split.description) }
        if let files = o.splitFiles { p["split_files"] = .array(files.map { .string($0.relativePath) }) }
        return p
    }

    static func statistics(table: LabeledTable, split: BookSplit, stats: [SplitStats], sequenceLength: Int) -> [String: JSONValue] {
        let names = table.labelNames
        func byName(_ counts: [Int]) -> JSONValue { .object(Dictionary(uniqueKeysWithValues: zip(names, counts.map { .int($0) }))) }
        var perSplit: [String: JSONValue] = [:]
        for (name, s) in zip(splitNames, stats) {
            perSplit[name] = ["rows": .int(s.rows), "classes": byName(s.perClass),
                              "longest_tokens": .int(s.longestTokens), "truncated": .int(s.truncated), "tokens": .int(s.tokens)]
        }
        return [
            "total_rows": .int(table.rows.count),
            "rows_after_limit": .int(split.limitedCount),
            "class_rows": byName(names.indices.map { c in table.rows.filter { $0.label == c }.count }),
            "balanced_rows": byName(split.balancedCounts),
            "train_rows": .int(stats[0].rows),
            "validation_rows": .int(stats[1].rows),
            "test_rows": .int(stats[2].rows),
            "max_length": .int(sequenceLength),
            "truncated": .int(stats.map(\.truncated).reduce(0, +)),
            "tokens": .int(stats.map(\.tokens).reduce(0, +)),
            "splits": .object(perSplit),
        ]
    }

    /// Builds a directory under a temporary name with `body`, then swaps it in for `final`.
    /// An existing `final` is replaced only if it holds nothing but this stage's own files, so a
    /// mistaken `--out` (say, the repository root) is refused instead of deleted.
    static func replaceDirectory<T>(_ final: URL, _ body: (URL) throws -> T) throws -> T {
        let fm = FileManager.default
        let parent = final.deletingLastPathComponent()
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: final.path, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw PipelineError("the output path exists and is not a directory", location: final.path, hint: "choose another --out")
            }
            let foreign = try fm.contentsOfDirectory(atPath: final.path)
                .filter { !outputFileNames.contains($0) && !($0.hasPrefix(".") && $0.hasSuffix(".tmp")) }
            guard foreign.isEmpty else {
                throw PipelineError("refusing to replace the output directory: it holds files this stage does not write (\(foreign.sorted().prefix(5).joined(separator: ", ")))",
                                    location: final.path, hint: "choose an empty or new --out directory")
            }
        }
        let tag = "\(ProcessInfo.processInfo.processIdentifier).\(UUID().uuidString.prefix(8))"
        let building = parent.appendingPathComponent(".\(final.lastPathComponent).\(tag).tmp")
        let retired = parent.appendingPathComponent(".\(final.lastPathComponent).old.\(tag).tmp")
        do {
            try fm.createDirectory(at: parent, withIntermediateDirectories: true)
            try fm.createDirectory(at: building, withIntermediateDirectories: false)
        } catch {
            throw PipelineError("cannot create the output directory: \(error.localizedDescription)", location: parent.path,
                                hint: "choose a writable --out")
        }
        let result: T
        do { result = try body(building) } catch {
            try? fm.removeItem(at: building)
            throw error
        }
        let hadOld = fm.fileExists(atPath: final.path)
        if hadOld { try AtomicFile.moveIntoPlace(final, retired) }
        do { try AtomicFile.moveIntoPlace(building, final) } catch {
            if hadOld { try? AtomicFile.moveIntoPlace(retired, final) }
            try? fm.removeItem(at: building)
            throw error
        }
        if hadOld { try? fm.removeItem(at: retired) }
        return result
    }
}

extension ClassificationPreparer {
    /// The console report of a run: rows per class read, kept, and in each split.
    public static func summary(_ manifest: Manifest, input: String, out: String) -> String {
        let s = manifest.stats, p = manifest.params
        let names = p["label_names"].flatMap { v -> [String]? in
            if case .array(let a) = v { return a.compactMap(\.stringValue) } else { return nil }
        } ?? []
        func counts(_ v: JSONValue?) -> String { names.map { "\($0) \(v?[$0] ?? 0)" }.joined(separator: ", ") }
        let splits = splitNames.map { "\($0) \(s["splits"]?[$0]?["rows"] ?? 0) (\(counts(s["splits"]?[$0]?["classes"])))" }
        return """
        read \(s["total_rows"] ?? 0) rows (\(counts(s["class_rows"]))) from \(input); classes by id: \(names.enumerated().map { "\($1)=\($0)" }.joined(separator: ", "))
        \(p["limit"].map { "limit \($0): \(s["rows_after_limit"] ?? 0) rows kept (seeded)\n" } ?? "")balance \(p["balance"] ?? "?"): kept \(counts(s["balanced_rows"])) (seed \(p["seed"] ?? 0))
        split\(p["stratify"] == .bool(true) ? " (stratified)" : ""): \(splits.joined(separator: ", "))
        sequence length \(s["max_length"] ?? 0) tokens (pad id \(p["pad_token_id"] ?? 0)), truncated texts: \(s["truncated"] ?? 0)
        wrote \(out)/{train,validation,test}.{csv,bin} and \(out)/manifest.json
        """
    }
}
