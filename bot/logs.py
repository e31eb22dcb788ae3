"""Process-wide logging for the web app and the worker: one line a record on stderr.

Records never carry personal data (user ids are keyed hashes: `bot.service.user_hash`).
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging() -> None:
    """INFO and above to stderr in LOG_FORMAT (no-op for handlers already set up, as basicConfig)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # INFO is three lines per turn
    # LOG_FORMAT uses no caller or thread field: do not collect them for every record (the Logging
    # HOWTO's "Optimization" settings; a webhook logs one record per turn). The process id stays:
    # gunicorn's own log lines print it, in the same process.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
