"""The chat driver: one object that plays a user for pytest and scripted dialogs.

It is the product's chat session (`bot.channels.session`, which `hwbot chat` uses) with the test
conveniences: buttons tapped by their label, what was shown as text, transcripts, `DriverError`.

    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは"); driver.tap("ハローワーク能登"); driver.say("山田 花子")
    assert "求職番号" in driver.last_text()
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import i18n
from bot.channels.session import ChatSession, Exchange
from bot.clock import JST, Clock
from bot.dialog import Inbound, Option, Reply, SlotPicker, options_of, plain_text


class ManualClock(Clock):
    """A clock that stays at its instant until moved (scripted dialogs, tests)."""

    def __init__(self, instant: datetime):
        super().__init__()
        self.instant = instant.astimezone(JST)

    def now(self) -> datetime:
        return self.instant

    def advance(self, delta: timedelta) -> None:
        self.instant += delta


class DriverError(AssertionError):
    """A scripted action could not be done (no such button, …); the message says what was there."""


def labelled_options(reply: Reply) -> list[tuple[str, Option]]:
    """(label, option) pairs; slot buttons also answer to `12月1日(火) 10:00〜10:30`."""
    pairs = [(option.label, option) for option in options_of(reply)]
    if isinstance(reply, SlotPicker):
        pairs = [(f"{day.label} {option.label}", option) for day in reply.days for option in day.options] + pairs
    return pairs


@dataclass
class ChatDriver(ChatSession):
    """A chat session that a test or a script drives by button labels."""

    user: str = "U-tester"

    def unfollow(self) -> Exchange:
        return self.send("unfollow", action="(ブロック)")

    def sticker(self) -> Exchange:
        return self.send("media", "sticker", action="(スタンプ)")

    def _find(self, label: str, exchanges: list[Exchange]) -> Option:
        for exchange in reversed(exchanges):
            for reply in reversed(exchange.replies):
                for shown, option in labelled_options(reply):
                    if shown == label:
                        return option
        available = [shown for ex in exchanges[-1:] for r in ex.replies for shown, _ in labelled_options(r)]
        raise DriverError(f"no button {label!r}; the last buttons were: {', '.join(available) or 'none'}")

    def tap(self, label: str) -> Exchange:
        """Tap a button of the bot's last answer."""
        option = self._find(label, self.exchanges[-1:])
        return self.send("postback", option.data, action=f"[{label}]")

    def tap_earlier(self, label: str) -> Exchange:
        """Tap a button from an older answer (a stale button still on the screen)."""
        option = self._find(label, self.exchanges[:-1])
        return self.send("postback", option.data, action=f"[{label}]（前の画面のボタン）")

    def last_text(self) -> str:
        """Everything the bot's last answer showed: reply texts and button labels."""
        parts = []
        if not self.exchanges:
            return ""
        with i18n.using(self.exchanges[-1].lang):
            for reply in self.exchanges[-1].replies:
                parts.append(plain_text(reply))
                parts += [label for label, _ in labelled_options(reply)]
        return "\n".join(parts)

    def buttons(self) -> list[str]:
        if not self.exchanges:
            return []
        return [shown for reply in self.exchanges[-1].replies for shown, _ in labelled_options(reply)]

    def conversation_state(self) -> str:
        data, _ = self.service.conversations.load(self.user)
        return (data or {}).get("state", "idle")

    def bookings(self) -> list[dict]:
        return self.service.bookings.for_user(self.user)

    def transcript(self) -> str:
        lines = []
        for exchange in self.exchanges:
            lines.append(exchange.action)
            with i18n.using(exchange.lang):
                lines += self._lines(exchange)
        return "\n".join(lines)

    @staticmethod
    def _lines(exchange: Exchange) -> list[str]:
        lines = []
        for reply in exchange.replies:
            body = plain_text(reply).replace("\n", "\n    ")
            lines.append(f"  bot: {body}")
            # Slot buttons are already listed day by day in the text.
            labels = [o.label for o in reply.options] if isinstance(reply, SlotPicker) else [
                shown for shown, _ in labelled_options(reply)
            ]
            if labels:
                lines.append("    [" + "] [".join(labels) + "]")
        for notice in exchange.outcome.notices + exchange.outcome.sent_notices:
            lines.append(f"  staff: {notice.kind}: {notice.summary}")
        return lines


NOTO_USER = ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678")


def to_noto_slots(driver: ChatDriver) -> None:
    """Walk a Noto user (NOTO_USER) up to the slot list."""
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    for text in NOTO_USER:
        driver.say(text)
    for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい"):
        driver.tap(label)


def to_noto_card(driver: ChatDriver, slot: str = "11月25日(水) 10:00〜10:30") -> Option:
    """Walk a Noto user (NOTO_USER) to the confirmation card of `slot`; its 「この内容で予約する」 button."""
    to_noto_slots(driver)
    driver.tap(slot)
    driver.tap("同意する")
    pairs = [pair for reply in driver.exchanges[-1].replies for pair in labelled_options(reply)]
    return next(option for label, option in pairs if label == "この内容で予約する")


def book_at_noto(driver: ChatDriver, slot: str) -> dict:
    """Book `slot` (e.g. `11月25日(水) 10:00〜10:30`) at Noto through the whole conversation."""
    to_noto_slots(driver)
    driver.tap(slot)
    driver.tap("同意する")
    driver.tap("この内容で予約する")
    booked = [b for b in driver.bookings() if b["status"] == "booked"]
    if not booked:
        raise DriverError(f"nothing was booked; the bot said: {driver.last_text()}")
    return booked[-1]


def tap_together(service, users: list[str], data: str, *, lanes: int = 20, timeout: float = 60) -> dict:
    """Every user taps the button `data` (a postback) at once: `lanes` threads (a Redis connection
    each) of users, released together so that the taps interleave; user -> what the service answered."""
    groups = [users[lane::lanes] for lane in range(lanes)]
    start = threading.Barrier(len(groups))
    outcomes = {}

    def tap(group: list[str]) -> None:
        start.wait(timeout=30)
        for user in group:
            outcomes[user] = service.handle(Inbound(user=user, kind="postback", text=data))

    threads = [threading.Thread(target=tap, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return outcomes
