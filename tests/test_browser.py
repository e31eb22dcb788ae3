"""The simulator page in real headless Chromium: book a slot at ハローワーク能登 by clicking, start to finish.

The `browser` fixture (tests/conftest.py, `bot.testing.browser`) installs Debian's chromium when missing;
the test is skipped, saying why, only where that is impossible. No browser is downloaded by selenium.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.testing.simulator import LiveServer
from bot.testing.browser import WAIT_S
from bot.testing.driver import ManualClock
from bot.web import create_app

SCREENSHOT = Path(tempfile.gettempdir()) / "hwbot-sim.png"

pytestmark = [
    # selenium's own modules may warn about their deprecations; they are not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def server(redis_client, offices):
    settings = load_settings(line_channel_secret=None, line_channel_access_token=None, line_api_host="https://api.line.me")
    service = BotService(settings, client=redis_client, offices=offices,
                         clock=ManualClock(parse_instant("2026-11-20T10:00")))
    with LiveServer(create_app(settings, service=service)) as live:
        yield live


class Page:
    """The simulator page as a person uses it: click what is shown, type into the message box."""

    def __init__(self, driver, url: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.By = driver, By
        self.wait = WebDriverWait(driver, WAIT_S)
        driver.get(url)
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#user option")
                        and d.find_element(By.ID, "chat").get_attribute("data-seq") is not None
                        and d.find_element(By.TAG_NAME, "body").get_attribute("data-busy") == "0")

    def seq(self) -> int:
        return int(self.driver.find_element(self.By.ID, "chat").get_attribute("data-seq") or 0)

    def _answered(self, do) -> None:
        """Do something, then wait until the bot's answer is drawn: the worker sends it after the webhook
        has answered, so the user's own bubble comes first and the newest item is the bot's only then."""
        before = self.seq()
        do()
        self.wait.until(lambda d: self.seq() > before
                        and d.find_element(self.By.TAG_NAME, "body").get_attribute("data-busy") == "0"
                        and self._last_is_bot())

    def _last_is_bot(self) -> bool:
        items = self.driver.find_elements(self.By.CSS_SELECTOR, "#chat .item")
        return bool(items) and "bot" in (items[-1].get_attribute("class") or "").split()

    def click_id(self, element_id: str) -> None:
        self._answered(lambda: self.driver.find_element(self.By.ID, element_id).click())

    def tappables(self, label: str | re.Pattern[str]):
        elements = self.driver.find_elements(self.By.CSS_SELECTOR, ".tap")
        if isinstance(label, str):
            return [e for e in elements if e.get_attribute("data-label") == label]
        return [e for e in elements if label.search(e.get_attribute("data-label") or "")]

    def tap(self, label: str) -> None:
        """Click the newest button or quick reply chip with this label."""
        self.wait.until(lambda d: self.tappables(label), f"no button {label!r}")
        self._answered(lambda: self.tappables(label)[-1].click())

    def type(self, text: str) -> None:
        box = self.driver.find_element(self.By.ID, "text")
        box.clear()
        box.send_keys(text)
        self._answered(lambda: self.driver.find_element(self.By.ID, "send").click())

    def chat_text(self) -> str:
        return self.driver.find_element(self.By.ID, "chat").text

    def pick_first_slot(self) -> str:
        """Click the first time button of the first day in the newest carousel; returns that day's bubble text."""
        carousel = self.driver.find_elements(self.By.CSS_SELECTOR, ".fx-carousel")[-1]
        bubble = carousel.find_elements(self.By.CSS_SELECTOR, ".fx-bubble")[0]
        day_text = bubble.text
        slot = next(e for e in bubble.find_elements(self.By.CSS_SELECTOR, ".tap")
                    if re.search(r"\d{1,2}:\d{2}〜", e.get_attribute("data-label") or ""))
        self._answered(slot.click)
        return day_text


