"""A stand-in for Mailpit (a test fixture): an SMTP sink on 1025 that keeps every message in
memory, and on 8025 the part of Mailpit's HTTP API the compose tests read:

    GET /api/v1/messages          {"total", "messages_count", "messages": [summary, ...]}, newest first
    GET /api/v1/message/{ID}      one message: its summary with "Text", "HTML" and "Headers"
    DELETE /api/v1/messages       forget them all
    GET /readyz                   200 once both servers listen

`mailpit readyz` (the healthcheck) asks /readyz and exits 0 or 1."""

import email
import email.policy
import json
import signal
import sys
import threading
import time
import urllib.request
import uuid
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

MESSAGES: list[dict] = []
LOCK = threading.Lock()


def _address(value: str) -> dict:
    name, address = getaddresses([value])[0] if value else ("", "")
    return {"Name": name, "Address": address}


class Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = html = ""
        for part in message.walk():
            if part.get_content_type() == "text/plain" and not text:
                text = part.get_content()
            elif part.get_content_type() == "text/html" and not html:
                html = part.get_content()
        summary = {
            "ID": uuid.uuid4().hex, "MessageID": (message["Message-ID"] or "").strip("<>"),
            "From": _address(str(message["From"] or "")),
            "To": [_address(str(a)) for a in (message["To"].addresses if message["To"] else [])],
            "Subject": str(message["Subject"] or ""),
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Size": len(envelope.content),
        }
        full = {**summary, "Text": text, "HTML": html,
                "Headers": {k: [str(v) for v in message.get_all(k)] for k in dict.fromkeys(message.keys())},
                "Envelope": {"From": envelope.mail_from, "To": list(envelope.rcpt_tos)}}
        with LOCK:
            MESSAGES.append(full)
        return "250 OK"


class Api(BaseHTTPRequestHandler):
    def _json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with LOCK:
            messages = list(MESSAGES)
        if self.path == "/readyz":
            self._json(200, {"ready": True})
        elif self.path.split("?")[0] == "/api/v1/messages":
            summaries = [{k: m[k] for k in ("ID", "MessageID", "From", "To", "Subject", "Created", "Size")}
                         for m in reversed(messages)]
            self._json(200, {"total": len(summaries), "messages_count": len(summaries), "messages": summaries})
        elif self.path.startswith("/api/v1/message/"):
            wanted = self.path.removeprefix("/api/v1/message/")
            found = next((m for m in messages if m["ID"] == wanted), None)
            self._json(200, found) if found else self._json(404, {"error": "message not found"})
        else:
            self._json(404, {"error": "not found"})

    def do_DELETE(self) -> None:
        if self.path == "/api/v1/messages":
            with LOCK:
                MESSAGES.clear()
            self._json(200, {})
        else:
            self._json(404, {"error": "not found"})

    def log_message(self, *args) -> None:  # no access log: addresses are personal data
        pass


def main() -> int:
    if sys.argv[1:] == ["readyz"]:
        try:
            return 0 if urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=2).status == 200 else 1
        except OSError:
            return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in its container: stop when asked
    controller = Controller(Sink(), hostname="0.0.0.0", port=1025)
    controller.start()
    server = ThreadingHTTPServer(("0.0.0.0", 8025), Api)
    print("mailpit stand-in: SMTP on 1025, API on 8025", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
