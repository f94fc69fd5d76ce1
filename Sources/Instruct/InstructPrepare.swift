import ArtifactKit
import Foundation

/// Where the splits come from: one file cut by fractions in file order (the book's way), or one
/// file per split.
public enum InstructionSource: Equatable, Sendable {
    /// train = the first int(trainFrac * n) entries, test = the next int(testFrac * n), validation = the rest.
    case fractions(input: URL, trainFrac: Double, testFrac: Double)
    /// The splits as given; without a test file the test split is empty.
    case files(train: URL, validation: URL, test: URL?)
}

/// Settings of `prepare instruct`.
public struct InstructionPrepareOptions: Sendable {
    public var source: InstructionSource
    /// Folder with the GPT-2 `encoder.json` and `vocab.bpe` (recorded as inputs in the manifest).
    public var vocabDirectory: URL
    /// Output folder; replaced as a whole when the new artifact is complete.
    public var output: URL
    /// The template (`--template`, formerly `--style`).
    public var style: PromptStyle
    /// Format, shape and key names of the input files.
    public var reading: InstructionReadOptions
    /// Rows longer than this are cut by the collate function; prepare counts them.
    public var allowedMaxLength: Int

    public init(source: InstructionSource, vocabDirectory: URL, output: URL, style: PromptStyle = .alpaca,
                reading: InstructionReadOptions = InstructionReadOptions(), allowedMaxLength: Int = 1024) {
        self.source = source
        self.vocabDirectory = vocabDirectory
        self.output = output
        self.style = style
        self.reading = reading
        self.allowedMaxLength = allowedMaxLength
    }

    /// One file split by fractions, as the book does.
    public init(input: URL, vocabDirectory: URL, output: URL, style: PromptStyle = .alpaca,
                trainFrac: Double = 0.85, testFrac: Double = 0.1, allowedMaxLength: Int = 1024) {
        self.init(source: .fractions(input: input, trainFrac: trainFrac, testFrac: testFrac), vocabDirectory: vocabDirectory,
                  output: output, style: style, allowedMaxLength: allowedMaxLength)
    }
}

/// The three splits in the order they are written.
public enum InstructionSplitName: String, CaseIterable, Sendable {
    case train, validation, test

    public var shardFile: String { "\(rawValue).bin" }
    public var entriesFile: String { "\(rawValue).json" }
}

/// The records of one split and where they came from.
struct SplitRecords {
    var name: InstructionSplitName
    var records: [InstructionRecord]
    /// "entry 3" / "line 7" per record, for messages.
    var places: [String]
    /// Index of the first record in its file (the book's entry numbers for a fractions split).
    var firstEntry: Int
}

/// What was read: the splits and the files they came from.
struct ReadSplits {
    var splits: [SplitRecords]
    var shape: InstructionShape
    /// One line per input file for the manifest (path, split, format, entries, skipped blank lines).
    var files: [JSONValue]
    var inputURLs: [URL]
}

/// Runs `prepare instruct`: reads and splits the records, renders them with the template,
/// tokenizes them, and writes `{train,validation,test}.bin` (see `InstructionShard`),
/// `{train,validation,test}.json` (the records of each split) and `manifest.json` into
/// `options.output`.
///
/// All input errors are found before anything is written; the files are written into a temporary
/// folder beside the output, which then replaces the output folder, so a failure never leaves a
/// half-written artifact. Returns the manifest.
@discardableResult
public func prepareInstructionDataset(_ options: InstructionPrepareOptions,
                                      encode: (String) throws -> [Int]) throws -> Manifest {
    guard options.allowedMaxLength > 0 else {
        throw PipelineError("allowed max length must be positive, got \(options.allowedMaxLength)", location: "--allowed-max-length")
    }
    let read = try readSplits(options)
    var inputs = try read.inputURLs.map { try FileRecord.of($0, as: $0.relativePath) }
    for file in ["encoder.json", "vocab.bpe"].map({ options.vocabDirectory.appendingPathComponent($0) }) {
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw PipelineError("GPT-2 vocabulary file missing", location: file.path,
                                hint: "run the fetch stage first (`pipeline run -f pipelines/instruct.yaml fetch`)")
        }
        inputs.append(try FileRecord.of(file, as: file.relativePath))
    }
    let shards = try read.splits.map { split -> (SplitRecords, InstructionShard, TokenizedInstructions) in
        let tokenized = try tokenizeInstructions(split.records, style: options.style, places: split.places,
                                                 source: sourceName(options.source, split.name), encode: encode)
        return (split, try InstructionShard(rows: tokenized.rows, responseSpans: tokenized.responseSpans), tokenized)
    }
    let stats = instructionStats(read, shards: shards, allowedMaxLength: options.allowedMaxLength)
    try replaceDirectory(options.output) { dir in
        var outputs: [FileRecord] = []
        for (split, shard, _) in shards {
            try shard.write(to: dir.appendingPathComponent(split.name.shardFile))
            try AtomicFile.write(InstructionRecords.encoded(split.records), to: dir.appendingPathComponent(split.name.entriesFile))
            outputs += try FileRecord.outputs([split.name.shardFile, split.name.entriesFile], in: dir)
        }
        let manifest = Manifest(format: InstructionDataset.format, formatVersion: InstructionDataset.formatVersion,
                                tool: "prepare instruct", params: instructionParams(options), inputs: inputs, outputs: outputs, stats: stats)
        try manifest.write(into: dir)
    }
    return try Manifest.read(from: options.output.appendingPathComponent(Manifest.fileName))
}

