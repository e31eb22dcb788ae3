"""Languages end to end (issue 14): the catalogues agree with each other and with texts.py, every text in
every language keeps LINE's limits and spec, the LINE profile's language greets a new user, a switch
midway keeps what was typed, and pushes days later speak the stored language."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot import i18n
from bot.channels.line.render import MAX_ALT_TEXT, MAX_TEXT, length, to_messages
from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.clock import parse_instant
from bot.dialog import Option, options_of
from bot.dialog import texts as T
from bot.dialog.pushes import (
    confirmed_replies, declined_replies, in_language, lapsed_replies, proposal_replies, reconsent_replies,
    reminder_replies,
)
from bot.dialog.replies import SlotPicker, TermsCard
from bot.profiles.i18n import is_text
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.staff.aftercare import Reminders
from bot.staff.notify import compose, plain_text
from bot.testing.delivery import send_queued
from bot.testing.driver import ChatDriver, DriverError, ManualClock
from bot.testing.line_spec import check_limits, validate_request
from bot.web import create_app

OTHER = [lang for lang in i18n.LANGUAGES if lang != i18n.SOURCE]
LOCALE = REPO_ROOT / "bot" / "locale"
NOW = "2026-11-20T10:00:00+09:00"
BASE_URL = "https://hwbot.example.jp"
SECRET, TOKEN = "languages-secret", "languages-token"


def catalogue(lang: str) -> dict[str, object]:
    path = LOCALE / "hwbot.pot" if lang == "pot" else i18n.catalogue_path(lang)
    return {message.context: message for message in i18n.read_catalogue(path) if message.id}


# -- the catalogues ---------------------------------------------------------------------------------------


def test_every_catalogue_has_exactly_the_keys_of_texts_py_with_their_japanese():
    """A key in one catalogue and not another, a msgid that no longer matches texts.py, other placeholders:
    each fails here (texts.py -> `hwbot i18n extract` -> the template -> each language)."""
    keys = T.keys()
    for name in ("pot", *OTHER):
        entries = catalogue(name)
        assert set(entries) == set(keys), (name, sorted(set(entries) ^ set(keys)))
        stale = [key for key, message in entries.items() if message.id != keys[key]]
        assert not stale, (name, stale)
    for lang in OTHER:
        for key, message in catalogue(lang).items():
            assert message.string and not message.fuzzy, f"{lang}: {key} is not translated"
            assert i18n.placeholders(message.string) == i18n.placeholders(keys[key]), f"{lang}: {key}"
            assert i18n.translated(lang, key), f"{lang}: {key} cannot be used"


def test_the_parity_check_notices_a_missing_or_stale_key(tmp_path):
    """The same comparison on a catalogue with one key missing and one msgid outdated."""
    source = i18n.catalogue_path("en").read_text(encoding="utf-8")
    broken = re.sub(r'msgctxt "MENU"\nmsgid "[^"]*"\nmsgstr "[^"]*"\n\n', "", source)
    broken = broken.replace('msgid "同意する"', 'msgid "同意します"')
    path = tmp_path / "hwbot.po"
    path.write_text(broken, encoding="utf-8")
    entries = {m.context: m for m in i18n.read_catalogue(path) if m.id}
    assert set(T.keys()) - set(entries) == {"MENU"}
    assert [key for key, m in entries.items() if m.id != T.keys()[key]] == ["CONSENT"]


def test_each_language_has_its_typed_commands_for_real_commands():
    commands = set(T.japanese("COMMANDS"))
    for lang in OTHER:
        aliases = i18n.aliases(lang)
        assert aliases and set(aliases) <= commands, (lang, set(aliases) - commands)


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_catalogue_text_keeps_lines_limits(lang):
    limits = T.label_limits()
    for key in T.keys():
        text = i18n.text(lang, key)
        assert length(text) <= MAX_TEXT, (lang, key)
        if key in limits:
            assert length(text) <= limits[key], f"{lang}: {key} = {text!r} is longer than {limits[key]}"
    # Labels that carry a value: the longest date in a button, the longest phone number in CALL_NUMBER.
    with i18n.using(lang):
        assert length(f"{T.CANCEL_LABEL} 12/31 15:00") <= 20 and length(f"{T.CHANGE_DATE_LABEL} 12/31 15:00") <= 20
        assert length(T.CALL_NUMBER.format(phone="0768-62-1242")) <= 20 or length(T.CALL) <= 20


def _texts(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, f"{path}.{index}")
    elif isinstance(value, str) and is_text(path):
        yield path, value


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_profile_text_keeps_lines_limits(offices, lang):
    """Labels are checked by the models (20 characters) when the sidecar is read; here the rest: each
    text fits a message, and what the terms card's notification says fits LINE's 400-character altText."""
    for office in offices:
        profile = offices.localized(office, lang, i18n.text(lang, "PROFILE_NOT_TRANSLATED"))
        for path, text in _texts(profile.model_dump()):
            assert length(text) <= MAX_TEXT, (lang, office, path)
        assert all(length(choice.label) <= 20 for q in profile.eligibility.questions for choice in q.choices)
        assert length(profile.button_label) <= 20
        with i18n.using(lang):
            title = T.TITLE_VERSION.format(title=profile.terms.title, version=profile.terms.version_label)
        assert length(title) <= MAX_ALT_TEXT, (lang, office)


# -- what render.py produces, per language, against LINE's spec ----------------------------------------------


def tap_where(driver: ChatDriver, match: Callable[[Option], bool], what: str):
    """Tap the first button of the last answer whose data matches (labels differ by language)."""
    for reply in reversed(driver.exchanges[-1].replies):
        for option in options_of(reply):
            if match(option):
                return driver.send("postback", option.data, action=f"[{what}]")
    raise DriverError(f"no button for {what}: {driver.buttons()}")


def action(name: str, value: str | None = None) -> Callable[[Option], bool]:
    def match(option: Option) -> bool:
        parts = option.data.split("|", 2)
        return len(parts) == 3 and parts[1] == name and (value is None or parts[2] == value)
    return match


ANSWERS = {"asking_name": "Maria Santos", "asking_number": "12345-12345678", "asking_email": "maria@example.jp",
           "asking_phone": "090-1234-5678"}


def book_anywhere(driver: ChatDriver, office: str) -> None:
    """A whole booking at `office` by the buttons' data and valid answers, in whatever language is spoken."""
    profile = driver.service.offices[office]
    tap_where(driver, action("o", office), "office")
    for _ in range(30):
        state = driver.conversation_state()
        if state in ANSWERS:
            driver.say(ANSWERS[state])
        elif state == "choosing_topic":
            tap_where(driver, action("c"), "topic")
        elif state == "asking_interpreter":
            tap_where(driver, action("c", "none"), "interpreter")
        elif state.startswith("q_"):
            question = next(q for q in profile.eligibility.questions if q.id == state[2:])
            tap_where(driver, action("c", next(c.id for c in question.choices if c.ok)), question.id)
        elif state == "choosing_category":
            tap_where(driver, action("c", profile.eligibility.categories.items[0].id), "category")
        elif state == "asking_category_detail":
            tap_where(driver, action("c", "yes"), "detail")
        elif state == "choosing_slot":
            tap_where(driver, action("s"), "slot")
        elif state == "reading_terms":
            tap_where(driver, action("t", "consent"), "consent")
        elif state == "confirming":
            tap_where(driver, action("k", "book"), "book")
            return
        else:
            raise DriverError(f"unexpected state {state}")
    raise DriverError("the booking did not end")


