"""The staff console in real headless Chromium: log in, open the day, open a booking, act on it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.simulator.testing import LiveServer
from bot.testing.browser import WAIT_S
from bot.testing.driver import ChatDriver, ManualClock, book_at_noto
from bot.web import create_app

SCREENSHOT = Path(tempfile.gettempdir()) / "hwbot-console.png"
DAY_SCREENSHOT = Path(tempfile.gettempdir()) / "hwbot-console-day.png"
TOKEN = "browser-staff-token"

pytestmark = [
    # selenium's own modules may warn about their deprecations; they are not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def service(redis_client, offices):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token", staff_token=TOKEN)
    return BotService(settings, client=redis_client, offices=offices,
                      clock=ManualClock(parse_instant("2026-11-20T10:00")))


@pytest.fixture
def server(service):
    with LiveServer(create_app(service.settings, service=service)) as live:
        yield live


def test_staff_mark_attended_and_send_the_meeting_details(browser, server, service):
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import Select, WebDriverWait

    booking = book_at_noto(ChatDriver(service, user="U-browser"), "11月25日(水) 10:00〜10:30")
    service.clock.advance(parse_instant("2026-11-25T10:03") - service.clock.now())
    # A page being replaced by the next one leaves stale elements: poll again.
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=[StaleElementReferenceException])

    def flash() -> str:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".flash"))

    browser.get(server.url + "/staff")
    wait.until(lambda d: d.find_elements(By.ID, "token"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    wait.until(lambda d: "ログインしました" in flash())

    Select(browser.find_element(By.ID, "office")).select_by_visible_text("ハローワーク能登")
    browser.find_element(By.ID, "show").click()
    wait.until(lambda d: "ハローワーク能登" in d.find_element(By.TAG_NAME, "h1").text)
    assert "11月25日(水)（今日）" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "next").click()
    wait.until(lambda d: "11月26日(木)" in d.find_element(By.TAG_NAME, "h1").text)
    assert "この日の予約はありません" in browser.page_source
    browser.find_element(By.ID, "prev").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#bookings tbody tr"))
    row = browser.find_element(By.CSS_SELECTOR, "#bookings tbody tr")
    assert "10:00〜10:30" in row.text and "山田 花子" in row.text and booking["id"] in row.text

    browser.save_screenshot(str(DAY_SCREENSHOT))
    row.find_element(By.LINK_TEXT, "詳細・操作").click()
    wait.until(lambda d: d.find_elements(By.ID, "attended"))
    assert "12345-12345678" in browser.find_element(By.ID, "record").text
    browser.find_element(By.ID, "attended").click()
    wait.until(lambda d: "「出席」を記録しました" in flash())
    assert browser.find_element(By.ID, "status").text == "出席"

    browser.find_element(By.ID, "meeting_id").send_keys("987 654 3210")
    browser.find_element(By.ID, "passcode").send_keys("hw-2026")
    browser.find_element(By.ID, "url").send_keys("https://teleoffice.example/join/42")
    browser.find_element(By.ID, "send_meeting").click()
    wait.until(lambda d: "接続情報を利用者にLINEで送信しました" in flash())
    browser.save_screenshot(str(SCREENSHOT))

    stored = service.bookings.get(booking["office"] + "|" + booking["slot"] + "|" + booking["id"])
    assert stored["status"] == "attended" and stored["meeting_sent_at"] == "2026-11-25T10:03:00+09:00"
    pushes = [json.loads(e["messages"])[0]["text"] for _, e in service.outbox.entries() if e["kind"] == "push"]
    assert len(pushes) == 1 and "987 654 3210" in pushes[0] and "hw-2026" in pushes[0]
    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == [], errors
