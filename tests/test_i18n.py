"""The catalogue machinery (bot.i18n, bot.dialog.texts): the language of a turn, translations and their
fallbacks, the template kept in step with texts.py."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot import i18n
from bot.cli import main
from bot.dialog import texts as T
from bot.settings import REPO_ROOT

PO_HEADER = '''msgid ""
msgstr ""
"Language: {lang}\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"Content-Transfer-Encoding: 8bit\\n"

'''


def po_entry(key: str, msgid: str, msgstr: str, fuzzy: bool = False) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    flag = "#, fuzzy\n" if fuzzy else ""
    return f"{flag}msgctxt {quoted(key)}\nmsgid {quoted(msgid)}\nmsgstr {quoted(msgstr)}\n\n"


@pytest.fixture
def locale_dir(tmp_path):
    """An English catalogue of a few keys: one good, one stale, one fuzzy, one with other placeholders."""
    entries = [
        po_entry("MENU", T.japanese("MENU"), "What would you like to do?"),
        po_entry("COMMANDS.help", T.japanese("COMMANDS")["help"], "Help"),
        po_entry("INTERPRETER_CHOICES.none", "同席しない", "No one else"),
        po_entry("QUIT", "古い文です。", "An old translation."),  # the Japanese changed since
        po_entry("STALE", T.japanese("STALE"), "Unchecked.", fuzzy=True),
        po_entry("HANDOFF", T.japanese("HANDOFF"), "Staff will reply {later}."),  # {when} renamed: unusable
        po_entry("EXPIRED", T.japanese("EXPIRED"), ""),  # not translated yet
    ]
    path = tmp_path / "en" / "LC_MESSAGES" / "hwbot.po"
    path.parent.mkdir(parents=True)
    path.write_text(PO_HEADER.format(lang="en") + "".join(entries), encoding="utf-8")
    (tmp_path / "en" / "aliases.yaml").write_text("help: [help, how to use]\n", encoding="utf-8")
    with i18n.use_locale_dir(tmp_path):
        yield tmp_path


def test_texts_answer_in_the_language_of_the_block(locale_dir):
    assert i18n.current() == "ja"
    with i18n.using("en"):
        assert T.MENU == "What would you like to do?"
        assert T.COMMANDS["help"] == "Help" and T.COMMANDS["quit"] == T.japanese("COMMANDS")["quit"]
        assert dict(T.INTERPRETER_CHOICES)["none"] == "No one else"
        assert T.japanese("MENU") == "ご用件を選んでください。"
    assert T.MENU == "ご用件を選んでください。"  # the block restored Japanese


def test_a_translation_that_cannot_be_used_falls_back_to_japanese(locale_dir):
    with i18n.using("en"):
        assert T.QUIT == T.japanese("QUIT")  # msgid no longer the Japanese text
        assert T.STALE == T.japanese("STALE")  # fuzzy
        assert T.HANDOFF == T.japanese("HANDOFF")  # its placeholders differ: .format(when=…) would fail
        assert T.EXPIRED == T.japanese("EXPIRED")  # empty msgstr
        assert T.GREETING == T.japanese("GREETING")  # no entry
    assert i18n.translated("en", "MENU") and not i18n.translated("en", "QUIT")
    assert i18n.translated("ja", "QUIT")


def test_a_switch_lasts_until_the_block_ends_and_other_threads_keep_their_language(locale_dir):
    seen = []
    with i18n.using("ja"):
        i18n.switch("en")
        assert T.MENU == "What would you like to do?"
        thread = threading.Thread(target=lambda: seen.append(T.MENU))
        thread.start()
        thread.join()
    assert seen == ["ご用件を選んでください。"]  # a new thread starts in the default language
    assert i18n.current() == "ja" and T.MENU == "ご用件を選んでください。"


def test_unknown_languages_are_the_default():
    with i18n.using("fr"):
        assert i18n.current() == "ja"
    with i18n.using(None):
        assert i18n.current() == "ja"


@pytest.mark.parametrize(
    "tag, lang",
    [("en", "en"), ("en-US", "en"), ("en_GB", "en"), ("ja", "ja"), ("ja-JP", "ja"), ("zh-Hant", "en"),
     ("pt-BR", "en"), ("ko", "en"), (None, None), ("", None), ("123", None), (" ", None)],
)
def test_line_profile_languages(tag, lang):
    assert i18n.from_tag(tag) == lang


@pytest.mark.parametrize(
    "typed, lang",
    [("English", "en"), ("english", "en"), (" ENGLISH ", "en"), ("Ｅｎｇｌｉｓｈ", "en"), ("英語", "en"),
     ("日本語", "ja"), ("Japanese", "ja"), ("にほんご", "ja"), ("やさしい にほんご", "ja_easy"),
     ("やさしいにほんご", "ja_easy"), ("やさしい日本語", "ja_easy"), ("Easy Japanese", "ja_easy"),
     ("予約する", None), ("English please, I need help", None)],
)
def test_typed_language_commands(typed, lang):
    assert i18n.typed_language(typed) == lang


def test_aliases_are_read_per_language(locale_dir):
    assert i18n.aliases("en") == {"help": ("help", "how to use")}
    assert i18n.aliases("ja") == {}


def test_keys_flatten_dicts_and_pairs_and_leave_the_japanese_aliases_out():
    keys = T.keys()
    assert keys["GREETING"] == T.japanese("GREETING")
    assert keys["COMMANDS.restart"] == "最初から"
    assert keys["INTERPRETER_CHOICES.both"] == "通訳と介助者が同席"
    assert keys["CONFIRMATION_STATES.pending"] == "申込み中・事業所の確認待ち"
    assert not any(key.startswith("COMMAND_ALIASES") for key in keys)
    assert not any(key.startswith(("LABEL_MAX", "NOT_TRANSLATED")) for key in keys)


def test_the_template_is_up_to_date_with_texts_py():
    """bot/locale/hwbot.pot holds every key of texts.py with its Japanese text (`hwbot i18n extract`)."""
    result = CliRunner().invoke(main, ["i18n", "extract", "--check"])
    assert result.exit_code == 0, result.output
    pot = i18n.read_catalogue(REPO_ROOT / "bot" / "locale" / "hwbot.pot")
    assert {m.context: m.id for m in pot if m.id} == T.keys()


def test_extract_check_fails_on_a_changed_text(tmp_path):
    (tmp_path / "hwbot.pot").write_bytes((REPO_ROOT / "bot" / "locale" / "hwbot.pot").read_bytes().replace(
        "ご用件を選んでください。".encode(), "ご用件は？".encode()))
    with i18n.use_locale_dir(tmp_path):
        result = CliRunner().invoke(main, ["i18n", "extract", "--check"])
        assert result.exit_code == 1 and "MENU" in result.output
        assert CliRunner().invoke(main, ["i18n", "extract"]).exit_code == 0
        assert CliRunner().invoke(main, ["i18n", "extract", "--check"]).exit_code == 0


def test_update_adds_new_keys_and_marks_changed_ones_fuzzy(tmp_path):
    path = tmp_path / "en" / "LC_MESSAGES" / "hwbot.po"
    path.parent.mkdir(parents=True)
    path.write_text(PO_HEADER.format(lang="en") + po_entry("MENU", "ご用件は？", "What now?")
                    + po_entry("CONSENT", "同意する", "I agree"), encoding="utf-8")
    with i18n.use_locale_dir(tmp_path):
        assert CliRunner().invoke(main, ["i18n", "extract"]).exit_code == 0
        result = CliRunner().invoke(main, ["i18n", "update"])
        assert result.exit_code == 0, result.output
        merged = {m.context: m for m in i18n.read_catalogue(path) if m.id}
        assert set(merged) == set(T.keys())
        assert merged["CONSENT"].string == "I agree" and not merged["CONSENT"].fuzzy
        assert merged["MENU"].fuzzy and merged["MENU"].id == "ご用件を選んでください。"
        assert merged["GREETING"].string == ""
        with i18n.using("en"):
            assert T.CONSENT == "I agree" and T.MENU == "ご用件を選んでください。"  # fuzzy: Japanese until checked


def test_no_module_keeps_a_text_of_import_time():
    """`from bot.dialog.texts import GREETING` would keep the Japanese of import time in every language."""
    offenders = []
    for path in [*(REPO_ROOT / "bot").rglob("*.py"), *(REPO_ROOT / "tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "bot.dialog.texts":
                offenders += [f"{path.relative_to(REPO_ROOT)}: {a.name}" for a in node.names if a.name[:1].isupper()]
    assert not offenders, offenders


def test_label_limits_name_real_keys():
    limits = T.label_limits()
    assert limits["COMMANDS.help"] == 20 and limits["CANCEL_LABEL"] == 8 and limits["CHANGE_DATE_LABEL"] == 8
    assert "GREETING" not in limits
    assert all(key in T.keys() for key in limits)


def test_every_japanese_label_fits():
    too_long = {key: T.keys()[key] for key, limit in T.label_limits().items() if len(T.keys()[key]) > limit}
    assert not too_long


def test_the_locale_files_are_package_data():
    assert Path(i18n.LOCALE_DIR).relative_to(REPO_ROOT / "bot") == Path("locale")


# -- dates and times per language, always in Japan time ------------------------------------------------------


@pytest.fixture
def easy_dates(tmp_path):
    weekdays = dict(zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                        ("げつようび", "かようび", "すいようび", "もくようび", "きんようび", "どようび", "にちようび")))
    entries = [po_entry("DAY_FORMAT", T.japanese("DAY_FORMAT"), "{month}がつ{day}にち({weekday})"),
               po_entry("DATE_FORMAT", T.japanese("DATE_FORMAT"), "{year}ねん{month}がつ{day}にち")]
    entries += [po_entry(f"WEEKDAY_NAMES.{key}", T.japanese("WEEKDAY_NAMES")[key], name) for key, name in weekdays.items()]
    path = tmp_path / "ja_easy" / "LC_MESSAGES" / "hwbot.po"
    path.parent.mkdir(parents=True)
    path.write_text(PO_HEADER.format(lang="ja_easy") + "".join(entries), encoding="utf-8")
    with i18n.use_locale_dir(tmp_path):
        yield


def test_dates_and_times_per_language_in_japan_time(easy_dates):
    from datetime import date, datetime, timezone

    from bot.dialog import formats

    # 01:00 UTC on 7 December is 10:00 on Monday 7 December in Japan.
    start = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
    end = datetime(2026, 12, 7, 1, 30, tzinfo=timezone.utc)
    with i18n.using("ja"):
        assert formats.day(date(2026, 12, 7)) == "12月7日(月)"
        assert formats.slot(start, end) == "12月7日(月) 10:00〜10:30"
        assert formats.long_date(date(2026, 1, 1)) == "2026年1月1日"
    with i18n.using("ja_easy"):
        assert formats.day(date(2026, 12, 7)) == "12がつ7にち(げつようび)"
        assert formats.clock(start) == "10:00"
        assert formats.long_date(date(2026, 1, 1)) == "2026ねん1がつ1にち"
    with i18n.using("en"):
        assert formats.day(date(2026, 12, 7)) == "Mon, Dec 7"
        assert formats.clock(start) == "10:00 AM" and formats.clock(datetime(2026, 12, 7, 6, 15, tzinfo=timezone.utc)) == "3:15 PM"
        assert formats.long_date(date(2026, 1, 1)) == "January 1, 2026"
        assert formats.button_day(start) == "12/7 10:00"
        # 2026-11-23 is 勤労感謝の日: its English name.
        assert formats.closure_reason("holiday", "勤労感謝の日", date(2026, 11, 23)) == "Labor Thanksgiving Day"
        assert formats.sentences("One.", "Two.") == "One. Two."
    with i18n.using("ja"):
        assert formats.sentences("一つ。", "二つ。") == "一つ。二つ。"


def test_no_module_reads_a_text_at_import_time():
    """A text read outside a function (a module constant, a default argument) would be the Japanese of
    import time in every language."""
    offenders = []
    for path in (REPO_ROOT / "bot").rglob("*.py"):
        if path.name == "texts.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        outside = [node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
            outside += [node for node in cls.body if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            outside += func.args.defaults + func.args.kw_defaults
        for top in outside:
            for node in ast.walk(top) if top is not None else ():
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id in ("T", "texts") and node.attr[:1].isupper()
                        and not isinstance(node.ctx, ast.Store)):
                    if not any(isinstance(parent, ast.Lambda) for parent in ast.walk(top) if node in ast.walk(parent)):
                        offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offenders, offenders