@pytest.fixture(scope="module")
def turns_per_language(_redis_server, offices):
    """(language, office, what, LINE messages) of a booking, the booking list, a cancel question, help,
    an ineligible answer and a handoff, at every office in every other language, and of every push."""
    client = _redis_server.fresh()
    rendered = []
    for lang in OTHER:
        for office in offices:
            client.flushdb()
            service = BotService(load_settings(), client=client, offices=offices,
                                 clock=ManualClock(parse_instant(NOW)))
            driver = ChatDriver(service, user="U" + "a" * 32, line_language="en" if lang == "en" else None)
            driver.follow()
            if lang != "en":
                driver.say(i18n.NAMES[lang])
            book_anywhere(driver, office)
            driver.say(T.japanese("COMMANDS")["help"])
            tap_where(driver, action("g", "bookings"), "bookings")
            tap_where(driver, action("x"), "cancel")  # in the chat, or the office's phone, or staff
            if any(action("y", "no")(o) for r in driver.exchanges[-1].replies for o in options_of(r)):
                tap_where(driver, action("y", "no"), "keep")
            elif driver.service.handoffs.info(driver.user):
                tap_where(driver, action("g", "resume_bot"), "back to the bot")
            other = ChatDriver(service, user="U" + "b" * 32, line_language=driver.line_language)
            other.follow()
            if lang != "en":
                other.say(i18n.NAMES[lang])
            tap_where(other, action("o", office), "office")
            other.say("Maria Santos")
            other.say("12345")  # not a number: asked again
            other.say("12345-12345678")
            while not other.conversation_state().startswith("q_"):
                state = other.conversation_state()
                if state in ANSWERS:
                    other.say(ANSWERS[state])
                else:
                    tap_where(other, action("c"), state)
            first = service.offices[office].eligibility.questions[0]
            tap_where(other, action("c", next(c.id for c in first.choices if not c.ok)), "not eligible")
            tap_where(other, action("g", "handoff"), "handoff")
            other.say("どうすればいいですか")  # kept for staff; the user is told when they answer
            driver.exchanges += other.exchanges
            for exchange in driver.exchanges:
                assert exchange.lang == lang or exchange.action == "(友だち追加)", (lang, office, exchange.action)
                with i18n.using(exchange.lang):
                    messages = to_messages(exchange.replies, base_url=BASE_URL)
                rendered.append((lang, office, exchange.action, messages))
            [booking] = [b for b in service.bookings.for_user(driver.user) if b["status"] == "booked"]
            assert booking["lang"] == lang and booking["consent"]["terms_lang"] == lang
            with in_language(offices, office, lang) as profile:
                pushes = [
                    reminder_replies(profile, booking), confirmed_replies(profile, booking, ("ID: 123",)),
                    declined_replies(profile, booking, "都合により"),
                    proposal_replies(profile, booking, booking, "12/3 17:00"), lapsed_replies(profile, booking, booking),
                    reconsent_replies(profile, booking, f"{BASE_URL}/offices/{office}/terms?lang={lang}"),
                ]
                rendered += [(lang, office, "push", to_messages(replies, base_url=BASE_URL)) for replies in pushes]
    return rendered


