import ArtifactKit
import Foundation

/// Settings of `prepare instruct`.
public struct InstructionPrepareOptions: Sendable {
    /// `instruction-data.json` (a JSON list of {instruction, input, output}).
    public var input: URL
    /// Folder with the GPT-2 `encoder.json` and `vocab.bpe` (recorded as inputs in the manifest).
    public var vocabDirectory: URL
    /// Output folder; replaced as a whole when the new artifact is complete.
    public var output: URL
    public var style: PromptStyle
    public var trainFrac: Double
    public var testFrac: Double
    /// Rows longer than this are cut by the collate function; prepare counts them.
    public var allowedMaxLength: Int

    public init(input: URL, vocabDirectory: URL, output: URL, style: PromptStyle = .alpaca,
                trainFrac: Double = 0.85, testFrac: Double = 0.1, allowedMaxLength: Int = 1024) {
        self.input = input
        self.vocabDirectory = vocabDirectory
        self.output = output
        self.style = style
        self.trainFrac = trainFrac
        self.testFrac = testFrac
        self.allowedMaxLength = allowedMaxLength
    }
}

/// The three splits in the order they are written.
public enum InstructionSplitName: String, CaseIterable, Sendable {
    case train, validation, test

    public var shardFile: String { "\(rawValue).bin" }
    public var entriesFile: String { "\(rawValue).json" }
}

/// Token rows of some entries plus, per row, the number of prompt tokens.
public struct TokenizedInstructions: Equatable, Sendable {
    public var rows: [[Int]]
    /// `encode(prompt).count` per row: where the response starts (the book's instruction length).
    public var promptLengths: [Int]
    /// Rows (0-based within this list) where `encode(prompt)` is not a prefix of `encode(prompt + response)`,
    /// so the response start is approximate. BPE merges never cross the pre-tokenizer's boundaries, and
    /// every response template starts with a newline, so this is expected only for prompts that end in
    /// whitespace; none of the book's 1,100 entries does (checked against tiktoken in both styles).
    public var promptNotPrefix: [Int]
}

/// Encodes prompt + response and the prompt alone for each entry.
///
/// - Parameters:
///   - firstEntryIndex: index of `entries[0]` in the source file, so errors name the file's entry.
///   - encode: GPT-2 BPE that rejects special tokens (the texts are plain text; an `<|endoftext|>`
///     inside an entry would be an error, as with tiktoken's default `encode`).
public func tokenizeInstructions(_ entries: [InstructionEntry], style: PromptStyle, firstEntryIndex: Int = 0,
                                 source: String = "instruction data",
                                 encode: (String) throws -> [Int]) throws -> TokenizedInstructions {
    var result = TokenizedInstructions(rows: [], promptLengths: [], promptNotPrefix: [])
    result.rows.reserveCapacity(entries.count)
    result.promptLengths.reserveCapacity(entries.count)
    for (i, entry) in entries.enumerated() {
        let prompt = formatPrompt(entry, style: style)
        let full = prompt + formatResponse(entry, style: style)
        let fullTokens: [Int], promptTokens: [Int]
        do {
            fullTokens = try encode(full)
            promptTokens = try encode(prompt)
        } catch {
            throw PipelineError("entry \(firstEntryIndex + i) cannot be tokenized: \(error)",
                                location: "\(source): entry \(firstEntryIndex + i)",
                                hint: "the instruction, input and output must be plain text without GPT-2 special tokens such as <|endoftext|>")
        }
        if !fullTokens.starts(with: promptTokens) { result.promptNotPrefix.append(i) }
        result.rows.append(fullTokens)
        result.promptLengths.append(promptTokens.count)
    }
    return result
}

/// Runs `prepare instruct`: validates and splits the entries, tokenizes them, and writes
/// `{train,validation,test}.bin` (see `InstructionShard`), `{train,validation,test}.json` (the
/// entries of each split) and `manifest.json` into `options.output`.
///
/// All input errors are found before anything is written; the files are written into a temporary
/// folder beside the output, which then replaces the output folder, so a failure never leaves a
/// half-written artifact. Returns the manifest.
@discardableResult
public func prepareInstructionDataset(_ options: InstructionPrepareOptions,
                                      encode: (String) throws -> [Int]) throws -> Manifest {
    let entries = try readInstructionEntries(options)
    let split = try InstructionSplit(count: entries.count, trainFrac: options.trainFrac, testFrac: options.testFrac)
    let inputs = try recordInstructionInputs(options)
    let parts = try tokenizeSplits(entries, split, options, encode: encode)
    let stats = instructionStatistics(entries, split, parts, allowedMaxLength: options.allowedMaxLength)
    let params: [String: JSONValue] = [
        "style": .string(options.style.rawValue),
        "train_frac": .double(options.trainFrac),
        "test_frac": .double(options.testFrac),
        "validation": "the rest",
        "allowed_max_length": .int(options.allowedMaxLength),
    ]

    try replaceDirectory(options.output) { dir in
        let outputs = try writeInstructionSplits(parts, into: dir)
        let manifest = Manifest(format: InstructionDataset.format, formatVersion: InstructionDataset.formatVersion,
                                tool: "prepare instruct", params: params, inputs: inputs, outputs: outputs, stats: stats)
        try manifest.write(into: dir)
    }
    return try Manifest.read(from: options.output.appendingPathComponent(Manifest.fileName))
}

