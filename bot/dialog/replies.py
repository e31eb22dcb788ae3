"""What the dialog says, in a channel-neutral form; channels decide how each kind is drawn.

LINE draws `Ask` as quick replies, `SlotPicker` as a Flex carousel, `TermsCard`, `ConfirmCard` and
`BookedCard` as Flex bubbles; the console numbers the options. Every tappable thing is an `Option`
whose `data` goes back to the dialog as a postback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.dialog import texts as T


@dataclass(frozen=True)
class Option:
    """A button: `label` is shown (≤ 20 characters), `data` comes back when it is tapped."""

    label: str
    data: str


@dataclass(frozen=True)
class Link:
    """A link the user can open: a page (`https://…`, `/offices/…`) or a phone number (`tel:`)."""

    label: str
    url: str


@dataclass(frozen=True)
class Text:
    text: str
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Ask:
    """A question with buttons (and free text accepted where `typed` says so)."""

    text: str
    options: tuple[Option, ...]
    typed: bool = False


@dataclass(frozen=True)
class SlotDay:
    label: str  # 12月1日(火)
    options: tuple[Option, ...]  # one per slot, label "10:00〜10:30"


@dataclass(frozen=True)
class SlotPicker:
    text: str
    days: tuple[SlotDay, ...]
    options: tuple[Option, ...]  # later dates, another date, other times, …


@dataclass(frozen=True)
class TermsCard:
    title: str
    version: str
    summary: str
    rules: tuple[str, ...]
    url: str
    consent: Option
    decline: Option


@dataclass(frozen=True)
class ConfirmCard:
    title: str
    rows: tuple[tuple[str, str], ...]
    book: Option
    change: Option
    cancel: Option


@dataclass(frozen=True)
class BookedCard:
    title: str
    rows: tuple[tuple[str, str], ...]
    next_steps: tuple[str, ...]
    checklist: tuple[str, ...]
    cancel_text: str
    links: tuple[Link, ...] = ()


Reply = Text | Ask | SlotPicker | TermsCard | ConfirmCard | BookedCard


@dataclass(frozen=True)
class StaffNotice:
    """Something staff must act on. `fields` carries only what staff need: no 求職番号, phone or email."""

    kind: str  # booking | cancellation | handoff | same_day_cancel | ...
    office: str
    summary: str
    fields: dict[str, str] = field(default_factory=dict)


def options_of(reply: Reply) -> list[Option]:
    """Every option a reply offers, in display order (for text matching and numbered menus)."""
    if isinstance(reply, Ask):
        return list(reply.options)
    if isinstance(reply, SlotPicker):
        return [option for day in reply.days for option in day.options] + list(reply.options)
    if isinstance(reply, TermsCard):
        return [reply.consent, reply.decline]
    if isinstance(reply, ConfirmCard):
        return [reply.book, reply.change, reply.cancel]
    return []


def plain_text(reply: Reply) -> str:
    """The reply as plain text (console, scripted dialogs, LINE altText)."""
    if isinstance(reply, Text):
        lines = [reply.text] + [f"{link.label}: {link.url}" for link in reply.links]
        return "\n".join(lines)
    if isinstance(reply, Ask):
        return reply.text
    if isinstance(reply, SlotPicker):
        lines = [reply.text]
        for day in reply.days:
            lines.append(f"{day.label} " + " ".join(option.label for option in day.options))
        return "\n".join(lines)
    if isinstance(reply, TermsCard):
        rules = "\n".join(f"{T.BULLET}{rule}" for rule in reply.rules)
        title = T.TITLE_VERSION.format(title=reply.title, version=reply.version)
        return f"{title}\n{reply.summary}\n{rules}\n" + T.TERMS_FULL_TEXT.format(url=reply.url)
    if isinstance(reply, ConfirmCard):
        rows = "\n".join(f"{label}: {value}" for label, value in reply.rows)
        return f"{reply.title}\n{rows}"
    if isinstance(reply, BookedCard):
        rows = "\n".join(f"{label}: {value}" for label, value in reply.rows)
        steps = "\n".join(f"{T.BULLET}{step}" for step in reply.next_steps)
        checklist = "\n".join(f"□ {item}" for item in reply.checklist)
        links = "\n".join(f"{link.label}: {link.url}" for link in reply.links)
        return "\n".join(
            part
            for part in (reply.title, rows, T.SECTION.format(title=T.NEXT_STEPS), steps,
                         T.SECTION.format(title=T.CHECKLIST), checklist, reply.cancel_text, links)
            if part
        )
    raise TypeError(f"unknown reply {reply!r}")
