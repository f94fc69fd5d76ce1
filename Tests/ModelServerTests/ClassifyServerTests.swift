import ArtifactKit
import Classification
import Foundation
import GPT2Tokenizer
@testable import ModelServer
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Every route and every bad input against a classifier served in this process; after each bad
/// input the server still answers a good request.
final class ClassifyServerTests: XCTestCase {
    private func server() throws -> RunningServer {
        try .shared("classify", model: \.classifier) { $0.limits.maxTexts = 256; $0.limits.maxBodyBytes = 64 * 1024 }
    }

    /// The probabilities `evaluate classify` computes, one text at a time.
    private func expected(_ text: String) throws -> [Float] {
        guard case .classifier(let classifier) = try server().server.model else { throw XCTSkip("not a classifier") }
        return try classifier.probabilities(tokens: try server().server.tokenizer.encodeOrdinary(text))
    }

    private func assertServing(_ s: RunningServer, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try s.request("POST", "/v1/classify", json: #"{"texts": ["still there?"]}"#)
        XCTAssertEqual(r.status, 200, r.text, file: file, line: line)
    }

    func testClassifyAnswersLabelAndProbabilitiesAsEvaluateDoes() throws {
        let s = try server()
        let texts = ServeFixture.spam.prefix(2) + ServeFixture.ham.prefix(2)
        let body = try JSONSerialization.data(withJSONObject: ["texts": Array(texts)])
        let r = try s.request("POST", "/v1/classify", json: String(decoding: body, as: UTF8.self))
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(r.headers["content-type"], "application/json")
        let results = try XCTUnwrap(r.json?["results"])
        XCTAssertEqual(r.json?["labels"], ["ham", "spam"])
        for (i, text) in texts.enumerated() {
            let want = try expected(text)
            let got = try XCTUnwrap(results[i]?["probabilities"])
            XCTAssertEqual(got["ham"]?.doubleValue ?? -1, Double(want[0]), accuracy: 1e-5)
            XCTAssertEqual(got["spam"]?.doubleValue ?? -1, Double(want[1]), accuracy: 1e-5)
            XCTAssertEqual(results[i]?["label"]?.stringValue, want[1] > want[0] ? "spam" : "ham")
            XCTAssertEqual(results[i]?["truncated"], false)
        }
    }

    func testConcurrentRequestsShareBatchesAndGetTheirOwnAnswers() throws {
        let s = try server()
        let texts = (0..<16).map { ServeFixture.ham[$0 % ServeFixture.ham.count] + " \($0)" }
        let answers = Collected<Double>()
        let queue = try XCTUnwrap(s.server.classifyService?.queue)
        queue.setPaused(true)   // let all 16 arrive before the worker takes any
        let clients = Thread {
            onThreads(16) { i in
                let r = try? s.request("POST", "/v1/classify", json: #"{"texts": ["\#(texts[i])"]}"#)
                answers.set(i, r?.json?["results"]?[0]?["probabilities"]?["spam"]?.doubleValue ?? -1)
            }
        }
        clients.start()
        for _ in 0..<200 where queue.depth < 16 { Thread.sleep(forTimeInterval: 0.05) }
        queue.setPaused(false)
        for _ in 0..<200 where answers.values.count < 16 { Thread.sleep(forTimeInterval: 0.05) }
        for (i, text) in texts.enumerated() {
            XCTAssertEqual(answers.values[i] ?? -1, Double(try expected(text)[1]), accuracy: 1e-5, "text \(i)")
        }
        let metrics = try s.request("GET", "/metrics").text
        let batches = try XCTUnwrap(metricValue(metrics, "serve_batches_total"))
        let rows = try XCTUnwrap(metricValue(metrics, "serve_batch_rows_total"))
        XCTAssertGreaterThan(rows, batches, "some passes held more than one text:\n\(metrics)")
    }

    func testLongTextIsTruncatedToTheTrainingLengthAndSaysSo() throws {
        let s = try server()
        let long = Array(repeating: "free prize", count: 400).joined(separator: " ")
        let r = try s.request("POST", "/v1/classify", json: #"{"texts": ["\#(long)"]}"#)
        XCTAssertEqual(r.status, 200, r.text)
        let result = try XCTUnwrap(r.json?["results"]?[0])
        XCTAssertEqual(result["truncated"], true)
        XCTAssertEqual(result["tokens"]?.intValue, 800)
        guard case .classifier(let c) = s.server.model else { return XCTFail() }
        XCTAssertEqual(result["used_tokens"]?.intValue, c.checkpoint.maxLength)
    }

    func testBadInputsAreJSON400sAndTheServerKeepsServing() throws {
        let s = try server()
        let thousand = try JSONSerialization.data(withJSONObject: ["texts": Array(repeating: "hi", count: 1000)])
        let cases: [(String, String)] = [
            (#"{"texts": ["a"#, "not valid JSON"),
            ("", "not valid JSON (it is empty)"),
            (#"["a"]"#, "must be a JSON object"),
            (#"{}"#, "missing field \"texts\""),
            (#"{"texts": ["a"], "extra": 1}"#, "unknown field \"extra\""),
            (#"{"texts": []}"#, "\"texts\" is empty"),
            (#"{"texts": "a"}"#, "must be a list of strings"),
            (#"{"texts": ["a", 3]}"#, "\"texts\"[1] must be a string"),
            (#"{"texts": [""]}"#, "texts[0] is empty"),
            (String(decoding: thousand, as: UTF8.self), "1000 texts: at most 256"),
        ]
        for (body, fragment) in cases {
            let r = try s.request("POST", "/v1/classify", json: body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertTrue(r.errorMessage.contains(fragment), "\(body): \(r.text)")
            XCTAssertEqual(r.json?["error"]?["type"], "invalid_request_error")
            try assertServing(s)
        }
    }

    func testSizeRouteAndMethodErrors() throws {
        let s = try server()
        let big = #"{"texts": [""# + String(repeating: "x", count: 70_000) + #""]}"#
        let tooLarge = try s.request("POST", "/v1/classify", json: big)
        XCTAssertEqual(tooLarge.status, 413, tooLarge.text)
        XCTAssertTrue(tooLarge.errorMessage.contains("larger than 65536 bytes"), tooLarge.text)
        let missing = try s.request("GET", "/nothing")
        XCTAssertEqual(missing.status, 404)
        XCTAssertTrue(missing.errorMessage.contains("no route /nothing"), missing.text)
        let method = try s.request("GET", "/v1/classify")
        XCTAssertEqual(method.status, 405, method.text)
        XCTAssertTrue(method.errorMessage.contains("/v1/classify takes POST"), method.text)
        let chat = try s.request("POST", "/v1/chat/completions", json: #"{"messages": [{"role": "user", "content": "hi"}]}"#)
        XCTAssertEqual(chat.status, 404)
        XCTAssertTrue(chat.errorMessage.contains("needs an instruction model"), chat.text)
        try assertServing(s)
    }

    func testPageHealthModelsAndMetrics() throws {
        let s = try server()
        let page = try s.request("GET", "/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.headers["content-type"]?.hasPrefix("text/html") ?? false)
        XCTAssertTrue(page.text.contains("/v1/classify") && page.text.contains("id=\"label\""), "the page classifies")
        XCTAssertFalse(page.text.contains("http://") || page.text.contains("https://"), "the page loads nothing from elsewhere")
        let health = try s.request("GET", "/health")
        XCTAssertEqual(health.json?["status"], "ok")
        XCTAssertEqual(health.json?["kind"], "classifier")
        XCTAssertEqual(health.json?["labels"], ["ham", "spam"])
        XCTAssertEqual(try s.request("GET", "/v1/models").json?["data"]?[0]?["id"], "tiny")
        _ = try s.request("POST", "/v1/classify", json: "{")
        let metrics = try s.request("GET", "/metrics")
        XCTAssertTrue(metrics.headers["content-type"]?.hasPrefix("text/plain") ?? false)
        XCTAssertTrue(metrics.text.contains(#"serve_requests_total{route="/v1/classify",method="POST",status="400"}"#), metrics.text)
        XCTAssertTrue(metrics.text.contains(#"serve_requests_total{route="/health",method="GET",status="200"}"#), metrics.text)
        XCTAssertTrue(metrics.text.contains(#"serve_request_duration_seconds_bucket{route="/v1/classify",le="+Inf"}"#), metrics.text)
        XCTAssertTrue(metrics.text.contains("# TYPE serve_request_duration_seconds histogram"))
    }

    func testBearerToken() throws {
        let m = try ServeFixture.models()
        let s = try RunningServer(model: m.classifier, vocab: m.vocab) { $0.token = "s3cret" }
        defer { s.stop() }
        let body = #"{"texts": ["hello"]}"#
        XCTAssertEqual(try s.request("POST", "/v1/classify", json: body).status, 401)
        XCTAssertEqual(try s.request("POST", "/v1/classify", json: body, headers: ["Authorization": "Bearer wrong"]).status, 401)
        XCTAssertEqual(try s.request("GET", "/metrics").status, 401)
        XCTAssertEqual(try s.request("POST", "/v1/classify", json: body, headers: ["Authorization": "Bearer s3cret"]).status, 200)
        XCTAssertEqual(try s.request("GET", "/health").json?["auth"], true)
        XCTAssertEqual(try s.request("GET", "/").status, 200)
    }

    func testFullQueueAnswers503AndTheRestAreServed() throws {
        let m = try ServeFixture.models()
        let s = try RunningServer(model: m.classifier, vocab: m.vocab) { $0.limits.queue = 2 }
        defer { s.stop() }
        let queue = try XCTUnwrap(s.server.classifyService?.queue)
        queue.setPaused(true)   // the worker takes nothing: the first two requests fill the queue
        let statuses = Collected<Int>()
        let waiting = Thread {
            onThreads(2) { i in statuses.set(i, (try? s.request("POST", "/v1/classify", json: #"{"texts": ["a"]}"#))?.status ?? -1) }
        }
        waiting.start()
        for _ in 0..<100 where queue.depth < 2 { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(queue.depth, 2)
        let busy = try s.request("POST", "/v1/classify", json: #"{"texts": ["b"]}"#)
        XCTAssertEqual(busy.status, 503, busy.text)
        XCTAssertEqual(busy.headers["retry-after"], "1")
        XCTAssertEqual(busy.json?["error"]?["type"], "server_busy")
        queue.setPaused(false)
        for _ in 0..<100 where statuses.values.count < 2 { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(statuses.values, [0: 200, 1: 200], "the queued requests are answered")
        XCTAssertEqual(try s.request("POST", "/v1/classify", json: #"{"texts": ["c"]}"#).status, 200, "the queue empties again")
    }

    func testSlowClientsAreCutOffWhileOthersAreServed() throws {
        let m = try ServeFixture.models()
        let s = try RunningServer(model: m.classifier, vocab: m.vocab) { $0.limits.requestTimeout = 1 }
        defer { s.stop() }
        // Headers that never end, and a body that never arrives in full.
        let slowHead = try RawHTTP.connect(port: s.port, receiveTimeout: 10)
        RawHTTP.send(slowHead, Data("POST /v1/classify HTTP/1.1\r\nHost: x\r\n".utf8))
        let slowBody = try RawHTTP.connect(port: s.port, receiveTimeout: 10)
        RawHTTP.send(slowBody, Data("POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"texts\"".utf8))
        let start = Date()
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.4)
            RawHTTP.send(slowHead, Data("X-Slow: 1\r\n".utf8))
            RawHTTP.send(slowBody, Data(" ".utf8))
            try assertServing(s)
        }
        _ = RawHTTP.read(slowHead)
        _ = RawHTTP.read(slowBody)
        close(slowHead)
        close(slowBody)
        XCTAssertLessThan(Date().timeIntervalSince(start), 6, "both slow connections were closed by the 1 s request timeout")
        try assertServing(s)
    }
}

/// The value of an unlabelled metric in Prometheus text.
func metricValue(_ text: String, _ name: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
}