/// One split of the prepared data set: its entries, their tokens and the shard made of them.
private struct PreparedSplit {
    var name: InstructionSplitName
    var shard: InstructionShard
    var entries: [InstructionEntry]
    var tokenized: TokenizedInstructions
    /// The entries' indices in the source file.
    var range: Range<Int>
}

/// The entries of the input file, after checking the options that need no input.
private func readInstructionEntries(_ options: InstructionPrepareOptions) throws -> [InstructionEntry] {
    guard options.allowedMaxLength > 0 else {
        throw PipelineError("allowed max length must be positive, got \(options.allowedMaxLength)", location: "--allowed-max-length")
    }
    let entries = try InstructionEntries.read(from: options.input)
    guard !entries.isEmpty else {
        throw PipelineError("the file holds no entries", location: options.input.path,
                            hint: "fetch the instruction data again (`pipeline run -f pipelines/instruct.yaml fetch`)")
    }
    return entries
}

/// The input file and the GPT-2 vocabulary files (which must exist), for the manifest.
private func recordInstructionInputs(_ options: InstructionPrepareOptions) throws -> [FileRecord] {
    let vocabFiles = ["encoder.json", "vocab.bpe"].map { options.vocabDirectory.appendingPathComponent($0) }
    var inputs = [try FileRecord.of(options.input, as: options.input.relativePath)]
    for file in vocabFiles {
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw PipelineError("GPT-2 vocabulary file missing", location: file.path,
                                hint: "run the fetch stage first (`pipeline run -f pipelines/instruct.yaml fetch`)")
        }
        inputs.append(try FileRecord.of(file, as: file.relativePath))
    }
    return inputs
}

/// Tokenizes each split's entries into its shard, in the order train, validation, test.
private func tokenizeSplits(_ entries: [InstructionEntry], _ split: InstructionSplit, _ options: InstructionPrepareOptions,
                            encode: (String) throws -> [Int]) throws -> [PreparedSplit] {
    let ranges: [(InstructionSplitName, Range<Int>)] = [(.train, split.train), (.validation, split.validation), (.test, split.test)]
    return try ranges.map { name, range in
        let part = Array(entries[range])
        let tokenized = try tokenizeInstructions(part, style: options.style, firstEntryIndex: range.lowerBound,
                                                 source: options.input.path, encode: encode)
        let shard = try InstructionShard(rows: tokenized.rows, responseStarts: tokenized.promptLengths)
        return PreparedSplit(name: name, shard: shard, entries: part, tokenized: tokenized, range: range)
    }
}

/// Statistics worth seeing without opening the shards.
private func instructionStatistics(_ entries: [InstructionEntry], _ split: InstructionSplit, _ parts: [PreparedSplit],
                                   allowedMaxLength: Int) -> [String: JSONValue] {
    var splitStats: [String: JSONValue] = [:]
    var longest: (tokens: Int, split: String, row: Int, entry: Int) = (-1, "", 0, 0)
    var truncatedTotal = 0
    var notPrefixTotal = 0
    var notPrefixEntries: [Int] = []
    for part in parts {
        let (shard, tokenized, range) = (part.shard, part.tokenized, part.range)
        let lengths = (0..<shard.rowCount).map { shard.length(row: $0) }
        let truncated = lengths.filter { $0 > allowedMaxLength }.count
        truncatedTotal += truncated
        notPrefixTotal += tokenized.promptNotPrefix.count
        notPrefixEntries += tokenized.promptNotPrefix.map { range.lowerBound + $0 }
        if let m = lengths.indices.max(by: { lengths[$0] < lengths[$1] }), lengths[m] > longest.tokens {
            longest = (lengths[m], part.name.rawValue, m, range.lowerBound + m)
        }
        splitStats[part.name.rawValue] = splitStatistics(part, lengths: lengths, truncated: truncated)
    }
    return [
        "entries": .int(entries.count),
        "entries_with_input": .int(entries.filter { !$0.input.isEmpty }.count),
        "split": ["train": .int(split.train.count), "validation": .int(split.validation.count), "test": .int(split.test.count)],
        "splits": .object(splitStats),
        "longest": ["tokens": .int(longest.tokens), "split": .string(longest.split), "row": .int(longest.row), "entry": .int(longest.entry)],
        "truncated_rows": .int(truncatedTotal),
        "prompt_not_prefix_rows": .int(notPrefixTotal),
        // File-order entry indices, at most 20 so that a pathological file cannot bloat the manifest.
        "prompt_not_prefix_entries": .array(notPrefixEntries.sorted().prefix(20).map { .int($0) }),
    ]
}

