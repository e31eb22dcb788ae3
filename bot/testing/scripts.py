"""Scripted dialogs: YAML files a tester reads and writes without Python (format in dialogs/README.md).

Each script runs on a clean Redis with its own clock; `run_script` returns the transcript and PASS/FAIL.
pytest runs every script in dialogs/ through the same function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot import i18n
from bot.channels.session import Exchange
from bot.clock import JST, parse_instant
from bot.service import BotService
from bot.dialog import Conversation, Outcome, SlotPicker
from bot.profiles import Offices
from bot.dialog import StaffNotice
from bot.dialog.replies import Text
from bot.dialog import texts
from bot.errors import StaffActionError
from bot.staff.actions import StaffActions
from bot.staff.aftercare import Overdue, Proposals, Reconsent, Reminders
from bot.staff.threads import ThreadActions
from bot.testing.driver import ChatDriver, DriverError, ManualClock, labelled_options

# Who a scripted dialog's staff steps are recorded as (`*_by`): the console shows it as 担当者.
SCRIPT_STAFF = "staff"

ACTIONS = (
    "say", "tap", "tap_earlier", "follow", "unfollow", "sticker", "wait", "someone_books", "user", "staff_marks",
    "terms_revised", "staff_replies", "staff_closes", "staff_confirms", "staff_proposes", "staff_declines",
    "worker_runs", "line_language",
)  # fmt: skip


class TermsRevision(BaseModel):
    """`terms_revised:` an office publishes new terms (a newer version date) and the task asks users."""

    model_config = ConfigDict(extra="forbid")
    office: str
    version: date


class Step(BaseModel):
    """One line of a script: exactly one action, then what the bot's answer must (not) contain."""

    model_config = ConfigDict(extra="forbid")

    say: str | None = None
    tap: str | None = None
    tap_earlier: str | None = None
    follow: bool | None = None
    unfollow: bool | None = None
    sticker: bool | None = None
    wait: str | None = None  # "31m", "2h", "1d"
    someone_books: str | None = None  # a slot "YYYY-MM-DDTHH:MM" taken by another user
    user: str | None = None  # switch to another user (their own conversation)
    staff_marks: Literal["no_show", "attended"] | None = None  # staff mark the user's last past booking
    terms_revised: TermsRevision | None = None
    staff_replies: str | None = None  # staff answer the user's open handoff thread (a push to the user)
    staff_closes: bool | None = None  # staff close the thread: the bot resumes and tells the user
    staff_confirms: bool | None = None  # staff confirm the user's latest open request (console)
    staff_proposes: str | None = None  # staff propose that slot "YYYY-MM-DDTHH:MM" for it instead
    staff_declines: str | None = None  # staff decline it with this reason
    worker_runs: bool | None = None  # the worker's tasks run now (reminders, lapsed proposals, overdue requests)
    line_language: str | None = None  # the user's LINE profile language from now on ("none": LINE gives none)
    expect: list[str] | str = []
    expect_not: list[str] | str = []
    buttons: list[str] | None = None  # the exact buttons offered, in order (slot buttons excluded)
    notices: list[str] | None = None  # kinds of staff notices produced, in order

    @field_validator("wait")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def action(self) -> tuple[str, Any]:
        chosen = [(name, getattr(self, name)) for name in ACTIONS if getattr(self, name) not in (None, False)]
        if len(chosen) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(ACTIONS)}")
        return chosen[0]


class ExpectedBooking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    office: str
    slot: str
    status: str = "booked"
    fields: dict[str, str] = {}


class End(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str | None = None
    bookings: list[ExpectedBooking] | None = None  # the user's bookings, exactly
    threads: int | None = None  # the user's handoff threads still stored (open or closed)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    now: datetime
    user: str = "U-tester"
    # The `language` of the users' LINE profile (a BCP 47 tag such as en; unset: LINE gives none), which
    # the bot asks after its first greeting.
    line_language: str | None = None
    steps: list[Step] = Field(min_length=1)
    end: End = End()

    @field_validator("now", mode="before")
    @classmethod
    def _now(cls, value: object) -> object:
        return parse_instant(value) if isinstance(value, str) else value

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[Step]) -> list[Step]:
        for index, step in enumerate(steps):
            try:
                step.action()
            except ValueError as exc:
                raise ValueError(f"step {index + 1}: {exc}") from None
        return steps


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 31m, 2h or 1d")
    amount, unit = int(match[1]), match[2]
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


