"""A stand-in LINE Messaging API: a real local HTTP server that records what the bot sends.

    with LineStandIn() as line:
        settings = load_settings(line_api_host=line.url, ...)
        ...
        assert line.requests[-1].path == "/v2/bot/message/reply"
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    raw: bytes = b""


@dataclass
class LineStandIn:
    """Answers 200 `{}` (or `fail_with` for the paths in `failing`) and keeps every request."""

    requests: list[Recorded] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # path -> status to answer
    # path -> JSON answer (the SDK reads some answers, e.g. the id of a created rich menu)
    # (and the SDK refuses a reply or push answer without `sentMessages`, as LINE always sends it)
    answers: dict[str, Any] = field(
        default_factory=lambda: {
            "/v2/bot/richmenu": {"richMenuId": "richmenu-standin"},
            "/v2/bot/message/reply": {"sentMessages": [{"id": "1", "quoteToken": "standin"}]},
            "/v2/bot/message/push": {"sentMessages": [{"id": "1", "quoteToken": "standin"}]},
        }
    )
    # The benchmark turns recording off (thousands of bodies) and keeps connections open (HTTP/1.1),
    # as LINE does; `counts` is kept either way.
    record: bool = True
    keep_alive: bool = False
    counts: Counter = field(default_factory=Counter)

    def __enter__(self) -> "LineStandIn":
        standin = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if standin.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with lock:
                    standin.counts[self.path] += 1
                if standin.record:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = None
                    standin.requests.append(Recorded("POST", self.path, dict(self.headers), body, raw))
                status = standin.failing.get(self.path, 200)
                answer = standin.answers.get(self.path, {}) if status < 400 else {"message": "stand-in failure"}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                """Quiet: tests read `requests` instead."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def sent(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]
