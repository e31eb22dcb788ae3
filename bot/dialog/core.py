"""The core of a turn: the model the machines drive, what every state shares, and the stage registry.

A `Turn` is the model of an office's machine (`bot.dialog.flow`). It takes the parsed event
(`bot.dialog.buttons`), runs the commands every state shares (戻る, やめる, ヘルプ, …), counts the questions (`prompt`: each one gets a
new step, which its buttons carry), asks again after an invalid answer, and hands the rest to the
`Handlers` of the state it is in: `ask` (the state's question), `choose` (one of its buttons), `typed`
(typed text), `back` (戻る where that is not "the previous question").

Stages (`bot.dialog.stages`) are modules of plain functions of the turn, each declared as a `Stage`:
the states it owns, the booking steps it adds for an office, its commands, the postback actions valid
at any step that it owns, and the hooks it provides. This module never imports a stage: it reaches
them through the `Registry` the dialog was built with (`turn.dialog.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Protocol

from bot.clock import JST
from bot.dialog import texts as T
from bot import i18n
from bot.dialog.buttons import Parsed, command_option, fold, language_options, postback
from bot.dialog.conversation import Bookings, Conversation, Outcome
from bot.dialog.replies import Ask, Option, Reply, StaffNotice, Text, options_of
from bot.profiles import Offices, OfficeProfile

STUCK_AFTER = 3  # invalid answers in a row to one question before staff are called
TURN_DATA = ("dialog", "conv", "now", "bookings", "outcome")  # what a Turn holds for one turn only

# What the core and the dialog ask of the stages without knowing which stage does it; exactly one
# registered stage provides each (`Stage.hooks`).
HOOKS = {
    "start": "start(turn, greet): start a booking (greeting, office choice)",
    "office_chosen": "office_chosen(turn): the turn moved to the chosen office's machine: begin there",
    "hand_off": "hand_off(turn, reason, summary, **fields): pause the bot for this user and call staff",
    "paused": "paused(turn, parsed): an event while the user waits for staff",
    "unfollowed": "unfollowed(turn): the user blocked the bot (the conversation is erased after)",
    "greet": "greet(turn): say the greeting (again, in the language of the turn)",
    "profile": "profile(turn, tag): LINE's profile language of the user, asked after the first greeting",
}


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handlers:
    """What one state does; a state without `choose` answers its buttons as not understood, one
    without `typed` matches typed text to its buttons."""

    ask: Callable[[Turn], None] | None = None  # its question, on entering it and on asking again
    choose: Callable[[Turn, str, str], None] | None = None  # a button of its question: (action, value)
    typed: Callable[[Turn, str], None] | None = None  # typed text
    back: Callable[[Turn], None] | None = None  # 戻る here, before "the previous question"


@dataclass(frozen=True)
class Step:
    """A question of the booking: its state and handlers, in the order the booking asks them."""

    state: str
    handlers: Handlers
    when: Callable[[Turn], bool] | None = None  # asked only when this holds after the step before
    rejects: bool = False  # an answer may end the booking (trigger `reject`, to `ineligible`)


@dataclass(frozen=True)
class Action:
    """A postback action valid at any step and state (`*|<action>|<value>`): it acts on a booking."""

    run: Callable[[Turn, str], None]  # (turn, value)
    even_paused: bool = False  # also while the user waits for staff (a button of a push)


@dataclass(frozen=True)
class Stage:
    """One stage of the conversation; every field is optional."""

    name: str
    # The booking steps it adds to an office's flow, in order.
    steps: Callable[[OfficeProfile], list[Step]] = lambda profile: []
    states: Mapping[str, Handlers] = field(default_factory=dict)  # states of every flow (the lobby too)
    office_states: Mapping[str, Handlers] = field(default_factory=dict)  # states of every office's flow
    # Its own triggers in an office's flow, given the flow's steps (`advance` and `begin` are the flow's).
    transitions: Callable[[list[Step]], list[dict[str, Any]]] = lambda steps: []
    commands: Mapping[str, Callable[[Turn], None]] = field(default_factory=dict)  # `*|g|<name>`, typed labels
    actions: Mapping[str, Action] = field(default_factory=dict)
    hooks: Mapping[str, Callable[..., Any]] = field(default_factory=dict)  # see HOOKS
    # Why an answer of this stage made the user ineligible, for the key stored in answers["_ineligible"]:
    # (reason, what to do instead), or None when the key is not one of this stage's.
    why_not: Callable[[Turn, str], tuple[str, str] | None] | None = None


class Registry:
    """The stages, in the order a booking meets them, and what the turns and the flows look up in them."""

    def __init__(self, stages: Iterable[Stage]):
        self.stages = tuple(stages)
        self.commands = _merged("command", CORE_COMMANDS, *(stage.commands for stage in self.stages))
        self.actions = _merged("action", *(stage.actions for stage in self.stages))
        self.hooks = _merged("hook", *(stage.hooks for stage in self.stages))
        if self.hooks.keys() != HOOKS.keys():
            raise ValueError(f"hooks provided: {sorted(self.hooks)}, needed: {sorted(HOOKS)}")

    def steps(self, profile: OfficeProfile) -> list[Step]:
        return [step for stage in self.stages for step in stage.steps(profile)]

    def states(self, profile: OfficeProfile | None, steps: list[Step]) -> dict[str, Handlers]:
        """Every state of a flow with its handlers: the lobby's (`profile` None) or an office's."""
        parts = [stage.states for stage in self.stages]
        parts.append({step.state: step.handlers for step in steps})
        if profile is not None:
            parts += [stage.office_states for stage in self.stages]
        return _merged("state", *parts)

    def transitions(self, steps: list[Step]) -> list[dict[str, Any]]:
        return [transition for stage in self.stages for transition in stage.transitions(steps)]

    def why_not(self, turn: Turn, failed: str) -> tuple[str, str]:
        for stage in self.stages:
            texts = stage.why_not(turn, failed) if stage.why_not else None
            if texts is not None:
                return texts
        raise LookupError(f"no stage explains {failed!r}")


def _merged(what: str, *parts: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if name in merged:
                raise ValueError(f"{what} {name!r} registered twice")
            merged[name] = value
    return merged


# -- the turn -------------------------------------------------------------------------------------


class Rules(Protocol):
    """What a turn uses of the dialog it runs in (`bot.dialog.engine.Dialog`)."""

    offices: Offices
    registry: Registry
    reminders: str
    terms_url: Callable[[str], str]


class Place(Protocol):
    """What a turn uses of the machine it is seated in (`bot.dialog.flow.Flow`)."""

    steps: list[str]
    handlers: Mapping[str, Handlers]


class Turn:
    """The model of one turn: transitions drives its `state`; the stages' handlers act on it.

    The machine binds its triggers (begin, advance, reject, change, finish, quit, restart, to_<state>)
    to this class's instances: no method or attribute may carry one of those names.
    """

    state: str
    flow: Place  # the machine this model is seated in (set once, see `Turn.seat_for`)

    def __init__(self, dialog: Rules, conversation: Conversation, now: datetime, bookings: Bookings, outcome: Outcome):
        self.dialog = dialog
        self.conv = conversation
        self.now = now.astimezone(JST)
        self.bookings = bookings
        self.outcome = outcome

    @classmethod
    def seat_for(cls, flow: Place) -> Turn:
        """A flow's one model: it holds a turn's data only while that turn is seated (`take`, `leave`)."""
        seat = cls.__new__(cls)
        seat.__dict__.update(dict.fromkeys(TURN_DATA), flow=flow, switch_to=None)
        return seat

    def take(self, turn: Turn) -> None:
        self.__dict__.update({name: getattr(turn, name) for name in TURN_DATA}, switch_to=None)

    def leave(self) -> None:
        self.__dict__.update(dict.fromkeys(TURN_DATA))  # no user's data between turns

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def profile(self) -> OfficeProfile:
        """The conversation's office as the user reads it: its texts in the language of the turn."""
        assert self.conv.office is not None
        return self.office_profile(self.conv.office)

    def office_profile(self, office_id: str) -> OfficeProfile:
        """An office's profile as the user reads it: its texts in the language of the turn (a text not
        translated yet in Japanese, with a note where it is a paragraph of its own). Staff notices and
        stored answers take the Japanese profile, `turn.dialog.offices[office_id]`."""
        return self.dialog.offices.localized(office_id, i18n.current(), T.PROFILE_NOT_TRANSLATED)

    @property
    def handlers(self) -> Handlers:
        return self.flow.handlers[self.state]

    def switch_office(self, office: str) -> None:
        """Continue this turn in `office`'s machine once the current action returns."""
        self.switch_to = office

    def say(self, *replies: Reply) -> None:
        self.outcome.replies.extend(replies)

    def notify(self, kind: str, summary: str, **fields: str) -> None:
        office = self.conv.office or ""
        self.outcome.notices.append(StaffNotice(kind=kind, office=office, summary=summary, fields=fields))

    def option(self, label: str, action: str, value: str = "") -> Option:
        return Option(label, postback(self.conv.step, action, value))

    # -- transitions callbacks --------------------------------------------------------------------

    def editing(self) -> bool:
        return self.conv.editing

    def prompt(self) -> None:
        """Ask the question of the state just entered (after_state_change)."""
        self.conv.step += 1
        self.conv.fails = 0
        ask = self.handlers.ask
        if ask is not None:
            ask(self)

    def go(self, trigger: str) -> None:
        """Fire a trigger, remembering where we were for 戻る."""
        before = self.state
        getattr(self, trigger)()
        if self.state != before and before in self.flow.steps and trigger == "advance":
            self.conv.history.append(before)

    # -- dispatch ---------------------------------------------------------------------------------

    def receive(self, parsed: Parsed) -> None:
        registry = self.dialog.registry
        action = registry.actions.get(parsed.action) if parsed.kind == "choice" else None
        if action is not None and action.even_paused:
            return action.run(self, parsed.value)
        if self.conv.paused:
            return registry.hooks["paused"](self, parsed)
        if parsed.kind == "command":
            return self.command(parsed.value)
        if parsed.kind == "media":
            self.say(Text(T.MEDIA))
            return self.reprompt()
        if parsed.kind == "choice":
            if action is not None:  # valid at any step (a booking from the list)
                return action.run(self, parsed.value)
            if parsed.step != str(self.conv.step):
                self.say(Text(T.STALE if self.state != "idle" else T.STALE_IDLE))
                return self.reprompt()
            return self.choose(parsed.action, parsed.value)
        typed = self.handlers.typed
        if typed is not None:
            return typed(self, parsed.text)
        if not self.tap_typed(parsed.text):
            self.invalid(T.USE_BUTTONS)

    def choose(self, action: str, value: str) -> None:
        """A button of the current question (its step checked)."""
        choose = self.handlers.choose
        if choose is None:
            return self.not_understood()
        choose(self, action, value)

    def not_understood(self) -> None:
        """A button that does not fit the current question."""
        if self.state == "idle":
            self.say(Text(T.STALE_IDLE))
            return self.ask_menu()
        self.invalid(T.USE_BUTTONS)

    def tap_typed(self, text: str) -> bool:
        """Typed text that is the label (or number) of one of the current buttons taps it."""
        match = self._match_option(text)
        if match is None:
            return False
        _, action, value = match.data.split("|", 2)
        if action == "g":
            self.command(value)
        elif action in self.dialog.registry.actions:
            self.dialog.registry.actions[action].run(self, value)
        else:
            self.choose(action, value)
        return True

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
        """The current option whose label was typed: in the language of the turn, or in Japanese (whose
        labels keep working in every language)."""
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
        if i18n.current() != i18n.SOURCE:
            with i18n.using(i18n.SOURCE):
                japanese = self._current_options()
            return next((option for option in japanese if fold(option.label) == folded), None)
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

    def handoff(self, reason: str, summary: str, **fields: str) -> None:
        """Pause the bot for this user, tell them when staff will answer, and notify staff (`fields`:
        more for the notice, e.g. the booking it is about; never personal data)."""
        self.dialog.registry.hooks["hand_off"](self, reason, summary, **fields)

    # -- commands every state shares ---------------------------------------------------------------

    def command(self, name: str) -> None:
        run = self.dialog.registry.commands.get(name)
        if run is None:
            return self.reprompt()
        run(self)

    def quit_booking(self) -> None:
        """やめる: forget the booking in progress."""
        self.conv.reset()
        self.say(Text(T.QUIT))
        self.ask_menu()

    def show_help(self) -> None:
        """How to use the chat, and the other languages (their buttons: quick replies at the menu)."""
        self.say(Text(T.HELP))
        languages = language_options(self.conv.lang)
        if self.state != "idle":
            self.say(Ask(T.LANGUAGE_HELP, languages))
            return self.reprompt()
        self.say(Text(T.LANGUAGE_HELP))
        self.ask_menu(command_option("erase"), *languages)

    def back(self) -> None:
        back = self.handlers.back
        if back is not None:
            return back(self)
        if self.conv.editing and self.state in self.flow.steps:
            self.conv.editing = False
            return self.to_confirming()
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
        self.dialog.registry.hooks["start"](self, greet=False)

    # -- the menu ---------------------------------------------------------------------------------

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


CORE_COMMANDS: dict[str, Callable[[Turn], None]] = {
    "quit": Turn.quit_booking,
    "back": Turn.back,
    "help": Turn.show_help,
    "resume": Turn.reprompt,
    "resume_bot": Turn.reprompt,
}
