"""Stalling one request of a stand-in server: the crash tests kill the caller while it waits."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

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
