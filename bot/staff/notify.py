"""Staff notices rendered for people who must act on them: Slack Block Kit and a LINE group message.

A notice carries only what staff need: office, date and time, topic, interpreter/caregiver, Sakata's
category, the booking number, why a handoff was asked for, and a link to the console. Never the name,
求職番号, phone, email or LINE user id: fields with those names are dropped here even if a caller put
them in, and the free-text summary is shown only for kinds without their own wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.webhook import WebhookClient

from bot import calendar
from bot.clock import JST
from bot.dialog import texts
from bot.staff import languages
from bot.errors import DeliveryError
from bot.profiles import OfficeProfile


SLACK_TIMEOUT_S = 10
LINE_TEXT_MAX = 5000

# Kinds with their own wording: the title, and what staff should do (None: nothing more to say).
KINDS: dict[str, tuple[str, str | None]] = {
    "booking": ("新しい予約", None),
    "cancellation": ("予約がキャンセルされました", "枠は自動で空きに戻りました。"),
    "handoff": ("担当者への引き継ぎ依頼", "自動応答は止まっています。利用者への対応をお願いします。"),
    "handoff_closed": ("引き継ぎ終了", "利用者が自動応答に戻りました。"),
    "handoff_message": ("対応待ちの利用者から新しいメッセージ", "内容は管理画面でご確認ください（通知には載せません）。"),
    "same_day_cancel": ("当日キャンセルの希望", "当日のためチャットでは受け付けず、事務所の電話番号を案内しました。予約の取り消しをお願いします。"),
    "cancel_by_phone": ("キャンセルの希望（電話受付）", "この事務所はキャンセルを電話で受け付けるため、電話番号を案内しました。"),
    "change_by_phone": ("日時変更の希望（電話受付）", "この事務所の電話受付（または当日）のためチャットでは変更せず、電話番号を案内しました。予約はそのままです。"),
    "rescheduled": ("予約の日時が変更されました", "利用者がチャットで変更しました。変更前の枠は空きに戻り、予約番号が新しくなりました。事務所の確認が必要な予約は、新しい日時で確認をお願いします。"),
    "user_blocked": ("予約のある利用者がブロックしました", "LINEでは連絡できません。予約の扱いをご確認ください。"),
    "reconsent_needed": ("利用規約の再同意待ち", "規約の改定後、利用者の再同意を待っています。"),
    "reconsent_given": ("利用規約に再同意しました", None),
    "no_show": ("無断欠席を記録しました", None),
    "data_deleted": ("利用者データを削除しました", None),
    "confirmed": ("申込みを確定しました", "利用者にLINEで確定をお知らせしました。"),
    "declined": ("申込みをお断りしました", "枠は空きに戻り、利用者に理由とほかの方法をお知らせしました。"),
    "proposed": ("別の日時を提案しました", "提案した枠を仮押さえし、利用者の返事を待っています。"),
    "proposal_accepted": ("提案した日時で予約が確定しました", "利用者が提案を受け入れました。元の枠は空きに戻りました。"),
    "proposal_declined": ("提案した日時を利用者が断りました", "仮押さえした枠は空きに戻りました。元の申込みへの対応をお願いします。"),
    "proposal_lapsed": ("提案した日時への返事がないまま期限を過ぎました", "仮押さえした枠は空きに戻りました。元の申込みへの対応をお願いします。"),
    "request_overdue": ("確認待ちの申込みがあります", "返信の目安を過ぎました。確定・別の日時の提案・お断りのいずれかをお願いします。"),
}
CONFIRM_NOTE = "この事務所では、事務所からの確認連絡で予約が確定します。"

# Why a handoff was asked for (the dialog's reason codes).
HANDOFF_REASONS = {
    "user_request": "利用者が担当者との会話を希望",
    "stuck": "同じ質問で入力が続けて受け付けられなかった",
    "other_times": "案内時間以外の相談時間を希望",
    "ineligible": "利用条件に当てはまらず、相談を希望",
    "no_show_limit": "無断キャンセルの上限に達した",
    "user_resumed": "利用者が自動応答に戻った",
    "cancel_no_phone": "キャンセルを希望（電話受付の事務所で、案内できる電話番号がない）。管理画面からキャンセルできます",
    "change_no_phone": "日時の変更を希望（案内できる電話番号がない）。新しい日時のご相談をお願いします",
}

# Fields shown, in this order, with their Japanese labels (slot and office are shown separately).
LABELS = {
    "topic": "相談内容",
    "interpreter": "通訳・介助者",
    "category": "区分",
    "booking_id": "予約番号",
    "previous": "変更前",
    "reason": "理由",
    "since": "待ち始め",
    "terms_version": "規約の版",
    "no_shows": "無断欠席の回数",
    "lang": languages.LABEL,  # 英語での対応を希望 / やさしい日本語での対応を希望 (none: Japanese)
}
# Personal data: never rendered, whatever the notice holds.
PERSONAL = frozenset(
    {"name", "kana", "number", "job_seeker_number", "phone", "tel", "email", "mail", "user", "user_id",
     "line_user_id", "to", "address", "birthday"}
)
# Fields that are internal (used for the link or the date) or already shown.
INTERNAL = frozenset({"ref", "slot", "step", "office_name", "booking", "thread"})


@dataclass(frozen=True)
class StaffMessage:
    """A channel-neutral staff message: a title, labelled rows, a note and a console link."""

    title: str
    rows: tuple[tuple[str, str], ...]
    note: str | None = None
    link: str | None = None
    at: str | None = None  # when the notice was made, as shown to staff


def _when(slot: str, profile: OfficeProfile | None) -> str:
    """`12月1日(火) 10:00〜10:30` of a slot key `2026-12-01T10:00` (the key itself if it is not one)."""
    try:
        start = datetime.fromisoformat(slot)
    except ValueError:
        return slot
    text = f"{calendar.format_day(start.date())} {start:%H:%M}"
    if profile is not None:
        text += f"〜{start + timedelta(minutes=profile.schedule.minutes):%H:%M}"
    return text


def _instant(value: str) -> str:
    """`11月20日 10:00` of an ISO instant (the value itself if it is not one)."""
    try:
        return f"{datetime.fromisoformat(value).astimezone(JST):%-m月%-d日 %H:%M}"
    except ValueError:
        return value


def console_link(notice: dict[str, Any], profile: OfficeProfile | None, public_url: str | None) -> str | None:
    """The staff console page for this notice; None when no console URL is configured."""
    base = (profile.staff.console_url if profile else None) or public_url
    if not base:
        return None
    base = base.rstrip("/")
    thread = (notice.get("fields") or {}).get("thread")
    if notice.get("kind") in ("handoff", "handoff_message") and thread:
        return f"{base}/staff/handoffs/{quote(str(thread), safe='')}"
    if notice.get("kind") in ("handoff", "handoff_closed", "handoff_message"):
        return f"{base}/staff/handoffs"
    ref = (notice.get("fields") or {}).get("ref")
    return f"{base}/staff/booking?ref={quote(str(ref), safe='')}" if ref else None


def compose(notice: dict[str, Any], profile: OfficeProfile | None, public_url: str | None = None) -> StaffMessage:
    """What staff see for a notice (`kind`, `office`, `summary`, `fields`, `at`), whichever channel."""
    kind = str(notice.get("kind") or "")
    fields = notice.get("fields") if isinstance(notice.get("fields"), dict) else {}
    title, note = KINDS.get(kind, (None, None))
    rows: list[tuple[str, str]] = [("事務所", profile.name if profile else str(notice.get("office") or texts.japanese("NO_OFFICE")))]
    if fields.get("slot"):
        rows.append(("日時", _when(str(fields["slot"]), profile)))
    for key, label in LABELS.items():
        value = fields.get(key)
        if key == "reason" and value:
            value = HANDOFF_REASONS.get(str(value), str(value))
        if key == "since" and value:
            value = _instant(str(value))
        if key == "lang":
            value = languages.wish(str(value or ""))
        if value not in (None, ""):
            rows.append((label, str(value)))
    for key, value in fields.items():
        if key not in LABELS and key not in INTERNAL and key.lower() not in PERSONAL and value not in (None, ""):
            rows.append((key, str(value)))
    if title is None:
        title = str(notice.get("summary") or kind or "お知らせ")
    if kind == "booking" and profile is not None and profile.after_booking.confirmed_by_office:
        note = CONFIRM_NOTE
    at = notice.get("at")
    shown_at = _instant(str(at)) if at else None
    return StaffMessage(title, tuple(rows), note, console_link(notice, profile, public_url), shown_at)


def _mrkdwn(text: str) -> str:
    """Escape what Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(message: StaffMessage) -> list[dict[str, Any]]:
    """Block Kit blocks built with slack_sdk's models, so `to_dict()` validates every limit."""
    blocks: list[Block] = [HeaderBlock(text=message.title[:150])]
    cells = [MarkdownTextObject(text=f"*{_mrkdwn(label)}*\n{_mrkdwn(value)}"[:2000]) for label, value in message.rows]
    for start in range(0, len(cells), 10):  # a section holds at most 10 fields
        blocks.append(SectionBlock(fields=cells[start : start + 10]))
    if message.note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_mrkdwn(message.note))))
    if message.link:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"<{message.link}|管理画面で開く>")))
    if message.at:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"hwbot ・ {message.at}")]))
    return [block.to_dict() for block in blocks]


