"""Figures measured in-process on a few users: Redis round trips per event and memory per record."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bot.bench.script import BENCH_NOW, BENCH_SECRET, BENCH_TOKEN, Script, bench_user, event_body
from bot.errors import BenchError
from bot.settings import load_settings

SAMPLE_USERS = 10  # users run in-process to count round trips and measure memory


def measure_sample(client: Any, profiles: Path, line: Any, script: Script) -> dict[str, int | float]:
    """Round trips per event and memory per conversation/booking, on users run in-process.

    The same code as under gunicorn (`create_app`, the webhook, `BotService`) on a client that
    counts its round trips; a fresh user per sample, spread over the slots like the load users.
    """
    from bot.clock import Clock, parse_instant
    from bot.service import BotService
    from bot.store import BookingStore, RoundTripCounter
    from bot.store.bookings import booking_key, user_index_key
    from bot.store.conversations import event_key
    from bot.web import create_app

    counter = RoundTripCounter(client)
    settings = load_settings(
        line_channel_secret=BENCH_SECRET, line_channel_access_token=BENCH_TOKEN,
        line_api_host=line.url, profiles_dir=profiles,
    )
    service = BotService(settings, client=counter.client, clock=Clock(parse_instant(BENCH_NOW)))
    root = logging.getLogger()
    quiet = logging.NullHandler()
    if not root.handlers:  # create_app's basicConfig would print every turn into the report
        root.addHandler(quiet)
    try:
        app = create_app(settings, service=service).test_client()
        events = trips = 0
        conversation_bytes: list[int] = []
        marker_bytes: list[int] = []
        booking_bytes: list[int] = []
        for index in range(SAMPLE_USERS):
            user = bench_user(index, "sample")
            plan = script.events_for(index)
            for number, (kind, text) in enumerate(plan):
                if number == len(plan) - 1:  # at the confirmation card: every answer is held
                    conversation_bytes.append(client.memory_usage(service.conversations.key(user)) or 0)
                body, signature = event_body(user, kind, text)
                before = counter.count
                response = app.post("/callback", data=body, headers={"X-Line-Signature": signature},
                                    content_type="application/json")
                if response.status_code != 200:
                    raise BenchError(f"sample: the app answered {response.status_code}")
                trips += counter.count - before
                events += 1
                event_id = json.loads(body)["events"][0]["webhookEventId"]
                marker_bytes.append(client.memory_usage(event_key(service.conversations.shard(user), event_id)) or 0)
            for booking in BookingStore(client).for_user(user):
                booking_bytes.append(
                    (client.memory_usage(booking_key(booking["office"], booking["slot"], booking["id"])) or 0)
                    + (client.memory_usage(user_index_key(user)) or 0)
                )
    finally:
        root.removeHandler(quiet)
    if len(booking_bytes) != SAMPLE_USERS:
        raise BenchError(f"sample: {len(booking_bytes)} of {SAMPLE_USERS} users booked")
    return {
        "round_trips_per_event": trips / events,
        "bytes_per_conversation": int(sum(conversation_bytes) / len(conversation_bytes)),
        "bytes_per_event_marker": int(sum(marker_bytes) / len(marker_bytes)),
        "bytes_per_booking": int(sum(booking_bytes) / len(booking_bytes)),
    }
