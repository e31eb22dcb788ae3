"""Stage: who the user is: name, 求職番号, the contact fields the office asks, topic, interpreter."""

from __future__ import annotations

from functools import partial
from typing import Callable

from bot.dialog import texts as T
from bot.dialog import validate
from bot.dialog.buttons import command_option
from bot.dialog.core import Handlers, Stage, Step, Turn
from bot.dialog.replies import Ask
from bot.profiles import OfficeProfile


def _ask_typed(question: Callable[[Turn], str], turn: Turn) -> None:
    turn.say(Ask(question(turn), (command_option("back"), command_option("quit")), typed=True))


def _answer_typed(key: str, check: Callable[[str], validate.Result], turn: Turn, text: str) -> None:
    result = check(text)
    if isinstance(result, validate.Invalid):
        return turn.invalid(result.message)
    turn.conv.answers[key] = result.value
    turn.go("advance")


def _typed(key: str, check: Callable[[str], validate.Result], question: Callable[[Turn], str]) -> Handlers:
    """A question answered by typing: the answer is checked, normalised and stored under `key`.
    `question` gives the question's text when it is asked (in the language of the turn)."""
    return Handlers(ask=partial(_ask_typed, question), typed=partial(_answer_typed, key, check))


def _text(name: str) -> Callable[[Turn], str]:
    """The texts.py constant `name`, read when the question is asked."""
    return lambda turn: getattr(T, name)


NAME = _typed("name", validate.person_name, _text("ASK_NAME"))
NUMBER = _typed("number", validate.job_seeker_number, _text("ASK_NUMBER"))
FIELDS = {
    "email": ("asking_email", _typed("email", validate.email, _text("ASK_EMAIL"))),
    "phone": ("asking_phone", _typed("phone", validate.phone, _text("ASK_PHONE"))),
}
OWN_PHONE = _typed("phone", validate.phone, lambda turn: turn.profile.identify.phone_question or T.ASK_PHONE)


def _ask_topic(turn: Turn) -> None:
    options = [turn.option(topic, "c", str(i)) for i, topic in enumerate(turn.profile.identify.topics)]
    turn.say(Ask(T.ASK_TOPIC, tuple(options + [command_option("back")])))


def _choose_topic(turn: Turn, action: str, value: str) -> None:
    topics = turn.dialog.offices[turn.profile.id].identify.topics  # stored as staff read it: Japanese
    if action == "c" and value.isdigit() and int(value) < len(topics):
        turn.conv.answers["topic"] = topics[int(value)]
        return turn.go("advance")
    turn.not_understood()


def _ask_interpreter(turn: Turn) -> None:
    options = [turn.option(label, "c", key) for key, label in T.INTERPRETER_CHOICES]
    turn.say(Ask(T.ASK_INTERPRETER, tuple(options + [command_option("back")])))


def _choose_interpreter(turn: Turn, action: str, value: str) -> None:
    if action == "c" and value in dict(T.INTERPRETER_CHOICES):
        turn.conv.answers["interpreter"] = value
        return turn.go("advance")
    turn.not_understood()


def _field_step(profile: OfficeProfile, name: str) -> Step:
    """The step asking `name`; the phone question is the office's own when it asks a particular number."""
    state, handlers = FIELDS[name]
    if name == "phone" and profile.identify.phone_question:
        handlers = OWN_PHONE
    return Step(state, handlers)


def steps(profile: OfficeProfile) -> list[Step]:
    result = [Step("asking_name", NAME), Step("asking_number", NUMBER)]
    result += [_field_step(profile, name) for name in ("email", "phone") if name in profile.identify.fields]
    if len(profile.identify.topics) >= 2:
        result.append(Step("choosing_topic", Handlers(ask=_ask_topic, choose=_choose_topic)))
    if profile.identify.ask_interpreter:
        result.append(Step("asking_interpreter", Handlers(ask=_ask_interpreter, choose=_choose_interpreter)))
    return result


STAGE = Stage("identify", steps=steps)
