#!/usr/bin/env python3
"""A stand-in for an Ollama server, for the `evaluate instruct` judge tests (127.0.0.1 only).

    python3 stub_judge.py MODE LOG        prints "PORT <n>" once listening

POST /api/chat answers like Ollama with stream=false: {"message": {"role": "assistant", "content": ...}}.
MODE decides the content:
    good      the score is len(model response between the third pair of backticks) % 101, so the
              test can predict each entry's score from the response it sent
    garbage   "That response is quite good!" (not an integer)
    http500   HTTP 500 with a short text body
Every request body is appended to LOG as one JSON line, so tests can check what was sent.
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE, LOG = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(LOG, "a") as f:
            f.write(json.dumps({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                "body": json.loads(body)}) + "\n")
        if self.path != "/api/chat":
            return self.reply(404, b"not found", "text/plain")
        if MODE == "http500":
            return self.reply(500, b"model not loaded", "text/plain")
        if MODE == "garbage":
            content = "That response is quite good!"
        else:
            prompt = json.loads(body)["messages"][0]["content"]
            response = re.search(r"score the model response `(.*)` on a scale", prompt, re.S).group(1)
            content = str(len(response) % 101)
        out = json.dumps({"model": "stub", "message": {"role": "assistant", "content": content}, "done": True})
        self.reply(200, out.encode(), "application/json")

    def reply(self, status, data, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