/// The file a split's records came from, for messages.
func sourceName(_ source: InstructionSource, _ split: InstructionSplitName) -> String {
    switch source {
    case .fractions(let input, _, _): return input.path
    case .files(let train, let validation, let test):
        switch split {
        case .train: return train.path
        case .validation: return validation.path
        case .test: return test?.path ?? "(no test file)"
        }
    }
}

/// Reads the input file(s) and cuts or assigns the splits. Errors: any input problem
/// (`InstructionRecords.parse`), an empty file, an empty train or validation split, files of
/// different shapes.
func readSplits(_ options: InstructionPrepareOptions) throws -> ReadSplits {
    let emptyHint = "give a file with at least one entry, then rerun `prepare instruct`"
    func load(_ url: URL, _ split: String) throws -> InstructionFile {
        let file = try InstructionRecords.read(from: url, options: options.reading)
        guard !file.records.isEmpty else { throw PipelineError("the \(split) file holds no entries", location: url.path, hint: emptyHint) }
        return file
    }
    func describe(_ url: URL, _ split: String, _ file: InstructionFile) -> JSONValue {
        ["path": .string(url.relativePath), "split": .string(split), "format": .string(file.format.rawValue),
         "entries": .int(file.records.count), "skipped_blank_lines": .int(file.skippedBlankLines)]
    }
    switch options.source {
    case .fractions(let input, let trainFrac, let testFrac):
        let file = try load(input, "input")
        let split = try InstructionSplit(count: file.records.count, trainFrac: trainFrac, testFrac: testFrac)
        let splits = [(InstructionSplitName.train, split.train), (.validation, split.validation), (.test, split.test)].map { name, range in
            SplitRecords(name: name, records: Array(file.records[range]), places: Array(file.places[range]), firstEntry: range.lowerBound)
        }
        return ReadSplits(splits: splits, shape: file.shape!, files: [describe(input, "all", file)], inputURLs: [input])
    case .files(let train, let validation, let test):
        let given = [(InstructionSplitName.train, train), (.validation, validation)] + (test.map { [(.test, $0)] } ?? [])
        let files = try given.map { name, url in (name, url, try load(url, name.rawValue)) }
        for (name, url, file) in files.dropFirst() where file.shape != files[0].2.shape {
            throw PipelineError("the \(name.rawValue) file is \(file.shape!.summary) but the train file is \(files[0].2.shape!.summary)",
                                location: url.path, hint: "give every split in one shape (or pass --shape to read them all as one), then rerun `prepare instruct`")
        }
        let splits = InstructionSplitName.allCases.map { name in
            let file = files.first { $0.0 == name }?.2
            return SplitRecords(name: name, records: file?.records ?? [], places: file?.places ?? [], firstEntry: 0)
        }
        return ReadSplits(splits: splits, shape: files[0].2.shape!, files: files.map { describe($1, $0.rawValue, $2) }, inputURLs: files.map(\.1))
    }
}