def test_book_a_slot_at_noto_by_clicking(browser, server):
    page = Page(browser, server.url + "/")
    assert "シミュレーター" in browser.title

    page.click_id("follow")
    assert "ご利用になるハローワーク" in page.chat_text()
    page.tap("ハローワーク能登")
    assert "お名前" in page.chat_text()
    for text in ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678"):
        page.type(text)
    for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい"):
        page.tap(label)
    assert "ご希望の日時" in page.chat_text()
    day = page.pick_first_slot()
    assert "11月25日(水)" in day
    assert "利用規約" in page.chat_text()
    page.tap("同意する")
    page.tap("この内容で予約する")

    By = page.By
    booked = [b for b in browser.find_elements(By.CSS_SELECTOR, ".fx-bubble") if "ご予約を受け付けました" in b.text]
    assert booked, "the booked card is not shown"
    assert "11月25日(水) 10:00〜10:30" in booked[-1].text
    assert booked[-1].find_elements(By.CSS_SELECTOR, "a[href='tel:0768-62-1242']")
    # The user's own bubbles show what they typed and tapped, on the right.
    mine = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".row.user .bubble")]
    assert mine[:2] == ["ハローワーク能登", "山田 花子"] and "この内容で予約する" in mine

    page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#staff li[data-kind='booking']"),
                    "the staff pane does not show the booking")
    notice = browser.find_element(By.CSS_SELECTOR, "#staff li[data-kind='booking']").text
    assert "ハローワーク能登" in notice and "11月25日(水) 10:00〜10:30" in notice
    assert "12345-12345678" not in notice

    browser.execute_script("document.getElementById('chat').scrollTop = 1e9")
    browser.save_screenshot(str(SCREENSHOT))
    errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == [], errors


def test_switching_users_shows_each_users_own_chat(browser, server):
    page = Page(browser, server.url + "/")
    page.click_id("follow")
    assert "ご利用になるハローワーク" in page.chat_text()
    from selenium.webdriver.support.ui import Select

    select = Select(browser.find_element(page.By.ID, "user"))
    select.select_by_index(1)
    page.wait.until(lambda d: page.seq() == 0)
    assert "ご利用になるハローワーク" not in page.chat_text()
    page.click_id("sticker")
    assert "スタンプ" in page.chat_text()
    select.select_by_index(0)
    page.wait.until(lambda d: "ご利用になるハローワーク" in page.chat_text())


def test_a_tester_asks_for_staff_and_reads_the_answer_typed_in_the_console(browser, redis_client, offices):
    """The phone and the console side by side (two tabs): the user's question reaches the console, the
    staff's answer goes through the outbox worker and shows in the phone."""

    settings = load_settings(line_channel_secret=None, line_channel_access_token=None,
                             line_api_host="https://api.line.me")
    service = BotService(settings, client=redis_client, offices=offices,
                         clock=ManualClock(parse_instant("2026-11-20T10:00")))
    question = "オンライン相談の前に履歴書を送る必要はありますか？"
    answer = "履歴書は当日、画面でお見せいただければ大丈夫です。"
    browser.get_log("browser")  # drop what the earlier tests' pages logged once their servers had stopped
    with LiveServer(create_app(settings, service=service)) as live:
        page = Page(browser, live.url + "/")
        By = page.By
        browser.get_log("browser")
        page.click_id("follow")
        page.tap("ハローワーク能登")
        page.type("担当者と話したい")
        page.type(question)
        assert "メッセージを担当者にお伝えしました" in page.chat_text()
        phone = browser.current_window_handle

        browser.find_element(By.ID, "console").click()  # opens the console in its own tab
        page.wait.until(lambda d: len(d.window_handles) == 2)
        browser.switch_to.window(next(h for h in browser.window_handles if h != phone))
        page.wait.until(lambda d: d.find_elements(By.ID, "account"))
        assert "simulator" in browser.find_element(By.ID, "simulator-login").text  # as the page says
        browser.find_element(By.ID, "account").send_keys("simulator")
        browser.find_element(By.ID, "password").send_keys("simulator")
        browser.find_element(By.ID, "login").click()
        page.wait.until(lambda d: d.find_elements(By.LINK_TEXT, "会話を開く"))
        browser.find_element(By.LINK_TEXT, "会話を開く").click()
        page.wait.until(lambda d: d.find_elements(By.ID, "reply_text"))
        assert question in browser.find_element(By.ID, "messages").text
        browser.find_element(By.ID, "reply_text").send_keys(answer)
        browser.find_element(By.ID, "send_reply").click()
        page.wait.until(lambda d: "返信を送りました" in d.page_source)
        assert answer in browser.find_element(By.ID, "messages").text
        browser.close()  # the console's tab

        browser.switch_to.window(phone)  # the live server's worker pushes the answer
        page.wait.until(lambda d: "【ハローワーク能登 担当者より】" in page.chat_text(), "the answer is not in the phone")
        assert answer in page.chat_text()
        page.tap("自動応答に戻る")
        assert "自動応答に戻りました" in page.chat_text()
        errors = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
        assert errors == [], errors