def test_every_answer_and_push_in_every_language_keeps_lines_limits(turns_per_language):
    problems = [f"{lang} {office} {what}: {error}" for lang, office, what, messages in turns_per_language
                for error in check_limits(messages)]
    assert problems == []
    # No label or message was cut short with "…" (a translation too long for LINE; a notification's
    # altText is a preview and may be).
    clipped = [(lang, office, what, found) for lang, office, what, messages in turns_per_language
               for found in re.findall(r'"(?:label|text|displayText)": "[^"]*…"', json.dumps(messages, ensure_ascii=False))]
    assert clipped == []


def test_every_answer_and_push_in_every_language_validates_against_the_spec(messaging_spec, turns_per_language):
    problems = []
    for lang, office, what, messages in turns_per_language:
        body = {"replyToken": "b60d432864f44d079f6d8efe86cf404b", "messages": messages}
        problems += [f"{lang} {office} {what}: {e}" for e in validate_request(messaging_spec, "ReplyMessageRequest", body)]
    assert problems == []


def test_the_answers_are_said_in_their_language(turns_per_language):
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    english = [json.dumps(m, ensure_ascii=False) for lang, _, _, m in turns_per_language if lang == "en"]
    # English answers keep Japanese only where it belongs (names kept in Japanese, quoted Japanese terms).
    assert sum(1 for text in english if not japanese.search(text)) > len(english) // 2
    # Plain Japanese has no honorific or humble forms (在留支援のためのやさしい日本語ガイドライン).
    easy = [json.dumps(m, ensure_ascii=False) for lang, _, _, m in turns_per_language if lang == "ja_easy"]
    honorific = re.compile(r"いただ|おります|申し訳ございません|ございます|お待ちしています")
    assert [found for text in easy for found in honorific.findall(text)] == []


