"""The dialog's stage registry: an office's questions come from the registered stages, in their order;
a new stage is a module and a registration."""

from __future__ import annotations

import pytest

from bot.dialog import Dialog, texts
from bot.dialog.buttons import command_option
from bot.dialog.core import Handlers, Registry, Stage, Step, Turn
from bot.dialog.replies import Ask
from bot.dialog.stages import REGISTRY, identify
from bot.dialog.validate import Invalid, free_text
from bot.testing.driver import NOTO_USER, ChatDriver

NOTE_QUESTION = "ご相談したいことを一言でお書きください。"


def test_each_office_asks_the_registered_stages_in_booking_order(offices):
    dialog = Dialog(offices)
    assert dialog.flows["noto"].steps == [
        "asking_name", "asking_number", "asking_email", "asking_phone", "choosing_topic", "asking_interpreter",
        "q_registered", "q_continuous_support", "q_device", "q_need",
        "choosing_slot", "reading_terms", "confirming",
    ]  # fmt: skip
    assert dialog.flows["sakata"].steps[-6:] == [
        "q_continuous_support", "choosing_category", "asking_category_detail", "choosing_slot", "reading_terms", "confirming",
    ]  # fmt: skip
    assert sorted(dialog.lobby.machine.states) == [
        "choosing_new_slot", "choosing_office", "confirming_cancel", "confirming_erase", "confirming_move", "idle",
    ]  # fmt: skip
    for flow in [dialog.lobby, *dialog.flows.values()]:
        assert set(flow.handlers) == set(flow.machine.states)  # every state has its stage's handlers


def test_a_registry_refuses_a_name_taken_twice_and_a_missing_hook():
    menu = REGISTRY.stages[0]
    with pytest.raises(ValueError, match="state 'idle' registered twice"):
        Dialog({}, registry=Registry([*REGISTRY.stages, Stage("again", states={"idle": Handlers()})]))
    with pytest.raises(ValueError, match="command 'back' registered twice"):
        Registry([*REGISTRY.stages, Stage("again", commands={"back": Turn.reprompt})])
    with pytest.raises(ValueError, match="hooks provided"):
        Registry([stage for stage in REGISTRY.stages if stage is not menu])


def _ask_note(turn: Turn) -> None:
    turn.say(Ask(NOTE_QUESTION, (command_option("back"),), typed=True))


def _note(turn: Turn, text: str) -> None:
    result = free_text(text)
    if isinstance(result, Invalid):
        return turn.invalid(result.message)
    turn.conv.answers["note"] = result.value
    turn.go("advance")


def test_a_new_stage_is_a_module_and_its_registration(service, offices):
    note = Stage("note", steps=lambda profile: [Step("asking_note", Handlers(ask=_ask_note, typed=_note))])
    stages = list(REGISTRY.stages)
    stages.insert(stages.index(identify.STAGE) + 1, note)
    service.dialog = Dialog(offices, registry=Registry(stages))
    driver = ChatDriver(service, user="U1")
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    for text in NOTO_USER:
        driver.say(text)
    driver.tap("職業相談")
    driver.tap("同席しない")
    assert NOTE_QUESTION in driver.last_text()  # after identify, before the eligibility questions
    driver.say("応募書類の書き方")
    assert "求職登録はお済みですか" in driver.last_text()
    data, _ = service.conversations.load("U1")
    assert data["answers"]["note"] == "応募書類の書き方" and data["state"] == "q_registered"
    driver.tap(texts.COMMANDS["back"])  # the new step is in the history like any other
    assert NOTE_QUESTION in driver.last_text()
    assert driver.conversation_state() == "asking_note"
