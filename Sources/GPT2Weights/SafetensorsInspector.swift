import ArtifactKit
import Foundation
import GPT2

/// Safetensors files (checkpoints written by `train`, or downloaded GPT-2 weights): the
/// `__metadata__` and a table of tensors with dtype and shape.
public struct SafetensorsInspector: ArtifactInspector {
    public init() {}
    public func canInspect(url: URL, magic: String?) -> Bool { url.pathExtension == "safetensors" }

    public func inspect(url: URL, rows: Int) throws -> String {
        let file = try SafetensorsFile(contentsOf: url)
        var lines = ["file:    \(url.path)", "format:  safetensors, \(file.tensorNames.count) tensors"]
        var total = 0
        for name in file.tensorNames {
            if let info = file.info(name) { total += info.shape.reduce(1, *) }
        }
        lines.append("values:  \(total)")
        if !file.metadata.isEmpty {
            lines.append("metadata:")
            let width = file.metadata.keys.map(\.count).max() ?? 0
            for key in file.metadata.keys.sorted() {
                lines.append("  " + key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + file.metadata[key]!)
            }
        }
        lines.append("tensors:")
        let width = file.tensorNames.map(\.count).max() ?? 0
        for name in file.tensorNames {
            guard let info = file.info(name) else { continue }
            lines.append("  " + name.padding(toLength: width, withPad: " ", startingAt: 0)
                         + "  \(info.dtype)  [" + info.shape.map(String.init).joined(separator: ", ") + "]")
        }
        return lines.joined(separator: "\n")
    }
}