/// The manifest's params: what was asked for.
func instructionParams(_ options: InstructionPrepareOptions) -> [String: JSONValue] {
    var params: [String: JSONValue] = [
        "template": .string(options.style.rawValue),
        "shape": .string(options.reading.shape?.rawValue ?? "detect"),
        "format": .string(options.reading.format?.rawValue ?? "by extension"),
        "fields": options.reading.fields.json,
        "allowed_max_length": .int(options.allowedMaxLength),
    ]
    switch options.source {
    case .fractions(_, let trainFrac, let testFrac):
        params.merge(["split": "fractions", "train_frac": .double(trainFrac), "test_frac": .double(testFrac), "validation": "the rest"]) { $1 }
    case .files(let train, let validation, let test):
        params.merge(["split": "files", "train_file": .string(train.relativePath), "validation_file": .string(validation.relativePath),
                      "test_file": test.map { .string($0.relativePath) } ?? .null]) { $1 }
    }
    return params
}

/// Statistics worth seeing without opening the shards.
func instructionStats(_ read: ReadSplits, shards: [(SplitRecords, InstructionShard, TokenizedInstructions)],
                      allowedMaxLength: Int) -> [String: JSONValue] {
    var splitStats: [String: JSONValue] = [:]
    var longest: (tokens: Int, split: String, row: Int, entry: Int) = (-1, "", 0, 0)
    var truncatedTotal = 0
    var notPrefixEntries: [Int] = []
    for (split, shard, tokenized) in shards {
        let lengths = (0..<shard.rowCount).map { shard.length(row: $0) }
        let truncated = lengths.filter { $0 > allowedMaxLength }.count
        truncatedTotal += truncated
        notPrefixEntries += tokenized.promptNotPrefix.map { split.firstEntry + $0 }
        if let m = lengths.indices.max(by: { lengths[$0] < lengths[$1] }), lengths[m] > longest.tokens {
            longest = (lengths[m], split.name.rawValue, m, split.firstEntry + m)
        }
        let responseTokens = tokenized.responseSpans.joined().reduce(0) { $0 + $1.count }
        splitStats[split.name.rawValue] = [
            "rows": .int(shard.rowCount), "first_entry": .int(split.firstEntry), "tokens": .int(shard.totalTokens),
            "prompt_tokens": .int(shard.totalTokens - responseTokens), "response_tokens": .int(responseTokens),
            "min_tokens": .int(lengths.min() ?? 0), "max_tokens": .int(lengths.max() ?? 0),
            "mean_tokens": .double(lengths.isEmpty ? 0 : (Double(shard.totalTokens) / Double(lengths.count) * 100).rounded() / 100),
            "truncated_rows": .int(truncated), "shard_version": .int(Int(shard.formatVersion)),
        ]
    }
    let records = read.splits.flatMap(\.records)
    var stats: [String: JSONValue] = [
        "entries": .int(records.count),
        "shape": .string(read.shape.rawValue),
        "files": .array(read.files),
        "split": .object(Dictionary(uniqueKeysWithValues: read.splits.map { ($0.name.rawValue, .int($0.records.count)) })),
        "splits": .object(splitStats),
        "longest": ["tokens": .int(longest.tokens), "split": .string(longest.split), "row": .int(longest.row), "entry": .int(longest.entry)],
        "truncated_rows": .int(truncatedTotal),
        "prompt_not_prefix_rows": .int(notPrefixEntries.count),
        // Entry indices (within their file), at most 20 so that a pathological file cannot bloat the manifest.
        "prompt_not_prefix_entries": .array(notPrefixEntries.sorted().prefix(20).map { .int($0) }),
    ]
    switch read.shape {
    case .alpaca: stats["entries_with_input"] = .int(records.filter { $0.exchanges.first?.input.isEmpty == false }.count)
    case .chat: stats["responses"] = .int(records.reduce(0) { $0 + $1.responseCount })
        stats["multi_turn_entries"] = .int(records.filter { $0.responseCount > 1 }.count)
    case .promptCompletion: break
    }
    return stats
}

/// A prepared instruction data set on disk (the output folder of `prepare instruct`).
public struct InstructionDataset {
    public static let format = "instruction-dataset"
    /// 2: any shape and template (params `template`, `shape`, ...); 1 (still read): Alpaca only, param `style`.
    public static let formatVersion = 2
    public static let readableVersions = 1...2

    public var directory: URL
    public var manifest: Manifest

    /// Opens a prepared folder, checking the manifest's format and version.
    public init(directory: URL) throws {
        let url = directory.appendingPathComponent(Manifest.fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineError("no manifest.json: not a prepared instruction data set", location: directory.path,
                                hint: "run `\(InstructionShard.producer)` to write it")
        }
        let manifest = try Manifest.read(from: url)
        guard manifest.format == Self.format, Self.readableVersions.contains(manifest.formatVersion) else {
            throw PipelineError("manifest says \(manifest.format) version \(manifest.formatVersion), expected \(Self.format) version \(Self.formatVersion)",
                                location: url.path, hint: "run `\(InstructionShard.producer)` to rewrite it")
        }
        self.directory = directory
        self.manifest = manifest
    }