# -- the LINE profile's language ----------------------------------------------------------------------------


@pytest.fixture
def line_service(line, redis_client, offices):
    settings = load_settings(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_host=line.url)
    return BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))


def post(app, service, line, *events):
    body = webhook_body(*events)
    response = app.post("/callback", data=body.encode(), headers={"X-Line-Signature": sign(body, SECRET)},
                        content_type="application/json")
    assert response.status_code == 200
    send_queued(service, line.url, TOKEN)


def replies_to(line, user):
    return [json.dumps(r.body["messages"], ensure_ascii=False) for r in line.requests
            if r.method == "POST" and (r.body.get("to") == user or r.path.endswith("/reply"))]


@pytest.mark.parametrize("tag, greeting", [("en", "Hello!"), ("en-US", "Hello!"), ("ko", "Hello!"),
                                           ("ja", "こんにちは。"), (None, "こんにちは。")])
def test_the_first_greeting_speaks_the_line_profiles_language_asked_once(line, line_service, tag, greeting):
    user = "U" + "1" * 32
    line.languages[user] = tag
    app = create_app(line_service.settings, service=line_service).test_client()
    post(app, line_service, line, event_json(user, "follow"))
    post(app, line_service, line, event_json(user, "text", "予約の確認"))
    asked = [r for r in line.requests if r.method == "GET"]
    assert [r.path for r in asked] == [f"/v2/bot/profile/{user}"]  # once, before the first answer
    first, second = [r for r in line.requests if r.method == "POST"]
    assert first.path.endswith("/reply") and json.loads(json.dumps(first.body))["messages"][0]["text"].startswith(greeting)
    data, _ = line_service.conversations.load(user)
    assert data["lang"] == ("en" if greeting == "Hello!" else "ja") and data["profile_asked"]
    assert ("My bookings" in json.dumps(second.body)) == (greeting == "Hello!")


def test_the_profile_never_overrides_a_language_the_user_chose(line_service):
    driver = ChatDriver(line_service, user="U" + "2" * 32)
    driver.say("やさしい にほんご")  # before any greeting
    assert driver.exchanges[-1].lang == "ja_easy"
    assert line_service.profile_turn(driver.user, "en") is None
    data, _ = line_service.conversations.load(driver.user)
    assert data["lang"] == "ja_easy" and data["lang_chosen"]


def test_line_refusing_the_profile_leaves_the_japanese_greeting(line, line_service):
    user = "U" + "3" * 32
    line.failing[f"/v2/bot/profile/{user}"] = 500
    app = create_app(line_service.settings, service=line_service).test_client()
    post(app, line_service, line, event_json(user, "follow"))
    [reply] = [r for r in line.requests if r.method == "POST"]
    assert reply.body["messages"][0]["text"].startswith("こんにちは。")


def test_a_profile_turn_that_cannot_be_saved_leaves_the_greeting_as_it_is(line, line_service, monkeypatch):
    """The user's next events kept changing the conversation while the worker ran the profile turn
    (the bench's closed loop does this): the greeting goes out at once, the entry is not left pending."""
    from bot.errors import StoreError

    user = "U" + "4" * 32
    line.languages[user] = "en"
    app = create_app(line_service.settings, service=line_service).test_client()

    def kept_changing(user: str, tag: str | None):
        raise StoreError("conversation kept changing for 5 attempts")

    monkeypatch.setattr(line_service, "profile_turn", kept_changing)
    post(app, line_service, line, event_json(user, "follow"))
    [reply] = [r for r in line.requests if r.method == "POST"]
    assert reply.body["messages"][0]["text"].startswith("こんにちは。")
    assert line_service.outbox.settled()  # delivered and acknowledged, nothing pending


# -- switching midway ---------------------------------------------------------------------------------------


