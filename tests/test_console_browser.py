"""The staff console in real headless Chromium: an account made as `hwbot staff add` makes it sets its
password through its one-time link, logs in, opens the day, opens a booking and acts on it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.identity import Identity
from bot.testing.simulator import LiveServer
from bot.testing.staff import CHEAP_HASHER, make_account
from bot.testing.browser import WAIT_S
from bot.testing.driver import ChatDriver, ManualClock, book_at_noto
from bot.web import create_app

SCREENSHOT = Path(tempfile.gettempdir()) / "hwbot-console.png"
DAY_SCREENSHOT = Path(tempfile.gettempdir()) / "hwbot-console-day.png"
PASSWORD = "noto-browser-2026-pass"

pytestmark = [
    # selenium's own modules may warn about their deprecations; they are not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def service(redis_client, offices):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token")
    return BotService(settings, client=redis_client, offices=offices,
                      clock=ManualClock(parse_instant("2026-11-20T10:00")))


@pytest.fixture
def server(service):
    with LiveServer(create_app(service.settings, service=service)) as live:
        yield live


def test_staff_mark_attended_and_send_the_meeting_details(browser, server, service):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    booking = book_at_noto(ChatDriver(service, user="U-browser"), "11月25日(水) 10:00〜10:30")
    service.clock.advance(parse_instant("2026-11-25T10:03") - service.clock.now())
    wait = WebDriverWait(browser, WAIT_S)

    def flash() -> str:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".flash"))

    def click(element) -> None:
        """Click something that loads a page, and wait until the new page has replaced the old one.

        The old page is marked on its `window` (a new page gets a new one): waiting for an element of
        the old page to go stale raised chromedriver's "Node with given id does not belong to the
        document" now and then, which selenium's `staleness_of` does not take for staleness.
        """
        browser.execute_script("window.hwbotOldPage = true")
        element.click()
        wait.until(lambda d: d.execute_script(
            "return !window.hwbotOldPage && document.readyState === 'complete'"))

    def heading() -> str:
        return browser.find_element(By.TAG_NAME, "h1").text

    identity = Identity(service)
    account = identity.create("能登 花子", ["noto"])
    link = identity.set_link(account.id)
    browser.get(server.url + "/staff/password?token=" + link)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "again").send_keys(PASSWORD)
    click(browser.find_element(By.ID, "set_password"))
    assert "パスワードを設定しました" in flash()
    browser.get(server.url + "/staff")
    browser.find_element(By.ID, "account").send_keys(account.id)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click(browser.find_element(By.ID, "login"))
    assert "ログインしました" in flash() and "能登 花子" in browser.find_element(By.ID, "me").text

    Select(browser.find_element(By.ID, "office")).select_by_visible_text("ハローワーク能登")
    click(browser.find_element(By.ID, "show"))
    assert "ハローワーク能登" in heading() and "11月25日(水)（今日）" in heading()
    click(browser.find_element(By.ID, "next"))
    assert "11月26日(木)" in heading() and "この日の予約はありません" in browser.page_source
    click(browser.find_element(By.ID, "prev"))
    row = browser.find_element(By.CSS_SELECTOR, "#bookings tbody tr")
    assert "10:00〜10:30" in row.text and "山田 花子" in row.text and booking["id"] in row.text
    browser.save_screenshot(str(DAY_SCREENSHOT))

    click(row.find_element(By.LINK_TEXT, "詳細・操作"))
    assert "12345-12345678" in browser.find_element(By.ID, "record").text
    click(browser.find_element(By.ID, "attended"))
    assert "「出席」を記録しました" in flash()
    assert browser.find_element(By.ID, "status").text == "出席"

    browser.find_element(By.ID, "meeting_id").send_keys("987 654 3210")
    browser.find_element(By.ID, "passcode").send_keys("hw-2026")
    browser.find_element(By.ID, "url").send_keys("https://teleoffice.example/join/42")
    click(browser.find_element(By.ID, "send_meeting"))
    assert "接続情報を利用者にLINEで送信しました" in flash()
    browser.save_screenshot(str(SCREENSHOT))

    stored = service.bookings.get(booking["office"] + "|" + booking["slot"] + "|" + booking["id"])
    assert stored["status"] == "attended" and stored["meeting_sent_at"] == "2026-11-25T10:03:00+09:00"
    assert stored["marked_by"] == stored["meeting_sent_by"] == account.id
    pushes = [json.loads(e["messages"])[0]["text"] for _, e in service.outbox.entries() if e["kind"] == "push"]
    assert len(pushes) == 1 and "987 654 3210" in pushes[0] and "hw-2026" in pushes[0]
    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == [], errors


def test_cancel_asks_first_under_the_content_security_policy(browser, server, service):
    """The confirmation moved from an inline onsubmit to staff.js (the CSP allows no inline script):
    dismissing it sends nothing, accepting it cancels; the policy is in force and nothing breaks it."""
    from urllib.parse import urlencode

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    booking = book_at_noto(ChatDriver(service, user="U-browser-cancel"), "11月25日(水) 10:00〜10:30")
    ref = booking["office"] + "|" + booking["slot"] + "|" + booking["id"]
    wait = WebDriverWait(browser, WAIT_S)
    account, password, _ = make_account(Identity(service, hasher=CHEAP_HASHER), "能登 次郎", ("noto",))
    browser.get(server.url + "/staff/login")
    browser.find_element(By.ID, "account").send_keys(account.id)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()
    wait.until(lambda d: "ログインしました" in d.page_source)
    browser.get(server.url + "/staff/booking?" + urlencode({"ref": ref}))
    assert browser.execute_script("return getComputedStyle(document.querySelector('header')).display") == "flex"

    browser.find_element(By.ID, "cancel").click()
    alert = wait.until(expected_conditions.alert_is_present())
    assert alert.text == "この予約をキャンセルし、利用者にお知らせします。よろしいですか？"
    alert.dismiss()
    assert service.bookings.get(ref)["status"] == "booked"
    assert browser.find_element(By.ID, "status").text == "予約中"

    browser.find_element(By.ID, "cancel").click()
    wait.until(expected_conditions.alert_is_present()).accept()
    wait.until(lambda d: "予約をキャンセルしました" in d.page_source)
    assert service.bookings.get(ref)["status"] == "cancelled"
    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == [], errors
