"""The booking conversation: `Dialog.handle` runs one turn and returns its `Outcome`.

`Dialog.handle(conversation, event, now, bookings)` returns the replies and staff notices of one turn;
it sends nothing and stores nothing itself. It deals with what comes before a turn (an expired
conversation, follow, unfollow) and hands the event to the conversation's machine.

The conversation is split by stage. `bot.dialog.core` owns the turn: the commands every state shares
(戻る, やめる, ヘルプ, …), going back, prompting and asking again, and the dispatch by state to the
handlers (`ask`, `choose`, `typed`, `back`) that the stage owning the state registered;
`bot.dialog.buttons` reads an event into `Parsed` and builds button data; `bot.dialog.flow` builds each
office's machine from the registered stages' steps; `bot.dialog.stages` has one module per stage,
registered in booking order in `bot.dialog.stages.REGISTRY`. Adding a stage, or a kind of office
question, is writing its module and adding its `STAGE` there.

States (nouns / -ing phrases): idle, choosing_office, asking_name, asking_number, asking_email,
asking_phone, choosing_topic, asking_interpreter, q_<question id>, choosing_category,
asking_category_detail, choosing_slot, reading_terms, confirming, choosing_change, ineligible,
confirming_cancel, choosing_new_slot, confirming_move, confirming_erase. Triggers (verbs): begin, advance, reject, change, finish, quit,
restart, and the automatic to_<state> used by 戻る and by edits from the confirmation card.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from bot import i18n
from bot.dialog import texts as T
from bot.dialog.buttons import parse
from bot.dialog.conversation import Bookings, Conversation, Inbound, Outcome, parse_when
from bot.dialog.core import Registry, Turn
from bot.dialog.flow import Flow
from bot.dialog.replies import Text
from bot.dialog.stages import REGISTRY
from bot.profiles import Offices

REMINDER_MODES = ("all", "opt_in", "off")


class Dialog:
    """The conversation rules for every loaded office."""

    def __init__(
        self,
        offices: Offices,
        *,
        ttl: timedelta = timedelta(minutes=30),
        terms_url: Callable[[str], str] = lambda office_id: f"/offices/{office_id}/terms",
        reminders: str = "all",
        registry: Registry = REGISTRY,
    ):
        if reminders not in REMINDER_MODES:
            raise ValueError(f"reminders must be one of {', '.join(REMINDER_MODES)}")
        self.offices = offices
        self.ttl = ttl
        self.reminders = reminders
        self.terms_url = terms_url
        self.registry = registry
        self.flows = {office_id: Flow(offices[office_id], registry) for office_id in offices}
        self.lobby = Flow(None, registry)

    def flow(self, conversation: Conversation) -> Flow:
        return self.flows.get(conversation.office or "", self.lobby)

    def handle(
        self, conversation: Conversation | None, event: Inbound, now: datetime, bookings: Bookings
    ) -> Outcome:
        """Run one turn: the conversation is updated in place and returned in the outcome.

        Everything the turn says is in the conversation's language (`Conversation.lang`); a language
        chosen during the turn takes over from there (`bot.i18n.switch`).
        """
        if conversation is None:
            conversation = Conversation(user=event.user)
            if event.kind != "unfollow":
                remember_language(conversation, bookings)
        with i18n.using(conversation.lang):
            outcome = self._handle(conversation, event, now, bookings)
        for notice in outcome.notices:  # staff are told the language the user reads (an interpreter?)
            if conversation.lang != i18n.SOURCE:
                notice.fields.setdefault("lang", conversation.lang)
        return outcome

    def _handle(self, conversation: Conversation, event: Inbound, now: datetime, bookings: Bookings) -> Outcome:
        outcome = Outcome(conversation=conversation)
        if conversation.office and conversation.office not in self.flows:
            conversation.reset()  # the office was removed from the profiles
        start = self.registry.hooks["start"]
        if event.kind == "unfollow":
            self.registry.hooks["unfollowed"](Turn(self, conversation, now, bookings, outcome))
            conversation.reset()
            outcome.erase_user = True
            return outcome
        if event.kind == "profile":
            # Not the user's doing (the channel asked LINE after a greeting): no expiry, no activity.
            turn = Turn(self, conversation, now, bookings, outcome)
            self._run(turn, lambda t: self.registry.hooks["profile"](t, event.text))
            return outcome
        last = parse_when(conversation.updated)
        conversation.updated = now.isoformat()
        turn = Turn(self, conversation, now, bookings, outcome)
        if conversation.state != "idle" and last is not None and now - last > self.ttl and conversation.paused:
            # Waiting for staff: the booking in progress (its answers) goes; the wait and its office stay.
            office = conversation.office
            conversation.reset()
            conversation.office = office
        elif conversation.state != "idle" and last is not None and now - last > self.ttl:
            conversation.reset()
            turn.say(Text(T.EXPIRED.format(minutes=int(self.ttl.total_seconds() // 60))))
            self._run(turn, lambda t: start(t, greet=False))
            return outcome
        if event.kind == "follow":
            # Added as a friend (again): a booking left half-way (its unfollow lost) starts afresh.
            conversation.reset()
            self._run(turn, lambda t: start(t, greet=True))
            return outcome
        self._run(turn, lambda t: t.receive(parse(event)))
        return outcome

    def _run(self, turn: Turn, action: Callable[[Turn], None]) -> None:
        """Act on the seat of the conversation's machine (and go on in an office chosen meanwhile)."""
        while True:
            switch_to = self.flow(turn.conv).play(turn, action)
            if not switch_to:
                return
            turn.conv.office = switch_to
            action = self.registry.hooks["office_chosen"]


def booking_language(bookings: Bookings, user: str) -> str | None:
    """The language of the user's latest booking that records one (None when none does)."""
    made = [booking for booking in bookings.for_user(user) if booking.get("lang") in i18n.LANGUAGES]
    return max(made, key=lambda booking: booking.get("created_at") or "")["lang"] if made else None


def remember_language(conversation: Conversation, bookings: Bookings) -> None:
    """A new conversation (the last one expired long ago) speaks the language of the user's latest
    booking, if they have one: they chose it then, so LINE's profile is not asked again."""
    lang = booking_language(bookings, conversation.user)
    if lang is not None:
        conversation.lang = lang
        conversation.profile_asked = True
