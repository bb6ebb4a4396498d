#!/usr/bin/env python3
"""sms_sink.py - a local stand-in for an SMS provider's HTTP API (a
Twilio-style form POST: To, From, Body, with HTTP Basic credentials) that
sends nothing and keeps every message, for `tools/dev up` (`tools/dev logs
sms`) and tests.

Usage: sms_sink.py --port N [--host 127.0.0.1] [--out FILE]

Each POST is appended to FILE as one JSON line {"path", "user", "form"}
and summarised on stdout; the answer is 201 {"sid", "status": "queued"}.
Bodies are bounded (64 KiB). Python's standard library only.
"""
import argparse
import base64
import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

BODY_MAX = 64 * 1024
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            return self.answer(413, {"message": "too large"})
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode("utf-8", "replace")).items()}
        user = ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                user = ""
        msg = {"path": self.path, "user": user, "form": form}
        with _lock:
            if self.server.out:
                with open(self.server.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(msg) + "\n")
            print("sms to=%s from=%s body=%s" % (form.get("To"), form.get("From"), form.get("Body")), flush=True)
        self.answer(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued"})

    def log_message(self, fmt, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out")
    a = p.parse_args()
    s = ThreadingHTTPServer((a.host, a.port), Handler)
    s.out = a.out
    print("sms sink on %s:%d" % (a.host, a.port), flush=True)
    s.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
