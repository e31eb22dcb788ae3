"""Stage: the user changes the date of their own booking in the chat (日時変更 from 予約の確認).

Where the office takes cancellations other than by phone (`my_bookings.in_chat`: Noto and Izumo) and
not on the day itself, the user picks a new slot with the booking's slot picker (its rules: deadline,
window, capacity; paging; typed dates), confirms, and the booking moves in one atomic step
(`Bookings.move`: the new slot is claimed before the old one is freed). The moved booking has a new
id (the ref names the slot); staff get `rescheduled`, and where the office confirms bookings the
confirmation is pending again. Elsewhere the office's phone number, or staff where it has none.

States (in every flow: the list can be opened from anywhere; the picker reads the office from the
conversation): `choosing_new_slot`, `confirming_move`. Answers held meanwhile: `move_ref` (the
booking) and `slot` (the new slot's key).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.conversation import booking_when
from bot.dialog.core import Action, Handlers, Stage, Turn
from bot.dialog.replies import Ask, Text
from bot.dialog.stages.my_bookings import (
    CHANGE_ACTION,
    booking_line,
    booking_notice,
    by_phone,
    in_chat,
    list_bookings,
    own_upcoming,
)
from bot.dialog.stages.slots import SLOT, live_slot, pick_slot, slot_label


def moved_id(booking_id: str, slot: str) -> str:
    """The moved booking's id: derived from the old id and the new slot, so a retried turn repeats
    the same move (which the store then answers as done already)."""
    digest = hashlib.sha256(f"{booking_id}>{slot}".encode()).digest()
    return base64.b32encode(digest).decode()[:8].replace("0", "Z").replace("1", "Y")


def ask_move(turn: Turn, ref: str) -> None:
    """日時変更 of one booking: the picker where the office allows it in the chat now, else the phone."""
    booking = own_upcoming(turn, ref)
    if booking is None:
        return
    if booking.get("office_confirmation") == "proposed":  # the office offered another time: answer that
        turn.say(Text(T.MOVE_PROPOSED))
        return turn.ask_menu_state()
    allowed, same_day = in_chat(turn, booking)
    if not allowed:
        return by_phone(turn, booking, change=True, same_day=same_day)
    if turn.state != "idle":
        turn.quit_silently()
    turn.conv.office = booking["office"]
    turn.conv.answers = {"move_ref": ref}
    turn.say(Text(T.MOVE_INTRO.format(booking=booking_line(turn, booking))))
    turn.to_choosing_new_slot()


def _choose_new_slot(turn: Turn, action: str, value: str) -> None:
    """A slot goes to the confirmation; the picker's other buttons (paging, other times) as when booking."""
    if action != "s":
        assert SLOT.choose is not None
        return SLOT.choose(turn, action, value)
    booking = turn.bookings.get(turn.conv.answers.get("move_ref", ""))
    if booking is not None and booking.get("slot") == value:
        turn.say(Text(T.MOVE_SAME_SLOT))
        return turn.reprompt()
    if pick_slot(turn, value):
        turn.to_confirming_move()


def _ask_confirm_move(turn: Turn) -> None:
    booking = turn.bookings.get(turn.conv.answers.get("move_ref", ""))
    old = formats.when(booking) if booking else ""
    text = T.MOVE_CONFIRM.format(old=old, new=slot_label(turn, turn.conv.answers.get("slot", "")))
    if turn.profile.after_booking.confirmed_by_office:
        text += "\n" + T.MOVE_PENDING
    options = (turn.option(T.MOVE_YES, "v", "yes"), turn.option(T.MOVE_OTHER, "v", "other"), turn.option(T.MOVE_NO, "v", "no"))
    turn.say(Ask(text, options))


def _choose_confirm_move(turn: Turn, action: str, value: str) -> None:
    if action != "v" or value not in ("yes", "other", "no"):
        return turn.not_understood()
    if value == "other":
        return _pick_again(turn)
    if value == "no":
        return _keep(turn)
    _move(turn)


def _pick_again(turn: Turn) -> None:
    """Back to the picker, at the day of the slot chosen before (「前の日程に戻る」 pages back)."""
    chosen = turn.conv.answers.pop("slot", "")
    turn.conv.slot_from = chosen[:10] or None
    turn.to_choosing_new_slot()


def _keep(turn: Turn) -> None:
    """戻る at the picker, or 変更しない: the booking stays as it is."""
    turn.say(Text(T.MOVE_KEPT))
    turn.ask_menu_state()


