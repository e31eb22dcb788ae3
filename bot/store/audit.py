"""The audit trail `hwbot:audit`: an append-only stream of who saw and changed what, and when.

    hwbot:audit   stream  one entry per login, view of personal data, action, export, account change:
                          at, account, action, office, ref, client, detail

Entry ids are the app clock's milliseconds (`<ms>-<seq>`), not Redis's, so an injected clock
(`HWBOT_NOW`, tests) files entries under its own days, and `query` finds a day's entries by id range.
Ids must grow: when the clock goes backwards (or two entries share a millisecond) a small Lua script
files the entry right after the last one (`max(ms, last ms)`, next sequence). It computes the whole id
itself because the embedded Redis (6.2) does not know Redis 7's `XADD <ms>-*`.

Callers pass ids only: the account id, the office id, a booking ref, the client's address; `detail` is
a short machine word (an outcome such as `ok`, `wrong_password`), never text a user typed, and never a
name, 求職番号, phone or email. `trim` drops what is older than the retention period
(`HWBOT_AUDIT_RETENTION_DAYS`, the worker's scheduled task).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import redis

from bot.clock import JST, Clock
from bot.store.errors import redis_errors

AUDIT_KEY = "hwbot:audit"
FIELDS = ("at", "account", "action", "office", "ref", "client", "detail")
# Entries read per round trip while filtering (newest first).
_BATCH = 500

# KEYS: the stream. ARGV: the clock's ms, then field/value pairs. Returns the new id.
_RECORD_LUA = """
local ms = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local last_ms, last_seq = string.match(info[i + 1], '^(%d+)-(%d+)$')
      if tonumber(last_ms) >= tonumber(ms) then
        return redis.call('XADD', KEYS[1], last_ms .. '-' .. string.format('%d', tonumber(last_seq) + 1),
                          unpack(ARGV, 2))
      end
    end
  end
end
return redis.call('XADD', KEYS[1], ms .. '-0', unpack(ARGV, 2))
"""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _day_start_ms(day: date) -> int:
    """Milliseconds of 00:00 Japan time on `day`."""
    return _ms(datetime.combine(day, time(0), tzinfo=JST))


class AuditLog:
    """Append and read the audit trail (see the module doc for what may go in it)."""

    def __init__(self, client: redis.Redis, clock: Clock):
        self.client = client
        self.clock = clock
        self._record = client.register_script(_RECORD_LUA)

    def record(self, account: str, action: str, *, office: str = "", ref: str = "", client: str = "",
               detail: str = "") -> str:
        """Append one entry, stamped with the app's clock; returns its stream id. Ids only (module doc)."""
        now = self.clock.now()
        values = {"at": now.astimezone(JST).isoformat(), "account": account, "action": action, "office": office,
                  "ref": ref, "client": client, "detail": detail}
        pairs = [str(part) for name in FIELDS for part in (name, values[name])]
        with redis_errors("cannot record an audit entry"):
            return str(self._record(keys=[AUDIT_KEY], args=[_ms(now), *pairs]))

    def query(self, *, account: str | None = None, office: str | None = None, ref: str | None = None,
              since: date | None = None, until: date | None = None, limit: int = 1000) -> list[dict[str, str]]:
        """Entries newest first, at most `limit`; `since`/`until` are Japan-time days, inclusive; the
        other filters match a field exactly (None or "": any)."""
        start = str(_day_start_ms(since)) if since else "-"
        end = str(_day_start_ms(until + timedelta(days=1)) - 1) if until else "+"
        wanted = {name: value for name, value in (("account", account), ("office", office), ("ref", ref)) if value}
        found: list[dict[str, str]] = []
        if limit <= 0:
            return found
        with redis_errors("cannot read the audit trail"):
            while True:
                batch = self.client.xrevrange(AUDIT_KEY, max=end, min=start, count=_BATCH)
                for _, fields in batch:
                    if all(fields.get(name) == value for name, value in wanted.items()):
                        found.append({name: fields.get(name, "") for name in FIELDS})
                        if len(found) >= limit:
                            return found
                if len(batch) < _BATCH:
                    return found
                end = "(" + batch[-1][0]  # exclusive: go on below the oldest one read

    def trim(self, before: datetime) -> int:
        """Drop the entries filed before `before` (XTRIM MINID); returns how many went."""
        with redis_errors("cannot trim the audit trail"):
            return int(self.client.xtrim(AUDIT_KEY, minid=str(_ms(before)), approximate=False))

    def __len__(self) -> int:
        with redis_errors("cannot read the audit trail"):
            return int(self.client.xlen(AUDIT_KEY))