def test_switching_midway_asks_the_question_in_hand_again_and_keeps_what_was_typed(service):
    driver = ChatDriver(service, user="U-switch")
    driver.say("こんにちは")
    driver.tap("ハローワーク出雲")
    driver.say("Maria Santos")
    driver.say("12345-12345678")
    assert driver.conversation_state() == "asking_email"
    shown = driver.say("English")
    assert [type(r).__name__ for r in shown.replies] == ["Text", "Ask"]
    assert driver.last_text().startswith(i18n.text("en", "LANGUAGE_SET"))
    assert i18n.text("en", "ASK_EMAIL") in driver.last_text() and driver.conversation_state() == "asking_email"
    driver.say("maria@example.jp")
    driver.say("0853-21-8609")
    driver.say("同席しない")  # a Japanese label typed still works after the switch…
    driver.say("Yes, registered")  # …and a typed English one
    assert driver.conversation_state() == "q_device"
    driver.say("やさしい にほんご")  # and again, in the middle of the eligibility questions
    assert driver.conversation_state() == "q_device"
    data, _ = service.conversations.load(driver.user)
    assert data["answers"]["name"] == "Maria Santos" and data["answers"]["email"] == "maria@example.jp"
    assert data["answers"]["interpreter"] == "none" and data["lang"] == "ja_easy"
    assert i18n.text("ja_easy", "LANGUAGE_SET") in driver.last_text()


def test_a_language_command_works_while_waiting_for_staff_and_from_the_menu(service):
    driver = ChatDriver(service, user="U-wait")
    driver.say("担当者と話したい")
    driver.say("English")
    data, _ = service.conversations.load(driver.user)
    assert data["paused"] and data["lang"] == "en"  # still waiting for staff, now in English
    assert i18n.text("en", "LANGUAGE_SET") in driver.last_text()
    with i18n.using("en"):
        assert T.PAUSED.split("{when}")[0] in driver.last_text()  # told, in English, that staff will answer
    assert service.handoffs.messages(service.handoffs.info(driver.user)["thread"]) == []  # not kept for staff
    # 言語 / Language (the rich menu's area, typed or tapped): which language?
    driver.say("Language")
    assert driver.buttons() == ["日本語", "やさしい にほんご"]
    driver.tap("日本語")
    assert service.conversations.load(driver.user)[0]["lang"] == "ja"


def test_help_offers_the_other_languages(service):
    driver = ChatDriver(service, user="U-help")
    driver.say("ヘルプ")
    assert driver.buttons()[:3] == ["データを削除", "English", "やさしい にほんご"]


# -- later: pushes in the stored language ------------------------------------------------------------------


def test_a_reminder_after_a_switch_to_plain_japanese_is_in_plain_japanese(service, clock):
    driver = ChatDriver(service, user="U-remind")
    driver.follow()
    book_anywhere(driver, "noto")
    [booking] = driver.bookings()
    assert booking["lang"] == "ja"
    driver.say("やさしい にほんご")
    [booking] = driver.bookings()
    assert booking["lang"] == "ja_easy"  # the upcoming booking follows the switch
    start = parse_instant(booking["start"])
    clock.advance(start - clock.now() - timedelta(hours=17))  # the day before, after the reminder time
    [(reminded, replies)] = Reminders(service)(clock.now())
    [push] = [fields for _, fields in service.outbox.entries() if fields.get("kind") == "push"]
    text = push["messages"]
    with i18n.using("ja_easy"):
        assert T.REMINDER.split("\n")[0] in text and T.REMINDER_ACTIONS in text
    assert i18n.text("ja", "REMINDER").split("\n")[0] not in text


def test_staff_hear_the_users_language_and_the_console_shows_it(service):
    driver = ChatDriver(service, user="U-staff", line_language="en")
    driver.follow()
    book_anywhere(driver, "izumo")
    notice = next(n for n in driver.exchanges[-1].outcome.notices if n.kind == "booking")
    assert notice.fields["lang"] == "en"
    message = compose({"kind": notice.kind, "office": notice.office, "summary": notice.summary, "fields": notice.fields},
                      service.offices["izumo"])
    assert ("言語", "英語での対応を希望") in message.rows and "英語での対応を希望" in plain_text(message)
    assert "Hello Work" not in plain_text(message)  # staff read Japanese
    assert "新しい予約: ハローワーク出雲" in notice.summary


def test_a_japanese_users_notice_says_no_language(service):
    driver = ChatDriver(service, user="U-ja")
    driver.follow()
    book_anywhere(driver, "noto")
    notice = next(n for n in driver.exchanges[-1].outcome.notices if n.kind == "booking")
    assert "lang" not in notice.fields