/// One split's numbers: `lengths` are its rows' token counts, `truncated` how many exceed the allowed length.
private func splitStatistics(_ part: PreparedSplit, lengths: [Int], truncated: Int) -> JSONValue {
    let shard = part.shard
    let promptTokens = part.tokenized.promptLengths.reduce(0, +)
    return [
        "rows": .int(shard.rowCount),
        "first_entry": .int(part.range.lowerBound),
        "tokens": .int(shard.totalTokens),
        "prompt_tokens": .int(promptTokens),
        "response_tokens": .int(shard.totalTokens - promptTokens),
        "min_tokens": .int(lengths.min() ?? 0),
        "max_tokens": .int(lengths.max() ?? 0),
        "mean_tokens": .double(lengths.isEmpty ? 0 : (Double(shard.totalTokens) / Double(lengths.count) * 100).rounded() / 100),
        "truncated_rows": .int(truncated),
    ]
}

/// Writes each split's shard and entries into `dir`; returns their records.
private func writeInstructionSplits(_ parts: [PreparedSplit], into dir: URL) throws -> [FileRecord] {
    var outputs: [FileRecord] = []
    for part in parts {
        let name = part.name
        let shardURL = dir.appendingPathComponent(name.shardFile)
        try part.shard.write(to: shardURL)
        let jsonURL = dir.appendingPathComponent(name.entriesFile)
        try AtomicFile.write(InstructionEntries.encoded(part.entries), to: jsonURL)
        outputs.append(try FileRecord.of(shardURL, as: name.shardFile))
        outputs.append(try FileRecord.of(jsonURL, as: name.entriesFile))
    }
    return outputs
}

/// A prepared instruction data set on disk (the output folder of `prepare instruct`).
public struct InstructionDataset {
    public static let format = "instruction-dataset"
    public static let formatVersion = 1

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
        guard manifest.format == Self.format, manifest.formatVersion == Self.formatVersion else {
            throw PipelineError("manifest says \(manifest.format) version \(manifest.formatVersion), expected \(Self.format) version \(Self.formatVersion)",
                                location: url.path, hint: "run `\(InstructionShard.producer)` to rewrite it")
        }
        self.directory = directory
        self.manifest = manifest
    }

    /// The prompt style the rows were made with.
    public var style: PromptStyle? { manifest.params["style"]?.stringValue.flatMap(PromptStyle.init(rawValue:)) }
    public var allowedMaxLength: Int? { manifest.params["allowed_max_length"]?.intValue }

    public func shard(_ split: InstructionSplitName) throws -> InstructionShard {
        try InstructionShard.read(from: directory.appendingPathComponent(split.shardFile))
    }

    public func entries(_ split: InstructionSplitName) throws -> [InstructionEntry] {
        try InstructionEntries.read(from: directory.appendingPathComponent(split.entriesFile),
                                    hint: "rerun `\(InstructionShard.producer)` to rewrite it")
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
    var lines = ["prepared \(out) (\(manifest.params["style"] ?? "?") prompts): \(stats["entries"] ?? "?") entries"]
    for name in InstructionSplitName.allCases {
        guard let s = stats["splits"]?[name.rawValue] else { continue }
        lines.append("  \(name.rawValue): \(s["rows"] ?? "?") rows, \(s["tokens"] ?? "?") tokens (min \(s["min_tokens"] ?? "?"), mean \(s["mean_tokens"] ?? "?"), max \(s["max_tokens"] ?? "?"))")
    }
    if let longest = stats["longest"] {
        lines.append("  longest: \(longest["tokens"] ?? "?") tokens (\(longest["split"] ?? "?") row \(longest["row"] ?? "?"), entry \(longest["entry"] ?? "?"))")
    }
    lines.append("  rows longer than allowed_max_length \(manifest.params["allowed_max_length"] ?? "?") (cut when batched): \(stats["truncated_rows"] ?? "?")")
    lines.append("  rows whose prompt tokens are not a prefix of the full text's: \(stats["prompt_not_prefix_rows"] ?? "?")")
    return lines.joined(separator: "\n")
}
