"""Languages (issue 14): the message catalogues, the language of the turn, and how a language is named.

Japanese (`ja`) is the source language: every text is written in Japanese in `bot/dialog/texts.py`,
which registers them here (`register_source`) under their keys (the constant's name, `NAME.key` for an
entry of a dict or of a tuple of pairs). The other languages are gettext catalogues read with Babel,
`bot/locale/<lang>/LC_MESSAGES/hwbot.po`, whose entries carry the key as `msgctxt`, the Japanese text as
`msgid` and the translation as `msgstr`. `text(lang, key)` answers the translation, or the Japanese text
when the catalogue has none: no entry, an empty or fuzzy `msgstr`, a `msgid` that no longer matches the
Japanese (the source changed since it was translated) or a translation whose `{placeholders}` differ.

The language of the turn is a context variable set the way Flask-Babel and Django set theirs:
`with i18n.using("en"): ...` makes `current()` answer `en` inside the block (in that thread or task
only), and `switch(lang)` changes it until the block ends (a language command in the middle of a turn).
Outside any block the language is Japanese: staff-facing code never sets one.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

log = logging.getLogger("hwbot.i18n")

JA, EN, EASY = "ja", "en", "ja_easy"
LANGUAGES = (JA, EN, EASY)  # the order the language buttons are offered in
DEFAULT = JA
SOURCE = JA  # the language texts.py is written in: it has no catalogue
# Each language named in itself: the labels of the language buttons and commands, the same in every
# language (a reader who cannot read the current one still finds their own), so never translated.
NAMES = {JA: "日本語", EN: "English", EASY: "やさしい にほんご"}
# What people type to choose a language, in any language and state (compared folded: `fold`).
LANGUAGE_PHRASES = {
    JA: ("日本語", "にほんご", "ニホンゴ", "japanese", "nihongo", "ふつうの日本語", "ふつうのにほんご"),
    EN: ("English", "えいご", "英語", "eigo"),
    EASY: ("やさしい にほんご", "やさしい日本語", "易しい日本語", "優しい日本語", "やさしいニホンゴ", "easy japanese",
           "plain japanese", "simple japanese", "yasashii nihongo"),
}
DOMAIN = "hwbot"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

_active: ContextVar[str] = ContextVar("hwbot_language", default=DEFAULT)
_source: dict[str, str] = {}
_locale_dir: list[Path] = [LOCALE_DIR]  # a test may read catalogues from elsewhere (`use_locale_dir`)


# -- the language of the turn ---------------------------------------------------------------------


def known(lang: str | None) -> str:
    """`lang` if it is one of ours, else the default (a value stored by an older version, a typo)."""
    return lang if lang in LANGUAGES else DEFAULT


def current() -> str:
    """The language texts are said in now."""
    return _active.get()


@contextmanager
def using(lang: str | None) -> Iterator[str]:
    """Say everything in `lang` inside the block (the default for an unknown one); restored after it."""
    token = _active.set(known(lang))
    try:
        yield _active.get()
    finally:
        _active.reset(token)


def switch(lang: str) -> None:
    """Change the language of the current block (a user chose another language in the middle of a turn)."""
    _active.set(known(lang))


def from_tag(tag: str | None) -> str | None:
    """The language for a BCP 47 tag as LINE gives a profile's `language` (`en`, `en-US`, `ja`, `zh-Hant`):
    Japanese for `ja*`, English for any other language (the one foreign language we have), None when
    there is no tag (the user has not agreed to LINE's privacy policy) or it is not a tag."""
    if not tag or not isinstance(tag, str):
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    if not re.fullmatch(r"[a-z]{2,8}", primary):
        return None
    return JA if primary == "ja" else EN


def fold(text: str) -> str:
    """Compare typed text with labels and phrases: NFKC, no spaces, lower case."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


@lru_cache(maxsize=1)
def _typed_languages() -> dict[str, str]:
    table = {fold(phrase): lang for lang, phrases in LANGUAGE_PHRASES.items() for phrase in phrases}
    table.update({fold(name): lang for lang, name in NAMES.items()})
    return table


def typed_language(text: str) -> str | None:
    """The language a typed text asks for (「English」, 「やさしい にほんご」, 「日本語」 and their variants), else None."""
    if len(text) > 40:
        return None
    return _typed_languages().get(fold(text))


# -- the catalogues --------------------------------------------------------------------------------


def register_source(entries: Mapping[str, str]) -> None:
    """The Japanese texts by key (`bot.dialog.texts` registers them when it is imported)."""
    _source.update(entries)
    reload()


def source() -> dict[str, str]:
    """Every registered key and its Japanese text (what `hwbot i18n extract` writes as the template)."""
    return dict(_source)


def placeholders(text: str) -> set[str]:
    """The names of a text's `{placeholders}` (`str.format` fields)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:  # unbalanced braces: not a format string
        return {"<malformed>"}


def catalogue_path(lang: str) -> Path:
    return _locale_dir[0] / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(path: Path) -> Catalog:
    """A .po file as Babel reads it (`babel.messages.pofile.read_po`)."""
    with path.open("rb") as handle:
        return read_po(handle, domain=DOMAIN)


@lru_cache(maxsize=None)
def _catalogue(lang: str) -> dict[str, tuple[str, str]]:
    """key (msgctxt) -> (msgid, msgstr) of the language's catalogue; empty when it has none."""
    path = catalogue_path(lang)
    if lang == SOURCE or not path.is_file():
        return {}
    entries = {}
    for message in read_catalogue(path):
        if not message.id or not message.context or message.fuzzy or not isinstance(message.string, str):
            continue
        entries[message.context] = (str(message.id), message.string)
    return entries


@lru_cache(maxsize=None)
def _translations(lang: str) -> dict[str, str]:
    """key -> the translation in `lang` of every key the catalogue translates usably (see the module)."""
    result: dict[str, str] = {}
    if lang == SOURCE:
        return result
    stale = []
    for key, (msgid, msgstr) in _catalogue(lang).items():
        japanese = _source.get(key)
        if japanese is None or not msgstr:
            continue
        if msgid != japanese or placeholders(msgstr) != placeholders(japanese):
            stale.append(key)
            continue
        result[key] = msgstr
    if stale:  # said in Japanese until the catalogue is updated (`hwbot i18n extract`, then translated)
        log.warning("i18n_stale_translations lang=%s count=%d first=%s", lang, len(stale), min(stale))
    return result


def text(lang: str, key: str) -> str:
    """The text `key` in `lang`: its translation, or the Japanese text (KeyError for an unknown key)."""
    found = _translations(known(lang)).get(key)
    return found if found is not None else _source[key]


def translated(lang: str, key: str) -> bool:
    """Whether `lang` has its own text for `key` (Japanese always has)."""
    lang = known(lang)
    return lang == SOURCE or key in _translations(lang)


@lru_cache(maxsize=None)
def aliases(lang: str) -> dict[str, tuple[str, ...]]:
    """command -> what people type for it in `lang` (`bot/locale/<lang>/aliases.yaml`); empty without one."""
    path = _locale_dir[0] / lang / "aliases.yaml"
    if lang == SOURCE or not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of command -> phrases")
    result = {}
    for command, phrases in data.items():
        if not isinstance(phrases, list) or not all(isinstance(p, (str, int, float)) for p in phrases):
            raise ValueError(f"{path}: {command}: expected a list of phrases")
        result[str(command)] = tuple(str(phrase) for phrase in phrases)
    return result


_reloaded: list[Any] = []  # callbacks of those who keep what they derived from the catalogues


def on_reload(callback: Any) -> None:
    """Call `callback()` whenever the catalogues are read again or the source changes."""
    _reloaded.append(callback)


def reload() -> None:
    """Read the catalogues again (after they changed on disk)."""
    _catalogue.cache_clear()
    _translations.cache_clear()
    aliases.cache_clear()
    for callback in _reloaded:
        callback()


@contextmanager
def use_locale_dir(directory: Path) -> Iterator[None]:
    """Read the catalogues from `directory` inside the block (tests)."""
    previous = _locale_dir[0]
    _locale_dir[0] = Path(directory)
    reload()
    try:
        yield
    finally:
        _locale_dir[0] = previous
        reload()


def flatten(name: str, value: Any) -> dict[str, str]:
    """The catalogue keys of one texts.py constant: a string is `NAME`; a dict's or a tuple of pairs'
    entries are `NAME.key`; anything else has none."""
    if isinstance(value, str):
        return {name: value}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {f"{name}.{key}": text for key, text in value.items()}
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], str) for p in value):
        return {f"{name}.{key}": text for key, text in value}
    return {}


