/// GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one by one.
///
/// It is a hand-written matcher for the regular expression that tiktoken uses for `gpt2`
/// (`r50k_base`):
///
///     '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
///
/// which matches exactly what OpenAI's original
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` matches.
/// The alternatives are tried in order at each position (first match wins, as in a
/// backtracking engine). Character classes follow tiktoken's engine (Rust `regex`): `\s` is
/// the Unicode `White_Space` property, `\p{L}` the general categories L*, `\p{N}` N*, all as of
/// Unicode 16.0 (see `regexUnicodeVersion`).
/// Contractions are matched case-sensitively, so "I'M" splits as "I", "'", "M".
///
/// It works directly on UTF-8 bytes (always valid: they come from a Swift `String`) and reports
/// pieces as byte ranges, so no `String` or `Substring` is created in the hot path.
enum PreTokenizer {
    enum ScalarClass: UInt8 {
        case other = 0, letter = 1, number = 2, whitespace = 3
    }

    /// Classes of the Basic Multilingual Plane, computed once from the standard library's
    /// Unicode data; rarer scalars (emoji, historic scripts) are classified on the fly.
    static let lowClasses: [ScalarClass] = {
        var table = [ScalarClass](repeating: .other, count: lowTableSize)
        for value in 0..<UInt32(lowTableSize) {
            if let scalar = Unicode.Scalar(value) { table[Int(value)] = computeClass(scalar) }
        }
        return table
    }()

    static let lowTableSize = 0x10000

    /// The Unicode version of tiktoken's regex tables (tiktoken 0.14 links `regex-syntax`
    /// 0.8.11, generated from UCD 16.0.0). Swift's standard library may know newer characters
    /// (Swift 6.3 has Unicode 17.0, which adds about 4,600 letters); to tiktoken they are
    /// unassigned, so they count as `.other` here. Tests compare every scalar against classes
    /// read from tiktoken itself (`Tests/Fixtures/tokenizer/unicode_classes.json`).
    static let regexUnicodeVersion = (major: 16, minor: 0)

    static func computeClass(_ scalar: Unicode.Scalar) -> ScalarClass {
        let properties = scalar.properties
        guard let age = properties.age,
              (age.major, age.minor) <= (regexUnicodeVersion.major, regexUnicodeVersion.minor)
        else { return .other }
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    @inline(__always)
    static func classOf(_ value: UInt32, _ low: UnsafePointer<ScalarClass>) -> ScalarClass {
        if value < UInt32(lowTableSize) { return low[Int(value)] }
        return Unicode.Scalar(value).map(computeClass) ?? .other
    }

    /// The scalar that starts at `index` and the number of bytes it takes (valid UTF-8 assumed).
    @inline(__always)
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> (value: UInt32, length: Int) {
        let b0 = UInt32(bytes[index])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 {
            return (((b0 & 0x1F) << 6) | (UInt32(bytes[index + 1]) & 0x3F), 2)
        }
        if b0 < 0xF0 {
            return (((b0 & 0x0F) << 12) | ((UInt32(bytes[index + 1]) & 0x3F) << 6)
                    | (UInt32(bytes[index + 2]) & 0x3F), 3)
        }
        return (((b0 & 0x07) << 18) | ((UInt32(bytes[index + 1]) & 0x3F) << 12)
                | ((UInt32(bytes[index + 2]) & 0x3F) << 6) | (UInt32(bytes[index + 3]) & 0x3F), 4)
    }

    /// Calls `body(start, end)` with the byte range of every piece of `bytes`, in order.
    /// The pieces cover `bytes` exactly, without gaps.
    @inline(__always)
    static func forEachPiece(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Void) {
        lowClasses.withUnsafeBufferPointer { lowBuffer in
            let low = lowBuffer.baseAddress!
            let count = bytes.count
            var start = 0
            while start < count {
                let end = pieceEnd(bytes, from: start, count: count, low)
                body(start, end)
                start = end
            }
        }
    }

    /// The end of the piece that starts at `start`.
    @inline(__always)
    static func pieceEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, count: Int,
                         _ low: UnsafePointer<ScalarClass>) -> Int {
        let first = bytes[start]
        // '(?:[sdmt]|ll|ve|re)
        if first == UInt8(ascii: "'") && start + 1 < count {
            let b1 = bytes[start + 1]
            switch b1 {
            case UInt8(ascii: "s"), UInt8(ascii: "d"), UInt8(ascii: "m"), UInt8(ascii: "t"):
                return start + 2
            case UInt8(ascii: "l"), UInt8(ascii: "v"), UInt8(ascii: "r"):
                if start + 2 < count {
                    let b2 = bytes[start + 2]
                    if (b1 == UInt8(ascii: "l") && b2 == UInt8(ascii: "l"))
                        || (b1 == UInt8(ascii: "v") && b2 == UInt8(ascii: "e"))
                        || (b1 == UInt8(ascii: "r") && b2 == UInt8(ascii: "e")) {
                        return start + 3
                    }
                }
            default:
                break
            }
        }
        // ` ?\p{L}++`, ` ?\p{N}++`, ` ?[^\s\p{L}\p{N}]++`: an optional space, then a run of one class.
        if first == UInt8(ascii: " ") && start + 1 < count {
            let (next, length) = decode(bytes, start + 1)
            let nextClass = classOf(next, low)
            if nextClass != .whitespace {
                return runEnd(bytes, from: start + 1 + length, count: count, of: nextClass, low)
            }
        }
        let (value, length) = decode(bytes, start)
        let firstClass = classOf(value, low)
        if firstClass != .whitespace {
            return runEnd(bytes, from: start + length, count: count, of: firstClass, low)
        }
        // `\s++$|\s+(?!\S)|\s`: a whitespace run that reaches the end is taken whole; one that is
        // followed by something else gives up its last scalar (which then may start " word"),
        // unless the run is a single scalar.
        var lastStart = start
        var index = start + length
        while index < count {
            let (next, nextLength) = decode(bytes, index)
            if classOf(next, low) != .whitespace { break }
            lastStart = index
            index += nextLength
        }
        if index == count || lastStart == start { return index }
        return lastStart
    }

    @inline(__always)
    static func runEnd(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int, count: Int,
                       of runClass: ScalarClass, _ low: UnsafePointer<ScalarClass>) -> Int {
        var index = index
        while index < count {
            let (value, length) = decode(bytes, index)
            if classOf(value, low) != runClass { break }
            index += length
        }
        return index
    }
}
