"""Stage: the terms and consent, the confirmation card, changing one of its items, and booking."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from bot import i18n
from bot.dialog import texts as T
from bot.dialog.buttons import ANY, cancel_text, command_option, phone_links, postback
from bot.dialog.conversation import booking_ref, booking_when
from bot.dialog.core import Handlers, Stage, Step, Turn
from bot.dialog.replies import Ask, BookedCard, ConfirmCard, Option, TermsCard, Text
from bot.dialog.stages.categories import category
from bot.dialog.stages.consent import REMINDER_ACTION
from bot.dialog.stages.my_bookings import booking_line, booking_state, list_bookings, upcoming
from bot.dialog.stages.slots import live_slot, slot_label
from bot.profiles import OfficeProfile

# The card's items that can be changed, in the order they are offered: (state, item).
CHANGEABLE = (
    ("asking_name", "name"),
    ("asking_number", "number"),
    ("asking_email", "email"),
    ("asking_phone", "phone"),
    ("choosing_topic", "topic"),
    ("asking_interpreter", "interpreter"),
    ("choosing_slot", "slot"),
)
PERSONAL_ROWS = ("name", "number", "email", "phone")  # not on the booked card


def _ask_terms(turn: Turn) -> None:
    terms = turn.profile.terms
    lang = i18n.current()
    # Our summary in another language says that the official Japanese text is the one that counts.
    summary = terms.summary if lang == i18n.SOURCE else f"{terms.summary}\n{T.TERMS_OFFICIAL}"
    url = turn.dialog.terms_url(turn.profile.id) + ("" if lang == i18n.SOURCE else f"?lang={lang}")
    turn.say(Text(T.TERMS_INTRO))
    turn.say(
        TermsCard(
            title=terms.title,
            version=terms.version_label,
            summary=summary,
            rules=tuple(rule.text for rule in terms.rules),
            url=url,
            consent=turn.option(T.CONSENT, "t", "consent"),
            decline=turn.option(T.DECLINE, "t", "decline"),
        )
    )


def _choose_terms(turn: Turn, action: str, value: str) -> None:
    if action == "t" and value == "consent":
        terms = turn.profile.terms
        # The consent records the language the user read the terms in (the full text is Japanese).
        turn.conv.consent = {"version": terms.version.isoformat(), "at": turn.now.isoformat(), "terms_lang": turn.conv.lang}
        return turn.go("advance")
    if action == "t" and value == "decline":
        turn.conv.reset()
        turn.to_idle()
        turn.say(Text(T.DECLINED))
        return turn.ask_menu()
    turn.not_understood()


def _keyed_rows(turn: Turn) -> list[tuple[str, str]]:
    """The card's rows as (ITEM_LABELS key, value)."""
    answers = turn.conv.answers
    profile = turn.profile
    rows = [("office", profile.short_name)]
    if "slot" in answers:
        rows.append(("slot", slot_label(turn, answers["slot"])))
    rows.append(("method", T.METHOD.format(tool=profile.video_tool, length=profile.length_text)))
    for key in ("name", "number", "email", "phone"):
        if key in answers:
            rows.append((key, answers[key]))
    if "topic" in answers:
        rows.append(("topic", topic_label(turn, answers["topic"])))
    if "interpreter" in answers:
        rows.append(("interpreter", dict(T.INTERPRETER_CHOICES)[answers["interpreter"]]))
    chosen = category(turn, answers.get("category", ""))
    if chosen is not None:
        rows.append(("category", chosen.label))
    return rows


def topic_label(turn: Turn, topic: str) -> str:
    """A stored topic (the profile's Japanese words) as the user reads it."""
    japanese = turn.dialog.offices[turn.profile.id].identify.topics
    return turn.profile.identify.topics[japanese.index(topic)] if topic in japanese else topic


