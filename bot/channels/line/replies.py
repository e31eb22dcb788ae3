"""A webhook event's answer as an outbox entry, and how the worker sends it.

The webhook never waits for LINE: it saves the turn and its rendered answer in one atomic step (the
answer is an outbox entry of kind `reply`) and answers LINE's request at once. `hwbot worker` sends
the entry with the event's reply token while the token is fresh and the entry is on its first
delivery; otherwise (the token expired, LINE refused the reply, the entry is a retry or was taken
over from a worker that stopped) it goes out as a push, whose `X-Line-Retry-Key` (the entry id)
makes LINE deliver it once. A reply is never sent twice: a reply token is tried once at most.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bot.channels.line.api import LineApiError, LineMessaging

KIND = "reply"
# LINE accepts a reply token for about a minute after the event; past this, the answer is pushed.
REPLY_WINDOW_S = 50.0
# LINE's loading animation shows when an answer is this late (a slow turn, or no free sender).
LOADING_AFTER_S = 0.4


def reply_entry(to: str, token: str | None, messages: list[dict[str, Any]], *, at: str,
                received: float | None = None, ask_profile: str | None = None) -> dict[str, Any]:
    """The outbox entry of an answer to `to` (a user, or a group the bot joined); `id` comes first.

    `received` is when the webhook got the event (unix seconds, the real clock: reply tokens expire
    in real time whatever the app's clock says); `at` is the app's clock, as on every entry.
    `ask_profile` (the base URL of the answer's links) marks a first greeting: before sending it, the
    worker asks LINE for the user's profile language (`bot.staff.worker`, issue 14).
    """
    extra = {} if ask_profile is None else {"profile": "1", "base": ask_profile}
    return {
        "id": uuid.uuid4().hex,
        "kind": KIND,
        "to": to,
        "token": token or "",
        "messages": messages,
        "received": f"{time.time() if received is None else received:.3f}",
        "at": at,
        **extra,
    }


def age_seconds(entry_received: str | None, now: float | None = None) -> float:
    """Seconds since the webhook received the event (infinite when unknown)."""
    try:
        received = float(entry_received or "")
    except ValueError:
        return float("inf")
    return (time.time() if now is None else now) - received


def try_reply(line: LineMessaging, token: str, messages: list[dict[str, Any]]) -> bool:
    """Send the reply once; False when LINE refused it or did not answer (the caller pushes instead)."""
    if not token:
        return False
    try:
        line.reply(token, messages)
    except LineApiError:
        return False
    return True


def show_loading(line: LineMessaging, user: str) -> None:
    """LINE's loading animation in a user's chat (best effort: cosmetic, a failure is only logged by the client)."""
    try:
        line.show_loading(user)
    except LineApiError:
        pass
