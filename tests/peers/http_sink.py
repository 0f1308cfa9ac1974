#!/usr/bin/env python3
"""A local HTTP receiver standing in for an SMS gateway or a webhook consumer.

Usage: http_sink.py PORT LOGFILE

Answers every POST with 200 (400 for paths starting with /reject) and appends one JSON line per request to LOGFILE:
arrival time, path, headers (lower-cased) and body. Prints "ready" once it
listens.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        record = {
            "at": time.time(),
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with open(self.server.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(400 if self.path.startswith("/reject") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.log_path = path
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