# -- the template and updating the catalogues (`hwbot i18n extract`, `hwbot i18n update`) ----------------

TEMPLATE = f"{DOMAIN}.pot"
LINE_WIDTH = 100  # long Japanese lines wrap less often than at gettext's 76


def template_path() -> Path:
    return _locale_dir[0] / TEMPLATE


def template(entries: Mapping[str, str], notes: Mapping[str, str] | None = None) -> Catalog:
    """The template (`.pot`) of `entries` (key -> Japanese), each with `msgctxt` = its key, in key order
    as given; `notes` become extracted comments (`#.`) for translators, e.g. a label's length limit."""
    catalog = Catalog(project="hwbot", version="1", domain=DOMAIN, charset="utf-8", fuzzy=False,
                      msgid_bugs_address="", copyright_holder="", header_comment=(
                          "# Template of hwbot's message catalogues (issue 14): every text the bot says to a job\n"
                          "# seeker. Generated from bot/dialog/texts.py by `hwbot i18n extract`; do not edit.\n"
                          "# msgctxt is the constant's name there (NAME.key for an entry of a dict or tuple of pairs)."))
    notes = notes or {}
    for key, japanese in entries.items():
        flags = ("python-brace-format",) if placeholders(japanese) else ()
        comments = [notes[key]] if key in notes else []
        catalog.add(japanese, "", flags=flags, auto_comments=comments, context=key)
    return catalog