def _rows(turn: Turn, leave_out: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    labels = T.ITEM_LABELS
    return [(labels[key], value) for key, value in _keyed_rows(turn) if key not in leave_out]


def _ask_card(turn: Turn) -> None:
    turn.conv.editing = False
    turn.say(
        ConfirmCard(
            title=T.CONFIRM_TITLE,
            rows=tuple(_rows(turn)),
            book=turn.option(T.BOOK, "k", "book"),
            change=turn.option(T.CHANGE, "k", "change"),
            cancel=turn.option(T.QUIT_LABEL, "k", "quit"),
        )
    )


def _choose_on_card(turn: Turn, action: str, value: str) -> None:
    if action == "k" and value == "book":
        return _book(turn)
    if action == "k" and value == "change":
        return turn.go("change")
    if action == "k" and value == "quit":
        return turn.command("quit")
    turn.not_understood()


def _ask_change(turn: Turn) -> None:
    steps = turn.flow.steps
    options = [turn.option(T.ITEM_LABELS[key], "e", state) for state, key in CHANGEABLE if state in steps]
    turn.say(Ask(T.CHOOSE_CHANGE, tuple(options + [command_option("back")])))


def _choose_change(turn: Turn, action: str, value: str) -> None:
    if action != "e" or value not in turn.flow.steps:
        return turn.not_understood()
    turn.conv.editing = True
    getattr(turn, f"to_{value}")()


def _booking_id(turn: Turn, slot: str) -> str:
    """A short reference, stable for a retried turn (same user, slot and step)."""
    digest = hashlib.sha256(f"{turn.conv.user}|{slot}|{turn.conv.step}".encode()).digest()
    return base64.b32encode(digest).decode()[:8].replace("0", "Z").replace("1", "Y")


def _booked_earlier(turn: Turn, slot_key: str, booking_id: str) -> dict[str, Any] | None:
    """This very booking, when an earlier run of this turn made it (the turn's save conflicted, or the
    webhook answered 503 after the claim: Redis unreachable, replicas late, and LINE redelivered)."""
    booking = turn.bookings.get(f"{turn.profile.id}|{slot_key}|{booking_id}") if slot_key else None
    if booking is None or booking.get("user") != turn.conv.user or booking.get("status") != "booked":
        return None
    return booking


def _book(turn: Turn) -> None:
    profile = turn.profile
    answers = turn.conv.answers
    slot_key = answers.get("slot", "")
    booking_id = _booking_id(turn, slot_key)
    earlier = _booked_earlier(turn, slot_key, booking_id)
    if earlier is not None:
        # Claimed again (answered `already`, once its after-effects and replicas are done), and told
        # as the first run would have: its own slot and its own place among the upcoming ones.
        return _booked(turn, earlier)
    slot = live_slot(turn, slot_key)
    held = upcoming(turn, profile.id)
    if len(held) >= profile.booking.max_upcoming:
        listing = "\n".join(booking_line(turn, b) for b in held)
        turn.say(Text(T.ALREADY_BOOKED.format(office=profile.short_name, bookings=listing)))
        turn.quit_silently()
        return list_bookings(turn, cancelling=True, intro=False)
    if slot is None or turn.conv.consent is None:
        return _slot_lost(turn, slot_key, taken=False)
    booking: dict[str, Any] = {
        "id": booking_id,
        "office": profile.id,
        "slot": slot_key,
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "user": turn.conv.user,
        "status": "booked",
        "office_confirmation": "pending" if profile.after_booking.confirmed_by_office else "not_needed",
        "created_at": turn.now.isoformat(),
        "lang": turn.conv.lang,  # pushes and reminders days later speak it
        "consent": dict(turn.conv.consent),
        "answers": {k: v for k, v in answers.items() if k.startswith("q_")},
    }
    for key in ("name", "number", "email", "phone", "topic", "interpreter", "category", "category_detail"):
        if key in answers:
            booking[key] = answers[key]
    _booked(turn, booking)


def _booked(turn: Turn, booking: dict[str, Any]) -> None:
    """Claim `booking` (new, or made by an earlier run of this turn) and tell the user and staff."""
    profile = turn.profile
    answers = turn.conv.answers
    slot_key = booking["slot"]
    claim = turn.bookings.claim(booking, profile.schedule.capacity)
    if not claim.ok:
        return _slot_lost(turn, slot_key, taken=True)
    rows = [(T.ITEM_LABELS["ref"], booking["id"]), (T.STATE_LABEL, booking_state(booking))]
    rows += _rows(turn, leave_out=PERSONAL_ROWS)
    chosen = category(turn, answers.get("category", ""), japanese=True)
    turn.notify(
        "booking",
        f"新しい予約: {turn.dialog.offices[profile.id].short_name} {booking_when(booking)}",
        ref=booking_ref(booking),
        booking_id=booking["id"],
        slot=slot_key,
        topic=answers.get("topic", ""),
        interpreter=dict(T.japanese("INTERPRETER_CHOICES")).get(answers.get("interpreter", ""), ""),
        category=chosen.label if chosen else "",
    )
    confirmed = not profile.after_booking.confirmed_by_office
    steps = list(profile.after_booking.steps) + ([] if confirmed else [T.BOOKED_PENDING])
    turn.conv.reset()
    turn.conv.office = profile.id
    turn.finish()
    turn.say(
        BookedCard(
            title=T.BOOKED_TITLE_CONFIRMED if confirmed else T.BOOKED_TITLE,
            rows=tuple(rows),
            next_steps=tuple(steps),
            checklist=tuple(profile.after_booking.checklist),
            cancel_text=cancel_text(profile),
            links=phone_links(profile),
        )
    )
    if turn.dialog.reminders == "opt_in":
        turn.say(Text(T.REMINDER_OFFER))
        return turn.ask_menu(Option(T.REMINDER_OPT_IN, postback(ANY, REMINDER_ACTION, booking_ref(booking))))
    turn.ask_menu()


def _slot_lost(turn: Turn, slot_key: str, taken: bool) -> None:
    template = T.SLOT_TAKEN if taken else T.SLOT_GONE
    turn.say(Text(template.format(slot=slot_label(turn, slot_key))))
    turn.conv.answers.pop("slot", None)
    turn.conv.editing = True  # the terms were read: after a new slot, back to the card
    turn.to_choosing_slot()


def _steps(profile: OfficeProfile) -> list[Step]:
    return [
        Step("reading_terms", Handlers(ask=_ask_terms, choose=_choose_terms)),
        Step("confirming", Handlers(ask=_ask_card, choose=_choose_on_card)),
    ]


def _transitions(steps: list[Step]) -> list[dict[str, Any]]:
    return [
        {"trigger": "change", "source": "confirming", "dest": "choosing_change"},
        {"trigger": "finish", "source": "confirming", "dest": "idle"},
    ]


STAGE = Stage(
    "booking",
    steps=_steps,
    office_states={"choosing_change": Handlers(ask=_ask_change, choose=_choose_change, back=lambda turn: turn.to_confirming())},
    transitions=_transitions,
)
