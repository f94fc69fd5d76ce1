import Foundation

/// The book's response extraction (section 7.7):
///
///     generated_text = token_ids_to_text(generate(...), tokenizer)   # prompt + new tokens
///     response_text = generated_text[len(input_text):].replace("### Response:", "").strip()
///
/// `len` counts Unicode code points in Python, so the prompt is dropped by code points here too
/// (not by Swift `Character`s, which would differ after combining marks). `strip()` removes
/// leading and trailing whitespace. With `end` (ChatML's `<|im_end|>`), the text from its first
/// occurrence on is dropped first: the model's answer ends there and what follows is the next turn.
public func extractResponse(generatedText: String, promptText: String, marker: String, end: String? = nil) -> String {
    let scalars = generatedText.unicodeScalars
    let promptCount = promptText.unicodeScalars.count
    var rest = String(String.UnicodeScalarView(scalars.dropFirst(promptCount)))
    if let end, let cut = rest.range(of: end) { rest = String(rest[..<cut.lowerBound]) }
    if !marker.isEmpty { rest = rest.replacingOccurrences(of: marker, with: "") }
    return rest.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Word-overlap scores of a response against the reference output. Not in the book (which uses
/// only the judge model); they give a cheap, deterministic signal when no judge is available.
///
/// Words: the text is lowercased and split into maximal runs of letters and digits (Unicode
/// alphanumerics); punctuation and whitespace separate words and are dropped.
public enum OverlapScore {
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        for s in text.lowercased().unicodeScalars {
            if CharacterSet.alphanumerics.contains(s) {
                current.append(s)
            } else if !current.isEmpty {
                out.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        if !current.isEmpty { out.append(String(current)) }
        return out
    }

    /// Token-level F1 as in SQuAD's evaluation: the common words counted as a multiset (each word
    /// at most as often as in both), precision = common / response words, recall = common /
    /// reference words, F1 their harmonic mean. Both empty: 1; exactly one empty: 0.
    public static func tokenF1(response: String, reference: String) -> Double {
        f1(words(response), words(reference))
    }

    static func f1(_ p: [String], _ r: [String]) -> Double {
        if p.isEmpty && r.isEmpty { return 1 }
        if p.isEmpty || r.isEmpty { return 0 }
        var counts: [String: Int] = [:]
        for w in r { counts[w, default: 0] += 1 }
        var common = 0
        for w in p where (counts[w] ?? 0) > 0 {
            counts[w]! -= 1
            common += 1
        }
        if common == 0 { return 0 }
        let precision = Double(common) / Double(p.count), recall = Double(common) / Double(r.count)
        return 2 * precision * recall / (precision + recall)
    }

    /// ROUGE-L F1 (beta = 1): the longest common subsequence of the two word lists, precision =
    /// LCS / response words, recall = LCS / reference words. Both empty: 1; exactly one empty: 0.
    /// No stemming and no stop-word removal.
    public static func rougeL(response: String, reference: String) -> Double {
        rougeL(words(response), words(reference))
    }

    static func rougeL(_ p: [String], _ r: [String]) -> Double {
        if p.isEmpty && r.isEmpty { return 1 }
        if p.isEmpty || r.isEmpty { return 0 }
        let l = lcsLength(p, r)
        if l == 0 { return 0 }
        let precision = Double(l) / Double(p.count), recall = Double(l) / Double(r.count)
        return 2 * precision * recall / (precision + recall)
    }

    public static func lcsLength(_ a: [String], _ b: [String]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        var prev = [Int](repeating: 0, count: b.count + 1), cur = prev
        for i in 1...a.count {
            for j in 1...b.count {
                cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : max(prev[j], cur[j - 1])
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
