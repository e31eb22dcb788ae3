"""The one source of time: real, or shifted to a rehearsal instant. Asia/Tokyo for everything shown."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant; a naive one is taken as Japan time. Raises ValueError."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return value.astimezone(JST)


class Clock:
    """Real time in JST; with `start`, time runs on from that instant (rehearsals, HWBOT_NOW)."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False):
        self._offset = timedelta(0)
        self._frozen = start if frozen else None
        if start is not None and not frozen:
            self._offset = start - datetime.now(timezone.utc)

    def now(self) -> datetime:
        """The current instant, timezone-aware, in JST."""
        if self._frozen is not None:
            return self._frozen.astimezone(JST)
        return (datetime.now(timezone.utc) + self._offset).astimezone(JST)

    @classmethod
    def at(cls, instant: datetime) -> "Clock":
        """A clock that always answers `instant` (scripted dialogs, one-shot commands)."""
        return cls(instant, frozen=True)
