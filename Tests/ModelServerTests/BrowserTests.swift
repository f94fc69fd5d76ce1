import ArtifactKit
import Foundation
import TestSupport
import XCTest

/// The page as a person uses it: `serve` on a free loopback port, Debian's headless Chromium
/// driven by selenium (tools/browser/serve_page.py) types an SMS and reads the label off the
/// page, then chats once with the instruction model. Skips with a message when the browser is
/// not installed (scripts/install-deps.sh installs it), and on purpose with LLMFT_NO_BROWSER=1.
final class BrowserTests: XCTestCase {
    private let python = "/usr/bin/python3"

    private func skipUnlessBrowser() throws {
        if ProcessInfo.processInfo.environment["LLMFT_NO_BROWSER"] == "1" { throw XCTSkip("LLMFT_NO_BROWSER=1: browser test skipped on purpose") }
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init) + ["/usr/bin"]
        for tool in ["chromium", "chromedriver"] where !paths.contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }) {
            throw XCTSkip("\(tool) is not installed: apt-get install chromium chromium-driver python3-selenium (scripts/install-deps.sh) to run the browser test")
        }
        let selenium = try runProcess(URL(fileURLWithPath: python), ["-c", "import selenium"])
        if selenium.status != 0 { throw XCTSkip("python3-selenium is not installed for \(python): apt-get install python3-selenium") }
    }

    private func drive(port: Int, text: String) throws -> JSONValue {
        let script = TestPaths.repoRoot.appendingPathComponent("tools/browser/serve_page.py")
        let run = try runProcess(URL(fileURLWithPath: python), [script.path, "--url", "http://127.0.0.1:\(port)/", "--text", text])
        if run.status == 3 { throw XCTSkip(run.stderr) }
        XCTAssertEqual(run.status, 0, run.stderr)
        return try JSONDecoder().decode(JSONValue.self, from: run.stdoutData)
    }

    func testTypeAnSMSAndReadTheLabelThenChat() throws {
        try skipUnlessBrowser()
        let m = try ServeFixture.models()
        let sms = "WINNER!! You have been selected to receive a $1000 cash prize."
        let classifier = try ServeProcess(["--model", m.classifier.path, "--vocab", m.vocab.path])
        let page = try drive(port: classifier.port, text: sms)
        let body = try JSONSerialization.data(withJSONObject: ["texts": [sms]])
        let api = try RawHTTP.request(port: classifier.port, method: "POST", path: "/v1/classify", body: body)
        let label = try XCTUnwrap(api.json?["results"]?[0]?["label"]?.stringValue)
        XCTAssertEqual(page["kind"], "classifier")
        XCTAssertEqual(page["label"]?.stringValue, label, "the page shows the label the API gives")
        XCTAssertTrue(page["shown"]?.stringValue?.contains("ham") ?? false, "the page shows every class's probability")
        XCTAssertEqual(page["error"], "")
        XCTAssertEqual(classifier.stop().0, 0)

        let instruct = try ServeProcess(["--model", m.instruct.path, "--vocab", m.vocab.path, "--context", "128"])
        let chat = try drive(port: instruct.port, text: "Repeat the number 4.")
        XCTAssertEqual(chat["kind"], "instruct")
        XCTAssertEqual(chat["user"], ["Repeat the number 4."])
        XCTAssertEqual(chat["error"], "")
        let messages = ["messages": [["role": "user", "content": "Repeat the number 4."]], "max_tokens": 64] as [String: Any]
        let reply = try RawHTTP.request(port: instruct.port, method: "POST", path: "/v1/chat/completions",
                                        body: try JSONSerialization.data(withJSONObject: messages))
        let want = try XCTUnwrap(reply.json?["choices"]?[0]?["message"]?["content"]?.stringValue)
        // The page shows the streamed answer as the API gives it (outer whitespace aside: what
        // selenium reads of an element's text is trimmed or not depending on the browser).
        let shown = try XCTUnwrap(chat["answer"]?.stringValue)
        XCTAssertEqual(shown.trimmingCharacters(in: .whitespacesAndNewlines), want.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertFalse(shown.isEmpty)
        XCTAssertEqual(instruct.stop().0, 0)
    }
}
