"""The dialog's replies as LINE message objects: plain JSON-ready dicts, camelCase as in the Messaging API.

Pure functions: no network, no flask, no SDK models (the API client builds those from these dicts).

    Text         a text message; its links follow as a Flex bubble of uri buttons (`tel:` included)
    Ask          a text message whose options become quick replies
    SlotPicker   a Flex carousel (a bubble per day, a postback button per slot), then its text
    TermsCard    a Flex bubble: title, version, summary, rules, 全文を読む, consent and decline
    ConfirmCard  a Flex bubble: rows of label and value, then book, change and cancel
    BookedCard   a Flex bubble: rows, next steps, checklist, cancellation, phone buttons

LINE shows quick replies on the last message of a reply only, so the options of the last reply that has
any go there; an earlier question keeps its buttons in a small bubble. One reply carries at most 5
messages: neighbouring texts are merged first, then earlier cards become text; the last reply's
messages and buttons always stay. Lengths are counted in UTF-16 code units, which is never less than
LINE's character count, so a text that fits here fits there. `bot.testing.line_spec` checks the result
against LINE's OpenAPI spec and its documented limits, independently of the constants below.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.dialog import texts as T
from bot.dialog.replies import (
    Ask,
    BookedCard,
    ConfirmCard,
    Link,
    Option,
    Reply,
    SlotDay,
    SlotPicker,
    TermsCard,
    Text,
    plain_text,
)

log = logging.getLogger("hwbot.line")

MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_ALT_TEXT = 400
MAX_LABEL = 20
MAX_DISPLAY_TEXT = 300
MAX_DATA = 300
MAX_URI = 1000
MAX_QUICK_REPLIES = 13
MAX_BUBBLES = 12
ELLIPSIS = "…"
URI_SCHEMES = ("https:", "http:", "tel:", "line:")  # what a LINE uri action may open
COMMAND = re.compile(r"^[^|]*\|g\|")  # postback data of commands (戻る, やめる, …): "*|g|back"
REGIONAL_INDICATORS = "".join(chr(code) for code in range(0x1F1E6, 0x1F200))  # two make a flag

MUTED = "#888888"

Message = dict[str, Any]
Component = dict[str, Any]


# -- lengths ------------------------------------------------------------------------------------------


def length(text: str) -> int:
    """The length LINE may count: UTF-16 code units (a character outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def _attaches(char: str) -> bool:
    """True for a character that belongs to the one before it (combining mark, variation selector, ZWJ, skin tone)."""
    return unicodedata.category(char) in ("Mn", "Me", "Mc") or char == "\u200d" or 0x1F3FB <= ord(char) <= 0x1F3FF


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` with "…" at the end, never inside a character sequence that belongs together."""
    if length(text) <= limit:
        return text
    end, used = 0, 0
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit - 1:
            break
        end += 1
    while end > 0 and (_attaches(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    indicators = len(text[:end]) - len(text[:end].rstrip(REGIONAL_INDICATORS))
    if indicators % 2:
        end -= 1  # never split a flag (a pair of regional indicators)
    return text[:end].rstrip() + ELLIPSIS


def label(text: str) -> str:
    """A button label LINE accepts (at most 20 characters)."""
    return clip(text, MAX_LABEL)


def absolute(url: str, base_url: str) -> str | None:
    """`url` as LINE can open it (a path gets `base_url` in front); None when it cannot be opened."""
    if url.startswith("/") and base_url:
        url = base_url.rstrip("/") + url
    if not url.lower().startswith(URI_SCHEMES) or length(url) > MAX_URI or any(c.isspace() for c in url):
        log.warning("line_link_dropped reason=%s", "too_long" if length(url) > MAX_URI else "not_absolute")
        return None
    return url


# -- actions and quick replies --------------------------------------------------------------------------


def postback(option: Option, display: str | None = None) -> dict[str, Any] | None:
    """A postback action; None when its data is over LINE's limit (LINE would refuse the whole reply)."""
    if length(option.data) > MAX_DATA:
        log.warning("line_button_dropped reason=data_too_long")
        return None
    return {
        "type": "postback",
        "label": label(option.label),
        "data": option.data,
        "displayText": clip(display or option.label, MAX_DISPLAY_TEXT),
    }


def uri_action(text: str, uri: str) -> dict[str, Any]:
    """A uri action (a page, or `tel:` to call)."""
    return {"type": "uri", "label": label(text), "uri": uri}


def is_command(option: Option) -> bool:
    """True for the dialog's commands (戻る, やめる, 最初から…), which stay valid on any step."""
    return bool(COMMAND.match(option.data))


def pick_quick(options: Sequence[Option]) -> list[Option]:
    """At most 13 options in their order; when there are more, commands are kept, at the end."""
    if len(options) <= MAX_QUICK_REPLIES:
        return list(options)
    commands = [option for option in options if is_command(option)][-MAX_QUICK_REPLIES:]
    others = [option for option in options if not is_command(option)]
    return others[: MAX_QUICK_REPLIES - len(commands)] + commands


def quick_reply(options: Sequence[Option]) -> dict[str, Any] | None:
    """LINE's quickReply object for some options; None when there is nothing to offer."""
    actions = [postback(option) for option in pick_quick(options)]
    items = [{"type": "action", "action": action} for action in actions if action]
    return {"items": items} if items else None


def quick_options(reply: Reply) -> list[Option]:
    """The options a reply offers as quick replies (slot buttons stay in their carousel)."""
    if isinstance(reply, (Ask, SlotPicker)):
        return list(reply.options)
    if isinstance(reply, TermsCard):
        return [reply.consent, reply.decline]
    if isinstance(reply, ConfirmCard):
        return [reply.book, reply.change, reply.cancel]
    return []


# -- messages and Flex building blocks --------------------------------------------------------------------


def text_message(text: str) -> Message:
    """A text message, cut to LINE's 5,000 characters."""
    return {"type": "text", "text": clip(text, MAX_TEXT) if text.strip() else ELLIPSIS}


def flex_message(alt_text: str, contents: dict[str, Any]) -> Message:
    """A Flex message; `altText` is what notifications and the chat list show (at most 400 characters)."""
    return {"type": "flex", "altText": clip(alt_text.strip(), MAX_ALT_TEXT) or ELLIPSIS, "contents": contents}


def flex_text(text: str, **style: Any) -> Component | None:
    """A wrapping Flex text; None for an empty one (LINE refuses empty texts)."""
    return {"type": "text", "text": text, "wrap": True, **style} if text.strip() else None


def box(contents: Iterable[Component | None], layout: str = "vertical", **style: Any) -> Component | None:
    """A Flex box of the components that exist; None when none do."""
    present = [component for component in contents if component]
    return {"type": "box", "layout": layout, "contents": present, **style} if present else None


def button(action: dict[str, Any] | None, style: str = "secondary") -> Component | None:
    """A small Flex button; None without an action."""
    return {"type": "button", "action": action, "style": style, "height": "sm"} if action else None


def bubble(body: Component | None, footer: Component | None = None, header: Component | None = None, **style: Any) -> dict[str, Any]:
    """A Flex bubble of the blocks that exist."""
    blocks = {"header": header, "body": body, "footer": footer}
    return {"type": "bubble", **style, **{name: block for name, block in blocks.items() if block}}


def rows_box(rows: Sequence[tuple[str, str]]) -> Component | None:
    """Label and value pairs, one line each."""
    lines = [
        box(
            [flex_text(name, size="sm", color=MUTED, flex=2), flex_text(value or "-", size="sm", flex=5)],
            layout="baseline",
            spacing="sm",
        )
        for name, value in rows
    ]
    return box(lines, spacing="sm", margin="lg")


def section(title: str, lines: Iterable[str], mark: str) -> Component | None:
    """A small heading and its lines; None without lines."""
    items = [flex_text(f"{mark}{line}", size="sm") for line in lines]
    if not any(items):
        return None
    return box([flex_text(title, size="sm", weight="bold"), *items], spacing="xs", margin="lg")


# -- one builder per reply kind -----------------------------------------------------------------------


def link_label(link: Link) -> str:
    """A link's button label: its own when short enough; a phone link says the number instead."""
    if length(link.label) <= MAX_LABEL:
        return link.label
    if link.url.startswith("tel:"):
        for candidate in (T.CALL_NUMBER.format(phone=link.url[4:]), T.CALL):
            if length(candidate) <= MAX_LABEL:
                return candidate
    return label(link.label)


def link_buttons(links: Iterable[Link], base_url: str) -> list[Component | None]:
    """A uri button per link that can be opened; a shortened label is shown in full above its button."""
    components: list[Component | None] = []
    for link in links:
        uri = absolute(link.url, base_url)
        if uri is None:
            continue
        short = link_label(link)
        if short != link.label:
            components.append(flex_text(link.label, size="sm", color=MUTED))
        components.append(button(uri_action(short, uri), style="link"))
    return components


def links_bubble(text: str, links: Sequence[Link], base_url: str) -> Message | None:
    """The buttons of a text's links, in a bubble after it; None when no link can be opened."""
    body = box(link_buttons(links, base_url), spacing="sm")
    return flex_message(text or "\n".join(link.label for link in links), bubble(body)) if body else None


def ask_bubble(text: str, options: Sequence[Option]) -> Message:
    """A question with postback buttons (for a question that is not the last one: quick replies go to that)."""
    body = box([flex_text(text, size="sm")])
    footer = box([button(postback(option)) for option in options], spacing="sm")
    return flex_message(text, bubble(body, footer))


def slot_bubble(day: SlotDay) -> dict[str, Any] | None:
    """One day of the slot picker: the day on top, a button per slot; None for a day without slots."""
    buttons = box([button(postback(option, f"{day.label} {option.label}")) for option in day.options], spacing="sm")
    if buttons is None:
        return None
    return bubble(buttons, header=box([flex_text(day.label, weight="bold")]), size="kilo")


def slot_carousel(picker: SlotPicker) -> Message | None:
    """The slot picker's days as a Flex carousel (at most 12 bubbles); None without slots."""
    bubbles = [found for day in picker.days if (found := slot_bubble(day))][:MAX_BUBBLES]
    if not bubbles:
        return None
    return flex_message(plain_text(picker), {"type": "carousel", "contents": bubbles})


def terms_bubble(card: TermsCard, base_url: str) -> Message:
    """The terms: title, version, summary, the rules in small text, the full text, consent and decline."""
    rules = box([flex_text(f"{T.BULLET}{rule}", size="xs") for rule in card.rules], spacing="xs", margin="lg")
    body = box(
        [
            flex_text(card.title, weight="bold", size="lg"),
            flex_text(card.version, size="xs", color=MUTED),
            flex_text(card.summary, size="sm", margin="md"),
            rules,
        ]
    )
    uri = absolute(card.url, base_url)
    footer = box(
        [
            button(uri_action(T.READ_TERMS, uri), style="link") if uri else None,
            button(postback(card.consent), style="primary"),
            button(postback(card.decline)),
        ],
        spacing="sm",
    )
    title = T.TITLE_VERSION.format(title=card.title, version=card.version)
    return flex_message(f"{title}\n{card.summary}", bubble(body, footer))


def confirm_bubble(card: ConfirmCard) -> Message:
    """The booking to confirm: rows of label and value, then book (primary), change and cancel."""
    body = box([flex_text(card.title, weight="bold", size="lg"), rows_box(card.rows)])
    footer = box(
        [
            button(postback(card.book), style="primary"),
            button(postback(card.change)),
            button(postback(card.cancel), style="link"),
        ],
        spacing="sm",
    )
    return flex_message(plain_text(card), bubble(body, footer))


def booked_bubble(card: BookedCard, base_url: str) -> Message:
    """The booking made: rows, next steps, checklist, how to cancel, and phone buttons."""
    body = box(
        [
            flex_text(card.title, weight="bold", size="lg"),
            rows_box(card.rows),
            section(T.NEXT_STEPS, card.next_steps, T.BULLET),
            section(T.CHECKLIST, card.checklist, "□ "),
            flex_text(card.cancel_text, size="xs", color=MUTED, margin="lg"),
        ]
    )
    footer = box(link_buttons(card.links, base_url), spacing="sm")
    return flex_message(plain_text(card), bubble(body, footer))


# -- a turn's replies as at most 5 messages ------------------------------------------------------------


@dataclass
class Part:
    """One message being assembled. `fallback` is the text a Flex message becomes when there is no room;
    None marks a plain text message, which may be merged with its neighbours."""

    message: Message
    reply: int
    fallback: str | None = None


def prompt_part(text: str, options: Sequence[Option], index: int, owner: bool) -> Part:
    """A question's text: a text message when its options are the quick replies, else a bubble with buttons
    (a question that is not the last, or one with more options than 13 quick replies can hold)."""
    if not options or (owner and len(options) <= MAX_QUICK_REPLIES):
        return Part(text_message(text), index)
    return Part(ask_bubble(text, options), index, fallback=text)


def parts_of(reply: Reply, index: int, owner: bool, base_url: str) -> list[Part]:
    """The messages one reply is drawn as; quick replies are added afterwards, to the final message."""
    if isinstance(reply, Text):
        parts = [Part(text_message(reply.text), index)] if reply.text.strip() else []
        links = links_bubble(reply.text, reply.links, base_url)
        lines = "\n".join(f"{link.label}: {absolute(link.url, base_url) or link.url}" for link in reply.links)
        return parts + ([Part(links, index, fallback=lines)] if links else [])
    if isinstance(reply, Ask):
        return [prompt_part(reply.text, reply.options, index, owner)]
    if isinstance(reply, SlotPicker):
        carousel = slot_carousel(reply)
        days = "\n".join(f"{day.label} " + " ".join(option.label for option in day.options) for day in reply.days)
        parts = [Part(carousel, index, fallback=days)] if carousel else []
        return parts + [prompt_part(reply.text, reply.options, index, owner)]
    if isinstance(reply, TermsCard):
        return [Part(terms_bubble(reply, base_url), index, fallback=plain_text(reply))]
    if isinstance(reply, ConfirmCard):
        return [Part(confirm_bubble(reply), index, fallback=plain_text(reply))]
    if isinstance(reply, BookedCard):
        return [Part(booked_bubble(reply, base_url), index, fallback=plain_text(reply))]
    raise TypeError(f"unknown reply {reply!r}")


def merge_texts(parts: list[Part], strict: bool = True) -> list[Part] | None:
    """The first two neighbouring text messages as one (a blank line between); None when there are none."""
    for i, (first, second) in enumerate(zip(parts, parts[1:])):
        if first.fallback is None and second.fallback is None:
            joined = first.message["text"] + "\n\n" + second.message["text"]
            if strict and length(joined) > MAX_TEXT:
                continue
            return parts[:i] + [Part(text_message(joined), second.reply)] + parts[i + 2 :]
    return None


def flatten_card(parts: list[Part], keep: set[int]) -> list[Part] | None:
    """The earliest Flex message of a reply not in `keep`, as text; None when there is none."""
    for i, part in enumerate(parts):
        if part.fallback is not None and part.reply not in keep:
            text = [Part(text_message(part.fallback), part.reply)] if part.fallback.strip() else []
            return parts[:i] + text + parts[i + 1 :]
    return None


def fit(parts: list[Part], keep: set[int]) -> list[Part]:
    """At most 5 messages, changing as little as needed; the replies in `keep` keep their cards."""
    while len(parts) > MAX_MESSAGES:
        smaller = merge_texts(parts) or flatten_card(parts, keep) or merge_texts(parts, strict=False)
        if smaller is None:
            log.warning("line_messages_dropped count=%d", len(parts) - MAX_MESSAGES)
            return parts[-MAX_MESSAGES:]
        parts = smaller
    return parts


def to_messages(replies: list[Reply], *, base_url: str = "") -> list[Message]:
    """One turn's replies as LINE message objects: at most 5, the quick replies on the final one."""
    owner = next((i for i in range(len(replies) - 1, -1, -1) if quick_options(replies[i])), None)
    parts = [part for i, reply in enumerate(replies) for part in parts_of(reply, i, i == owner, base_url)]
    keep = {len(replies) - 1} | ({owner} if owner is not None else set())
    messages = [part.message for part in fit(parts, keep)]
    quick = quick_reply(quick_options(replies[owner])) if owner is not None else None
    if quick and messages:
        messages[-1]["quickReply"] = quick
    return messages
