import ArtifactKit
import Foundation
import GPT2
import GPT2Tokenizer
import Instruct
@testable import ModelServer
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Completions and chat against an instruction model served in this process: the same tokens as
/// `GPT2Model.generate` alone, streamed or not, batched or not; and the bad inputs.
final class GenerationServerTests: XCTestCase {
    private func server() throws -> RunningServer {
        try .shared("generate", model: \.instruct) { $0.limits.maxBatch = 4; $0.limits.generationContext = 96 }
    }

    /// What the model alone generates for `text`, decoded.
    private func reference(_ text: String, _ options: GenerationOptions) throws -> String {
        let s = try server()
        guard case .instruct(let trained) = s.server.model else { throw XCTSkip("not an instruction model") }
        let prompt = s.server.tokenizer.encodeOrdinary(text).map(Int32.init)
        let tokens = try trained.model.generate(prompts: [prompt], options: options)[0]
        return try s.server.tokenizer.decode(tokens.map(Int.init))
    }

    private func eos(_ maxNewTokens: Int, temperature: Float = 0, topK: Int? = nil, seed: UInt64 = 123) -> GenerationOptions {
        GenerationOptions(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, eosId: Int32(GPT2BPETokenizer.endOfTextID), seed: seed)
    }

    func testCompletionIsTheModelsGreedyContinuation() throws {
        let s = try server()
        let r = try s.request("POST", "/v1/completions", json: #"{"prompt": "The number is", "max_tokens": 12}"#)
        XCTAssertEqual(r.status, 200, r.text)
        let json = try XCTUnwrap(r.json)
        XCTAssertEqual(json["object"], "text_completion")
        XCTAssertEqual(json["choices"]?[0]?["text"]?.stringValue, try reference("The number is", eos(12)))
        XCTAssertEqual(json["usage"]?["prompt_tokens"]?.intValue, 3)
        let completion = try XCTUnwrap(json["usage"]?["completion_tokens"]?.intValue)
        XCTAssertEqual(json["choices"]?[0]?["finish_reason"]?.stringValue, completion == 12 ? "length" : "stop")
    }

    func testSampledCompletionFollowsItsSeed() throws {
        let s = try server()
        let body = #"{"prompt": "Repeat the number", "max_tokens": 10, "temperature": 1.5, "top_k": 50, "seed": 7}"#
        let a = try s.request("POST", "/v1/completions", json: body).json?["choices"]?[0]?["text"]?.stringValue
        let b = try s.request("POST", "/v1/completions", json: body).json?["choices"]?[0]?["text"]?.stringValue
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, try reference("Repeat the number", eos(10, temperature: 1.5, topK: 50, seed: 7)))
    }

