/// Byte-level parsing of the two vocabulary files. `encoder.json` is one flat JSON object of
/// 50,257 string keys; decoding it with `JSONDecoder` into `[String: Int]` hashes every key as a
/// normalised `String` and took most of the load time, so the object is scanned directly.

/// A problem found at a byte offset of the scanned file.
struct ScanError: Error {
    let offset: Int
    let problem: String
}

/// Appends the byte that each byte-level character of `scalar` stands for, or returns false.
@inline(__always)
func appendByteLevel(_ scalar: UInt32, to bytes: inout [UInt8]) -> Bool {
    guard scalar < UInt32(ByteLevel.byteForScalar.count) else { return false }
    let byte = ByteLevel.byteForScalar[Int(scalar)]
    guard byte >= 0 else { return false }
    bytes.append(UInt8(byte))
    return true
}

/// Reads `{"token": id, ...}`, calling `entry(keyScalars, id, byteOffset)` for each member.
struct EncoderJSONScanner {
    private let data: UnsafeBufferPointer<UInt8>
    private var index = 0

    init(_ data: UnsafeBufferPointer<UInt8>) { self.data = data }

    mutating func scan(_ entry: (_ key: [UInt32], _ id: Int, _ offset: Int) throws -> Void) throws {
        skipWhitespace()
        try expect(UInt8(ascii: "{"), "the file should start with a JSON object \"{\"")
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                let keyOffset = index
                let key = try scanString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "expected \":\" after a key")
                skipWhitespace()
                let id = try scanInteger()
                try entry(key, id, keyOffset)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "expected \",\" or \"}\" after an id")
                break
            }
        }
        skipWhitespace()
        guard index == data.count else { throw ScanError(offset: index, problem: "unexpected data after the JSON object") }
    }

    private func peek() -> UInt8? { index < data.count ? data[index] : nil }

    private mutating func expect(_ byte: UInt8, _ problem: String) throws {
        guard peek() == byte else {
            throw ScanError(offset: index, problem: index < data.count ? problem : "the file ends too early (truncated?)")
        }
        index += 1
    }

    private mutating func skipWhitespace() {
        while index < data.count, [0x20, 0x0A, 0x0D, 0x09].contains(data[index]) { index += 1 }
    }

    private mutating func scanInteger() throws -> Int {
        let start = index
        var value = 0
        while index < data.count, data[index] >= UInt8(ascii: "0"), data[index] <= UInt8(ascii: "9"), index - start < 10 {
            value = value * 10 + Int(data[index] - UInt8(ascii: "0"))
            index += 1
        }
        guard index > start else {
            throw ScanError(offset: start, problem: index < data.count ? "expected a non-negative integer id" : "the file ends too early (truncated?)")
        }
        return value
    }

    /// A JSON string's Unicode scalars, escapes resolved.
    private mutating func scanString() throws -> [UInt32] {
        try expect(UInt8(ascii: "\""), "expected a JSON string key")
        var scalars = [UInt32]()
        while true {
            guard index < data.count else { throw ScanError(offset: index, problem: "the file ends too early (truncated?)") }
            let byte = data[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return scalars
            case UInt8(ascii: "\\"):
                index += 1
                scalars.append(try scanEscape())
            case 0..<0x20:
                throw ScanError(offset: index, problem: "control character in a JSON string")
            case 0..<0x80:
                scalars.append(UInt32(byte))
                index += 1
            default:
                scalars.append(try scanUTF8())
            }
        }
    }

    private mutating func scanEscape() throws -> UInt32 {
        guard index < data.count else { throw ScanError(offset: index, problem: "the file ends too early (truncated?)") }
        let byte = data[index]
        index += 1
        switch byte {
        case UInt8(ascii: "\""): return 0x22
        case UInt8(ascii: "\\"): return 0x5C
        case UInt8(ascii: "/"): return 0x2F
        case UInt8(ascii: "b"): return 0x08
        case UInt8(ascii: "f"): return 0x0C
        case UInt8(ascii: "n"): return 0x0A
        case UInt8(ascii: "r"): return 0x0D
        case UInt8(ascii: "t"): return 0x09
        case UInt8(ascii: "u"):
            let high = try scanHex4()
            guard (0xD800..<0xDC00).contains(high) else { return high }
            // A surrogate pair spells one scalar above the BMP.
            guard index + 1 < data.count, data[index] == UInt8(ascii: "\\"), data[index + 1] == UInt8(ascii: "u") else {
                throw ScanError(offset: index, problem: "unpaired surrogate escape")
            }
            index += 2
            let low = try scanHex4()
            guard (0xDC00..<0xE000).contains(low) else { throw ScanError(offset: index, problem: "unpaired surrogate escape") }
            return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        default:
            throw ScanError(offset: index - 1, problem: "invalid escape in a JSON string")
        }
    }

    private mutating func scanHex4() throws -> UInt32 {
        guard index + 4 <= data.count else { throw ScanError(offset: index, problem: "the file ends too early (truncated?)") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = data[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw ScanError(offset: index, problem: "invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func scanUTF8() throws -> UInt32 {
        guard let (scalar, length) = decodeUTF8(data, at: index) else {
            throw ScanError(offset: index, problem: "invalid UTF-8")
        }
        index += length
        return scalar
    }
}

/// Decodes one UTF-8 encoded scalar at `index`, rejecting malformed sequences.
func decodeUTF8(_ data: UnsafeBufferPointer<UInt8>, at index: Int) -> (UInt32, Int)? {
    let lead = data[index]
    let length: Int
    var scalar: UInt32
    switch lead {
    case 0..<0x80: return (UInt32(lead), 1)
    case 0xC2..<0xE0: length = 2; scalar = UInt32(lead & 0x1F)
    case 0xE0..<0xF0: length = 3; scalar = UInt32(lead & 0x0F)
    case 0xF0..<0xF5: length = 4; scalar = UInt32(lead & 0x07)
    default: return nil
    }
    guard index + length <= data.count else { return nil }
    for offset in 1..<length {
        let byte = data[index + offset]
        guard byte & 0xC0 == 0x80 else { return nil }
        scalar = scalar << 6 | UInt32(byte & 0x3F)
    }
    let minimum: [UInt32] = [0, 0, 0x80, 0x800, 0x10000]
    guard scalar >= minimum[length], scalar <= 0x10FFFF, !(0xD800..<0xE000).contains(scalar) else { return nil }
    return (scalar, length)
}
