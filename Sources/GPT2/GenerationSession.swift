import ArtifactKit
import Foundation

/// Generation for a server: prompts join and leave between decoding steps (continuous batching),
/// and every step runs all current prompts through the model in one `decode` call.
///
/// Each of the `slots` rows of the key/value cache holds one prompt at positions 0..<context.
/// A new prompt's tokens are all query tokens of its first step (its prefill), in the same call as
/// the one new token of every other row, so a prompt that arrives mid-generation waits at most one
/// step. Sampling uses the row stream `rowRandom(seed, 0)`: a prompt's tokens are those of
/// `generate(prompts: [prompt], options:)` alone, whatever else shares its steps.
///
/// A row never outgrows its slot: a prompt must leave room for one new token, and generation
/// stops (`.length`) when the slot is full or `maxNewTokens` are produced. The slot holds the
/// prompt and every new token but the last (which is never fed back), so a prompt of n tokens
/// gets at most context - n + 1 new tokens. Not thread-safe: one thread drives a session.
public final class GenerationSession {
    public enum FinishReason: String, Sendable {
        /// The model drew the end-of-text id (`options.eosId`); that id is not reported as a token.
        case endOfText = "stop"
        /// `maxNewTokens` reached, or the slot's context is full.
        case length
    }

    /// What one step did for one row: its new token (nil when it stopped at end-of-text) and,
    /// on its last step, why it finished (its slot is free again).
    public struct Event: Equatable, Sendable {
        public var slot: Int
        public var token: Int32?
        public var finished: FinishReason?
    }

    private struct Row {
        var options: GenerationOptions
        var rng: SeededGenerator
        /// Tokens not yet in the cache: the prompt before the first step, then the last new token.
        var pending: [Int32]
        var cached = 0
        var produced = 0
    }

    public let model: GPT2Model
    /// Positions of each slot (at most the model's context length).
    public let context: Int
    private let cache: KVCache
    private var rows: [Row?]

    public init(model: GPT2Model, slots: Int, context: Int) throws {
        guard model.layout.head == .languageModel else { throw PipelineError("generation needs the language-model head") }
        guard slots >= 1, context >= 2, context <= model.config.contextLength else {
            throw PipelineError("a generation session needs at least 1 slot and 2...\(model.config.contextLength) positions, got \(slots) and \(context)")
        }
        self.model = model
        self.context = context
        cache = KVCache(layers: model.config.nLayers, rows: slots, context: context, width: model.config.embDim)
        rows = Array(repeating: nil, count: slots)
    }

    public var slots: Int { rows.count }
    public var activeCount: Int { rows.lazy.filter { $0 != nil }.count }
    public var hasFreeSlot: Bool { rows.contains { $0 == nil } }

    /// Puts a prompt into a free slot and returns the slot. Throws when no slot is free, or the
    /// prompt is empty, has ids outside the vocabulary or leaves no room for a new token.
    public func add(prompt: [Int32], options: GenerationOptions) throws -> Int {
        try model.validatePrompts([prompt], options)
        guard options.maxNewTokens >= 1 else { throw PipelineError("max_new_tokens must be at least 1 in a session") }
        guard prompt.count < context else {
            throw PipelineError("the prompt has \(prompt.count) tokens; at most \(context - 1) leave room for a new token")
        }
        guard let slot = rows.firstIndex(where: { $0 == nil }) else { throw PipelineError("no free generation slot") }
        rows[slot] = Row(options: options, rng: model.rowRandom(options.seed, 0), pending: prompt)
        return slot
    }

    /// Frees a slot (a client went away); its row takes no further part in the steps.
    public func remove(_ slot: Int) {
        rows[slot] = nil
    }

    /// One decoding step over every occupied slot. Returns one event per slot that took part.
    public func step() -> [Event] {
        var segments: [DecodeSegment] = []
        for (slot, row) in rows.enumerated() {
            guard let row else { continue }
            segments.append(DecodeSegment(row: slot, start: row.cached, tokens: row.pending))
        }
        guard !segments.isEmpty else { return [] }
        let logits = model.decode(segments, cache: cache)
        let V = model.config.vocabSize
        var events: [Event] = []
        for (s, seg) in segments.enumerated() {
            var row = rows[seg.row]!
            row.cached = seg.start + seg.tokens.count
            let next = Array(UnsafeBufferPointer(start: logits.base + s * V, count: V))
            let id = model.chooseToken(next, row.options, &row.rng)
            if let eos = row.options.eosId, id == eos {
                events.append(Event(slot: seg.row, token: nil, finished: .endOfText))
                rows[seg.row] = nil
                continue
            }
            row.produced += 1
            row.pending = [id]
            let full = row.produced >= row.options.maxNewTokens || row.cached >= context
            events.append(Event(slot: seg.row, token: id, finished: full ? .length : nil))
            rows[seg.row] = full ? nil : row
        }
        return events
    }
}
