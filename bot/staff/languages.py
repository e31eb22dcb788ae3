"""The user's language as staff read it (issue 14): staff-facing text stays Japanese, but notices, the
console's booking and thread views and the CSV say which language the user reads, so that the office
can arrange an interpreter or speak plainly (「英語での対応を希望」).
"""

from __future__ import annotations

from bot import i18n

LABEL = "言語"
# What staff are told of each language; Japanese is said only where a field must not be empty (CSV).
WISHES = {
    i18n.EN: "英語での対応を希望",
    i18n.EASY: "やさしい日本語での対応を希望",
}
JAPANESE = "日本語"


def wish(lang: str | None) -> str:
    """「英語での対応を希望」 for English, 「やさしい日本語での対応を希望」 for plain Japanese, "" for Japanese."""
    return WISHES.get(lang or "", "")


NAMES = {i18n.JA: "日本語", i18n.EN: "英語", i18n.EASY: "やさしい日本語"}


def name(lang: str | None) -> str:
    """A language as staff name it (日本語, 英語, やさしい日本語); "" for none."""
    return NAMES.get(lang or "", lang or "")


def language_field(lang: str | None) -> dict[str, str]:
    """`{"lang": lang}` for a staff notice of a user who reads another language than Japanese, else {}."""
    return {"lang": lang} if lang in WISHES else {}