def plain_text(message: StaffMessage) -> str:
    """The message as plain lines (Slack's notification text, the LINE group message)."""
    lines = [f"【{message.title}】", *(f"{label}: {value}" for label, value in message.rows)]
    if message.note:
        lines.append(message.note)
    if message.link:
        lines.append(f"管理画面: {message.link}")
    return "\n".join(lines)[:LINE_TEXT_MAX]


def line_messages(message: StaffMessage) -> list[dict[str, Any]]:
    """The LINE push to an office's staff group: one text message."""
    return [{"type": "text", "text": plain_text(message)}]


class SlackSender:
    """Posts to Slack incoming webhooks; one client per URL. Raises DeliveryError naming only the status."""

    def __init__(self, timeout: int = SLACK_TIMEOUT_S):
        self.timeout = timeout
        self._clients: dict[str, WebhookClient] = {}

    def send(self, url: str, message: StaffMessage) -> None:
        client = self._clients.get(url)
        if client is None:
            # No SDK retries: a retried POST could post twice; the worker retries with backoff instead.
            client = self._clients[url] = WebhookClient(url, timeout=self.timeout, retry_handlers=[])
        try:
            response = client.send(text=plain_text(message)[:3000], blocks=slack_blocks(message))
        except Exception as exc:  # urllib errors, timeouts, a malformed URL (never echo it: it is a secret)
            raise DeliveryError(f"slack {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise DeliveryError(f"slack {response.status_code}")
