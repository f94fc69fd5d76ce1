import ArtifactKit
import GPT2Weights
import Foundation

/// An export's output folder, built whole in a temporary sibling and renamed into place, so the
/// destination is either absent, the previous complete export, or the new complete one: never
/// half written. An existing destination is refused unless `force`; with `force` the old folder
/// is moved aside, the new one renamed in, and the old one removed.
struct ExportDestination {
    let url: URL
    let staging: URL
    private(set) var written: [String] = []

    /// Checks the destination before any work is done; creates the staging folder.
    init(_ url: URL, force: Bool) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path) && !force {
            throw PipelineError("the destination already exists", location: url.path,
                                hint: "choose another path, or pass --force to replace it")
        }
        self.url = url
        staging = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).export-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8)).tmp")
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        } catch {
            throw PipelineError.writing(staging, error, bytes: nil)
        }
    }

    /// Writes `data` as `name` (a path inside the folder) and remembers it for the manifest.
    mutating func put(_ name: String, _ data: Data) throws {
        try AtomicFile.write(data, to: staging.appendingPathComponent(name))
        written.append(name)
    }

    mutating func putTensors(_ name: String, _ tensors: [NamedTensor], metadata: [String: String] = ["format": "pt"]) throws {
        try SafetensorsWriter.write(tensors, metadata: metadata, to: staging.appendingPathComponent(name))
        written.append(name)
    }

    /// Records files another writer put into the staging folder.
    mutating func record(_ names: [String]) { written += names }

    /// Copies a file (the tokenizer's vocabulary) into the folder as `name`.
    mutating func copy(_ source: URL, as name: String) throws {
        let data: Data
        do { data = try Data(contentsOf: source) } catch {
            throw PipelineError("cannot read \(source.lastPathComponent)", location: source.path,
                                hint: "pass --vocab with the folder holding encoder.json and vocab.bpe (data/raw/gpt2, written by fetch)")
        }
        try put(name, data)
    }

    /// Puts the staged folder in place of the destination.
    func commit() throws {
        let fm = FileManager.default
        var aside: URL?
        if fm.fileExists(atPath: url.path) {
            aside = staging.appendingPathExtension("old")
            try AtomicFile.moveIntoPlace(url, aside!)
        }
        do {
            try AtomicFile.moveIntoPlace(staging, url)
        } catch {
            if let aside { try? AtomicFile.moveIntoPlace(aside, url) }
            throw error
        }
        if let aside { try? fm.removeItem(at: aside) }
    }

    /// Builds a destination folder: `body` writes into the staging folder and returns the
    /// manifest, whose outputs are filled in here (every file written); the manifest is written,
    /// the folder put in place, and returned. On any error the staging folder is removed.
    static func build(_ url: URL, force: Bool, _ body: (inout ExportDestination) throws -> Manifest) throws -> Manifest {
        var dest = try ExportDestination(url, force: force)
        do {
            var manifest = try body(&dest)
            manifest.outputs = try FileRecord.outputs(dest.written, in: dest.staging)
            try manifest.write(into: dest.staging)
            try dest.commit()
            return manifest
        } catch {
            dest.discard()
            throw error
        }
    }

    /// Removes the staging folder (after an error).
    func discard() {
        try? FileManager.default.removeItem(at: staging)
    }
}
