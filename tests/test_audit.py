"""The audit trail store (`bot.store.audit`) on a real Redis, and its retention task, with injected clocks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.clock import parse_instant
from bot.errors import StoreError
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.aftercare import AuditRetention, scheduled_tasks
from bot.store import AuditLog
from bot.store.audit import AUDIT_KEY
from bot.testing.driver import ManualClock


@pytest.fixture
def audit(redis_client, clock):
    return AuditLog(redis_client, clock)


def at(clock: ManualClock, instant: str) -> None:
    clock.instant = parse_instant(instant)


def test_an_entry_holds_the_ids_given_and_the_app_clocks_time(audit, clock, redis_client):
    stream_id = audit.record("a1b2", "booking_view", office="noto", ref="noto|2026-11-25T10:00|AB12CD34",
                             client="192.0.2.7", detail="ok")
    assert stream_id == f"{int(clock.now().timestamp() * 1000)}-0"
    [(stored_id, fields)] = redis_client.xrange(AUDIT_KEY)
    assert stored_id == stream_id
    assert fields == {"at": "2026-11-20T10:00:00+09:00", "account": "a1b2", "action": "booking_view",
                      "office": "noto", "ref": "noto|2026-11-25T10:00|AB12CD34", "client": "192.0.2.7",
                      "detail": "ok"}
    assert audit.query() == [fields]


def test_ids_grow_when_two_entries_share_a_millisecond_or_the_clock_goes_back(audit, clock):
    first = audit.record("a", "login")
    second = audit.record("a", "logout")  # the same (frozen) millisecond
    ms = int(clock.now().timestamp() * 1000)
    assert (first, second) == (f"{ms}-0", f"{ms}-1")
    clock.advance(timedelta(minutes=-5))  # the clock goes back: the entry is filed after the last one
    third = audit.record("b", "login")
    assert third == f"{ms}-2"
    assert [e["account"] for e in audit.query()] == ["b", "a", "a"]
    assert audit.query()[0]["at"] == "2026-11-20T09:55:00+09:00"  # its own time, as the clock said
    clock.advance(timedelta(minutes=10))
    assert audit.record("c", "login") == f"{ms + 5 * 60 * 1000}-0"


def test_query_filters_newest_first_and_days_are_japan_days_inclusive(audit, clock):
    at(clock, "2026-11-19T23:59:59.999+09:00")
    audit.record("a", "login")
    at(clock, "2026-11-20T00:00:00+09:00")  # 2026-11-19T15:00Z: a UTC day would put it on the 19th
    audit.record("a", "booking_view", office="noto", ref="noto|r1")
    at(clock, "2026-11-20T12:00:00+09:00")
    audit.record("b", "booking_cancel", office="izumo", ref="izumo|r2")
    at(clock, "2026-11-21T23:59:59.999+09:00")
    audit.record("b", "booking_view", office="noto", ref="noto|r1")
    at(clock, "2026-11-22T00:00:00+09:00")
    audit.record("a", "logout")

    def actions(**filters) -> list[str]:
        return [f"{e['account']}:{e['action']}" for e in audit.query(**filters)]

    assert actions() == ["a:logout", "b:booking_view", "b:booking_cancel", "a:booking_view", "a:login"]
    assert actions(since=date(2026, 11, 20), until=date(2026, 11, 20)) == ["b:booking_cancel", "a:booking_view"]
    assert actions(since=date(2026, 11, 20), until=date(2026, 11, 21)) == [
        "b:booking_view", "b:booking_cancel", "a:booking_view"]
    assert actions(until=date(2026, 11, 19)) == ["a:login"]
    assert actions(since=date(2026, 11, 22)) == ["a:logout"]
    assert actions(account="a") == ["a:logout", "a:booking_view", "a:login"]
    assert actions(office="noto") == ["b:booking_view", "a:booking_view"]
    assert actions(ref="izumo|r2") == ["b:booking_cancel"]
    assert actions(account="b", office="noto", since=date(2026, 11, 21)) == ["b:booking_view"]
    assert actions(account="nobody") == []
    assert actions(limit=2) == ["a:logout", "b:booking_view"]
    assert actions(account="", office=None) == actions()  # empty filters match anything


def test_query_reads_past_many_entries_that_do_not_match(audit, clock):
    """The filter is applied while reading newest first in batches: matches far back are found."""
    audit.record("needle", "login")
    for _ in range(1200):
        clock.advance(timedelta(milliseconds=1))
        audit.record("hay", "booking_view")
    clock.advance(timedelta(milliseconds=1))
    audit.record("needle", "logout")
    assert [e["action"] for e in audit.query(account="needle")] == ["logout", "login"]
    assert len(audit.query(account="hay")) == 1000
    assert len(audit.query(account="hay", limit=1200)) == 1200


def test_trim_drops_entries_older_than_the_instant(audit, clock):
    for day in (1, 2, 3):
        at(clock, f"2026-11-0{day}T09:00:00+09:00")
        audit.record("a", f"day{day}")
    assert audit.trim(parse_instant("2026-11-02T09:00:00+09:00")) == 1
    assert [e["action"] for e in audit.query()] == ["day3", "day2"]
    assert audit.trim(parse_instant("2026-11-02T09:00:00+09:00")) == 0
    assert audit.trim(parse_instant("2027-01-01T00:00:00+09:00")) == 2
    assert audit.query() == []
    at(clock, "2026-11-01T09:00:00+09:00")  # the stream is empty but remembers its last id: still growing
    assert audit.record("a", "again").startswith(str(int(parse_instant("2026-11-03T09:00:00+09:00").timestamp() * 1000)))


def test_an_unreachable_redis_is_a_store_error_naming_the_operation(clock):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0),
                       decode_responses=True)
    audit = AuditLog(dead, clock)
    with pytest.raises(StoreError, match="cannot record an audit entry: ConnectionError"):
        audit.record("a", "login")
    with pytest.raises(StoreError, match="cannot read the audit trail: ConnectionError"):
        audit.query()
    with pytest.raises(StoreError, match="cannot trim the audit trail: ConnectionError"):
        audit.trim(clock.now())


def test_the_worker_trims_the_audit_trail_after_the_retention_days_once_a_day(redis_client, offices, clock):
    service = BotService(load_settings(audit_retention_days=30), client=redis_client, offices=offices, clock=clock)
    assert service.audit.client is redis_client
    service.audit.record("a", "login")  # 2026-11-20 10:00
    clock.advance(timedelta(days=10))
    service.audit.record("a", "logout")  # 2026-11-30 10:00
    [task] = [t for t in scheduled_tasks(service) if t.name == "audit_retention"]
    at(clock, "2026-12-20T09:59:59+09:00")  # 30 days after the first, less a second: kept
    task(clock.now())
    assert len(service.audit) == 2
    at(clock, "2026-12-20T10:00:01+09:00")  # past 30 days, but the task ran less than a day ago
    task(clock.now())
    assert len(service.audit) == 2
    at(clock, "2026-12-21T09:59:59+09:00")  # a day after the last run
    task(clock.now())
    assert [e["action"] for e in service.audit.query()] == ["logout"]
    assert AuditRetention(service)(clock.now() + timedelta(days=10)) == 1
    assert len(service.audit) == 0


def test_audit_retention_days_is_bounded():
    from bot.errors import ConfigError

    assert load_settings().audit_retention_days == 365
    with pytest.raises(ConfigError, match="HWBOT_AUDIT_RETENTION_DAYS"):
        load_settings(HWBOT_AUDIT_RETENTION_DAYS=0)
    with pytest.raises(ConfigError, match="HWBOT_AUDIT_RETENTION_DAYS"):
        load_settings(HWBOT_AUDIT_RETENTION_DAYS=3651)