def test_a_new_conversation_speaks_the_language_of_the_latest_booking(service, clock):
    driver = ChatDriver(service, user="U-back", line_language="en")
    driver.follow()
    book_anywhere(driver, "noto")
    service.conversations.delete(driver.user)  # gone long after the booking (Redis dropped it)
    again = ChatDriver(service, user="U-back", line_language="ja")
    again.say("hello")
    assert again.exchanges[-1].lang == "en"


def test_the_terms_page_frame_follows_lang(app):
    client = app.test_client()
    japanese = client.get("/offices/noto/terms").get_data(as_text=True)
    english = client.get("/offices/noto/terms?lang=en").get_data(as_text=True)
    assert '<html lang="ja">' in japanese and "Terms of use" not in japanese
    assert '<html lang="en">' in english and i18n.text("en", "TERMS_PAGE_NOTE") in english
    assert "第１条" in english or "第1条" in english  # the full text stays the official Japanese
    assert client.get("/offices/noto/terms?lang=xx").get_data(as_text=True) == japanese


def test_the_terms_card_links_the_page_in_the_language_and_says_the_japanese_counts(service):
    driver = ChatDriver(service, user="U-terms", line_language="en")
    driver.follow()
    profile = service.offices["noto"]
    tap_where(driver, action("o", "noto"), "office")
    while driver.conversation_state() != "reading_terms":
        state = driver.conversation_state()
        if state in ANSWERS:
            driver.say(ANSWERS[state])
        elif state == "choosing_slot":
            tap_where(driver, action("s"), "slot")
        elif state.startswith("q_"):
            q = next(q for q in profile.eligibility.questions if q.id == state[2:])
            tap_where(driver, action("c", next(c.id for c in q.choices if c.ok)), state)
        else:
            tap_where(driver, action("c"), state)
    [card] = [r for r in driver.exchanges[-1].replies if isinstance(r, TermsCard)]
    assert card.url.endswith("/offices/noto/terms?lang=en")
    assert card.summary.endswith(i18n.text("en", "TERMS_OFFICIAL"))
    assert card.title == service.offices.localized("noto", "en").terms.title


def test_slot_buttons_in_english_are_twelve_hour_times(service):
    driver = ChatDriver(service, user="U-slots", line_language="en")
    driver.follow()
    book_anywhere(driver, "noto")
    picker = next(r for e in driver.exchanges for r in e.replies if isinstance(r, SlotPicker))
    assert re.fullmatch(r"\w{3}, \w{3} \d{1,2}", picker.days[0].label)
    assert re.fullmatch(r"\d{1,2}:\d{2} [AP]M–\d{1,2}:\d{2} [AP]M", picker.days[0].options[0].label.replace("〜", "–"))


def test_a_phone_numbers_note_is_in_the_languages_brackets(offices):
    """Izumo's 「0853-21-8609（41#）」: English puts the note in ASCII brackets after a space."""
    from bot.dialog import formats

    izumo = offices["izumo"]
    expected = {"ja": "0853-21-8609（41#）", "ja_easy": "0853-21-8609（41#）", "en": "0853-21-8609 (41#)"}
    for lang, phone in expected.items():
        with i18n.using(lang):
            assert formats.phone(offices.localized("izumo", lang)) == phone
    with i18n.using("en"):
        assert formats.phone(offices["noto"]) == "0768-62-1242" and formats.phone(offices["toyooka"]) is None
    assert izumo.contact.phone_note == "41#"


def test_the_csv_and_the_booking_record_say_the_language(service):
    from bot.staff.console import booking_record
    from bot.staff.export import bookings_csv

    driver = ChatDriver(service, user="U-csv", line_language="en")
    driver.follow()
    book_anywhere(driver, "noto")
    [booking] = driver.bookings()
    rows = dict(booking_record(service.offices["noto"], booking, "who"))
    assert rows["言語"] == "英語での対応を希望" and rows["規約の要約を読んだ言語"] == "英語"
    header, line = bookings_csv([booking]).lstrip("\ufeff").splitlines()
    assert line.split(",")[header.split(",").index("言語")] == "英語での対応を希望"
