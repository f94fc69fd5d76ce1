/// Turns generated tokens' bytes into text pieces as they come, for streaming.
///
/// GPT-2's byte-level BPE can split one UTF-8 character over several tokens, so a piece ends
/// before an incomplete character and the character goes out with the next piece. Text that may
/// be the start of a stop string (ChatML's `<|im_end|>`, or a request's `stop`) is held back
/// until it is known not to be one; at a stop string the text ends there (the stop string itself
/// is not part of the text, as in OpenAI's API).
struct TextStream {
    let stops: [String]
    private var bytes: [UInt8] = []
    private var held = ""
    private(set) var stopped = false

    init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// The text that can go out after these bytes ("" while it waits).
    mutating func push(_ newBytes: [UInt8]) -> String {
        guard !stopped else { return "" }
        bytes += newBytes
        let complete = TextStream.completeUTF8Prefix(bytes)
        held += String(decoding: bytes[..<complete], as: UTF8.self)
        bytes.removeFirst(complete)
        if let stop = stops.compactMap({ held.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
            stopped = true
            let out = String(held[..<stop.lowerBound])
            held = ""
            return out
        }
        let keep = stops.map { TextStream.overlap(held, prefixOf: $0) }.max() ?? 0
        let out = String(held.dropLast(keep))
        held = String(held.suffix(keep))
        return out
    }

    /// What is left at the end of generation (a held-back tail that never became a stop string;
    /// bytes of an unfinished character become U+FFFD).
    mutating func finish() -> String {
        guard !stopped else { return "" }
        let out = held + String(decoding: bytes, as: UTF8.self)
        held = ""
        bytes = []
        return out
    }

    /// Length of the longest prefix of `bytes` that ends on a character boundary: an incomplete
    /// multi-byte sequence at the end (a lead byte 110xxxxx, 1110xxxx or 11110xxx followed by
    /// fewer than 1, 2 or 3 continuation bytes 10xxxxxx) is left out.
    static func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
        var i = bytes.count
        var continuation = 0
        while i > 0, continuation < 3, bytes[i - 1] & 0xC0 == 0x80 {
            i -= 1
            continuation += 1
        }
        guard i > 0 else { return bytes.count }
        let lead = bytes[i - 1]
        let needed = lead & 0xE0 == 0xC0 ? 1 : lead & 0xF0 == 0xE0 ? 2 : lead & 0xF8 == 0xF0 ? 3 : 0
        return needed > continuation ? i - 1 : bytes.count
    }

    /// The longest suffix of `text` that is a proper prefix of `stop`, in characters.
    static func overlap(_ text: String, prefixOf stop: String) -> Int {
        var n = min(text.count, stop.count - 1)
        while n > 0 {
            if stop.hasPrefix(text.suffix(n)) { return n }
            n -= 1
        }
        return 0
    }
}
