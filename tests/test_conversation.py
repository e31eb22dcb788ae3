"""The booking conversation through the service: races, save conflicts, expiry, personal data in logs."""

from __future__ import annotations

import logging
import multiprocessing
from datetime import timedelta

import pytest

from bot.clock import parse_instant
from bot.profiles import Offices
from bot.service import BotService
from bot.settings import load_settings
from bot.store import ConversationStore
from bot.testing.driver import NOTO_USER, ChatDriver, ManualClock, to_noto_slots

NOW = "2026-11-20T10:00:00+09:00"
NAME, NUMBER, EMAIL, PHONE = NOTO_USER


to_slots = to_noto_slots


def to_confirmation(driver: ChatDriver, slot: str) -> None:
    to_slots(driver)
    driver.tap(slot)
    driver.tap("同意する")
    assert "ご予約内容の確認" in driver.last_text()


SLOTS = [
    "11月25日(水) 10:00〜10:30",
    "11月25日(水) 11:00〜11:30",
    "11月25日(水) 14:00〜14:30",
    "11月25日(水) 15:00〜15:30",
    "11月26日(木) 10:00〜10:30",
]


def test_a_full_booking_stores_consent_and_the_answers(service, clock):
    driver = ChatDriver(service, user="U1")
    to_confirmation(driver, SLOTS[0])
    driver.tap("この内容で予約する")
    [booking] = driver.bookings()
    assert booking["slot"] == "2026-11-25T10:00"
    assert booking["consent"] == {"version": "2023-05-08", "at": NOW, "terms_lang": "ja"}
    assert booking["lang"] == "ja"
    assert (booking["name"], booking["number"], booking["email"], booking["phone"]) == (NAME, NUMBER, EMAIL, PHONE)
    assert booking["answers"] == {"q_registered": "yes", "q_continuous_support": "yes", "q_device": "yes", "q_need": "yes"}
    # The conversation no longer holds the personal data: it is in the booking only.
    data, _ = service.conversations.load("U1")
    assert NAME not in str(data) and NUMBER not in str(data)


def test_double_tap_on_book_books_once(service):
    driver = ChatDriver(service, user="U1")
    to_confirmation(driver, SLOTS[0])
    driver.tap("この内容で予約する")
    driver.tap_earlier("この内容で予約する")
    assert "前の質問" in driver.last_text() or "終わっています" in driver.last_text()
    assert len(driver.bookings()) == 1
    assert driver.exchanges[-1].outcome.notices == []


def _book_in_process(url: str, users: list[str], now: str, results) -> None:
    """Child process: each user taps 予約する on their confirmation card."""
    from bot.dialog import Inbound
    from bot.settings import load_settings as settings_of

    service = BotService(settings_of(redis_url=url), clock=ManualClock(parse_instant(now)))
    for user in users:
        data, _ = service.conversations.load(user)
        outcome = service.handle(Inbound(user=user, kind="postback", text=f"{data['step']}|k|book"))
        booked = any(type(reply).__name__ == "BookedCard" for reply in outcome.replies)
        results.put((user, booked))


def _url_of(client) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_two_processes_race_50_users_for_5_slots(service, redis_client):
    users = [f"U{i:02d}" for i in range(50)]
    for index, user in enumerate(users):
        to_confirmation(ChatDriver(service, user=user), SLOTS[index % 5])
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    url = _url_of(redis_client)
    workers = [
        context.Process(target=_book_in_process, args=(url, users[half::2], NOW, results)) for half in (0, 1)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=60) for _ in users)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    winners = [user for user, booked in outcomes.items() if booked]
    assert len(winners) == 5
    all_bookings = [b for user in users for b in service.bookings.for_user(user)]
    assert sorted(b["slot"] for b in all_bookings) == [
        "2026-11-25T10:00",
        "2026-11-25T11:00",
        "2026-11-25T14:00",
        "2026-11-25T15:00",
        "2026-11-26T10:00",
    ]
    for slot in {b["slot"] for b in all_bookings}:
        day, hhmm = slot.split("T")
        assert redis_client.scard(f"hwbot:{{noto}}:{day}:slot:{hhmm.replace(':', '')}") == 1
    # A loser is offered the other slots again, and its card comes back after picking one.
    loser = ChatDriver(service, user=next(u for u in users if u not in winners))
    data, _ = service.conversations.load(loser.user)
    assert data["state"] == "choosing_slot"
    loser.say("こんにちは")
    assert "11月25日(水) 10:00〜10:30" not in loser.buttons()
    assert "11月26日(木) 11:00〜11:30" in loser.buttons()
    loser.tap("11月26日(木) 11:00〜11:30")
    assert "ご予約内容の確認" in loser.last_text()


class InterleavingStore(ConversationStore):
    """Before its first save, lets another turn of the same user save first (as a second worker would)."""

    def __init__(self, *args, interleave, **kwargs):
        super().__init__(*args, **kwargs)
        self.interleave = interleave
        self.conflicts = 0

    def save(self, user, data, expected_version, **kwargs):
        if self.interleave is not None:
            other, self.interleave = self.interleave, None
            other()
        try:
            return super().save(user, data, expected_version, **kwargs)
        except Exception:
            self.conflicts += 1
            raise


def test_overlapping_turns_lose_no_answer(service):
    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    other = ChatDriver(service, user="U1")
    store = InterleavingStore(service.client, ttl_seconds=3600, interleave=lambda: other.say(NAME))
    service.conversations = store
    driver.say(NUMBER)  # runs after the name was saved by the "other worker": both answers count
    assert store.conflicts == 1
    data, _ = service.conversations.load("U1")
    assert data["answers"]["name"] == NAME
    assert data["answers"]["number"] == NUMBER
    assert data["state"] == "asking_email"


