"""What the bot says on its own after a booking (reminders, terms changes, staff's answer to a
request: confirmed, declined, another time proposed, a proposal lapsed), channel-neutral.

The scheduled tasks (`bot.staff.aftercare`) render these for LINE; the buttons they carry come back
to the dialog as postbacks valid at any step (`stages.consent.RECONSENT_ACTION`, the 予約の確認 command).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot import i18n

from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.buttons import ANY, cancel_text, command_option, phone_links, postback
from bot.dialog.conversation import booking_ref
from bot.dialog.replies import Ask, Link, Option, Reply, Text
from bot.dialog.stages.consent import RECONSENT_ACTION
from bot.dialog.stages.my_bookings import booking_state
from bot.dialog.stages.proposal import ACCEPT_ACTION, DECLINE_ACTION
from bot.profiles import OfficeProfile, Offices
from bot.profiles.models import TermsChange


@contextmanager
def in_language(offices: Offices, office_id: str, lang: str | None) -> Iterator[OfficeProfile]:
    """Say a push in `lang` (the booking's language, kept from the chat): inside the block every text is
    in it, rendering included; yields the office's profile in it (`Offices.localized`)."""
    with i18n.using(lang):
        yield offices.localized(office_id, i18n.current(), T.PROFILE_NOT_TRANSLATED)


def _booking_label(profile: OfficeProfile, booking: dict[str, Any]) -> str:
    return T.BOOKING_LABEL.format(
        office=profile.short_name, when=formats.when(booking), ref=booking["id"], state=booking_state(booking)
    )


def reminder_replies(profile: OfficeProfile, booking: dict[str, Any]) -> list[Reply]:
    """The day-before reminder: date and time, video tool, the checklist, how to cancel."""
    text = T.REMINDER.format(
        booking=_booking_label(profile, booking), tool=profile.video_tool, length=profile.length_text
    )
    checklist = T.REMINDER_CHECKLIST.format(items=_checklist(profile))
    body = f"{text}\n\n{checklist}\n\n{cancel_text(profile)}"
    return [Text(body, links=phone_links(profile)), Ask(T.REMINDER_ACTIONS, (command_option("bookings"),))]


def reconsent_option(profile: OfficeProfile, booking: dict[str, Any]) -> Option:
    """「新しい規約に同意する」 for this booking and the profile's current terms version."""
    value = f"{profile.terms.version.isoformat()}|{booking_ref(booking)}"
    return Option(T.RECONSENT_CONSENT, postback(ANY, RECONSENT_ACTION, value))


def _reconsent_ask(profile: OfficeProfile) -> str:
    """What the change means for the booking, by how the office's terms change (`terms.change`)."""
    if profile.terms.change == TermsChange.reply:
        return T.RECONSENT_REPLY
    if profile.terms.change == TermsChange.notify:
        version = profile.terms.version
        notice = T.RECONSENT_NOTIFY.format(date=formats.long_date(version))
    else:
        notice = T.RECONSENT_IMPLIED
    return f"{notice}\n{T.RECONSENT_OTHER}"


def reconsent_replies(profile: OfficeProfile, booking: dict[str, Any], terms_url: str | None) -> list[Reply]:
    """The terms changed after the booking: what changed, the full text, consent, how to cancel.

    `terms_url` is absolute (a push has no page to be relative to); without it the link is left out.
    """
    text = T.RECONSENT.format(
        office=profile.short_name, version=profile.terms.version_label, booking=_booking_label(profile, booking)
    )
    links = (Link(T.RECONSENT_READ, terms_url),) if terms_url else ()
    return [
        Text(f"{text}\n\n{cancel_text(profile)}", links=links),
        Ask(_reconsent_ask(profile), (reconsent_option(profile, booking), command_option("bookings"))),
    ]


def _checklist(profile: OfficeProfile) -> str:
    return "\n".join(f"□ {item}" for item in profile.after_booking.checklist)


def confirmed_replies(profile: OfficeProfile, booking: dict[str, Any], meeting: tuple[str, ...] = ()) -> list[Reply]:
    """Staff confirmed the request: 「予約が確定しました」, date and time, tool, checklist (and the meeting details)."""
    text = T.CONFIRMED_PUSH.format(
        office=profile.short_name, when=formats.when(booking), tool=profile.video_tool,
        length=profile.length_text, ref=booking["id"],
    )
    parts = [text, *(["\n".join(meeting)] if meeting else []), T.CONFIRMED_CHECKLIST.format(items=_checklist(profile)),
             cancel_text(profile)]
    return [Text("\n\n".join(parts), links=phone_links(profile)), Ask(T.CONFIRMED_ACTIONS, (command_option("bookings"),))]


def declined_replies(profile: OfficeProfile, booking: dict[str, Any], reason: str) -> list[Reply]:
    """Staff declined the request: the reason and what to do instead (phone, email, the counter, another booking)."""
    text = T.DECLINED_PUSH.format(office=profile.short_name, when=formats.when(booking), ref=booking["id"], reason=reason)
    instead = []
    if profile.contact.phone:
        instead.append(T.DECLINED_PHONE.format(phone=formats.phone(profile)))
    if profile.contact.email:
        instead.append(T.DECLINED_EMAIL.format(email=profile.contact.email))
    instead += [T.DECLINED_COUNTER.format(office=profile.short_name), T.DECLINED_OTHER]
    body = f"{text}\n\n" + T.DECLINED_INSTEAD.format(items="\n".join(f"{T.BULLET}{item}" for item in instead))
    return [Text(body, links=phone_links(profile)), Ask(T.DECLINED_ACTIONS, (command_option("book"), command_option("bookings")))]


def proposal_replies(profile: OfficeProfile, booking: dict[str, Any], held: dict[str, Any], deadline: str) -> list[Reply]:
    """Staff propose another time for the request: the new time, until when to answer, and the two answers."""
    text = T.PROPOSAL_PUSH.format(
        office=profile.short_name, old=formats.when(booking), ref=booking["id"], when=formats.when(held), deadline=deadline
    )
    ref = booking_ref(held)
    options = (Option(T.PROPOSAL_ACCEPT, postback(ANY, ACCEPT_ACTION, ref)),
               Option(T.PROPOSAL_DECLINE, postback(ANY, DECLINE_ACTION, ref)))
    return [Text(text, links=phone_links(profile)), Ask(T.PROPOSAL_ASK, options)]


def lapsed_replies(profile: OfficeProfile, booking: dict[str, Any], held: dict[str, Any]) -> list[Reply]:
    """The user did not answer a proposal by its deadline: it is withdrawn; the request stays."""
    return [Text(T.PROPOSAL_LAPSED.format(office=profile.short_name, when=formats.when(held), ref=booking["id"]))]
