#!/usr/bin/env python3
"""A local HTTP server for the fetch tests: serves files under ROOT on 127.0.0.1, honours
byte ranges, and misbehaves on purpose according to prefixes in the request path.

    python3 test_server.py ROOT LOG          prints "PORT <n>" once listening

Path prefixes (may be chained; the rest of the path is a file under ROOT):
    /status/<times>/<code>/...         answer HTTP <code> (no body) to the first <times> requests
    /drop/<times>/<bytes>/...          first <times> requests: promise the whole body, send <bytes>, close
    /stall/<times>/<bytes>/<secs>/...  first <times> requests: send <bytes>, then go silent for <secs>
    /norange/...                       ignore Range headers (always 200 and the whole file)
    /nolength/...                      no Content-Length; the end of the body is the closed connection
    /redirect/...                      302 to the same path without this prefix
Counters are per full request path. Every request is appended to LOG as one JSON line
(path, range header, status) so tests can check, e.g., that a Range request was made.
"""
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(sys.argv[1])
LOG = sys.argv[2]
counts = {}
lock = threading.Lock()


def log(entry):
    with lock:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output quiet
        pass

    def do_GET(self):
        with lock:
            counts[self.path] = counts.get(self.path, 0) + 1
            nth = counts[self.path]
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        rules = {}
        while parts:
            head = parts[0]
            if head == "status":
                rules["status"] = (int(parts[1]), int(parts[2])); parts = parts[3:]
            elif head == "drop":
                rules["drop"] = (int(parts[1]), int(parts[2])); parts = parts[3:]
            elif head == "stall":
                rules["stall"] = (int(parts[1]), int(parts[2]), float(parts[3])); parts = parts[4:]
            elif head in ("norange", "nolength", "redirect"):
                rules[head] = True; parts = parts[1:]
            else:
                break
        rng = self.headers.get("Range")
        entry = {"path": self.path, "range": rng, "n": nth}

        if "redirect" in rules:
            target = self.path.replace("/redirect", "", 1)
            entry["status"] = 302
            log(entry)
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "status" in rules and nth <= rules["status"][0]:
            code = rules["status"][1]
            entry["status"] = code
            log(entry)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = os.path.join(ROOT, *parts)
        if not os.path.realpath(path).startswith(ROOT + os.sep) or not os.path.isfile(path):
            entry["status"] = 404
            log(entry)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        status = 200
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and "norange" not in rules:
            start = int(m.group(1))
            end = int(m.group(2)) + 1 if m.group(2) else len(data)
            if start >= len(data):
                entry["status"] = 416
                log(entry)
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
            body = data[start:end]
        else:
            body = data
        entry["status"] = status
        log(entry)
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, start + len(body) - 1, len(data)))
        self.send_header("Accept-Ranges", "bytes")
        if "nolength" in rules:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if "drop" in rules and nth <= rules["drop"][0]:
            self.wfile.write(body[: rules["drop"][1]])
            self.wfile.flush()
            self.close_connection = True
            return
        if "stall" in rules and nth <= rules["stall"][0]:
            self.wfile.write(body[: rules["stall"][1]])
            self.wfile.flush()
            time.sleep(rules["stall"][2])
            self.close_connection = True
            return
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that gives up mid-body (as the stall and oversize tests make it) is expected.
        pass


server = Server(("127.0.0.1", 0), Handler)
print("PORT %d" % server.server_address[1], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
