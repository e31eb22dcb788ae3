"""Stage: the user's answer to another time staff proposed for their request (buttons of that push).

「この日時でお願いする」 (`*|pa|<held ref>`) moves the request to the held slot, confirmed, and frees the
old slot; 「都合が悪い」 (`*|pd|<held ref>`) frees the held slot and the request waits for staff again.
Both are any-time actions, even while the user waits for staff; after one the user is back where they
were. The booking change and the staff notice are one atomic step (`Bookings.answer_proposal`), so a
repeated tap, or a tap after the proposal lapsed, changes nothing and is answered kindly.
"""

from __future__ import annotations

from typing import Any

from bot import i18n
from bot.dialog import texts as T
from bot.dialog.conversation import booking_ref, booking_when, parse_when
from bot.dialog.core import Action, Stage, Turn
from bot.dialog.replies import StaffNotice, Text
from bot.dialog.stages.consent import aside_done
from bot.dialog.stages.my_bookings import booking_line

ACCEPT_ACTION = "pa"  # value: the held booking's ref
DECLINE_ACTION = "pd"  # value: the held booking's ref


def _open_proposal(turn: Turn, ref: str) -> dict[str, Any] | None:
    """The user's own held slot `ref`, still waiting for an answer before its deadline (else None)."""
    held = turn.bookings.get(ref) if ref else None
    if held is None or held.get("user") != turn.conv.user or held.get("status") != "held":
        return None
    deadline = parse_when((held.get("proposal") or {}).get("deadline"))
    return held if deadline is not None and turn.now < deadline else None


def _answer(turn: Turn, ref: str, accept: bool) -> None:
    held = _open_proposal(turn, ref)
    if held is None:
        turn.say(Text(T.PROPOSAL_STALE))
        return aside_done(turn)
    office = turn.dialog.offices.get(held["office"])
    name = office.short_name if office else held["office"]
    kind, what = ("proposal_accepted", "提案した日時で確定") if accept else ("proposal_declined", "提案した日時を辞退")
    notice = StaffNotice(
        kind=kind,
        office=held["office"],
        summary=f"{what}: {name} {booking_when(held)}",
        fields={"ref": booking_ref(held), "booking_id": held["id"], "slot": held["slot"],
                "request": held.get("held_for", ""),
                **({"lang": turn.conv.lang} if turn.conv.lang != i18n.SOURCE else {})},
    )
    result = turn.bookings.answer_proposal(ref, accept=accept, at=turn.now, notice=notice)
    if result is None:
        turn.say(Text(T.PROPOSAL_STALE))
        return aside_done(turn)
    turn.outcome.sent_notices.append(notice)
    if accept:
        turn.say(Text(T.PROPOSAL_ACCEPTED.format(booking=booking_line(turn, result))))
    else:
        turn.say(Text(T.PROPOSAL_DECLINED.format(booking=booking_line(turn, result).removeprefix(T.BULLET))))
    aside_done(turn)


STAGE = Stage(
    "proposal",
    actions={
        ACCEPT_ACTION: Action(lambda turn, ref: _answer(turn, ref, True), even_paused=True),
        DECLINE_ACTION: Action(lambda turn, ref: _answer(turn, ref, False), even_paused=True),
    },
)
