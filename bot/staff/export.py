"""Bookings for other programs: CSV for Excel (staff only) and an ICS feed with no personal data."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import icalendar

from bot.clock import JST
from bot.dialog import texts
from bot.staff import languages
from bot.profiles.models import OfficeProfile
from bot.staff.actions import CONFIRMATION_LABELS, STATUS_LABELS, confirmation_label

# (column title, booking field); nested consent fields are read by `_cell`.
CSV_COLUMNS = (
    ("予約番号", "id"), ("事業所", "office"), ("開始", "start"), ("終了", "end"), ("状態", "status"),
    ("相談内容", "topic"), ("通訳・介助者", "interpreter"), ("言語", "lang"), ("対象区分", "category"), ("お名前", "name"),
    ("求職番号", "number"), ("メールアドレス", "email"), ("電話番号", "phone"), ("予約日時", "created_at"),
    ("予約した人", "booked_by"), ("前回の予約", "follow_up_of"), ("規約の版", "consent.version"),
    ("同意日時", "consent.at"), ("事業所の確認", "office_confirmation"), ("接続情報の送信", "meeting_sent_at"),
    ("出欠の記録", "marked_at"), ("キャンセル日時", "cancelled_at"), ("キャンセルした人", "cancelled_by"),
)
ICS_PRODID = "-//hwbot//staff console//JA"
# A booked request the office has not confirmed yet: TENTATIVE in the feed, like a slot held for a proposal.
UNCONFIRMED = ("pending", "proposed", "awaiting_consent")


def feed_key(token: str, office: str) -> str:
    """The key in an office's ICS feed URL: calendar apps cannot send a bearer token."""
    return hmac.new(token.encode(), f"ics:{office}".encode(), hashlib.sha256).hexdigest()[:32]


def _cell(booking: dict[str, Any], field: str) -> str:
    value: Any = booking
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if field == "status":
        return STATUS_LABELS.get(str(value), str(value or ""))
    if field == "interpreter":
        return dict(texts.japanese("INTERPRETER_CHOICES")).get(str(value), str(value or ""))
    if field == "lang":  # 英語での対応を希望 / やさしい日本語での対応を希望 / 日本語
        return languages.wish(str(value or "")) or languages.JAPANESE
    if field == "office_confirmation":
        # As the console says it; a declined request (cancelled) still says so.
        return confirmation_label(booking) or (CONFIRMATION_LABELS["declined"] if value == "declined" else "")
    text = "" if value is None else str(value)
    # A cell Excel would run as a formula (=, +, -, @) is quoted as text (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") and field not in ("start", "end") else text


def bookings_csv(bookings: Iterable[dict[str, Any]]) -> str:
    """UTF-8 CSV text with a BOM (Excel then reads Japanese correctly), one row per booking."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([title for title, _ in CSV_COLUMNS])
    for booking in bookings:
        writer.writerow([_cell(booking, field) for _, field in CSV_COLUMNS])
    return out.getvalue()


def feed_state(booking: dict[str, Any]) -> tuple[str, str]:
    """RFC 5545 STATUS of a booking's event and the word its summary starts with ('' for none).

    A request the office has not confirmed is TENTATIVE (申込み中), so is a slot held for a proposal
    (提案中); a confirmed or not-needed booking (and a past one marked) is CONFIRMED.
    """
    status = booking.get("status", "")
    if status == "cancelled":
        return "CANCELLED", ""
    if status == "held":
        return "TENTATIVE", "提案中"
    if status == "booked" and booking.get("office_confirmation") in UNCONFIRMED:
        return "TENTATIVE", "申込み中"
    return "CONFIRMED", ""


def bookings_ics(profile: OfficeProfile, bookings: Iterable[dict[str, Any]], now: datetime,
                 link: str | None = None) -> bytes:
    """An iCalendar feed of the office's bookings: reference, times and status, nothing personal."""
    cal = icalendar.Calendar()
    cal.add("prodid", ICS_PRODID)
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{profile.short_name} オンライン職業相談")
    for booking in bookings:
        event = icalendar.Event()
        event.add("uid", f"{booking['id']}.{profile.id}@hwbot")
        event.add("dtstamp", now.astimezone(timezone.utc))
        event.add("dtstart", datetime.fromisoformat(booking["start"]).astimezone(JST))
        event.add("dtend", datetime.fromisoformat(booking["end"]).astimezone(JST))
        state, label = feed_state(booking)
        summary = f"オンライン職業相談 予約番号 {booking['id']}"
        event.add("summary", f"【{label}】{summary}" if label else summary)
        event.add("status", state)
        status = booking.get("status", "")
        lines = [f"状態: {STATUS_LABELS.get(status, status)}"]
        if confirmation := confirmation_label(booking):
            lines.append(f"事業所の確認: {confirmation}")
        if status == "held" and booking.get("held_for"):
            lines.append(f"提案先の申込み: 予約番号 {str(booking['held_for']).split('|')[-1]}")
        if link:
            lines.append(link)
        event.add("description", "\n".join(lines))
        cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()
