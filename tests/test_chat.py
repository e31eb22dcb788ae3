"""The terminal channel (`hwbot chat`): numbered buttons, typed answers, a booking made end to end."""

from __future__ import annotations

import re

from click.testing import CliRunner

from bot.channels.console import chat_loop, render
from bot.channels.session import ChatSession
from bot.cli import main
from bot.service import BotService
from bot.settings import load_settings
from bot.testing.driver import NOTO_USER

NOW = "2026-11-20T10:00:00+09:00"
FIRST_SLOT = "first slot"


class Terminal:
    """Someone at the terminal: types each line, or the number shown beside a button's label."""

    def __init__(self, lines: list[str]):
        self.todo = list(lines)
        self.screen: list[str] = []
        self.seen = 0  # screen lines already read before the last answer

    def write(self, line: str) -> None:
        self.screen.append(line)

    def read(self) -> str | None:
        shown, self.seen = self.screen[self.seen :], len(self.screen)
        if not self.todo:
            return None
        line = self.todo.pop(0)
        if line == FIRST_SLOT:  # slot buttons are listed day by day, several on a line
            return next(re.search(r"\[(\d+)\]", s).group(1) for s in shown if s.startswith("bot>     ["))
        if line.startswith("[") and line.endswith("]"):
            label = re.escape(line[1:-1])
            found = [m.group(1) for s in shown if (m := re.search(rf"\[(\d+)\] {label}(?:\s|$)", s))]
            assert found, f"no button {line} on the screen: {shown}"
            return found[-1]
        return line


def test_numbers_tap_buttons_and_a_booking_is_made(service):
    taps = ["[ハローワーク能登]", *NOTO_USER, "[職業相談]", "[同席しない]", "[登録済み]", "[はい]", "[用意できる]", "[はい]"]
    tester = Terminal(["こんにちは", *taps, FIRST_SLOT, "[同意する]", "[この内容で予約する]"])
    session = ChatSession(service, user="U-terminal")
    chat_loop(session, tester.read, tester.write)
    assert len(session.exchanges) == 1 + 15  # the follow, then one exchange per line typed
    [booking] = service.bookings.for_user("U-terminal")
    assert booking["office"] == "noto" and booking["slot"] == "2026-11-25T10:00"
    assert any("ご予約を受け付けました" in line for line in tester.screen)
    assert tester.screen[0].startswith("（終了するには Ctrl-D") and tester.screen[-1] == ""


def test_a_number_without_a_button_is_text_and_an_empty_line_shows_the_question_again(service):
    tester = Terminal(["こんにちは", "99", ""])
    session = ChatSession(service, user="U-terminal")
    chat_loop(session, tester.read, tester.write)
    assert [exchange.action for exchange in session.exchanges] == ["(友だち追加)", "> こんにちは", "> 99"]
    numbered: list = []
    block = ["bot> " + line for reply in session.exchanges[-1].replies for line in render(reply, numbered)]
    assert "bot> 下のボタンからお選びください。" in block and "bot>   [3] ハローワーク能登" in block
    assert tester.screen[-1 - 2 * len(block) : -1] == block * 2  # the empty line showed it again


def test_hwbot_chat_talks_to_one_office(redis_client, offices):
    url = load_settings().redis_url or f"unix://{redis_client.socket_file}"
    result = CliRunner(env={"REDIS_URL": url}).invoke(
        main, ["chat", "--office", "noto", "--now", NOW, "--user", "U-cli"], input=f"{NOTO_USER[0]}\n"
    )
    assert result.exit_code == 0, result.output
    assert "ハローワーク能登" in result.output and "お名前（フルネーム）" in result.output
    assert "求職番号を入力してください" in result.output  # the name was taken: the next question
    service = BotService(load_settings(), client=redis_client, offices=offices)
    data, _ = service.conversations.load("U-cli")  # the chat's data went to REDIS_URL
    assert data and data["office"] == "noto"
