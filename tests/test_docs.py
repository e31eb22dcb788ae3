"""The project's own documents stay true: the architecture is in the repository and names what the code has."""

from __future__ import annotations

import re

import click

from bot.cli import main
from bot.settings import REPO_ROOT, Settings
from bot.store import outbox, sim_inbox
from bot.store.audit import AUDIT_KEY
from bot.store.bookings import booking_key, day_index_key, intent_key, intents_key, user_index_key
from bot.store.conversations import conversation_key, event_key, last_reply_key
from bot.store.durable import fence_key
from bot.store.handoffs import CLOSED_KEY, HANDOFFS_KEY, messages_key, thread_key, user_threads_key
from bot.store.pushes import pushes_key
from bot.store.shards import outbox_key
from bot.store.slots import slot_redis_key
from bot.store import staff_accounts as staff

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_the_readme_links_the_architecture():
    assert "(docs/architecture.md)" in README


def test_no_document_sends_a_reader_outside_the_repository_for_the_design():
    # Only LINE's specification and the offices' documents (read by the tests, never copied in) live
    # beside the checkout.
    for name, text in (("README.md", README), ("docs/architecture.md", ARCHITECTURE)):
        for match in re.finditer(r"\.\./shared[^\s`)]*", text):
            assert match.group().startswith(("../shared/line-openapi", "../shared/seeds")), f"{name} points at {match.group()}"
        assert "DESIGN.md`" not in text and "DESIGN.md)" not in text, f"{name} links DESIGN.md"


def test_every_variable_is_documented():
    for field in Settings.model_fields.values():
        variable = field.validation_alias
        assert f"`{variable}`" in README, f"README's Configuration table lacks {variable}"
        assert f"`{variable}`" in ARCHITECTURE, f"docs/architecture.md's contracts lack {variable}"


def _commands(group: click.Group, prefix: str) -> list[str]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_is_in_the_contracts():
    commands = _commands(main, "hwbot")
    assert "hwbot worker" in commands and "hwbot profiles check" in commands
    for command in commands:
        assert f"`{command}" in ARCHITECTURE, f"docs/architecture.md's command table lacks {command}"


def test_every_redis_key_family_is_in_the_key_table():
    # Real keys from the store's own functions, with the sample values put back as placeholders.
    samples = {
        conversation_key(3, "U1"): "hwbot:{o<k>}:conv:<user>",
        last_reply_key(3, "U1"): "hwbot:{o<k>}:last_reply:<user>",
        event_key(3, "E1"): "hwbot:{o<k>}:event:<webhookEventId>",
        slot_redis_key("noto", "2026-12-01T10:00"): "hwbot:{<office>}:<day>:slot:<HHMM>",
        booking_key("noto", "2026-12-01T10:00", "B1"): "hwbot:{<office>}:<day>:booking:<id>",
        day_index_key("noto", "2026-12-01"): "hwbot:{<office>}:<day>:bookings",
        intent_key("noto", "B1"): "hwbot:{<office>}:intent:<id>",
        intents_key("noto"): "hwbot:{<office>}:intents",
        fence_key(intents_key("noto")): "hwbot:{<office>}:fence",
        fence_key(user_index_key("U1")): "hwbot:{u:<user>}:fence",
        user_index_key("U1"): "hwbot:{u:<user>}:bookings",
        outbox_key(3): "hwbot:{o<k>}:outbox",
        outbox.attempts_key(3): "hwbot:{o<k>}:outbox:attempts",
        outbox.retry_key(3): "hwbot:{o<k>}:outbox:retry",
        outbox.done_key(3, "E1"): "hwbot:{o<k>}:outbox:done:<id>",
        outbox.done_key(3, "E1", "slack"): "hwbot:{o<k>}:outbox:done:<id>:<channel>",
        outbox.dead_key(3): "hwbot:{o<k>}:outbox:dead",
        outbox.dedup_key(3, "K1"): "hwbot:{o<k>}:outbox:dedup:<key>",
        outbox.SHARDS_KEY: "hwbot:outbox:shards",
        HANDOFFS_KEY: "hwbot:handoffs",
        thread_key("3-0123456789abcdef"): "hwbot:{o<k>}:thread:<id>",
        messages_key("3-0123456789abcdef"): "hwbot:{o<k>}:thread:<id>:messages",
        user_threads_key("U1"): "hwbot:{u:<user>}:threads",
        CLOSED_KEY: "hwbot:threads:closed",
        pushes_key("2026-12"): "hwbot:pushes:<YYYY-MM>",
        staff.account_key("A1"): "hwbot:{staff}:account:<id>",
        staff.NAMES_KEY: "hwbot:{staff}:names",
        staff.link_key("D1"): "hwbot:{staff}:link:<digest>",
        staff.session_key("D1"): "hwbot:{staff}:session:<digest>",
        staff.sessions_key("A1"): "hwbot:{staff}:sessions:<id>",
        staff.token_key("D1"): "hwbot:{staff}:token:<digest>",
        staff.tokens_key("A1"): "hwbot:{staff}:tokens:<id>",
        staff.recovery_key("A1"): "hwbot:{staff}:recovery:<id>",
        staff.fail_key("S1", "W1"): "hwbot:{staff}:fail:<scope>:<who>",
        staff.tried_key("IP1"): "hwbot:{staff}:tried:<address>",
        AUDIT_KEY: "hwbot:audit",
        sim_inbox.inbox_key("U1"): "hwbot:sim:inbox:<user>",
        sim_inbox.reply_token_key("T1"): "hwbot:sim:reply:<token>",
        sim_inbox.retry_key_key("K1"): "hwbot:sim:retry:<key>",
        sim_inbox.loading_key("U1"): "hwbot:sim:loading:<user>",
        sim_inbox.language_key("U1"): "hwbot:sim:language:<user>",
    }
    for key, documented in samples.items():
        shape = (key.replace("{o3}", "{o<k>}").replace("3-0123456789abcdef", "<id>").replace("noto", "<office>").replace("2026-12-01", "<day>").replace("1000", "<HHMM>")
                 .replace("U1", "<user>").replace("E1", "<id>").replace("B1", "<id>").replace("T1", "<token>")
                 .replace("K1", "<key>").replace("slack", "<channel>").replace("H1", "<id>")
                 .replace("2026-12", "<YYYY-MM>").replace("A1", "<id>").replace("D1", "<digest>")
                 .replace("S1", "<scope>").replace("W1", "<who>").replace("IP1", "<address>"))
        if ":event:" in documented:
            shape = shape.replace("<id>", "<webhookEventId>")
        assert shape == documented, f"the store builds {key}, documented as {documented}"
        assert f"`{documented}`" in ARCHITECTURE, f"docs/architecture.md's key table lacks {documented}"