@dataclass
class ScriptResult:
    path: Path
    title: str
    passed: bool
    transcript: str
    failures: list[str] = field(default_factory=list)


def load_script(path: Path) -> Script:
    """Parse a script; a broken one raises ValueError naming the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Script.model_validate(data)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}".replace("\n", " ")) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None


def _as_list(value: list[str] | str) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def run_script(
    path: Path, make_service: Callable[[ManualClock], BotService], now: datetime | None = None
) -> ScriptResult:
    """Run one script on a service built for its clock (on a clean Redis); `now` overrides the script's."""
    try:
        script = load_script(path)
    except ValueError as exc:
        return ScriptResult(path, path.stem, False, "", [str(exc)])
    clock = ManualClock(now or script.now)
    service = make_service(clock)
    drivers = {script.user: ChatDriver(service, user=script.user, line_language=script.line_language)}
    driver = drivers[script.user]
    failures: list[str] = []
    log: list[str] = []
    for number, step in enumerate(script.steps, start=1):
        name, value = step.action()
        before = len(driver.exchanges)
        try:
            if name == "say":
                driver.say(str(value))
            elif name == "tap":
                driver.tap(str(value))
            elif name == "tap_earlier":
                driver.tap_earlier(str(value))
            elif name == "follow":
                driver.follow()
            elif name == "unfollow":
                driver.unfollow()
            elif name == "sticker":
                driver.sticker()
            elif name == "wait":
                clock.advance(parse_duration(str(value)))
                log.append(f"(時間が{value}経過: {clock.now():%Y-%m-%d %H:%M})")
                continue
            elif name == "someone_books":
                _someone_books(service, driver, str(value), clock)
                log.append(f"(別の利用者が {value} を予約)")
                continue
            elif name == "staff_marks":
                ref = _staff_marks(service, driver, str(value), clock)
                log.append(f"(担当者が {ref} を {value} に設定)")
                continue
            elif name == "terms_revised":
                service = _revise_terms(service, value)
                for other in drivers.values():
                    other.service = service
                _ask_reconsent(service, driver, clock)
            elif name in ("staff_replies", "staff_closes"):
                _staff_answers(service, driver, str(value) if name == "staff_replies" else None)
            elif name in ("staff_confirms", "staff_proposes", "staff_declines"):
                _staff_acts(service, driver, name, value)
            elif name == "worker_runs":
                _worker_runs(service, driver, clock)
            elif name == "line_language":
                driver.line_language = None if value == "none" else str(value)
                log.append(f"(LINE のプロフィールの言語: {value})")
                continue
            elif name == "user":
                driver = drivers.setdefault(str(value), ChatDriver(service, user=str(value),
                                                                   line_language=script.line_language))
                log.append(f"(利用者を {value} に切り替え)")
                continue
        except DriverError as exc:
            failures.append(f"step {number}: {exc}")
            break
        for exchange in driver.exchanges[before:]:
            log.append(_transcript_of(driver, exchange))
        shown = driver.last_text()
        for needle in _as_list(step.expect):
            if needle not in shown:
                failures.append(f"step {number}: expected {needle!r} in the reply")
        for needle in _as_list(step.expect_not):
            if needle in shown:
                failures.append(f"step {number}: did not expect {needle!r} in the reply")
        if step.buttons is not None:
            offered = _buttons(driver)
            if offered != step.buttons:
                failures.append(f"step {number}: buttons were {offered}, expected {step.buttons}")
        if step.notices is not None:
            outcome = driver.exchanges[-1].outcome
            kinds = [notice.kind for notice in outcome.notices + outcome.sent_notices]
            if kinds != step.notices:
                failures.append(f"step {number}: staff notices were {kinds}, expected {step.notices}")
    if not failures:
        failures += _check_end(script, drivers[script.user])
    transcript = "\n".join(log)
    return ScriptResult(path, script.title, not failures, transcript, failures)


