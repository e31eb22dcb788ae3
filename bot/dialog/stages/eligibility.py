"""Stage: the office's eligibility questions (`q_<question id>`, buttons), and the ineligible page.

Other kinds of eligibility question (Sakata's categories) are stages of their own: their steps say
`rejects=True`, they end the booking with `reject`, and their `why_not` explains the ineligible page.
"""

from __future__ import annotations

from typing import Any

from bot.dialog import texts as T
from bot.dialog.buttons import command_option, email_text, phone_links
from bot.dialog.core import Handlers, Stage, Step, Turn
from bot.dialog.replies import Ask, Text
from bot.profiles import OfficeProfile


def reject(turn: Turn, failed: str) -> None:
    """The answer just given ends the booking: the ineligible page explains `failed` (戻る undoes it)."""
    turn.conv.answers["_ineligible"] = failed
    turn.conv.history.append(turn.state)
    turn.reject()


def _question(turn: Turn):
    qid = turn.state.removeprefix("q_")
    return next(q for q in turn.profile.eligibility.questions if q.id == qid)


def _ask_question(turn: Turn) -> None:
    eligibility = turn.profile.eligibility
    question = _question(turn)
    total = len(eligibility.questions) + (1 if eligibility.categories else 0)
    index = eligibility.questions.index(question) + 1
    options = [turn.option(choice.label, "c", choice.id) for choice in question.choices]
    text = T.CHECK_PROGRESS.format(index=index, total=total) + question.text
    turn.say(Ask(text, tuple(options + [command_option("back")])))


def _choose_answer(turn: Turn, action: str, value: str) -> None:
    choice = next((c for c in _question(turn).choices if c.id == value), None) if action == "c" else None
    if choice is None:
        return turn.not_understood()
    turn.conv.answers[turn.state] = choice.id
    if choice.ok:
        return turn.go("advance")
    reject(turn, turn.state)


QUESTION = Handlers(ask=_ask_question, choose=_choose_answer)


def _ask_ineligible(turn: Turn) -> None:
    failed = turn.conv.answers.get("_ineligible", "")
    reason, instead = turn.dialog.registry.why_not(turn, failed)
    links = phone_links(turn.profile)
    turn.say(Text(f"{T.INELIGIBLE}\n{reason}\n\n{instead}{email_text(turn.profile)}", links=links))
    options = (command_option("handoff"), command_option("back"), command_option("restart"), command_option("quit"))
    turn.say(Ask(T.INELIGIBLE_HINT, options))


def _why_not(turn: Turn, failed: str) -> tuple[str, str] | None:
    if not failed.startswith("q_"):
        return None
    question = next(q for q in turn.profile.eligibility.questions if q.id == failed[2:])
    return question.ineligible.reason, question.ineligible.instead


def _steps(profile: OfficeProfile) -> list[Step]:
    return [Step(f"q_{question.id}", QUESTION, rejects=True) for question in profile.eligibility.questions]


def _transitions(steps: list[Step]) -> list[dict[str, Any]]:
    return [{"trigger": "reject", "source": [step.state for step in steps if step.rejects], "dest": "ineligible"}]


STAGE = Stage(
    "eligibility",
    steps=_steps,
    office_states={"ineligible": Handlers(ask=_ask_ineligible)},
    transitions=_transitions,
    why_not=_why_not,
)
