import Foundation

/// A one-line progress bar on standard error, redrawn in place; used only when standard error
/// is a terminal (a log file gets one line per file instead).
final class ProgressBar {
    let label: String
    let total: Int64
    private let started = Date()
    private var startBytes: Int64?
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(label: String, total: Int64) {
        self.label = label
        self.total = total
    }

    func update(bytes: Int64, force: Bool = false) {
        let now = Date()
        if startBytes == nil { startBytes = bytes }
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let fraction = total > 0 ? min(1, Double(bytes) / Double(total)) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let elapsed = max(0.001, now.timeIntervalSince(started))
        let rate = Double(bytes - (startBytes ?? 0)) / elapsed
        let percent = String(format: "%3d%%", Int(fraction * 100))
        let line = "\(label) [\(bar)] \(percent) \(ByteFormat.short(bytes)) / \(ByteFormat.short(total))  \(ByteFormat.short(Int64(rate)))/s"
        FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
        drawn = true
    }

    /// Clears the bar so the next message starts on a clean line.
    func finish() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
        drawn = false
    }
}

enum ByteFormat {
    static func short(_ bytes: Int64) -> String {
        let b = Double(bytes)
        let kib = 1024.0, mib = kib * kib, gib = mib * kib
        if b >= gib { return String(format: "%.1f GiB", b / gib) }
        if b >= mib { return String(format: "%.1f MiB", b / mib) }
        if b >= kib { return String(format: "%.1f KiB", b / kib) }
        return "\(bytes) B"
    }
}
