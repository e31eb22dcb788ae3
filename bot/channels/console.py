"""The terminal channel (`hwbot chat`): replies as text, choices numbered; type a number or the words."""

from __future__ import annotations

from typing import Callable

from bot import i18n
from bot.dialog import Ask, BookedCard, ConfirmCard, Option, Reply, SlotPicker, TermsCard, Text, plain_text
from bot.channels.session import ChatSession


def render(reply: Reply, numbered: list[Option]) -> list[str]:
    """Lines for one reply; every option gets the next number and is appended to `numbered`."""
    lines: list[str] = []

    def number(option: Option) -> str:
        numbered.append(option)
        return f"[{len(numbered)}] {option.label}"

    if isinstance(reply, SlotPicker):
        lines.append(reply.text)
        for day in reply.days:
            lines.append(f"  {day.label}")
            lines.append("    " + "  ".join(number(option) for option in day.options))
        lines += ["  " + number(option) for option in reply.options]
        return lines
    if isinstance(reply, TermsCard):
        lines += plain_text(reply).splitlines()
        lines += ["  " + number(reply.consent), "  " + number(reply.decline)]
        return lines
    if isinstance(reply, ConfirmCard):
        lines += plain_text(reply).splitlines()
        lines += ["  " + number(option) for option in (reply.book, reply.change, reply.cancel)]
        return lines
    if isinstance(reply, (Text, BookedCard)):
        return plain_text(reply).splitlines()
    if isinstance(reply, Ask):
        lines += reply.text.splitlines()
        lines += ["  " + number(option) for option in reply.options]
        return lines
    return plain_text(reply).splitlines()


def chat_loop(session: ChatSession, read: Callable[[], str | None], write: Callable[[str], None]) -> None:
    """Talk until end of input: a number taps that button, anything else is sent as typed text."""
    write("（終了するには Ctrl-D を押してください。番号を入力するとボタンを押せます）")
    exchange = session.follow()
    while True:
        numbered: list[Option] = []
        with i18n.using(exchange.lang):
            for reply in exchange.replies:
                for line in render(reply, numbered):
                    write("bot> " + line)
        line = read()
        if line is None:
            write("")
            return
        line = line.strip()
        if line.isdigit() and 1 <= int(line) <= len(numbered):
            exchange = session.send("postback", numbered[int(line) - 1].data)
        elif line:
            exchange = session.say(line)
        else:
            exchange = session.exchanges[-1]
