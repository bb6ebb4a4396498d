#!/usr/bin/env python3
"""smtp_sink.py - a local SMTP server that keeps every message and sends
none: what the notifications service would have e-mailed, for a newcomer
running `tools/dev up` (`tools/dev logs mail`) and for the integration
tests (tests/notifications), which read the messages back.

Usage: smtp_sink.py --port N [--host 127.0.0.1] [--out FILE]

Each message is appended to FILE as one JSON line {"mail_from", "rcpt_to",
"data"} (data: the message as received, dot-stuffing undone) and
summarised on stdout. Speaks enough of RFC 5321 for libcurl: EHLO/HELO,
MAIL, RCPT, DATA, RSET, NOOP, QUIT (no STARTTLS offered, so a client using
CURLUSESSL_TRY goes on in clear). Python's standard library only (smtpd
left Python in 3.12). Lines and messages are bounded.
"""
import argparse
import json
import socketserver
import sys
import threading

LINE_MAX = 4096
DATA_MAX = 10 * 1024 * 1024
_lock = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(LINE_MAX + 2)
        if not line:
            return None
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def read_data(self):
        lines, size = [], 0
        while True:
            raw = self.rfile.readline(LINE_MAX + 2)
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == ".":
                return "\r\n".join(lines) + "\r\n"
            size += len(raw)
            if size > DATA_MAX:
                return None
            lines.append(line[1:] if line.startswith(".") else line)

    def handle(self):
        self.reply("220 smtp-sink ready")
        mail_from, rcpt = None, []
        while True:
            line = self.readline()
            if line is None:
                return
            verb = line[:4].upper()
            if verb == "EHLO":
                self.reply("250-smtp-sink\r\n250-8BITMIME\r\n250 SIZE %d" % DATA_MAX)
            elif verb == "HELO":
                self.reply("250 smtp-sink")
            elif verb == "MAIL":
                mail_from, rcpt = line[10:].split(" ")[0].strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                if mail_from is None:
                    self.reply("503 MAIL first")
                    continue
                rcpt.append(line[8:].split(" ")[0].strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                if not rcpt:
                    self.reply("503 RCPT first")
                    continue
                self.reply("354 end with <CRLF>.<CRLF>")
                data = self.read_data()
                if data is None:
                    return
                self.server.keep({"mail_from": mail_from, "rcpt_to": rcpt, "data": data})
                mail_from, rcpt = None, []
                self.reply("250 OK queued")
            elif verb == "RSET":
                mail_from, rcpt = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, addr, out):
        super().__init__(addr, Handler)
        self.out = out

    def keep(self, msg):
        with _lock:
            if self.out:
                with open(self.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(msg) + "\n")
            subject = next((l[9:] for l in msg["data"].split("\r\n")
                            if l.lower().startswith("subject: ")), "")
            print("mail from=%s to=%s subject=%s" % (msg["mail_from"], ",".join(msg["rcpt_to"]), subject))
            print(msg["data"], flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out")
    a = p.parse_args()
    with Server((a.host, a.port), a.out) as s:
        print("smtp sink on %s:%d" % (a.host, a.port), flush=True)
        s.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