def test_expired_conversation_says_so_and_forgets(service, clock):
    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    driver.say(NAME)
    clock.advance(timedelta(minutes=31))
    driver.say(NUMBER)
    assert "30分以上操作がなかった" in driver.last_text()
    assert "ご利用になるハローワーク" in driver.last_text()
    data, _ = service.conversations.load("U1")
    assert "name" not in data["answers"]


def test_not_expired_after_29_minutes(service, clock):
    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    clock.advance(timedelta(minutes=29))
    driver.say(NAME)
    assert "求職番号" in driver.last_text()


def test_no_personal_data_in_logs(service, caplog):
    caplog.set_level(logging.DEBUG)
    driver = ChatDriver(service, user="Uabcdef0123456789")
    to_confirmation(driver, SLOTS[0])
    driver.tap("この内容で予約する")
    assert caplog.records, "turns are logged"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (NAME, "山田", NUMBER, "12345", EMAIL, PHONE, "09012345678", "Uabcdef0123456789"):
        assert secret not in logged


def test_unfollow_forgets_the_conversation(service):
    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    driver.say(NAME)
    driver.unfollow()
    assert service.conversations.load("U1") == (None, 0)


@pytest.mark.parametrize("single", [True, False], ids=["one office", "five offices"])
def test_a_follow_in_the_middle_of_a_booking_starts_it_again(redis_client, offices, clock, single):
    # A follow without the unfollow before it (a lost delivery): the booking starts again, no crash.
    if single:
        offices = Offices({"noto": offices["noto"]}, {"noto": offices.terms_text("noto")})
    service = BotService(load_settings(), client=redis_client, offices=offices, clock=clock)
    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは")
    if not single:
        driver.tap("ハローワーク能登")
    driver.say(NAME)
    assert "求職番号" in driver.last_text()
    driver.follow()
    conversation = service.conversations.load("U1")[0]
    assert conversation["state"] == ("asking_name" if single else "choosing_office")
    assert "name" not in conversation["answers"]
    driver.say(NAME) if single else driver.tap("ハローワーク能登")
    assert ("求職番号" if single else "お名前") in driver.last_text()


def test_each_machine_has_one_seated_model_that_keeps_no_user_data(service, caplog):
    """The flow's model is re-seated per turn: no add_model per turn, nothing left between turns."""
    caplog.set_level(logging.WARNING, logger="transitions")
    driver = ChatDriver(service, user="U-seat")
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")  # a switch from the lobby's machine to Noto's within one turn
    assert driver.conversation_state() == "asking_name"
    for flow in [service.dialog.lobby, *service.dialog.flows.values()]:
        assert flow.machine.models == [flow.seat]
        assert flow.seat.conv is None and flow.seat.outcome is None
    assert caplog.records == []  # no "Skip binding" warnings from re-adding a model


@pytest.mark.parametrize("full_every", [0, 2, 3])
def test_slot_pages_read_part_of_the_window_and_show_what_the_whole_window_gives(
        service, redis_client, offices, clock, full_every):
    """The picker reads slot counts a page at a time; its pages, 次/前 buttons included, are those the
    whole window's bookable slots give (some days made full)."""
    from bot import calendar
    from bot.dialog.replies import SlotPicker
    from bot.dialog import texts
    from bot.store.slots import slot_redis_key

    noto = offices["noto"]
    now = parse_instant(NOW)
    open_days = calendar.candidate_days(noto, now)
    full = {key for i, day in enumerate(open_days) if full_every and i % full_every == 0
            for key in calendar.grid_keys(noto, now, first=day, last=day)}
    for key in full:
        redis_client.sadd(slot_redis_key("noto", key), *[f"taken{n}" for n in range(noto.schedule.capacity)])
    booked = {key: noto.schedule.capacity for key in full}
    days = sorted({slot.start.date() for slot in calendar.bookable_slots(noto, now, booked)})
    pages = [days[i:i + 5] for i in range(0, len(days), 5)]
    assert len(pages) >= 2

    def picker(exchange) -> SlotPicker:
        return next(reply for reply in exchange.replies if isinstance(reply, SlotPicker))

    def scards() -> int:
        return redis_client.info("commandstats").get("cmdstat_scard", {}).get("calls", 0)

    driver = ChatDriver(service, user="U-pages")
    to_slots(driver)
    shown = picker(driver.exchanges[-1])
    for number, page in enumerate(pages):
        assert [day.label for day in shown.days] == [calendar.format_day(day) for day in page], number
        labels = [option.label for option in shown.options]
        assert (texts.MORE_SLOTS in labels) == (number < len(pages) - 1)
        assert (texts.EARLIER_SLOTS in labels) == (number > 0)
        if number < len(pages) - 1:
            shown = picker(driver.tap(texts.MORE_SLOTS))
    # back to the first page, one page at a time
    for number in range(len(pages) - 2, -1, -1):
        shown = picker(driver.tap(texts.EARLIER_SLOTS))
        assert [day.label for day in shown.days] == [calendar.format_day(day) for day in pages[number]]
    # the first page reads the counts of a page of days at a time, not the whole window's
    driver.tap(texts.MORE_SLOTS)
    before = scards()
    driver.tap(texts.EARLIER_SLOTS)
    first_page_reads = scards() - before
    six_days = len(calendar.grid_keys(noto, now, first=days[0], last=days[5]))
    assert first_page_reads < len(calendar.grid_keys(noto, now))
    if not full:
        assert first_page_reads == six_days  # five days shown, and the sixth for 次の日程
