"""The booking conversation: one transitions machine per office, one model per machine re-seated per turn.

`Dialog.handle(conversation, event, now, bookings)` runs one turn and returns an `Outcome` (replies and
staff notices); it sends nothing and stores nothing itself. Each office's machine is built once with one
model added once (`Flow.seat`); a turn takes the seat under the flow's lock, loads the conversation's
state and data into it, fires a trigger and clears it again. DESIGN.md's "add the model each event and
remove it" cost ~13% of a turn's CPU (add_model binds ~50 triggers); the seat keeps no user data.

States (nouns / -ing phrases): idle, choosing_office, asking_name, asking_number, asking_email,
asking_phone, choosing_topic, asking_interpreter, q_<question id>, choosing_category,
asking_category_detail, choosing_slot, reading_terms, confirming, choosing_change, ineligible,
confirming_cancel, confirming_erase. Triggers (verbs): begin, advance, reject, change, finish, quit, restart, and the
automatic to_<state> used by 戻る and by edits from the confirmation card.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

from transitions import Machine

from bot import calendar
from bot.clock import JST
from bot.dialog import texts as T
from bot.dialog import validate
from bot.dialog.conversation import Bookings, Conversation, Inbound, Outcome, booking_ref, parse_when
from bot.dialog.replies import (
    Ask,
    BookedCard,
    ConfirmCard,
    Link,
    Option,
    Reply,
    SlotDay,
    SlotPicker,
    StaffNotice,
    TermsCard,
    Text,
    options_of,
)
from bot.profiles import Offices, OfficeProfile

ANY = "*"  # postback step marker for buttons that stay valid (menu, booking list)
DAYS_PER_PAGE = 5
STUCK_AFTER = 3  # invalid answers in a row to one question before staff are called
PERSONAL = ("name", "number", "email", "phone")
COMMON_STATES = ["idle", "choosing_office", "confirming_cancel", "confirming_erase"]
# Postback actions valid at any step and state (`*|<action>|<value>`): they act on a booking.
CANCEL_ACTION = "x"  # value: the booking ref
RECONSENT_ACTION = "rc"  # value: "<terms version>|<booking ref>"
REMINDER_ACTION = "rm"  # value: the booking ref (HWBOT_REMINDERS=opt_in)
REMINDER_MODES = ("all", "opt_in", "off")

TYPED_STATES = {
    "asking_name": ("name", validate.person_name, T.ASK_NAME),
    "asking_number": ("number", validate.job_seeker_number, T.ASK_NUMBER),
    "asking_email": ("email", validate.email, T.ASK_EMAIL),
    "asking_phone": ("phone", validate.phone, T.ASK_PHONE),
}
FIELD_STATES = {"email": "asking_email", "phone": "asking_phone"}
TURN_DATA = ("dialog", "conv", "now", "bookings", "outcome")  # what a Turn holds for one turn only


def postback(step: int | str, action: str, value: str = "") -> str:
    """Button data: `<step>|<action>|<value>` (well under LINE's 300 characters)."""
    return f"{step}|{action}|{value}"


def command_option(command: str) -> Option:
    return Option(T.COMMANDS[command], postback(ANY, "g", command))


def phone_links(office: OfficeProfile | None) -> tuple[Link, ...]:
    """The office's phone number as a `tel:` link; none when the office publishes no number."""
    if office is None or not office.contact.phone:
        return ()
    return (Link(f"{office.short_name}に電話する（{office.phone_label()}）", f"tel:{office.contact.phone}"),)


def booking_when(booking: dict[str, Any]) -> str:
    """`11月25日(水) 10:00〜10:30` of a stored booking."""
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    end = datetime.fromisoformat(booking["end"]).astimezone(JST)
    return f"{calendar.format_day(start.date())} {start:%H:%M}〜{end:%H:%M}"


def fold(text: str) -> str:
    """Compare typed text with labels: NFKC, no spaces, lower case."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


# Typed text (folded) -> command: the commands' button labels, then their aliases.
FOLDED_COMMANDS: dict[str, str] = {
    **{fold(alias): command for alias, command in T.COMMAND_ALIASES.items()},
    **{fold(label): command for command, label in T.COMMANDS.items()},
}


def steps_for(profile: OfficeProfile) -> list[str]:
    """The questions of one office, in the order they are asked."""
    steps = ["asking_name", "asking_number"]
    steps += [FIELD_STATES[name] for name in ("email", "phone") if name in profile.identify.fields]
    if len(profile.identify.topics) >= 2:
        steps.append("choosing_topic")
    if profile.identify.ask_interpreter:
        steps.append("asking_interpreter")
    steps += [f"q_{question.id}" for question in profile.eligibility.questions]
    if profile.eligibility.categories:
        steps += ["choosing_category", "asking_category_detail"]
    steps += ["choosing_slot", "reading_terms", "confirming"]
    return steps


class Flow:
    """One office's machine (or the lobby's, before an office is chosen), built once and reused."""

    def __init__(self, profile: OfficeProfile | None):
        self.profile = profile
        self.steps = steps_for(profile) if profile else []
        states = COMMON_STATES + self.steps + (["choosing_change", "ineligible"] if profile else [])
        transitions: list[dict[str, Any]] = []
        if self.steps:
            transitions.append({"trigger": "begin", "source": ["idle", "choosing_office"], "dest": self.steps[0]})
            order = [step for step in self.steps if step != "asking_category_detail"]
            for here, after in zip(order, order[1:]):
                if here == "choosing_category":
                    transitions.append(
                        {"trigger": "advance", "source": here, "dest": "asking_category_detail", "conditions": "needs_detail"}
                    )
                    transitions.append({"trigger": "advance", "source": "asking_category_detail", "dest": "confirming", "conditions": "editing"})
                    transitions.append({"trigger": "advance", "source": "asking_category_detail", "dest": after})
                if here != "reading_terms":
                    transitions.append({"trigger": "advance", "source": here, "dest": "confirming", "conditions": "editing"})
                transitions.append({"trigger": "advance", "source": here, "dest": after})
            eligibility = [s for s in self.steps if s.startswith("q_") or s in ("choosing_category", "asking_category_detail")]
            transitions += [
                {"trigger": "reject", "source": eligibility, "dest": "ineligible"},
                {"trigger": "change", "source": "confirming", "dest": "choosing_change"},
                {"trigger": "finish", "source": "confirming", "dest": "idle"},
            ]
        transitions += [
            {"trigger": "quit", "source": ANY, "dest": "idle"},
            {"trigger": "restart", "source": ANY, "dest": "choosing_office"},
        ]
        self.machine = Machine(
            model=None,
            states=states,
            transitions=transitions,
            initial="idle",
            auto_transitions=True,
            after_state_change="prompt",
        )
        self.lock = threading.Lock()  # one turn at a time on the seat below
        # The flow's one model, added once and re-seated for each turn under `lock`: add_model binds
        # ~50 trigger methods, ~11% of a turn's CPU when it was done for every turn (`hwbot bench`).
        self.seat = Turn.__new__(Turn)
        self.seat.__dict__.update(dict.fromkeys(TURN_DATA))
        self.machine.add_model(self.seat, initial="idle")

    def has(self, state: str) -> bool:
        return state in self.machine.states


@dataclass(frozen=True)
class Parsed:
    """An inbound event reduced to what the states need."""

    kind: str  # text | choice | command | media
    text: str = ""
    step: str = ""
    action: str = ""
    value: str = ""


class Dialog:
    """The conversation rules for every loaded office."""

    def __init__(
        self,
        offices: Offices,
        *,
        ttl: timedelta = timedelta(minutes=30),
        terms_url: Callable[[str], str] = lambda office_id: f"/offices/{office_id}/terms",
        reminders: str = "all",
    ):
        if reminders not in REMINDER_MODES:
            raise ValueError(f"reminders must be one of {', '.join(REMINDER_MODES)}")
        self.offices = offices
        self.ttl = ttl
        self.reminders = reminders
        self.terms_url = terms_url
        self.flows = {office_id: Flow(offices[office_id]) for office_id in offices}
        self.lobby = Flow(None)

    def flow(self, conversation: Conversation) -> Flow:
        return self.flows.get(conversation.office or "", self.lobby)

    def handle(
        self, conversation: Conversation | None, event: Inbound, now: datetime, bookings: Bookings
    ) -> Outcome:
        """Run one turn: the conversation is updated in place and returned in the outcome."""
        conversation = conversation or Conversation(user=event.user)
        outcome = Outcome(conversation=conversation)
        if conversation.office and conversation.office not in self.flows:
            conversation.reset()  # the office was removed from the profiles
        if event.kind == "unfollow":
            Turn(self, conversation, now, bookings, outcome).blocked()
            conversation.reset()
            outcome.erase_user = True
            return outcome
        last = parse_when(conversation.updated)
        conversation.updated = now.isoformat()
        turn = Turn(self, conversation, now, bookings, outcome)
        if conversation.state != "idle" and last is not None and now - last > self.ttl:
            conversation.reset()
            turn.say(Text(T.EXPIRED.format(minutes=int(self.ttl.total_seconds() // 60))))
            turn.run(lambda t: t.start_booking(greet=False))
            return outcome
        if event.kind == "follow":
            turn.run(lambda t: t.start_booking(greet=True))
            return outcome
        turn.run(lambda t: t.receive(turn.parse(event)))
        return outcome


class Turn:
    """The short-lived model of one turn: transitions drives its `state`."""

    state: str

    def __init__(self, dialog: Dialog, conversation: Conversation, now: datetime, bookings: Bookings, outcome: Outcome):
        self.dialog = dialog
        self.conv = conversation
        self.now = now.astimezone(JST)
        self.bookings = bookings
        self.outcome = outcome

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def profile(self) -> OfficeProfile:
        assert self.conv.office is not None
        return self.dialog.offices[self.conv.office]

    def run(self, action: Callable[["Turn"], None]) -> None:
        """Take the seat of the conversation's machine, act, leave it (and follow office switches)."""
        while True:
            flow = self.dialog.flow(self.conv)
            state = self.conv.state if flow.has(self.conv.state) else "idle"
            with flow.lock:
                seat = flow.seat
                seat.__dict__.update(self._turn_data(), _switch_to=None)
                flow.machine.set_state(state, model=seat)
                try:
                    action(seat)
                    self.conv.state = seat.state
                    switch_to = seat._switch_to
                finally:
                    seat.__dict__.update(dict.fromkeys(self._turn_data()))  # no user's data between turns
            if not switch_to:
                return
            # An office was chosen: continue in that office's machine.
            self.conv.office = switch_to
            action = lambda t: t.begin_office()  # noqa: E731

    def _turn_data(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TURN_DATA}

    def say(self, *replies: Reply) -> None:
        self.outcome.replies.extend(replies)

    def notify(self, kind: str, summary: str, **fields: str) -> None:
        office = self.conv.office or ""
        self.outcome.notices.append(StaffNotice(kind=kind, office=office, summary=summary, fields=fields))

    def option(self, label: str, action: str, value: str = "") -> Option:
        return Option(label, postback(self.conv.step, action, value))

    def parse(self, event: Inbound) -> Parsed:
        if event.kind == "media":
            return Parsed("media")
        if event.kind == "postback":
            parts = event.text.split("|", 2)
            if len(parts) == 3:
                step, action, value = parts
                if action == "g":
                    return Parsed("command", value=value, step=step)
                return Parsed("choice", step=step, action=action, value=value)
            return Parsed("text", text=event.text)
        folded = fold(event.text) if len(event.text) <= 40 else ""
        command = FOLDED_COMMANDS.get(folded)
        if command is not None:
            return Parsed("command", value=command, step=ANY)
        return Parsed("text", text=event.text)

    # -- transitions callbacks ------------------------------------------------------------------

    def editing(self) -> bool:
        return self.conv.editing

    def needs_detail(self) -> bool:
        category = self._category(self.conv.answers.get("category", ""))
        return bool(category and category.follow_up)

    def prompt(self) -> None:
        """Ask the question of the state just entered (after_state_change)."""
        self.conv.step += 1
        self.conv.fails = 0
        asker = getattr(self, f"ask_{self.state}", None)
        if asker is None and self.state.startswith("q_"):
            asker = self.ask_question
        if asker is not None:
            asker()

    def go(self, trigger: str) -> None:
        """Fire a trigger, remembering where we were for 戻る."""
        before = self.state
        getattr(self, trigger)()
        if self.state != before and before in self.dialog.flow(self.conv).steps and trigger == "advance":
            self.conv.history.append(before)

    # -- dispatch -------------------------------------------------------------------------------

    def receive(self, parsed: Parsed) -> None:
        if parsed.kind == "choice" and parsed.action == RECONSENT_ACTION:
            return self.reconsent(parsed.value)
        if parsed.kind == "choice" and parsed.action == REMINDER_ACTION:
            return self.opt_in_reminder(parsed.value)
        if self.conv.paused:
            return self.waiting_for_staff(parsed)
        if parsed.kind == "command":
            return self.command(parsed.value)
        if parsed.kind == "media":
            self.say(Text(T.MEDIA))
            return self.reprompt()
        if parsed.kind == "choice":
            if parsed.action == CANCEL_ACTION:  # a booking from the list: always valid
                return self.ask_cancel(parsed.value)
            if parsed.step != str(self.conv.step):
                self.say(Text(T.STALE if self.state != "idle" else T.STALE_IDLE))
                return self.reprompt()
            return self.on_choice(parsed.action, parsed.value)
        # typed text
        if self.state in TYPED_STATES:
            return self.on_typed(parsed.text)
        if self.state == "choosing_slot":
            return self.on_slot_text(parsed.text)
        match = self._match_option(parsed.text)
        if match is not None:
            _, action, value = match.data.split("|", 2)
            if action == "g":
                return self.command(value)
            if action == "x":
                return self.ask_cancel(value)
            return self.on_choice(action, value)
        if self.state == "idle":
            return self.start_booking(greet=True)
        self.invalid(T.USE_BUTTONS)

    def _current_options(self) -> list[Option]:
        """The options of the question now asked (rebuilt without side effects)."""
        saved_replies, saved_notices = self.outcome.replies, self.outcome.notices
        self.outcome.replies, self.outcome.notices = [], []
        saved = (self.conv.step, self.conv.fails, self.conv.editing)
        try:
            self.reprompt()
            return [option for reply in self.outcome.replies for option in options_of(reply)]
        finally:
            self.conv.step, self.conv.fails, self.conv.editing = saved
            self.outcome.replies, self.outcome.notices = saved_replies, saved_notices

    def _match_option(self, text: str) -> Option | None:
        if len(text) > 40:
            return None
        folded = fold(text)
        options = self._current_options()
        for option in options:
            if fold(option.label) == folded:
                return option
        # A typed number picks the numbered option (the console shows numbers).
        if folded.isdigit() and 1 <= int(folded) <= len(options):
            return options[int(folded) - 1]
        return None

    def reprompt(self) -> None:
        """Ask the current question again (same step: its buttons stay valid)."""
        if self.state == "idle":
            return self.ask_menu()
        self.conv.step -= 1
        fails = self.conv.fails
        self.prompt()
        self.conv.fails = fails

    def invalid(self, message: str) -> None:
        """A polite instruction, then the same question again; the third failure in a row hands off."""
        self.conv.fails += 1
        self.say(Text(message))
        if self.conv.fails >= STUCK_AFTER:
            self.say(Text(T.STUCK))
            return self.handoff("stuck", f"同じ質問への回答が{STUCK_AFTER}回続けて受け付けられませんでした。")
        self.reprompt()

    # -- commands -------------------------------------------------------------------------------

    def command(self, name: str) -> None:
        if name == "restart":
            self.conv.reset()
            self.conv.updated = self.now.isoformat()
            return self.start_booking(greet=False)
        if name in ("book", "menu") and self.state == "idle":
            return self.start_booking(greet=name == "menu")
        if name in ("book", "menu"):
            return self.reprompt()
        if name == "quit":
            self.conv.reset()
            self.say(Text(T.QUIT))
            return self.ask_menu()
        if name == "back":
            return self.back()
        if name == "help":
            self.say(Text(T.HELP))
            if self.state != "idle":
                return self.reprompt()
            return self.ask_menu(command_option("erase"))
        if name == "handoff":
            return self.handoff("user_request", "利用者が担当者との会話を希望しています。")
        if name in ("bookings", "cancel"):
            return self.list_bookings(cancelling=name == "cancel")
        if name in ("resume", "resume_bot"):
            return self.reprompt()
        if name == "erase":
            if self.state != "idle":
                self.quit_silently()
            return self.to_confirming_erase()
        self.reprompt()

    def back(self) -> None:
        if self.state == "choosing_change":
            return self.to_confirming()
        if self.conv.editing and self.state in self.dialog.flow(self.conv).steps:
            self.conv.editing = False
            return self.to_confirming()
        if self.state == "confirming_cancel":
            self.say(Text(T.CANCEL_KEPT))
            return self.ask_menu_state()
        if self.state == "confirming_erase":
            return self.do_erase(False)
        if self.conv.history:
            previous = self.conv.history.pop()
            return getattr(self, f"to_{previous}")()
        if self.state in ("idle", "choosing_office"):
            self.say(Text(T.NO_BACK))
            return self.reprompt() if self.state != "idle" else self.ask_menu()
        if len(self.dialog.offices) == 1:
            self.say(Text(T.NO_BACK))
            return self.reprompt()
        # The first question of an office goes back to the office choice.
        self.conv.reset()
        self.start_booking(greet=False)

    def handoff(self, reason: str, summary: str) -> None:
        """Pause the bot for this user, tell them when staff will answer, and notify staff."""
        office = self.dialog.offices[self.conv.office] if self.conv.office else None
        self.notify(
            "handoff",
            summary,
            reason=reason,
            step=self.state,
            office_name=office.short_name if office else "",
        )
        self.conv.paused = self.now.isoformat()
        links = self._phone_links(office)
        text = T.HANDOFF.format(when=self._staff_answer_time(office)) + ("\n" + T.HANDOFF_CALL if links else "")
        self.say(Text(text, links=links))
        self.say(Ask(T.PAUSED_HINT, (command_option("resume_bot"),)))

    def _staff_answer_time(self, office: OfficeProfile | None) -> str:
        """When staff will answer: within today's opening hours, or from the next business day."""
        if office is None:
            return T.WHEN_OFFICE_HOURS
        today = self.now.date()
        opens = datetime.combine(today, office.hours.open, tzinfo=JST)
        closes = datetime.combine(today, office.hours.close, tzinfo=JST)
        if calendar.is_open(office, today) and self.now < closes:
            if self.now >= opens:
                return T.WHEN_TODAY.format(close=f"{office.hours.close:%H:%M}")
            return T.WHEN_DAY.format(day="本日", open=f"{office.hours.open:%H:%M}")
        day = today + timedelta(days=1)
        while not calendar.is_open(office, day):
            day += timedelta(days=1)
        return T.WHEN_DAY.format(day=calendar.format_day(day), open=f"{office.hours.open:%H:%M}")

    def waiting_for_staff(self, parsed: Parsed) -> None:
        """While paused, the bot only reminds the user that staff will answer (or resumes on request)."""
        if parsed.kind == "command" and parsed.value in ("resume_bot", "restart", "quit", "bookings", "cancel", "erase"):
            self.conv.paused = None
            self.notify("handoff_closed", "利用者が自動応答に戻りました。", reason="user_resumed")
            if parsed.value == "resume_bot":
                self.say(Text(T.RESUMED))
                return self.reprompt()
            return self.command(parsed.value)
        office = self.dialog.offices[self.conv.office] if self.conv.office else None
        self.say(Text(T.PAUSED.format(when=self._staff_answer_time(office)), links=self._phone_links(office)))
        self.say(Ask(T.PAUSED_HINT, (command_option("resume_bot"),)))

    def _phone_links(self, office: OfficeProfile | None) -> tuple[Link, ...]:
        return phone_links(office)

    # -- idle, office choice ------------------------------------------------------------------------

    def ask_menu(self, *extra: Option) -> None:
        self.say(Ask(T.MENU, (*extra, command_option("book"), command_option("bookings"), command_option("help"))))

    def ask_menu_state(self) -> None:
        """Leave whatever flow there was and show the menu."""
        if self.state != "idle":
            self.quit_silently()
        self.ask_menu()

    def quit_silently(self) -> None:
        self.conv.reset()
        self.to_idle()

    def ask_idle(self) -> None:
        """Entering idle asks nothing; the action that led here says what happened."""

    def start_booking(self, greet: bool) -> None:
        if greet and len(self.dialog.offices) == 1:
            office = next(iter(self.dialog.offices.values()))
            self.say(Text(T.GREETING_OFFICE.format(office=office.short_name)))
        elif greet:
            self.say(Text(T.GREETING))
        if len(self.dialog.offices) == 1:
            only = next(iter(self.dialog.offices))
            if self.conv.office != only:
                self._switch_to = only
                self.to_choosing_office_silently()
                return
            return self.begin_office()
        self.to_choosing_office()

    def to_choosing_office_silently(self) -> None:
        self.conv.state = "choosing_office"
        self.state = "choosing_office"

    def ask_choosing_office(self) -> None:
        options = [self.option(p.short_name, "o", oid) for oid, p in self.dialog.offices.items()]
        options.append(command_option("bookings"))
        self.say(Ask(T.CHOOSE_OFFICE, tuple(options)))

    def begin_office(self) -> None:
        """An office was chosen: refuse when the user already holds its booking limit, else begin."""
        if self._no_show_limit_reached():
            return
        upcoming = self._upcoming(self.profile.id)
        if len(upcoming) >= self.profile.booking.max_upcoming:
            listing = "\n".join(self._booking_line(b) for b in upcoming)
            office = self.profile.short_name
            self.conv.reset()
            self.to_idle()
            self.say(Text(T.ALREADY_BOOKED.format(office=office, bookings=listing)))
            return self.list_bookings(cancelling=True, intro=False)
        self.conv.answers = {}
        self.conv.history = []
        self.begin()

    # -- questions ---------------------------------------------------------------------------------

    def _typed_ask(self, text: str) -> None:
        self.say(Ask(text, (command_option("back"), command_option("quit")), typed=True))

    def ask_asking_name(self) -> None:
        self._typed_ask(T.ASK_NAME)

    def ask_asking_number(self) -> None:
        self._typed_ask(T.ASK_NUMBER)

    def ask_asking_email(self) -> None:
        self._typed_ask(T.ASK_EMAIL)

    def ask_asking_phone(self) -> None:
        self._typed_ask(T.ASK_PHONE)

    def on_typed(self, text: str) -> None:
        key, check, _ = TYPED_STATES[self.state]
        result = check(text)
        if isinstance(result, validate.Invalid):
            return self.invalid(result.message)
        self.conv.answers[key] = result.value
        self.go("advance")

    def ask_choosing_topic(self) -> None:
        options = [self.option(topic, "c", str(i)) for i, topic in enumerate(self.profile.identify.topics)]
        self.say(Ask(T.ASK_TOPIC, tuple(options + [command_option("back")])))

    def ask_asking_interpreter(self) -> None:
        options = [self.option(label, "c", key) for key, label in T.INTERPRETER_CHOICES]
        self.say(Ask(T.ASK_INTERPRETER, tuple(options + [command_option("back")])))

    def _question(self):
        qid = self.state.removeprefix("q_")
        return next(q for q in self.profile.eligibility.questions if q.id == qid)

    def ask_question(self) -> None:
        questions = self.profile.eligibility.questions
        question = self._question()
        total = len(questions) + (1 if self.profile.eligibility.categories else 0)
        index = questions.index(question) + 1
        options = [self.option(choice.label, "c", choice.id) for choice in question.choices]
        text = T.CHECK_PROGRESS.format(index=index, total=total) + question.text
        self.say(Ask(text, tuple(options + [command_option("back")])))

    def _category(self, category_id: str):
        categories = self.profile.eligibility.categories if self.conv.office else None
        if not categories:
            return None
        return next((item for item in categories.items if item.id == category_id), None)

    def ask_choosing_category(self) -> None:
        categories = self.profile.eligibility.categories
        assert categories is not None
        total = len(self.profile.eligibility.questions) + 1
        listing = "\n".join(f"{i}. {item.text}" for i, item in enumerate(categories.items, start=1))
        options = [self.option(item.label, "c", item.id) for item in categories.items]
        options.append(self.option(categories.none_label, "c", "none"))
        text = T.CHECK_PROGRESS.format(index=total, total=total) + categories.text + "\n" + listing
        self.say(Ask(text, tuple(options + [command_option("back")])))

    def ask_asking_category_detail(self) -> None:
        category = self._category(self.conv.answers.get("category", ""))
        assert category is not None and category.follow_up is not None
        follow = category.follow_up
        options = (self.option(follow.yes_label, "c", "yes"), self.option(follow.no_label, "c", "no"))
        self.say(Ask(follow.text, options + (command_option("back"),)))

    def ask_ineligible(self) -> None:
        failed = self.conv.answers.get("_ineligible", "")
        reason, instead = self._ineligible_texts(failed)
        links = self._phone_links(self.profile)
        self.say(Text(f"{T.INELIGIBLE}\n{reason}\n\n{instead}", links=links))
        options = (command_option("handoff"), command_option("back"), command_option("restart"), command_option("quit"))
        self.say(Ask(T.INELIGIBLE_HINT, options))

    def _ineligible_texts(self, failed: str) -> tuple[str, str]:
        eligibility = self.profile.eligibility
        if failed.startswith("q_"):
            question = next(q for q in eligibility.questions if q.id == failed[2:])
            return question.ineligible.reason, question.ineligible.instead
        if failed == "category_detail":
            category = self._category(self.conv.answers.get("category", ""))
            if category and category.follow_up:
                return category.follow_up.ineligible.reason, category.follow_up.ineligible.instead
        assert eligibility.categories is not None
        return eligibility.categories.ineligible.reason, eligibility.categories.ineligible.instead

    def on_choice(self, action: str, value: str) -> None:
        state = self.state
        if state == "choosing_office" and action == "o" and value in self.dialog.offices:
            self.conv.answers = {}
            if self.dialog.flow(self.conv) is self.dialog.lobby or self.conv.office != value:
                self._switch_to = value
                return
            return self.begin_office()
        if state == "choosing_topic" and action == "c" and value.isdigit():
            topics = self.profile.identify.topics
            if int(value) < len(topics):
                self.conv.answers["topic"] = topics[int(value)]
                return self.go("advance")
        if state == "asking_interpreter" and action == "c" and value in dict(T.INTERPRETER_CHOICES):
            self.conv.answers["interpreter"] = value
            return self.go("advance")
        if state.startswith("q_") and action == "c":
            question = self._question()
            choice = next((c for c in question.choices if c.id == value), None)
            if choice is not None:
                self.conv.answers[state] = choice.id
                if choice.ok:
                    return self.go("advance")
                self.conv.answers["_ineligible"] = state
                self.conv.history.append(state)
                return self.reject()
        if state == "choosing_category" and action == "c":
            if value == "none":
                self.conv.answers["category"] = "none"
                self.conv.answers["_ineligible"] = "category"
                self.conv.history.append(state)
                return self.reject()
            if self._category(value) is not None:
                self.conv.answers["category"] = value
                self.conv.answers.pop("category_detail", None)
                return self.go("advance")
        if state == "asking_category_detail" and action == "c" and value in ("yes", "no"):
            self.conv.answers["category_detail"] = value
            if value == "yes":
                return self.go("advance")
            self.conv.answers["_ineligible"] = "category_detail"
            self.conv.history.append(state)
            return self.reject()
        if state == "choosing_slot":
            return self.on_slot_choice(action, value)
        if state == "reading_terms" and action == "t":
            if value == "consent":
                terms = self.profile.terms
                self.conv.consent = {"version": terms.version.isoformat(), "at": self.now.isoformat()}
                return self.go("advance")
            if value == "decline":
                self.conv.reset()
                self.to_idle()
                self.say(Text(T.DECLINED))
                return self.ask_menu()
        if state == "confirming" and action == "k":
            if value == "book":
                return self.book()
            if value == "change":
                return self.go("change")
            if value == "quit":
                return self.command("quit")
        if state == "choosing_change" and action == "e" and value in self.dialog.flow(self.conv).steps:
            self.conv.editing = True
            return getattr(self, f"to_{value}")()
        if state == "confirming_cancel" and action == "y":
            return self.do_cancel(value == "yes")
        if state == "confirming_erase" and action == "d":
            return self.do_erase(value == "yes")
        if state == "idle":
            self.say(Text(T.STALE_IDLE))
            return self.ask_menu()
        self.invalid(T.USE_BUTTONS)

    # -- slots --------------------------------------------------------------------------------------

    def _live_slots(self) -> list[calendar.Slot]:
        """Every bookable slot of the window (a typed date may fall anywhere in it)."""
        profile = self.profile
        booked = self.bookings.booked_counts(profile.id, calendar.grid_keys(profile, self.now))
        return calendar.bookable_slots(profile, self.now, booked)

    def _live_slot(self, key: str) -> calendar.Slot | None:
        """The slot `key` if it is bookable now; reads that slot's count only (not the whole window)."""
        profile = self.profile
        if calendar.slot_at(profile, key) is None:
            return None  # not in the office's grid (a forged or garbled button)
        booked = self.bookings.booked_counts(profile.id, [key])
        return calendar.bookable_slot(profile, self.now, key, booked.get(key, 0))

    def _page_slots(self, start: date | None) -> list[calendar.Slot]:
        """The bookable slots of every day before `start` and of the next DAYS_PER_PAGE + 1 days that
        have one (or to the end of the window): what a page of the picker and its buttons need.

        Counts are read a page of days at a time, so the first page reads about 6 days' slots rather
        than the whole window's (Noto: 24 of 88).
        """
        profile = self.profile
        open_days = calendar.days_before_deadline(profile, self.now)
        begin = next((i for i, day in enumerate(open_days) if start is not None and day >= start), 0)
        slots: list[calendar.Slot] = []
        low, high = 0, begin + DAYS_PER_PAGE + 1
        while low < len(open_days):
            first, last = open_days[low], open_days[min(high, len(open_days)) - 1]
            keys = calendar.grid_keys(profile, self.now, first=first, last=last)
            booked = self.bookings.booked_counts(profile.id, keys)
            slots += calendar.bookable_slots(profile, self.now, booked, first=first, last=last)
            shown_from = start or open_days[0]
            if len({slot.start.date() for slot in slots if slot.start.date() >= shown_from}) > DAYS_PER_PAGE:
                break
            low, high = high, high + DAYS_PER_PAGE + 1
        return slots

    def ask_choosing_slot(self) -> None:
        profile = self.profile
        start = date.fromisoformat(self.conv.slot_from) if self.conv.slot_from else None
        slots = self._page_slots(start)
        by_day: dict[date, list[calendar.Slot]] = {}
        for slot in slots:
            by_day.setdefault(slot.start.date(), []).append(slot)
        days = list(by_day)  # slots come earliest first
        if start is not None:
            shown_days = [day for day in days if day >= start][:DAYS_PER_PAGE]
        else:
            shown_days = days[:DAYS_PER_PAGE]
        extra: list[Option] = []
        if shown_days and days and shown_days[-1] < days[-1]:
            next_day = days[days.index(shown_days[-1]) + 1]
            extra.append(self.option(T.MORE_SLOTS, "m", next_day.isoformat()))
        if shown_days and days and shown_days[0] > days[0]:
            earlier = days[max(0, days.index(shown_days[0]) - DAYS_PER_PAGE)]
            extra.append(self.option(T.EARLIER_SLOTS, "m", earlier.isoformat()))
        if profile.booking.other_times_handoff:
            extra.append(self.option(T.OTHER_TIMES, "h"))
        extra.append(command_option("back"))
        if not slots:
            deadline = profile.booking.deadline.text
            self.say(Text(T.NO_SLOTS.format(deadline=deadline, window=profile.booking.window_months), links=self._phone_links(profile)))
            self.say(Ask(T.USE_BUTTONS, tuple(extra + [command_option("handoff"), command_option("quit")])))
            return
        picker_days = []
        for day in shown_days:
            options = tuple(
                self.option(f"{slot.start:%H:%M}〜{slot.end:%H:%M}", "s", slot.key) for slot in by_day[day]
            )
            picker_days.append(SlotDay(calendar.format_day(day), options))
        text = T.CHOOSE_SLOT.format(office=profile.short_name, length=f"1回{profile.schedule.minutes}分")
        self.say(SlotPicker(text, tuple(picker_days), tuple(extra)))

    def on_slot_choice(self, action: str, value: str) -> None:
        if action == "s":
            slot = self._live_slot(value)
            if slot is None:
                self.say(Text(T.SLOT_GONE.format(slot=self._slot_label(value))))
                return self.reprompt()
            self.conv.answers["slot"] = slot.key
            self.conv.slot_from = None
            return self.go("advance")
        if action == "m":
            try:
                date.fromisoformat(value)
            except ValueError:
                return self.invalid(T.USE_BUTTONS)
            self.conv.slot_from = value
            return self.reprompt()
        if action == "h" and self.profile.booking.other_times_handoff:
            self.say(Text(T.OTHER_TIMES_DONE))
            return self.handoff("other_times", "利用者が案内時間以外の相談時間を希望しています。")
        self.invalid(T.USE_BUTTONS)

    def on_slot_text(self, text: str) -> None:
        match = self._match_option(text)
        if match is not None:
            _, action, value = match.data.split("|", 2)
            return self.command(value) if action == "g" else self.on_slot_choice(action, value)
        day = parse_day(text, self.now.date())
        if day is None:
            return self.invalid(T.DATE_NOT_UNDERSTOOD)
        slots = self._live_slots()
        if any(slot.start.date() == day for slot in slots):
            self.conv.slot_from = day.isoformat()
            return self.reprompt()
        self.say(Text(self._why_not_bookable(day)))
        later = [slot for slot in slots if slot.start.date() > day]
        self.conv.slot_from = later[0].start.date().isoformat() if later else None
        if not later and slots:
            self.say(Text(T.NO_SLOTS_AFTER.format(day=calendar.format_day(day))))
        self.reprompt()

    def _why_not_bookable(self, day: date) -> str:
        profile = self.profile
        label = calendar.format_day(day)
        if day < self.now.date():
            return T.DAY_PAST.format(day=label)
        reason = calendar.closure_reason(profile, day)
        if reason:
            return T.DAY_CLOSED.format(day=label, reason=reason)
        if not calendar.day_grid(profile, day):
            return T.DAY_NO_GRID.format(day=label)
        last = calendar.window_end(profile, self.now)
        if day > last:
            return T.DAY_OUTSIDE_WINDOW.format(day=label, last=calendar.format_day(last))
        if self.now > calendar.deadline(profile, day):
            return T.DAY_PAST_DEADLINE.format(day=label, deadline=profile.booking.deadline.text)
        return T.DAY_FULL.format(day=label)

    def _slot_label(self, key: str) -> str:
        pair = calendar.slot_at(self.profile, key)
        if pair is None:
            return key
        start, end = pair
        return f"{calendar.format_day(start.date())} {start:%H:%M}〜{end:%H:%M}"

    # -- terms, confirmation, booking ---------------------------------------------------------------

    def ask_reading_terms(self) -> None:
        terms = self.profile.terms
        self.say(Text(T.TERMS_INTRO))
        self.say(
            TermsCard(
                title=terms.title,
                version=terms.version_label,
                summary=terms.summary,
                rules=tuple(terms.rules),
                url=self.dialog.terms_url(self.profile.id),
                consent=self.option(T.CONSENT, "t", "consent"),
                decline=self.option(T.DECLINE, "t", "decline"),
            )
        )

    def _rows(self) -> list[tuple[str, str]]:
        answers = self.conv.answers
        profile = self.profile
        rows = [("窓口", profile.short_name)]
        if "slot" in answers:
            rows.append((T.ITEM_LABELS["slot"], self._slot_label(answers["slot"])))
        rows.append(("方法", f"{profile.video_tool}（{profile.length_text}）"))
        for key in ("name", "number", "email", "phone", "topic"):
            if key in answers:
                rows.append((T.ITEM_LABELS[key], answers[key]))
        if "interpreter" in answers:
            rows.append((T.ITEM_LABELS["interpreter"], dict(T.INTERPRETER_CHOICES)[answers["interpreter"]]))
        category = self._category(answers.get("category", ""))
        if category is not None:
            rows.append((T.ITEM_LABELS["category"], category.label))
        return rows

    def ask_confirming(self) -> None:
        self.conv.editing = False
        self.say(
            ConfirmCard(
                title=T.CONFIRM_TITLE,
                rows=tuple(self._rows()),
                book=self.option(T.BOOK, "k", "book"),
                change=self.option(T.CHANGE, "k", "change"),
                cancel=self.option(T.QUIT_LABEL, "k", "quit"),
            )
        )

    def ask_choosing_change(self) -> None:
        steps = self.dialog.flow(self.conv).steps
        items = [
            ("asking_name", "name"),
            ("asking_number", "number"),
            ("asking_email", "email"),
            ("asking_phone", "phone"),
            ("choosing_topic", "topic"),
            ("asking_interpreter", "interpreter"),
            ("choosing_slot", "slot"),
        ]
        options = [self.option(T.ITEM_LABELS[key], "e", state) for state, key in items if state in steps]
        self.say(Ask(T.CHOOSE_CHANGE, tuple(options + [command_option("back")])))

    def booking_id(self, slot: str) -> str:
        """A short reference, stable for a retried turn (same user, slot and step)."""
        digest = hashlib.sha256(f"{self.conv.user}|{slot}|{self.conv.step}".encode()).digest()
        return base64.b32encode(digest).decode()[:8].replace("0", "Z").replace("1", "Y")

    def book(self) -> None:
        profile = self.profile
        answers = self.conv.answers
        slot_key = answers.get("slot", "")
        slot = self._live_slot(slot_key)
        upcoming = self._upcoming(profile.id)
        if len(upcoming) >= profile.booking.max_upcoming:
            listing = "\n".join(self._booking_line(b) for b in upcoming)
            self.say(Text(T.ALREADY_BOOKED.format(office=profile.short_name, bookings=listing)))
            self.quit_silently()
            return self.list_bookings(cancelling=True, intro=False)
        if slot is None or self.conv.consent is None:
            return self._slot_lost(slot_key, taken=False)
        pair = (slot.start, slot.end)
        booking = {
            "id": self.booking_id(slot_key),
            "office": profile.id,
            "slot": slot_key,
            "start": pair[0].isoformat(),
            "end": pair[1].isoformat(),
            "user": self.conv.user,
            "status": "booked",
            "office_confirmation": "pending" if profile.after_booking.confirmed_by_office else "not_needed",
            "created_at": self.now.isoformat(),
            "consent": dict(self.conv.consent),
            "answers": {k: v for k, v in answers.items() if k.startswith("q_")},
        }
        for key in ("name", "number", "email", "phone", "topic", "interpreter", "category", "category_detail"):
            if key in answers:
                booking[key] = answers[key]
        claim = self.bookings.claim(booking, profile.schedule.capacity)
        if not claim.ok:
            return self._slot_lost(slot_key, taken=True)
        rows = [("予約番号", booking["id"])] + [row for row in self._rows() if row[0] not in ("お名前", "求職番号", "メールアドレス", "電話番号")]
        category = self._category(answers.get("category", ""))
        self.notify(
            "booking",
            f"新しい予約: {profile.short_name} {self._slot_label(slot_key)}",
            ref=booking_ref(booking),
            booking_id=booking["id"],
            slot=slot_key,
            topic=answers.get("topic", ""),
            interpreter=dict(T.INTERPRETER_CHOICES).get(answers.get("interpreter", ""), ""),
            category=category.label if category else "",
        )
        confirmed = not profile.after_booking.confirmed_by_office
        steps = list(profile.after_booking.steps) + ([] if confirmed else [T.BOOKED_PENDING])
        self.conv.reset()
        self.conv.office = profile.id
        self.finish()
        self.say(
            BookedCard(
                title=T.BOOKED_TITLE_CONFIRMED if confirmed else T.BOOKED_TITLE,
                rows=tuple(rows),
                next_steps=tuple(steps),
                checklist=tuple(profile.after_booking.checklist),
                cancel_text=profile.cancellation.text,
                links=self._phone_links(profile),
            )
        )
        if self.dialog.reminders == "opt_in":
            self.say(Text(T.REMINDER_OFFER))
            return self.ask_menu(Option(T.REMINDER_OPT_IN, postback(ANY, REMINDER_ACTION, booking_ref(booking))))
        self.ask_menu()

    def _slot_lost(self, slot_key: str, taken: bool) -> None:
        template = T.SLOT_TAKEN if taken else T.SLOT_GONE
        self.say(Text(template.format(slot=self._slot_label(slot_key))))
        self.conv.answers.pop("slot", None)
        self.conv.editing = True  # the terms were read: after a new slot, back to the card
        self.to_choosing_slot()

    # -- my bookings and cancelling -------------------------------------------------------------------

    def _upcoming(self, office: str | None = None) -> list[dict[str, Any]]:
        result = []
        for booking in self.bookings.for_user(self.conv.user):
            if booking.get("status") != "booked" or (office and booking.get("office") != office):
                continue
            start = parse_when(booking.get("start"))
            if start is not None and start > self.now:
                result.append(booking)
        return result

    def _booking_line(self, booking: dict[str, Any]) -> str:
        office = self.dialog.offices.get(booking["office"])
        name = office.short_name if office else booking["office"]
        start = datetime.fromisoformat(booking["start"]).astimezone(JST)
        end = datetime.fromisoformat(booking["end"]).astimezone(JST)
        return f"・{name} {calendar.format_day(start.date())} {start:%H:%M}〜{end:%H:%M}（予約番号 {booking['id']}）"

    def list_bookings(self, cancelling: bool, intro: bool = True) -> None:
        upcoming = self._upcoming()
        midway = self.state != "idle"
        if not upcoming:
            self.say(Text(T.NO_BOOKINGS))
            return self.reprompt()
        lines = "\n".join(self._booking_line(b) for b in upcoming)
        options = []
        for booking in upcoming[:10]:
            start = datetime.fromisoformat(booking["start"]).astimezone(JST)
            label = f"キャンセル {start.month}/{start.day} {start:%H:%M}"
            options.append(Option(label, postback(ANY, CANCEL_ACTION, booking_ref(booking))))
        options.append(command_option("resume") if midway else command_option("book"))
        self.say(Text((T.YOUR_BOOKINGS + "\n" if intro else "") + lines))
        self.say(Ask("キャンセルする場合は、下のボタンを押してください。" if cancelling else T.MENU, tuple(options)))

    def ask_cancel(self, ref: str) -> None:
        booking = self.bookings.get(ref)
        if booking is None or booking.get("user") != self.conv.user:
            self.say(Text(T.CANCEL_NOT_FOUND))
            return self.ask_menu_state()
        if booking.get("status") != "booked":
            self.say(Text(T.CANCEL_ALREADY))
            return self.ask_menu_state()
        office = self.dialog.offices.get(booking["office"])
        start = datetime.fromisoformat(booking["start"]).astimezone(JST)
        if start <= self.now:
            self.say(Text(T.CANCEL_PAST))
            return self.ask_menu_state()
        line = self._booking_line(booking)
        channels = {c.value for c in office.cancellation.channels} if office else {"phone"}
        same_day_channels = {c.value for c in office.cancellation.same_day} if office else {"phone"}
        same_day = start.date() == self.now.date()
        allowed = same_day_channels if same_day else channels
        if allowed == {"phone"}:
            name = office.short_name if office else "ハローワーク"
            message = T.CANCEL_SAME_DAY if same_day else T.CANCEL_PHONE_ONLY
            links = self._phone_links(office)
            text = message.format(office=name) + "\n" + line
            if not links:
                text += "\n" + T.NO_PHONE.format(office=name)
            self.outcome.notices.append(
                StaffNotice(
                    kind="same_day_cancel" if same_day else "cancel_by_phone",
                    office=booking["office"],
                    summary=f"キャンセル希望（電話受付）: {name} {calendar.format_day(start.date())} {start:%H:%M}",
                    fields={"ref": ref, "booking_id": booking["id"], "slot": booking["slot"]},
                )
            )
            self.say(Text(text, links=links))
            return self.ask_menu_state()
        if self.state != "idle":
            self.quit_silently()
        self.conv.answers = {"cancel_ref": ref}
        self.to_confirming_cancel()

    def ask_confirming_cancel(self) -> None:
        booking = self.bookings.get(self.conv.answers.get("cancel_ref", ""))
        line = self._booking_line(booking) if booking else ""
        options = (self.option(T.CANCEL_YES, "y", "yes"), self.option(T.CANCEL_NO, "y", "no"))
        self.say(Ask(T.CANCEL_CONFIRM.format(booking=line), options))

    def do_cancel(self, confirmed: bool) -> None:
        ref = self.conv.answers.get("cancel_ref", "")
        self.conv.answers = {}
        if not confirmed:
            self.say(Text(T.CANCEL_KEPT))
            self.to_idle()
            return self.ask_menu()
        booking = self.bookings.get(ref)
        if booking is None or booking.get("status") != "booked":
            self.say(Text(T.CANCEL_ALREADY))
            self.to_idle()
            return self.ask_menu()
        start = datetime.fromisoformat(booking["start"]).astimezone(JST)
        if start.date() == self.now.date():
            # The day turned while the user was deciding: the same-day rule applies.
            self.to_idle()
            return self.ask_cancel(ref)
        cancelled = self.bookings.cancel(ref, at=self.now.isoformat(), by="user")
        self.to_idle()
        if cancelled is None:
            self.say(Text(T.CANCEL_NOT_FOUND))
            return self.ask_menu()
        self.booking_notice("cancellation", booking, "キャンセル")
        self.say(Text(T.CANCELLED.format(booking=self._booking_line(booking))))
        self.ask_menu()

    def booking_notice(self, kind: str, booking: dict[str, Any], what: str, **extra: str) -> None:
        """A staff notice about one booking: office, slot and reference only (no personal data)."""
        office = self.dialog.offices.get(booking["office"])
        name = office.short_name if office else booking["office"]
        self.outcome.notices.append(
            StaffNotice(
                kind=kind,
                office=booking["office"],
                summary=f"{what}: {name} {booking_when(booking)}",
                fields={"ref": booking_ref(booking), "booking_id": booking["id"], "slot": booking["slot"], **extra},
            )
        )

    # -- after booking: no-shows, data deletion, blocking, re-consent, reminder opt-in ---------------

    def _no_show_limit_reached(self) -> bool:
        """Past the office's no-show limit, booking is by phone (or staff): say so and stop here."""
        profile = self.profile
        count = sum(
            1
            for booking in self.bookings.for_user(self.conv.user)
            if booking.get("office") == profile.id and booking.get("status") == "no_show"
        )
        if count < profile.staff.no_show_limit:
            return False
        self.conv.reset()
        self.conv.office = profile.id
        self.to_idle()
        text = T.NO_SHOW_LIMIT.format(office=profile.short_name, count=count)
        links = self._phone_links(profile)
        if not links:
            # No number to call: staff take it from here (never a dead end).
            self.say(Text(text))
            self.handoff("no_show_limit", f"無断キャンセルが{count}回あるため、自動予約を止めました。予約の受付をお願いします。")
            return True
        self.say(Text(text + "\n" + T.NO_SHOW_CALL.format(office=profile.short_name), links=links))
        self.ask_menu()
        return True

    def ask_confirming_erase(self) -> None:
        upcoming = self._upcoming()
        listing = "\n".join(self._booking_line(b) for b in upcoming)
        cancels = T.ERASE_CANCELS.format(bookings=listing) if upcoming else T.ERASE_NO_BOOKINGS
        options = (self.option(T.ERASE_YES, "d", "yes"), self.option(T.ERASE_NO, "d", "no"))
        self.say(Ask(f"{T.ERASE_CONFIRM}\n\n{cancels}", options))

    def do_erase(self, confirmed: bool) -> None:
        """Cancel the upcoming bookings, strip personal fields from every booking, erase the conversation."""
        if not confirmed:
            self.say(Text(T.ERASE_KEPT))
            return self.ask_menu_state()
        cancelled = []
        for booking in self._upcoming():
            ref = booking_ref(booking)
            if self.bookings.cancel(ref, at=self.now.isoformat(), by="user_erase") is None:
                continue
            cancelled.append(booking)
            self.booking_notice("data_deleted", booking, "データ削除によるキャンセル")
        for booking in self.bookings.for_user(self.conv.user):
            self.bookings.delete_personal(booking_ref(booking))
        self.quit_silently()
        self.outcome.erase_user = True
        text = T.ERASED
        if cancelled:
            text += "\n" + T.ERASED_CANCELLED.format(bookings="\n".join(self._booking_line(b) for b in cancelled))
        self.say(Text(text))
        self.ask_menu()

    def blocked(self) -> None:
        """The user blocked the bot: staff hear of each upcoming booking; personal data goes.

        Upcoming bookings stay (staff decide), so their personal fields go right after the appointment
        (`erase_after`, honoured by the retention task); every other booking loses them now.
        """
        for booking in self.bookings.for_user(self.conv.user):
            ref = booking_ref(booking)
            start = parse_when(booking.get("start"))
            if booking.get("status") != "booked" or start is None or start <= self.now:
                self.bookings.delete_personal(ref)
                continue
            self.bookings.update(ref, {"erase_after": booking["end"]})
            office = self.dialog.offices.get(booking["office"])
            name = office.short_name if office else booking["office"]
            self.booking_notice("user_blocked", booking, "予約中の利用者がブロックしました", office_name=name)

    def _own_upcoming(self, ref: str) -> dict[str, Any] | None:
        """The user's own booked, not yet started booking `ref` (None for a stale or forged button)."""
        booking = self.bookings.get(ref) if ref else None
        if booking is None or booking.get("user") != self.conv.user or booking.get("status") != "booked":
            return None
        start = parse_when(booking.get("start"))
        return booking if start is not None and start > self.now else None

    def _aside_done(self) -> None:
        """After a button from a push: back to what the user was doing."""
        if self.conv.paused:
            office = self.dialog.offices[self.conv.office] if self.conv.office else None
            return self.say(Ask(T.PAUSED.format(when=self._staff_answer_time(office)), (command_option("resume_bot"),)))
        self.reprompt()

    def reconsent(self, value: str) -> None:
        """「新しい規約に同意する」 from the terms-change push: record the consent on the booking."""
        version, _, ref = value.partition("|")
        booking = self._own_upcoming(ref)
        office = self.dialog.offices.get(booking["office"]) if booking else None
        if booking is None or office is None or version != office.terms.version.isoformat():
            self.say(Text(T.RECONSENT_STALE))
            return self._aside_done()
        if (booking.get("consent") or {}).get("version") == version:
            self.say(Text(T.RECONSENT_ALREADY))
            return self._aside_done()
        asked = booking.get("reconsent") or {}
        changes: dict[str, Any] = {
            "consent": {"version": version, "at": self.now.isoformat()},
            "reconsent": {**asked, "version": version, "given_at": self.now.isoformat()},
        }
        if booking.get("office_confirmation") == "awaiting_consent":
            changes["office_confirmation"] = asked.get("confirmation", "pending")
        self.bookings.update(ref, changes)
        self.booking_notice("reconsent_given", booking, "新しい利用規約に同意", version=version)
        self.say(Text(T.RECONSENT_THANKS))
        self._aside_done()

    def opt_in_reminder(self, ref: str) -> None:
        """「前日にお知らせを受け取る」 (HWBOT_REMINDERS=opt_in): mark the booking for a reminder."""
        booking = self._own_upcoming(ref)
        office = self.dialog.offices.get(booking["office"]) if booking else None
        if booking is None or office is None:
            self.say(Text(T.REMINDER_STALE))
            return self._aside_done()
        self.bookings.update(ref, {"reminder": "yes"})
        self.say(Text(T.REMINDER_SET.format(time=f"{office.staff.reminder_time:%H:%M}")))
        self._aside_done()


_DATE_PATTERNS = (
    re.compile(r"^(?P<y>\d{4})[-/年.](?P<m>\d{1,2})[-/月.](?P<d>\d{1,2})日?"),
    re.compile(r"^(?P<m>\d{1,2})[/月.-](?P<d>\d{1,2})日?"),
)


def parse_day(text: str, today: date) -> date | None:
    """A day the user typed: `12/3`, `12月3日`, `2026-12-03`, `12/3(木)`; the next such day from today."""
    folded = unicodedata.normalize("NFKC", text).strip().replace(" ", "")
    for pattern in _DATE_PATTERNS:
        match = pattern.match(folded)
        if not match:
            continue
        try:
            month, day = int(match["m"]), int(match["d"])
            if "y" in match.groupdict() and match["y"]:
                return date(int(match["y"]), month, day)
            candidate = date(today.year, month, day)
            if candidate < today - timedelta(days=31):
                candidate = date(today.year + 1, month, day)
            return candidate
        except ValueError:
            return None
    return None
