"""The rich menu: its definition fits LINE's rules, the command installs it, its buttons drive the dialog."""

from __future__ import annotations

from click.testing import CliRunner

from bot.channels.line.richmenu import AREAS, HEIGHT, IMAGE, WIDTH, rich_menu
from bot.cli import main
from bot.clock import parse_instant
from bot.dialog import Inbound, plain_text
from bot.service import BotService
from bot.settings import load_settings
from bot.testing.driver import ManualClock
from bot.testing.line_standin import LineStandIn


def test_areas_cover_the_image_without_overlap():
    menu = rich_menu()
    bounds = [area["bounds"] for area in menu["areas"]]
    assert sum(b["width"] for b in bounds) == WIDTH
    assert all(b["height"] == HEIGHT and b["y"] == 0 for b in bounds)
    assert [b["x"] for b in bounds] == sorted(b["x"] for b in bounds)
    assert len(menu["chatBarText"]) <= 14
    for area in menu["areas"]:
        action = area["action"]
        assert len(action["label"]) <= 20 and len(action["data"]) <= 300
    assert IMAGE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert IMAGE.stat().st_size < 1024 * 1024  # LINE's limit for a rich menu image


def test_install_command_calls_line(monkeypatch):
    with LineStandIn() as line:
        monkeypatch.setenv("LINE_API_HOST", line.url)
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "token-x")
        monkeypatch.setenv("LINE_CHANNEL_SECRET", "secret-x")
        result = CliRunner().invoke(main, ["richmenu", "install"])
        assert result.exit_code == 0, result.output
        assert "richmenu-standin" in result.output
        paths = [request.path for request in line.requests]
        assert paths == [
            "/v2/bot/richmenu",
            "/v2/bot/richmenu/richmenu-standin/content",
            "/v2/bot/user/all/richmenu/richmenu-standin",
        ]
        create, upload, _ = line.requests
        assert create.body == rich_menu()
        assert create.headers["Authorization"] == "Bearer token-x"
        assert upload.headers["Content-Type"] == "image/png"
        assert upload.raw == IMAGE.read_bytes()


def test_install_without_a_token_names_the_variable(monkeypatch):
    monkeypatch.delenv("LINE_CHANNEL_ACCESS_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["richmenu", "install"])
    assert result.exit_code == 1
    assert "LINE_CHANNEL_ACCESS_TOKEN" in result.output


def test_install_failure_is_one_line(monkeypatch):
    with LineStandIn(failing={"/v2/bot/richmenu": 401}) as line:
        monkeypatch.setenv("LINE_API_HOST", line.url)
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "bad")
        result = CliRunner().invoke(main, ["richmenu", "install"])
        assert result.exit_code == 1
        assert "installing the rich menu failed: 401" in result.output


def test_menu_buttons_are_dialog_commands(redis_client, offices):
    service = BotService(load_settings(), client=redis_client, offices=offices,
                         clock=ManualClock(parse_instant("2026-11-20T10:00")))
    expected = {"book": "ご利用になるハローワーク", "bookings": "ご予約はありません", "help": "使い方",
                "language": "言語を選んで"}
    for area, command in zip(rich_menu()["areas"], AREAS):
        outcome = service.handle(Inbound(user="U-menu", kind="postback", text=area["action"]["data"]))
        shown = "\n".join(plain_text(reply) for reply in outcome.replies)
        assert expected[command] in shown
