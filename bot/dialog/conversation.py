"""The conversation as plain data (stored as JSON), the inbound event and the outcome of a turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from bot import calendar
from bot.clock import JST
from bot.dialog.replies import Reply, StaffNotice

# `profile`: LINE's profile language of the user (a BCP 47 tag in `text`, "" when LINE gives none), asked
# after a greeting (`Outcome.ask_profile`); the dialog greets again in that language where it is another.
EventKind = Literal["text", "postback", "follow", "unfollow", "media", "profile"]


@dataclass(frozen=True)
class Inbound:
    """One thing the user did: typed text, tapped a button (postback data), followed, or sent media."""

    user: str
    kind: EventKind
    text: str = ""


@dataclass
class Conversation:
    """Everything the bot remembers about one user's conversation; only plain data."""

    user: str
    state: str = "idle"
    office: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    step: int = 0  # increases with every question asked; buttons carry it to spot stale taps
    editing: bool = False  # changing one item from the confirmation card
    fails: int = 0  # invalid answers in a row to the current question
    slot_from: str | None = None  # first day the slot picker shows (ISO date)
    consent: dict[str, str] | None = None  # terms version and time, once given
    updated: str | None = None  # ISO instant of the last event
    paused: str | None = None  # ISO instant the user was handed to staff; the bot waits until resumed
    quiet: bool = False  # while paused: staff answer in LINE Official Account Manager, the bot says nothing
    # The language the user is spoken to in (bot.i18n: ja, en, ja_easy); kept through resets.
    lang: str = "ja"
    lang_chosen: bool = False  # the user chose it (a command, a button): LINE's profile never overrides it
    profile_asked: bool = False  # LINE's profile language was asked for (once: `Outcome.ask_profile`)

    def to_json(self) -> dict[str, Any]:
        # What dataclasses.asdict gives, without its deep copy of every value (~5% of a turn's CPU):
        # the containers are copied, their values are strings.
        data = dict(self.__dict__)
        data["answers"] = dict(self.answers)
        data["history"] = list(self.history)
        data["consent"] = dict(self.consent) if self.consent is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Conversation":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def reset(self) -> None:
        """Forget the flow and every answer (personal data included); keep the user id and the language."""
        self.state = "idle"
        self.office = None
        self.answers = {}
        self.history = []
        self.editing = False
        self.fails = 0
        self.slot_from = None
        self.consent = None


@dataclass
class Outcome:
    """What one turn produced: replies to the user, notices to staff, and whether to erase the user."""

    conversation: Conversation
    replies: list[Reply] = field(default_factory=list)
    notices: list[StaffNotice] = field(default_factory=list)
    erase_user: bool = False
    # What a user waiting for staff wrote, for the handoff thread (the service keeps it):
    # ("text", the text) or ("media", the LINE message type: sticker, image, …).
    thread: list[tuple[str, str]] = field(default_factory=list)
    # Notices already in the outbox, appended by the same atomic step as a booking change (the answer
    # to a proposal): shown in transcripts and scripted dialogs, never saved again.
    sent_notices: list[StaffNotice] = field(default_factory=list)
    # The turn greeted a user whose LINE profile language was never asked: the channel asks LINE before
    # it sends the answer, and runs `Inbound(kind="profile")` instead when the profile says another
    # language (bot.staff.worker; the webhook itself never waits for LINE).
    ask_profile: bool = False


@dataclass(frozen=True)
class Claim:
    ok: bool
    already: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Moved:
    """What moving a booking to another slot did (`Bookings.move`)."""

    ok: bool
    already: bool = False
    reason: str = ""  # "full" | "gone" | "exists" | ""
    booking: dict[str, Any] | None = None  # the moved booking (its new id and slot) when ok


class Bookings(Protocol):
    """What the dialog needs from the booking store (implemented over Redis in bot.store)."""

    def booked_counts(self, office: str, slot_keys: list[str]) -> dict[str, int]: ...

    def claim(self, booking: dict[str, Any], capacity: int) -> Claim: ...

    def move(
        self, ref: str, slot: str, capacity: int, *, new_id: str, at: str, changes: dict[str, Any]
    ) -> Moved: ...

    def for_user(self, user: str) -> list[dict[str, Any]]: ...

    def get(self, ref: str) -> dict[str, Any] | None: ...

    def cancel(self, ref: str, *, at: str, by: str) -> dict[str, Any] | None: ...

    def update(self, ref: str, changes: dict[str, Any]) -> dict[str, Any] | None: ...

    def delete_personal(self, ref: str) -> None: ...

    def answer_proposal(
        self, ref: str, *, accept: bool, at: datetime, notice: StaffNotice
    ) -> dict[str, Any] | None:
        """The user's answer to the held slot `ref` staff proposed, with its staff notice, in one step:
        the booking as it now is (accepted: the moved one; declined: the request), None when stale."""
        ...


def booking_ref(booking: dict[str, Any]) -> str:
    """The store's reference of a booking: `office|slot|id`."""
    return f"{booking['office']}|{booking['slot']}|{booking['id']}"


def booking_when(booking: dict[str, Any]) -> str:
    """`11月25日(水) 10:00〜10:30` of a stored booking, in Japanese as staff read it (notices, console);
    the user reads `bot.dialog.formats.when`."""
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    end = datetime.fromisoformat(booking["end"]).astimezone(JST)
    return f"{calendar.format_day(start.date())} {start:%H:%M}〜{end:%H:%M}"


def parse_when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