def _moved_already(turn: Turn, ref: str, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(old, new) when this very move was done by an earlier run of this turn (a save conflict or a
    redelivered event runs the turn again): it is answered, and staff told, as the first run did."""
    old = turn.bookings.get(ref)
    if old is None or old.get("user") != turn.conv.user or not key:
        return None
    new_ref = f"{old['office']}|{key}|{moved_id(old['id'], key)}"
    new = turn.bookings.get(new_ref) if old.get("moved_to") == new_ref else None
    return (old, new) if new is not None else None


def _move(turn: Turn) -> None:
    ref = turn.conv.answers.get("move_ref", "")
    key = turn.conv.answers.get("slot", "")
    done = _moved_already(turn, ref, key)
    if done is not None:
        old, new = done
        # The same move again: the store answers `already` once the first run's after-effects are done
        # and its replicas have it, so the user is told only what survives a failover.
        again = turn.bookings.move(ref, key, turn.profile.schedule.capacity, new_id=new["id"], at=turn.now.isoformat(),
                                   changes={"start": new["start"], "end": new["end"]})
        return _tell_moved(turn, old, again.booking or new)
    booking = own_upcoming(turn, ref)  # checked again: staff may have cancelled it meanwhile
    if booking is None:
        return
    allowed, same_day = in_chat(turn, booking)
    if not allowed:  # the day turned while the user was choosing: the same-day rule applies
        return by_phone(turn, booking, change=True, same_day=same_day)
    slot = live_slot(turn, key)
    if slot is None:
        turn.say(Text(T.SLOT_GONE.format(slot=slot_label(turn, key))))
        return _pick_again(turn)
    profile = turn.profile
    confirmation = "pending" if profile.after_booking.confirmed_by_office else "not_needed"
    changes: dict[str, Any] = {
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "created_at": turn.now.isoformat(),  # the office's reply time counts from the change
        "office_confirmation": confirmation,
    }
    changes.update(_reconsent_after_move(booking, confirmation))
    new_id = moved_id(booking["id"], slot.key)
    moved = turn.bookings.move(ref, slot.key, profile.schedule.capacity, new_id=new_id, at=turn.now.isoformat(), changes=changes)
    if not moved.ok and moved.reason == "full":
        turn.say(Text(T.SLOT_TAKEN.format(slot=slot_label(turn, key))))
        return _pick_again(turn)
    if not moved.ok or moved.booking is None:
        turn.say(Text(T.MOVE_GONE))
        return turn.ask_menu_state()
    _tell_moved(turn, booking, moved.booking)


def _reconsent_after_move(booking: dict[str, Any], confirmation: str) -> dict[str, Any]:
    """Consent to newer terms asked for and not given yet: the moved booking is asked again (the
    re-consent task sends a push whose button names it; the first push's button named the old one),
    and, where the booking waits for that consent, it goes on waiting and is `confirmation` after."""
    asked = dict(booking.get("reconsent") or {})
    changes: dict[str, Any] = {}
    if asked.get("version") and asked["version"] != (booking.get("consent") or {}).get("version"):
        asked.pop("version")
        asked.pop("asked_at", None)
        changes["reconsent"] = asked
    if booking.get("office_confirmation") == "awaiting_consent":
        changes["office_confirmation"] = "awaiting_consent"
        changes["reconsent"] = {**asked, "confirmation": confirmation}
    return changes


def _tell_moved(turn: Turn, old: dict[str, Any], new: dict[str, Any]) -> None:
    booking_notice(turn, "rescheduled", new, "日時変更", previous=f"{booking_when(old)}（予約番号 {old['id']}）")
    text = T.MOVED.format(booking=booking_line(turn, new))
    if turn.profile.after_booking.confirmed_by_office:
        text += "\n" + T.MOVE_PENDING
    turn.say(Text(text))
    turn.ask_menu_state()


STAGE = Stage(
    "reschedule",
    states={
        "choosing_new_slot": Handlers(ask=SLOT.ask, choose=_choose_new_slot, typed=SLOT.typed, back=_keep),
        "confirming_move": Handlers(ask=_ask_confirm_move, choose=_choose_confirm_move, back=_pick_again),
    },
    commands={"reschedule": lambda turn: list_bookings(turn, cancelling=False, changing=True)},
    actions={CHANGE_ACTION: Action(ask_move)},
)
