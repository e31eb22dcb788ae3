"""What the stand-in servers (LINE, Slack) share: a threaded local server, answers, a stalled request."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_LIMIT_S = 60  # a stalled request is dropped after this even if the test never releases it


class Stall:
    """Holds the `at`-th request (1-based) until `release()`, then drops its connection unanswered."""

    def __init__(self, at: int | None = None):
        self.at = at
        self.count = 0
        self.arrived = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    def hit(self) -> bool:
        """Count one request; True when it is the one to stall."""
        with self._lock:
            self.count += 1
            return self.at is not None and self.count == self.at

    def hold(self, handler: BaseHTTPRequestHandler) -> None:
        """Signal the test, wait for its release, and close the connection without answering."""
        self.arrived.set()
        self.released.wait(STALL_LIMIT_S)
        handler.close_connection = True

    def release(self) -> None:
        self.released.set()


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of new connections (a worker's 32 sender
    # threads opening theirs at once) would see SYNs dropped and retried a second later, a delay that
    # LINE (or any real server: gunicorn's backlog is 2048) does not add.
    request_queue_size = 128


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing: tests read what the stand-in recorded instead."""

    def log_message(self, *args: object) -> None:
        pass


class LocalServer:
    """A mixin: serve a handler class on 127.0.0.1 (a free port) in a daemon thread until the block ends.

    A held request (`self.stall`, when there is one) is let go first, so the server can shut down.
    """

    def __exit__(self, *exc: object) -> None:
        stall = getattr(self, "stall", None)
        if stall is not None:
            stall.release()
        self.stop_serving()

    def start_serving(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop_serving(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


def respond(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    """Send a complete answer with its length."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