def _transcript_of(driver: ChatDriver, exchange) -> str:
    single = ChatDriver(driver.service, user=driver.user, exchanges=[exchange])
    return single.transcript()


def _buttons(driver: ChatDriver) -> list[str]:
    """The buttons of the last answer; slot buttons are left out (they change with the date)."""
    labels: list[str] = []
    for reply in driver.exchanges[-1].replies:
        if isinstance(reply, SlotPicker):
            labels += [option.label for option in reply.options]
        else:
            labels += [label for label, _ in labelled_options(reply)]
    return labels


def _someone_books(service: BotService, driver: ChatDriver, slot: str, clock: ManualClock) -> None:
    """Another user takes `slot` at the office of the driver's conversation."""
    data, _ = service.conversations.load(driver.user)
    office = (data or {}).get("office")
    if not office:
        raise DriverError("someone_books needs the conversation to have an office chosen")
    start = datetime.fromisoformat(slot).replace(tzinfo=JST)
    minutes = service.offices[office].schedule.minutes
    booking = {
        "id": f"OTHER{abs(hash(slot)) % 10000:04d}",
        "office": office,
        "slot": slot,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "user": "U-someone-else",
        "status": "booked",
        "created_at": clock.now().isoformat(),
    }
    result = service.bookings.claim(booking, service.offices[office].schedule.capacity)
    if not result.ok:
        raise DriverError(f"someone_books: {slot} could not be booked ({result.reason})")


def _staff_marks(service: BotService, driver: ChatDriver, status: str, clock: ManualClock) -> str:
    """Staff mark the user's latest booking that has started (as the staff console does)."""
    started = [
        b for b in driver.bookings() if b.get("status") == "booked" and datetime.fromisoformat(b["start"]) <= clock.now()
    ]
    if not started:
        raise DriverError("staff_marks needs a booked appointment that has started")
    ref = service.bookings.store.ref(started[-1])
    service.bookings.update(ref, {"status": status})
    return ref


def revised_terms(offices: Offices, office: str, version: date) -> Offices:
    """The same offices with `office`'s terms revised on `version` (a newer date)."""
    profiles = {office_id: offices[office_id] for office_id in offices}
    terms = profiles[office].terms
    label = f"{terms.version_label}、{version.year}年{version.month}月{version.day}日改訂"
    revised = terms.model_copy(update={"version": version, "history": [*terms.history, version], "version_label": label})
    profiles[office] = profiles[office].model_copy(update={"terms": revised})
    return Offices(profiles, {office_id: offices.terms_text(office_id) for office_id in offices})


def _revise_terms(service: BotService, revision: TermsRevision) -> BotService:
    """A service on the same Redis and clock whose profiles carry the revised terms."""
    offices = revised_terms(service.offices, revision.office, revision.version)
    return BotService(service.settings, client=service.client, offices=offices, clock=service.clock)


def _pushed(service: BotService, driver: ChatDriver) -> Outcome:
    """The outcome a push to the driver's user is shown in (in the user's language, as the push is)."""
    return Outcome(Conversation(user=driver.user, lang=service.user_language(driver.user)))


def _ask_reconsent(service: BotService, driver: ChatDriver, clock: ManualClock) -> None:
    """Run the re-consent task; the user's pushes show as one exchange (their buttons can be tapped)."""
    asked = [item for item in Reconsent(service)(clock.now()) if item[0].get("user") == driver.user]
    outcome = _pushed(service, driver)
    for _, replies, notice in asked:
        outcome.replies.extend(replies)
        outcome.notices.append(notice)
    driver.exchanges.append(Exchange("(利用規約の改定のお知らせ)", outcome))