def write_catalogue(catalog: Catalog, path: Path) -> None:
    """Write a catalogue as a .po (or .pot) file, entries in their order, without source locations."""
    from babel.messages.pofile import write_po

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=LINE_WIDTH, no_location=True, omit_header=False, include_previous=True)


def update_catalogue(lang: str, pot: Catalog) -> dict[str, int]:
    """Merge the template into `lang`'s catalogue, entry by key (`msgctxt`), as gettext's msgmerge does by
    text: a new key gets an empty translation; a key whose Japanese text changed keeps its translation,
    marked fuzzy with the previous Japanese (`#| msgid`), so that it is said in Japanese until a
    translator checks it; a key gone from the template is kept as obsolete (`#~`). Returns counts."""
    path = catalogue_path(lang)
    old = read_catalogue(path) if path.is_file() else Catalog(locale=None, domain=DOMAIN, charset="utf-8")
    by_key = {message.context: message for message in old if message.id and message.context}
    merged = Catalog(locale=None, domain=DOMAIN, charset="utf-8", fuzzy=False, header_comment=old.header_comment)
    merged.mime_headers = old.mime_headers
    counts = {"added": 0, "changed": 0, "obsolete": 0}
    for entry in pot:
        if not entry.id:
            continue
        before = by_key.pop(entry.context, None)
        flags = set(entry.flags)
        if before is None:
            counts["added"] += 1
            merged.add(entry.id, "", flags=flags, auto_comments=entry.auto_comments, context=entry.context)
            continue
        previous: Any = ()
        if before.id != entry.id:
            counts["changed"] += 1
            flags.add("fuzzy")
            previous = before.id
        elif before.fuzzy:
            flags.add("fuzzy")
        merged.add(entry.id, before.string, flags=flags, auto_comments=entry.auto_comments,
                   user_comments=before.user_comments, previous_id=previous, context=entry.context)
    for key, message in by_key.items():
        counts["obsolete"] += 1
        merged.obsolete[(message.id, key)] = message
    merged.obsolete.update(old.obsolete)
    write_catalogue(merged, path)
    return counts
