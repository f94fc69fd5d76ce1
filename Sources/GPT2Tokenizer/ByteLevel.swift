/// GPT-2's reversible byte <-> character mapping.
///
/// `encoder.json` and `vocab.bpe` spell every token as text, so OpenAI mapped each of the 256
/// byte values to a printable character: bytes that are already printable Latin-1 (and not the
/// space) map to themselves, the other 68 bytes map in order to U+0100, U+0101, ... This is the
/// same table as tiktoken's `data_gym_byte_to_byte`, whose order also fixes the ranks (token
/// ids) of the 256 single-byte tokens.
enum ByteLevel {
    /// Bytes in rank order: the printable ones first, then the rest in increasing value.
    static let bytesInRankOrder: [UInt8] = {
        var order = [UInt8]()
        for byte in 0...255 where isPrintableLatin1(byte) { order.append(UInt8(byte)) }
        for byte in 0...255 where !isPrintableLatin1(byte) { order.append(UInt8(byte)) }
        return order
    }()

    /// The character that stands for `byte` in the vocabulary files.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0...255 {
            if isPrintableLatin1(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The inverse of `scalarForByte`, indexed by scalar value (< 324); -1 where no byte maps.
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar)] = Int16(byte) }
        return table
    }()

    /// Python's `chr(b).isprintable() and chr(b) != " "` for b < 256: '!'...'~', '¡'...'¬', '®'...'ÿ'.
    private static func isPrintableLatin1(_ byte: Int) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }
}