    /// The template the rows were made with (`style` in version-1 manifests).
    public var style: PromptStyle? {
        (manifest.params["template"] ?? manifest.params["style"])?.stringValue.flatMap(PromptStyle.init(rawValue:))
    }
    public var allowedMaxLength: Int? { manifest.params["allowed_max_length"]?.intValue }

    public func shard(_ split: InstructionSplitName) throws -> InstructionShard {
        try InstructionShard.read(from: directory.appendingPathComponent(split.shardFile))
    }

    /// The records of a split, as written (canonical keys, one shape).
    public func entries(_ split: InstructionSplitName) throws -> [InstructionRecord] {
        try InstructionRecords.read(from: directory.appendingPathComponent(split.entriesFile), options: InstructionReadOptions(format: .json),
                                    hint: "rerun `\(InstructionShard.producer)` to rewrite it",
                                    missingHint: "run `\(InstructionShard.producer)` to write it").records
    }
}

/// Fills a fresh temporary folder beside `target` with `body`, then puts it in `target`'s place.
/// If `body` throws, `target` is untouched and the temporary folder is removed.
fileprivate func replaceDirectory(_ target: URL, _ body: (URL) throws -> Void) throws {
    let fm = FileManager.default
    let parent = target.deletingLastPathComponent()
    try fm.createDirectory(at: parent, withIntermediateDirectories: true)
    let tag = "\(ProcessInfo.processInfo.processIdentifier).\(UUID().uuidString.prefix(8))"
    let staging = parent.appendingPathComponent(".\(target.lastPathComponent).\(tag).tmp")
    let retired = parent.appendingPathComponent(".\(target.lastPathComponent).\(tag).old.tmp")
    try fm.createDirectory(at: staging, withIntermediateDirectories: false)
    do {
        try body(staging)
        let hadOld = fm.fileExists(atPath: target.path)
        if hadOld { try AtomicFile.moveIntoPlace(target, retired) }
        do {
            try AtomicFile.moveIntoPlace(staging, target)
        } catch {
            if hadOld { try? AtomicFile.moveIntoPlace(retired, target) }
            throw error
        }
        if hadOld { try? fm.removeItem(at: retired) }
    } catch {
        try? fm.removeItem(at: staging)
        throw error
    }
}

/// A few lines for the terminal after `prepare instruct`, from the manifest's params and stats.
public func instructionSummary(_ manifest: Manifest, out: String) -> String {
    let stats = manifest.stats
    let shape = stats["shape"]?.stringValue.flatMap { $0 == "alpaca" ? nil : $0 }
    var lines = ["prepared \(out) (\(manifest.params["template"] ?? "?") prompts): \(stats["entries"] ?? "?") entries"
                 + (shape.map { " of shape \($0)" } ?? "")]
    if let multi = stats["multi_turn_entries"] { lines.append("  responses: \(stats["responses"] ?? "?") (\(multi) entries with several)") }
    for name in InstructionSplitName.allCases {
        guard let s = stats["splits"]?[name.rawValue] else { continue }
        lines.append("  \(name.rawValue): \(s["rows"] ?? "?") rows, \(s["tokens"] ?? "?") tokens (min \(s["min_tokens"] ?? "?"), mean \(s["mean_tokens"] ?? "?"), max \(s["max_tokens"] ?? "?"))")
    }
    if let longest = stats["longest"] {
        lines.append("  longest: \(longest["tokens"] ?? "?") tokens (\(longest["split"] ?? "?") row \(longest["row"] ?? "?"), entry \(longest["entry"] ?? "?"))")
    }
    var blank = 0
    if case .array(let files)? = stats["files"] { blank = files.compactMap { $0["skipped_blank_lines"]?.intValue }.reduce(0, +) }
    if blank > 0 { lines.append("  blank lines skipped: \(blank)") }
    lines.append("  rows longer than allowed_max_length \(manifest.params["allowed_max_length"] ?? "?") (cut when batched): \(stats["truncated_rows"] ?? "?")")
    lines.append("  rows whose prompt tokens are not a prefix of the full text's: \(stats["prompt_not_prefix_rows"] ?? "?")")
    return lines.joined(separator: "\n")
}
