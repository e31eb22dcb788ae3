"""One office's machine (or the lobby's), assembled from the registered stages, built once and reused.

Each flow has one model, added once (`Turn.seat_for`); a turn takes the seat under the flow's lock, loads
the conversation's state and data into it, fires a trigger and clears it again (`Flow.play`).
The first design's "add the model each event and remove it" cost ~13% of a turn's CPU (add_model binds ~50
triggers); the seat keeps no user data between turns.

An office's steps are the stages' steps in the registry's order. Triggers (verbs): `begin` (to the
first step), `advance` (to the next step; a step with a `when` only when it holds; to the card instead
when an item of the card is being changed), the stages' own (`reject`, `change`, `finish`), `quit`,
`restart`, and the automatic `to_<state>` used by 戻る and by edits from the confirmation card.
"""

from __future__ import annotations

import threading
from itertools import takewhile
from typing import Any, Callable

from transitions import Machine

from bot.dialog.buttons import ANY
from bot.dialog.core import Registry, Step, Turn
from bot.profiles import OfficeProfile

CARD = "confirming"  # the confirmation card, where a changed item returns


class Flow:
    """One office's machine (or the lobby's, before an office is chosen)."""

    def __init__(self, profile: OfficeProfile | None, registry: Registry):
        self.profile = profile
        steps = registry.steps(profile) if profile else []
        self.steps = [step.state for step in steps]
        self.handlers = registry.states(profile, steps)  # state -> what it does
        transitions: list[dict[str, Any]] = []
        if steps:
            transitions.append({"trigger": "begin", "source": ["idle", "choosing_office"], "dest": self.steps[0]})
            transitions += self._advance(steps)
            transitions += registry.transitions(steps)
        transitions += [
            {"trigger": "quit", "source": ANY, "dest": "idle"},
            {"trigger": "restart", "source": ANY, "dest": "choosing_office"},
        ]
        self.machine = Machine(
            model=None,
            states=list(self.handlers),
            transitions=transitions,
            initial="idle",
            auto_transitions=True,
            after_state_change="prompt",
        )
        self.lock = threading.Lock()  # one turn at a time on the seat below
        # The flow's one model, added once and re-seated for each turn under `lock`: add_model binds
        # ~50 trigger methods, ~11% of a turn's CPU when it was done for every turn (`hwbot bench`).
        self.seat = Turn.seat_for(self)
        self.machine.add_model(self.seat, initial="idle")

    def _advance(self, steps: list[Step]) -> list[dict[str, Any]]:
        """`advance` from each step: into the steps with a `when` that follow it, if theirs holds
        (in order); to the card when editing; else to the next step without a `when`."""
        transitions: list[dict[str, Any]] = []
        for index, step in enumerate(steps[:-1]):
            later = steps[index + 1 :]
            for optional in takewhile(lambda s: s.when is not None, later):
                assert optional.when is not None
                transitions.append(
                    {"trigger": "advance", "source": step.state, "dest": optional.state, "conditions": self._holds(optional.when)}
                )
            after = next(s for s in later if s.when is None)
            if after.state != CARD:
                transitions.append({"trigger": "advance", "source": step.state, "dest": CARD, "conditions": "editing"})
            transitions.append({"trigger": "advance", "source": step.state, "dest": after.state})
        return transitions

    def _holds(self, when: Callable[[Turn], bool]) -> Callable[[], bool]:
        """A transition condition on the turn seated now (the machine's one model)."""
        return lambda: when(self.seat)

    def has(self, state: str) -> bool:
        return state in self.machine.states

    def play(self, turn: Turn, action: Callable[[Turn], None]) -> str | None:
        """Seat `turn`, act, leave the seat empty; the office the turn switched to, if any."""
        conv = turn.conv
        state = conv.state if self.has(conv.state) else "idle"
        with self.lock:
            seat = self.seat
            seat.take(turn)
            self.machine.set_state(state, model=seat)
            try:
                action(seat)
                conv.state = seat.state
                return seat.switch_to
            finally:
                seat.leave()