    func testChatAppliesTheTrainingTemplateAndStreamsTheSameText() throws {
        let s = try server()
        let messages = #"[{"role": "user", "content": "Repeat the number 4."}]"#
        let prompt = chatGenerationPrompt([ChatMessage(.user, "Repeat the number 4.")], style: .alpaca)
        XCTAssertTrue(prompt.hasSuffix("### Instruction:\nRepeat the number 4.\n\n### Response:\n"), prompt)
        let plain = try s.request("POST", "/v1/chat/completions", json: #"{"messages": \#(messages), "max_tokens": 16}"#)
        XCTAssertEqual(plain.status, 200, plain.text)
        let content = try XCTUnwrap(plain.json?["choices"]?[0]?["message"]?["content"]?.stringValue)
        XCTAssertEqual(content, try reference(prompt, eos(16)))
        XCTAssertEqual(plain.json?["object"], "chat.completion")

        let streamed = try s.request("POST", "/v1/chat/completions", json: #"{"messages": \#(messages), "max_tokens": 16, "stream": true}"#)
        XCTAssertEqual(streamed.status, 200)
        XCTAssertEqual(streamed.headers["content-type"], "text/event-stream")
        let events = streamed.events
        XCTAssertEqual(events.last, "[DONE]")
        let chunks = events.dropLast().compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        XCTAssertEqual(chunks.count, events.count - 1, "every event but the last is JSON")
        XCTAssertEqual(chunks.first?["choices"]?[0]?["delta"]?["role"], "assistant")
        XCTAssertEqual(chunks.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined(), content)
        XCTAssertEqual(chunks.last?["choices"]?[0]?["finish_reason"], plain.json?["choices"]?[0]?["finish_reason"])
        XCTAssertTrue(chunks.allSatisfy { $0["object"] == "chat.completion.chunk" })
    }

    func testConcurrentChatsAreBatchedWithoutChangingTheirAnswers() throws {
        let s = try server()
        let prompts = (0..<8).map { "Repeat the number \($0)." }
        let answers = Collected<String>()
        let queue = try XCTUnwrap(s.server.generationService?.queue)
        queue.setPaused(true)   // let all 8 arrive; then the 4 rows fill at once and the rest join as rows free up
        let clients = Thread {
            onThreads(8) { i in
                let body = #"{"messages": [{"role": "user", "content": "\#(prompts[i])"}], "max_tokens": 20}"#
                answers.set(i, (try? s.request("POST", "/v1/chat/completions", json: body))?.json?["choices"]?[0]?["message"]?["content"]?.stringValue ?? "?")
            }
        }
        clients.start()
        for _ in 0..<200 where queue.depth < 8 { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(queue.depth, 8)
        queue.setPaused(false)
        for _ in 0..<600 where answers.values.count < 8 { Thread.sleep(forTimeInterval: 0.05) }
        for (i, p) in prompts.enumerated() {
            XCTAssertEqual(answers.values[i], try reference(chatGenerationPrompt([ChatMessage(.user, p)], style: .alpaca), eos(20)), "chat \(i)")
        }
        let metrics = try s.request("GET", "/metrics").text
        XCTAssertGreaterThan(try XCTUnwrap(metricValue(metrics, "serve_batch_rows_total")), try XCTUnwrap(metricValue(metrics, "serve_batches_total")),
                             "some decoding steps served several chats")
    }

    func testClientLeavingMidStreamDoesNotDisturbOthers() throws {
        let s = try server()
        let cancelledBefore = metricValue(try s.request("GET", "/metrics").text, "serve_cancelled_generations_total") ?? 0
        let service = try XCTUnwrap(s.server.generationService)
        service.stepDelay = 0.02   // 90 tokens take about 2 s: the client leaves long before the end
        defer { service.stepDelay = 0 }
        let fd = try RawHTTP.connect(port: s.port)
        let body = Data(#"{"prompt": "Repeat", "max_tokens": 90, "stream": true}"#.utf8)
        RawHTTP.send(fd, RawHTTP.requestBytes("POST", "/v1/completions", body: body, headers: [:]))
        _ = RawHTTP.read(fd) { String(decoding: $0, as: UTF8.self).components(separatedBy: "data: ").count > 3 }
        close(fd)
        let other = try s.request("POST", "/v1/completions", json: #"{"prompt": "The number is", "max_tokens": 12}"#)
        XCTAssertEqual(other.json?["choices"]?[0]?["text"]?.stringValue, try reference("The number is", eos(12)))
        var cancelled = 0.0
        for _ in 0..<50 where cancelled <= cancelledBefore {
            cancelled = metricValue(try s.request("GET", "/metrics").text, "serve_cancelled_generations_total") ?? 0
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(cancelled, cancelledBefore + 1, "the abandoned stream's row was freed")
    }

    func testStopStringsAndLengthLimit() throws {
        let s = try server()
        let full = try reference("Repeat the number", eos(30))
        guard full.count > 4 else { throw XCTSkip("the tiny model ended early: \(full)") }
        let stop = String(full.dropFirst(2).prefix(2))
        let body = try JSONSerialization.data(withJSONObject: ["prompt": "Repeat the number", "max_tokens": 30, "stop": [stop]] as [String: Any])
        let r = try s.request("POST", "/v1/completions", json: String(decoding: body, as: UTF8.self))
        let text = try XCTUnwrap(r.json?["choices"]?[0]?["text"]?.stringValue)
        XCTAssertEqual(text, String(full[..<full.range(of: stop)!.lowerBound]))
        XCTAssertEqual(r.json?["choices"]?[0]?["finish_reason"], "stop")
        // A prompt near the 96-position context: max_tokens is cut to the room left.
        let long = Array(repeating: "number", count: 90).joined(separator: " ")
        let near = try s.request("POST", "/v1/completions", json: #"{"prompt": "\#(long)", "max_tokens": 50}"#)
        XCTAssertEqual(near.json?["usage"]?["completion_tokens"]?.intValue ?? 0, 6)
        XCTAssertEqual(near.json?["choices"]?[0]?["finish_reason"], "length")
    }

    func testBadGenerationInputs() throws {
        let s = try server()
        let over = Array(repeating: "number", count: 100).joined(separator: " ")
        let cases: [(String, String, String)] = [
            ("/v1/chat/completions", #"{"max_tokens": 3}"#, "missing field \"messages\""),
            ("/v1/chat/completions", #"{"messages": []}"#, "non-empty list"),
            ("/v1/chat/completions", #"{"messages": [{"role": "robot", "content": "x"}]}"#, "messages[0] must be"),
            ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}"#, "last message must be the user's"),
            ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "n": 2}"#, "\"n\" must be an integer in 1...1"),
            ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "temperature": 5}"#, "\"temperature\" must be a number in 0.0...2.0"),
            ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "logit_bias": {}}"#, "unknown field \"logit_bias\""),
            ("/v1/completions", #"{"prompt": ""}"#, "the prompt is empty"),
            ("/v1/completions", #"{"prompt": ["a", "b"]}"#, "must be one string"),
            ("/v1/completions", #"{"prompt": "a", "max_tokens": 0}"#, "\"max_tokens\" must be an integer in 1...96"),
            ("/v1/completions", #"{"prompt": "a", "stream": "yes"}"#, "\"stream\" must be true or false"),
            ("/v1/completions", #"{"prompt": "\#(over)"}"#, "the prompt has 100 tokens"),
            ("/v1/completions", #"{"prompt": "a"#, "not valid JSON"),
            ("/v1/classify", #"{"texts": ["a"]}"#, "needs a classifier"),
        ]
        for (path, body, fragment) in cases {
            let r = try s.request("POST", path, json: body)
            XCTAssertTrue([400, 404].contains(r.status), "\(body): \(r.status)")
            XCTAssertTrue(r.errorMessage.contains(fragment), "\(body): \(r.text)")
            let ok = try s.request("POST", "/v1/completions", json: #"{"prompt": "a", "max_tokens": 2}"#)
            XCTAssertEqual(ok.status, 200, "the server keeps serving after \(body)")
        }
        let health = try s.request("GET", "/health").json
        XCTAssertEqual(health?["kind"], "instruct")
        XCTAssertEqual(health?["template"], "alpaca")
        XCTAssertTrue(try s.request("GET", "/").text.contains("/v1/chat/completions"))
    }
}