def _staff_answers(service: BotService, driver: ChatDriver, text: str | None) -> None:
    """Staff reply in (text) or close (None) the user's open thread, as the console does; the push the
    user receives is this step's answer (its buttons can be tapped)."""
    thread = (service.handoffs.info(driver.user) or {}).get("thread")
    if not thread:
        raise DriverError("staff_replies/staff_closes need the user to be waiting for staff")
    actions = ThreadActions(service)
    outcome = _pushed(service, driver)
    if text is None:
        actions.close(thread, by=SCRIPT_STAFF)
        with i18n.using(outcome.conversation.lang):
            outcome.replies.append(Text(texts.STAFF_RESUMED))
        driver.exchanges.append(Exchange("(担当者が会話を終了)", outcome))
        return
    actions.reply(thread, text, nonce="", by=SCRIPT_STAFF)
    with i18n.using(outcome.conversation.lang):
        outcome.replies.extend(actions.reply_replies(service.handoffs.meta(thread), text))
    driver.exchanges.append(Exchange(f"(担当者が返信) {text}", outcome))
def _staff_acts(service: BotService, driver: ChatDriver, name: str, value: Any) -> None:
    """Staff act on the user's latest open request as the console does; the push is this step's answer."""
    requests = [b for b in driver.bookings()
                if b.get("status") == "booked" and b.get("office_confirmation") in ("pending", "awaiting_consent")]
    if not requests:
        raise DriverError(f"{name} needs a request waiting for the office")
    ref = service.bookings.store.ref(requests[-1])
    actions = StaffActions(service)
    try:
        if name == "staff_confirms":
            done, kind, label = actions.confirm(ref, by=SCRIPT_STAFF), "confirmed", "(担当者が申込みを確定)"
        elif name == "staff_proposes":
            done, kind, label = actions.propose(ref, str(value), by=SCRIPT_STAFF), "proposed", f"(担当者が {value} を提案)"
        else:
            done, kind, label = actions.decline(ref, str(value), by=SCRIPT_STAFF), "declined", "(担当者が申込みをお断り)"
    except StaffActionError as exc:
        raise DriverError(f"{name}: {exc}") from None
    outcome = _pushed(service, driver)
    outcome.replies.extend(done.replies)
    outcome.notices.append(StaffNotice(kind=kind, office=done.booking["office"], summary=label))
    driver.exchanges.append(Exchange(label, outcome))


def _worker_runs(service: BotService, driver: ChatDriver, clock: ManualClock) -> None:
    """The worker's reminder and request tasks run now, in the worker's order; what they pushed to this
    user (a day-before reminder, a lapsed proposal) is this step's answer."""
    outcome = _pushed(service, driver)
    for booking, replies in Reminders(service)(clock.now()):
        if booking.get("user") == driver.user:
            outcome.replies.extend(replies)
    for request, replies in Proposals(service)(clock.now()):
        if request.get("user") == driver.user:
            outcome.replies.extend(replies)
        outcome.notices.append(StaffNotice(kind="proposal_lapsed", office=request["office"], summary="提案の期限切れ"))
    for booking in Overdue(service)(clock.now()):
        outcome.notices.append(StaffNotice(kind="request_overdue", office=booking["office"], summary="確認待ちの申込み"))
    driver.exchanges.append(Exchange("(ワーカーの定期処理)", outcome))


def _check_end(script: Script, driver: ChatDriver) -> list[str]:
    failures = []
    if script.end.threads is not None:
        stored = len(driver.service.handoffs.threads_of(driver.user))
        if stored != script.end.threads:
            failures.append(f"end: {stored} handoff threads stored, expected {script.end.threads}")
    if script.end.state is not None and driver.conversation_state() != script.end.state:
        failures.append(f"end: state was {driver.conversation_state()!r}, expected {script.end.state!r}")
    if script.end.bookings is not None:
        actual = driver.bookings()
        got = [(b.get("office"), b.get("slot"), b.get("status")) for b in actual]
        want = [(b.office, b.slot, b.status) for b in script.end.bookings]
        if got != want:
            failures.append(f"end: bookings were {got}, expected {want}")
        else:
            for expected, booking in zip(script.end.bookings, actual):
                for key, value in expected.fields.items():
                    if str(booking.get(key)) != value:
                        failures.append(f"end: booking {key} was {booking.get(key)!r}, expected {value!r}")
    return failures


def script_paths(paths: list[Path]) -> list[Path]:
    """Expand directories into their *.yaml scripts, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.glob("*.yaml"))
        else:
            found.append(path)
    return found
