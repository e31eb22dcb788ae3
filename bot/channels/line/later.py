"""`Later`: calls run after a delay on one long-lived daemon thread (LINE's loading animation)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("hwbot.line")


class Later:
    """Runs calls after a delay on one long-lived daemon thread, cancellable until they run.

    The loading animation used a `threading.Timer` per event; starting that thread (and waiting for
    it to start) took ~7% of a webhook under load (`hwbot bench`, py-spy). Waking this thread once
    per event still cost ~0.3 ms of CPU an event (GIL hand-offs), so a cancelled call never wakes
    it: the thread drops cancelled calls from the head of the queue before it waits, and is only
    notified when it had nothing live to wait for. Under load it wakes a few times a second.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, list[Any]]] = []  # heap of (monotonic due, seq, [fn, args])
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread waits with no live call (only a call can wake it)

    def call(self, delay: float, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        """Run `fn(*args)` in `delay` seconds; returns a function that cancels it."""
        entry: list[Any] = [fn, args]
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), entry))
            if self._thread is None or not self._thread.is_alive():  # first call, or after a fork
                self._thread = threading.Thread(target=self._run, name="hwbot-later", daemon=True)
                self._thread.start()
            elif self._idle or self._due[0][2] is entry:
                self._wake.notify()  # nothing live was awaited, or the new call is due first

        def cancel() -> None:
            entry[0] = None  # dropped, unrun, when the thread next looks at the queue

        return cancel

    def _run(self) -> None:
        while True:
            with self._wake:
                while True:
                    while self._due and self._due[0][2][0] is None:
                        heapq.heappop(self._due)  # cancelled: never waited for
                    if self._due and self._due[0][0] <= time.monotonic():
                        break
                    self._idle = not self._due
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                    self._idle = False
                _, _, (fn, args) = heapq.heappop(self._due)
            if fn is not None:
                try:
                    fn(*args)
                except Exception:  # a failed call must not stop the calls after it
                    log.exception("later_call_failed")
