import ArtifactKit
import Foundation
import GPT2Tokenizer

extension ClassificationPreparer {
    /// Runs the stage with the GPT-2 tokenizer loaded from `options.vocabDirectory`
    /// (`encoder.json`, `vocab.bpe`).
    ///
    /// Texts are encoded with `encodeOrdinary`: the book's `tokenizer.encode(text)` would raise on
    /// a literal `<|endoftext|>`; the SMS data has none, and reading it as plain text is the safe
    /// choice for other data (its tokens are then the same as tiktoken's `encode_ordinary`).
    public static func run(_ options: ClassificationPrepareOptions) throws -> Manifest {
        try run(options, loadEncoder: {
            let tokenizer: GPT2BPETokenizer
            do { tokenizer = try GPT2BPETokenizer(directory: options.vocabDirectory) } catch let e as PipelineError {
                throw e
            } catch {
                throw PipelineError("cannot load the GPT-2 tokenizer: \(error)", location: options.vocabDirectory.path,
                                    hint: "--vocab must be the directory holding encoder.json and vocab.bpe (rerun `pipeline run fetch`)")
            }
            return { tokenizer.encodeOrdinary($0) }
        })
    }
}
