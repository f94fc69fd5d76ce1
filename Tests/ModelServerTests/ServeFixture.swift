import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import ModelServer
import TestSupport
import XCTest

/// Two tiny models trained by the real `prepare` and `train` executables from small inputs
/// written here (2 layers, width 32, random weights): a spam classifier and an Alpaca-template
/// instruction model. Built once per test process; needs the GPT-2 vocabulary of the shared assets.
enum ServeFixture {
    struct Models {
        var dir: URL
        var vocab: URL
        var classifier: URL
        var instruct: URL
    }

    static let spam = ["WINNER!! You have been selected to receive a $1000 cash prize. Call 09061701461 now",
                       "URGENT! Your mobile number has won a 2000 pound award. Text CLAIM to 81010",
                       "Free entry in a weekly competition to win FA Cup final tickets. Text FA to 87121",
                       "Congratulations! You won a free holiday. Reply WIN to claim your prize now"]
    static let ham = ["Hey, are we still on for dinner tonight?", "I'll be home late, don't wait up",
                      "Can you pick up some milk on the way back?", "Thanks for the lift this morning, see you tomorrow",
                      "Ok lar... Joking wif u oni...", "What time does the film start?"]

    private static let built: Result<Models, Error> = Result { try build() }

    static func models() throws -> Models {
        guard TestPaths.sharedAssets != nil else {
            throw XCTSkip("shared assets (../shared/assets or $LLMFT_ASSETS) not present: the GPT-2 vocabulary is needed")
        }
        return try built.get()
    }

    private static func build() throws -> Models {
        let assets = try XCTUnwrap(TestPaths.sharedAssets)
        let vocab = assets.appendingPathComponent("gpt2")
        let dir = try TestPaths.makeTempDir("serve-models")
        let config = GPT2Config(name: "serve-tiny", vocabSize: 50257, contextLength: 128, embDim: 32, nHeads: 2, nLayers: 2, dropRate: 0, qkvBias: true)
        try JSONEncoder().encode(config).write(to: dir.appendingPathComponent("tiny.json"))
        // Classifier: 40 spam and 60 ham lines (the book balances them to 40/40 and splits 70/10/20).
        var tsv = ""
        for i in 0..<60 { tsv += "ham\t\(ham[i % ham.count]) \(i)\n" }
        for i in 0..<40 { tsv += "spam\t\(spam[i % spam.count]) \(i)\n" }
        try Data(tsv.utf8).write(to: dir.appendingPathComponent("sms.tsv"))
        try check(runTool("prepare", ["classification", "--input", "sms.tsv", "--vocab", vocab.path, "--out", "prepared"], cwd: dir))
        try check(runTool("train", ["--prepared", "prepared", "--out", "classifier", "--model", "tiny.json", "--weights", "random",
                                    "--epochs", "2", "--batch-size", "4", "--lr", "0.001"], cwd: dir))
        // Instruction model: 30 Alpaca entries.
        let entries = (0..<30).map { i in
            ["instruction": "Repeat the number \(i).", "input": i % 3 == 0 ? "number \(i)" : "", "output": "The number is \(i)."]
        }
        try JSONSerialization.data(withJSONObject: entries).write(to: dir.appendingPathComponent("instructions.json"))
        try check(runTool("prepare", ["instruct", "--input", "instructions.json", "--vocab", vocab.path, "--out", "instruct-prepared"], cwd: dir))
        try check(runTool("train", ["instruct", "--prepared", "instruct-prepared", "--out", "instruct", "--model", "tiny.json",
                                    "--weights", "random", "--epochs", "1", "--batch-size", "4"], cwd: dir))
        return Models(dir: dir, vocab: vocab, classifier: dir.appendingPathComponent("classifier"), instruct: dir.appendingPathComponent("instruct"))
    }

    private static func check(_ run: ToolRun) throws {
        guard run.status == 0 else { throw PipelineError("fixture command failed: \(run.stderr)") }
    }
}

/// A server running in this process on a free loopback port.
final class RunningServer {
    let server: ModelServer
    let port: Int
    private let task: Task<Void, Error>

    init(model dir: URL, vocab: URL, configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        var c = ServerConfiguration()
        c.port = 0
        c.modelName = "tiny"
        configure(&c)
        let tokenizer = try GPT2BPETokenizer(directory: vocab)
        server = try ModelServer(model: try ServedModel.load(from: dir), tokenizer: tokenizer, configuration: c)
        let listening = PortBox()
        let app = server.makeApplication { port in listening.set(port) }
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        port = try listening.wait()
    }

    func stop() {
        task.cancel()
    }

    private static var cache: [String: RunningServer] = [:]

    /// One server per `name` for all the tests of a class (started on first use, never stopped).
    static func shared(_ name: String, model: (ServeFixture.Models) -> URL,
                       configure: (inout ServerConfiguration) -> Void) throws -> RunningServer {
        if let s = cache[name] { return s }
        let m = try ServeFixture.models()
        let s = try RunningServer(model: model(m), vocab: m.vocab, configure: configure)
        cache[name] = s
        return s
    }

    deinit { task.cancel() }

    func request(_ method: String, _ path: String, json: String? = nil, headers: [String: String] = [:]) throws -> HTTPReply {
        try RawHTTP.request(port: port, method: method, path: path, body: json.map { Data($0.utf8) }, headers: headers)
    }
}

/// The port a server reports once it listens.
final class PortBox: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private var port = 0

    func set(_ port: Int) {
        self.port = port
        semaphore.signal()
    }

    func wait() throws -> Int {
        guard semaphore.wait(timeout: .now() + 60) == .success else { throw PipelineError("the server did not start within 60 s") }
        return port
    }
}

/// Runs `body(i)` for i in 0..<n on n threads at once and waits for all.
func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<n {
        group.enter()
        Thread { body(i); group.leave() }.start()
    }
    group.wait()
}

/// Results written from several threads.
final class Collected<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int: T] = [:]

    func set(_ i: Int, _ value: T) {
        lock.lock()
        items[i] = value
        lock.unlock()
    }

    var values: [Int: T] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
