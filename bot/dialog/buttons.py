"""Buttons and what comes back from them: postback data, the command buttons, an office's phone link,
and an inbound event (a tap, typed text, media) read into `Parsed`.

A button's data is `<step>|<action>|<value>`: the step of the question that offered it (`ANY` for
buttons valid at any step), an action code of the state (or stage) that handles it, and its value.
Commands are `*|g|<command>`; typed text that is a command's label or alias is read as that command:
the Japanese ones always, and the language's own (its labels, `bot/locale/<lang>/aliases.yaml`). A
language's name (「English」, 「やさしい にほんご」, 「日本語」) typed in any language is its button
`*|lang|<code>`, and 言語 / Language (a command label, the rich menu) is `*|lang|` (which language?).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from functools import lru_cache

from bot import i18n
from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.conversation import Inbound
from bot.dialog.replies import Link, Option
from bot.profiles import OfficeProfile

ANY = "*"  # postback step marker for buttons that stay valid (menu, booking list)
LANGUAGE_ACTION = "lang"  # any-time action (`*|lang|<code>`, `*|lang|` asks which): stage `language`
LANGUAGE_COMMAND = "language"  # COMMANDS' 言語 / Language: a button `*|lang|`, not a command of the states
# Typed words that ask which language (besides COMMANDS.language in every language).
LANGUAGE_WORDS = ("言語", "げんご", "ことば", "language", "languages")


def postback(step: int | str, action: str, value: str = "") -> str:
    """Button data: `<step>|<action>|<value>` (well under LINE's 300 characters)."""
    return f"{step}|{action}|{value}"


def command_option(command: str) -> Option:
    if command == LANGUAGE_COMMAND:
        return Option(T.COMMANDS[command], postback(ANY, LANGUAGE_ACTION, ""))
    return Option(T.COMMANDS[command], postback(ANY, "g", command))


def language_options(current: str | None = None) -> tuple[Option, ...]:
    """A button per language, each named in itself, the `current` one left out."""
    return tuple(
        Option(i18n.NAMES[lang], postback(ANY, LANGUAGE_ACTION, lang)) for lang in i18n.LANGUAGES if lang != current
    )


def phone_links(office: OfficeProfile | None) -> tuple[Link, ...]:
    """The office's phone number as a `tel:` link; none when the office publishes no number."""
    if office is None or not office.contact.phone:
        return ()
    return (Link(T.CALL_OFFICE.format(office=office.short_name, phone=formats.phone(office)), f"tel:{office.contact.phone}"),)


def email_text(office: OfficeProfile | None, *, apply: bool = False) -> str:
    """A line (with its leading newline) giving the office's email address; "" when it publishes none.

    `apply`: the address to book by (with the subject the office asks for, Noto's 「オンライン相談申込」).
    """
    if office is None or not office.contact.email:
        return ""
    email = office.contact.email
    if apply:
        subject = T.EMAIL_SUBJECT.format(subject=office.contact.email_subject) if office.contact.email_subject else ""
        return "\n" + T.EMAIL_APPLY.format(email=email, subject=subject)
    return "\n" + T.EMAIL_CONTACT.format(office=office.short_name, email=email)


def cancel_text(office: OfficeProfile) -> str:
    """How to cancel at the office, with its email address when it takes cancellations by email."""
    text = office.cancellation.text
    if office.contact.email and any(channel.value == "email" for channel in office.cancellation.channels):
        text += "\n" + T.EMAIL_CANCEL.format(email=office.contact.email)
    return text


def fold(text: str) -> str:
    """Compare typed text with labels: NFKC, no spaces, lower case."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


@lru_cache(maxsize=None)
def folded_commands(lang: str) -> dict[str, str]:
    """Typed text (folded) -> command in `lang`: the Japanese aliases and labels, then the language's own
    aliases and labels (which win where the same words mean another command)."""
    table = {fold(alias): command for alias, command in T.japanese("COMMAND_ALIASES").items()}
    table.update({fold(label): command for command, label in T.japanese("COMMANDS").items()})
    if lang != i18n.SOURCE:
        table.update({fold(phrase): command for command, phrases in i18n.aliases(lang).items() for phrase in phrases})
        table.update({fold(i18n.text(lang, f"COMMANDS.{command}")): command for command in T.japanese("COMMANDS")})
    table.update({fold(word): LANGUAGE_COMMAND for word in LANGUAGE_WORDS})
    return {text: command for text, command in table.items() if text}


i18n.on_reload(folded_commands.cache_clear)


@dataclass(frozen=True)
class Parsed:
    """An inbound event reduced to what the states need."""

    kind: str  # text | choice | command | media
    text: str = ""
    step: str = ""
    action: str = ""
    value: str = ""


def parse(event: Inbound) -> Parsed:
    if event.kind == "media":
        return Parsed("media", text=event.text)  # the message type (sticker, image, …)
    if event.kind == "postback":
        parts = event.text.split("|", 2)
        if len(parts) == 3:
            step, action, value = parts
            if action == "g":
                return Parsed("command", value=value, step=step)
            return Parsed("choice", step=step, action=action, value=value)
        return Parsed("text", text=event.text)
    folded = fold(event.text) if len(event.text) <= 40 else ""
    lang = i18n.typed_language(event.text) if folded else None
    if lang is not None:
        return Parsed("choice", step=ANY, action=LANGUAGE_ACTION, value=lang)
    command = folded_commands(i18n.current()).get(folded)
    if command == LANGUAGE_COMMAND:
        return Parsed("choice", step=ANY, action=LANGUAGE_ACTION, value="")
    if command is not None:
        return Parsed("command", value=command, step=ANY)
    return Parsed("text", text=event.text)
