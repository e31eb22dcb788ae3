"""Requests the office confirms, in real headless Chromium: a tester books in the simulator, confirms the
request in the staff console, and sees 「予約が確定しました」 arrive in the phone (through the worker)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.simulator import USERS
from bot.staff.identity import Identity
from bot.store import BookingStore
from bot.testing.driver import ManualClock
from bot.testing.simulator import LiveServer
from bot.testing.staff import CHEAP_HASHER, make_account
from bot.web import create_app
from tests.test_browser import Page, pytestmark  # noqa: F401 (selenium's warnings are not ours to fix)


@pytest.fixture
def service(redis_client, offices):
    settings = load_settings(line_channel_secret=None, line_channel_access_token=None, line_api_host="https://api.line.me")
    return BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant("2026-11-20T10:00")))


@pytest.fixture
def server(service):
    with LiveServer(create_app(service.settings, service=service)) as live:
        yield live


def test_book_in_the_simulator_confirm_in_the_console_and_read_it_in_the_phone(browser, server, service):
    from selenium.webdriver.support.ui import WebDriverWait

    page = Page(browser, server.url + "/")
    page.click_id("follow")
    page.tap("ハローワーク能登")
    for text in ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678"):
        page.type(text)
    for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい"):
        page.tap(label)
    page.pick_first_slot()
    page.tap("同意する")
    page.tap("この内容で予約する")
    assert "申込み中・事業所の確認待ち" in page.chat_text()

    [booking] = service.bookings.for_user(USERS[0]["id"])
    By = page.By
    # A real account of Noto (as `hwbot staff add` makes it), not the simulator's ready-made one.
    account, password, _ = make_account(Identity(service, hasher=CHEAP_HASHER), "能登 太郎", ("noto",))
    browser.get(server.url + "/staff/login")
    browser.find_element(By.ID, "account").send_keys(account.id)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()
    wait = WebDriverWait(browser, 10)
    wait.until(lambda d: "ログインしました" in d.page_source)
    browser.get(server.url + "/staff/booking?" + urlencode({"ref": BookingStore.ref(booking)}))
    assert "申込み中・事業所の確認待ち" in browser.find_element(By.ID, "confirmation").text
    browser.find_element(By.ID, "confirm_meeting_id").send_keys("987 654 3210")
    browser.find_element(By.ID, "confirm").click()
    wait.until(lambda d: "申込みを確定し" in d.page_source)
    assert "確定" in browser.find_element(By.ID, "confirmation").text
    assert service.bookings.get(BookingStore.ref(booking))["confirmed_by"] == account.id

    # The live server's worker pushes the confirmation (as `hwbot serve` does in simulator mode).
    page = Page(browser, server.url + "/")
    page.wait.until(lambda d: "予約が確定しました" in page.chat_text(), "the confirmation did not arrive")
    assert "987 654 3210" in page.chat_text() and "【ご準備】" in page.chat_text()
    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == [], errors
