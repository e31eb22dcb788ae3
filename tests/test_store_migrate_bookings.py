"""`hwbot store migrate` for the booking keys: from the office day's hash tag (`{noto:2026-12-01}`,
before issue 13) to the office's (`{noto}`), values and lifetimes kept, once; the bookings then work
as if they had been made under the new layout."""

from __future__ import annotations

import json

from bot.store import BookingStore

U1 = "U" + "1" * 32
DAY1, DAY2 = "2026-12-01", "2026-12-02"


def old_bookings(client) -> None:
    """Bookings as the code before issue 13 stored them (its key names; the refs are unchanged)."""
    rows = [("noto", f"{DAY1}T10:00", "b1", U1, 400 * 86400), ("noto", f"{DAY2}T14:00", "b2", U1, None),
            ("sakata", f"{DAY1}T09:00", "s1", "U-other", 400 * 86400)]
    for office, slot, booking_id, user, ttl in rows:
        day, hhmm = slot.split("T")
        tag = f"{{{office}:{day}}}"
        record = {"id": booking_id, "office": office, "slot": slot, "user": user, "status": "booked",
                  "start": f"{slot}:00+09:00", "end": f"{slot[:-2]}30:00+09:00", "answers": []}
        client.set(f"hwbot:{tag}:booking:{booking_id}", json.dumps(record), ex=ttl)
        client.sadd(f"hwbot:{tag}:slot:{hhmm.replace(':', '')}", booking_id)
        client.sadd(f"hwbot:{tag}:bookings", booking_id)
        client.sadd(f"hwbot:{{u:{user}}}:bookings", f"{office}|{slot}|{booking_id}")


def test_booking_keys_move_under_the_office_tag_once(redis_client, cli):
    old_bookings(redis_client)
    dry = cli("store", "migrate", "--dry-run")
    assert dry.exit_code == 0 and "bookings: 9 would move" in dry.output, dry.output
    assert redis_client.exists("hwbot:{noto:2026-12-01}:booking:b1")

    result = cli("store", "migrate")
    assert result.exit_code == 0 and "bookings: 9 moved" in result.output, result.output
    assert sorted(redis_client.keys("hwbot:{noto}:*")) == [
        "hwbot:{noto}:2026-12-01:booking:b1", "hwbot:{noto}:2026-12-01:bookings", "hwbot:{noto}:2026-12-01:slot:1000",
        "hwbot:{noto}:2026-12-02:booking:b2", "hwbot:{noto}:2026-12-02:bookings", "hwbot:{noto}:2026-12-02:slot:1400",
    ]
    assert redis_client.keys("hwbot:{*:20*}:*") == []
    assert 399 * 86400 < redis_client.ttl("hwbot:{noto}:2026-12-01:booking:b1") <= 400 * 86400
    assert redis_client.ttl("hwbot:{noto}:2026-12-02:booking:b2") == -1

    store = BookingStore(redis_client)
    assert [b["id"] for b in store.for_user(U1)] == ["b1", "b2"]  # the refs in the user index still work
    assert [b["id"] for b in store.on_day("sakata", DAY1)] == ["s1"]
    # The slot is still held (capacity), and the booking moves across days in one step.
    assert store.claim({"id": "x", "office": "noto", "slot": f"{DAY1}T10:00", "user": "U-x", "status": "booked"},
                       1).reason == "full"
    assert store.move(f"noto|{DAY1}T10:00|b1", f"{DAY2}T15:00", 1, new_id="m1", at="t", by="user").ok

    again = cli("store", "migrate")
    assert again.exit_code == 0 and "nothing to migrate" in again.output, again.output


def test_a_booking_whose_new_name_is_taken_is_left_and_reported(redis_client, cli):
    old_bookings(redis_client)
    redis_client.set("hwbot:{noto}:2026-12-01:booking:b1", "{}")
    result = cli("store", "migrate")
    assert result.exit_code == 1 and "left: hwbot:{noto:2026-12-01}:booking:b1" in result.output, result.output
    assert redis_client.exists("hwbot:{noto:2026-12-01}:booking:b1")  # kept for a person to look at
    assert redis_client.sismember("hwbot:{noto}:2026-12-01:slot:1000", "b1")  # the rest moved
