"""What the bot says on its own after a booking (reminders, terms changes), channel-neutral.

The scheduled tasks (`bot.staff.aftercare`) render these for LINE; the buttons they carry come back
to the dialog as postbacks valid at any step (`stages.consent.RECONSENT_ACTION`, the 予約の確認 command).
"""

from __future__ import annotations

from typing import Any

from bot.dialog import texts as T
from bot.dialog.buttons import ANY, command_option, phone_links, postback
from bot.dialog.conversation import booking_ref, booking_when
from bot.dialog.replies import Ask, Link, Option, Reply, Text
from bot.dialog.stages.consent import RECONSENT_ACTION
from bot.dialog.stages.my_bookings import booking_state
from bot.profiles import OfficeProfile
from bot.profiles.models import TermsChange


def _booking_label(profile: OfficeProfile, booking: dict[str, Any]) -> str:
    return f"{profile.short_name} {booking_when(booking)}（予約番号 {booking['id']}・{booking_state(booking)}）"


def reminder_replies(profile: OfficeProfile, booking: dict[str, Any]) -> list[Reply]:
    """The day-before reminder: date and time, video tool, the checklist, how to cancel."""
    text = T.REMINDER.format(
        booking=_booking_label(profile, booking), tool=profile.video_tool, length=profile.length_text
    )
    checklist = T.REMINDER_CHECKLIST.format(items="\n".join(f"□ {item}" for item in profile.after_booking.checklist))
    body = f"{text}\n\n{checklist}\n\n{profile.cancellation.text}"
    return [Text(body, links=phone_links(profile)), Ask(T.REMINDER_ACTIONS, (command_option("bookings"),))]


def reconsent_option(profile: OfficeProfile, booking: dict[str, Any]) -> Option:
    """「新しい規約に同意する」 for this booking and the profile's current terms version."""
    value = f"{profile.terms.version.isoformat()}|{booking_ref(booking)}"
    return Option(T.RECONSENT_CONSENT, postback(ANY, RECONSENT_ACTION, value))


def reconsent_replies(profile: OfficeProfile, booking: dict[str, Any], terms_url: str | None) -> list[Reply]:
    """The terms changed after the booking: what changed, the full text, consent, how to cancel.

    `terms_url` is absolute (a push has no page to be relative to); without it the link is left out.
    """
    text = T.RECONSENT.format(
        office=profile.short_name, version=profile.terms.version_label, booking=_booking_label(profile, booking)
    )
    links = (Link(T.RECONSENT_READ, terms_url),) if terms_url else ()
    ask = T.RECONSENT_REPLY if profile.terms.change == TermsChange.reply else T.RECONSENT_OTHER
    return [
        Text(f"{text}\n\n{profile.cancellation.text}", links=links),
        Ask(ask, (reconsent_option(profile, booking), command_option("bookings"))),
    ]
