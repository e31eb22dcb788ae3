"""An office profile's texts in another language (issue 14): sidecars `i18n/<office>.<lang>.yaml`.

A sidecar mirrors the profile's own structure and holds only user-facing text, translated:

- a mapping stays a mapping with the profile's keys (only the text keys kept);
- a list of objects with an `id` (eligibility questions, their choices, Sakata's categories) becomes a
  mapping from the id to the object's texts; a choice's translation may be just its label;
- a list of plain strings (`after_booking.steps`, `checklist`, `identify.topics`) stays a list of the
  same length and order;
- a list of objects without an id (`terms.rules`) is a list of the same length: each item the object's
  texts, or just its `text` (a rule's `source` quotes the official Japanese document and stays);
- `label`, the office's button, may be given where the profile has none (a short name too long for a
  button in this language: English "Mothers Hello Work Hamamatsu", button "Mothers HW Hamamatsu").

`overlay` lays a sidecar over the profile's data (the model's own dump, so defaults count too) and the
result is validated by the same pydantic models: a label still fits LINE's 20 characters, a key the
profile does not have or a field that is not text (ids, numbers, phone numbers, addresses of mail,
sources) is an error naming the sidecar and the field. A text the sidecar leaves out is a missing
translation (a warning; `hwbot profiles check --strict` fails on it): the user reads the Japanese, and
where it stands as a paragraph of its own, a one-line note in their language says so (`fill`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

# Strings of a profile that are not texts to translate: used as they are in every language.
NOT_TEXT = (
    "id", "*.id", "contact.phone", "contact.phone_note", "contact.email", "contact.email_subject",
    "hours.*", "schedule.*", "booking.deadline.kind", "identify.fields.*", "terms.source", "terms.full_text",
    "terms.change", "terms.rules.*.source", "terms.rules.*.source.*", "cancellation.channels.*",
    "cancellation.same_day.*", "staff.*",
)  # fmt: skip
TRANSLATABLE = ("schedule.closed.*.reason",)  # text inside a part that is otherwise data
# Texts a sidecar may leave out without a warning (the Japanese is what a reader needs there).
OPTIONAL = ("contact.address", "terms.court")  # an address is what a map needs; the court is the full terms' own
# Texts a sidecar may give where the profile has none: the office's button `label`, for a language whose
# short name is longer than a button allows (English "Mothers Hello Work Hamamatsu").
ADDED = ("label",)
# Texts that stand as a paragraph of their own: shown in Japanese, they get the note that they are.
PARAGRAPHS = (
    "audience", "notes.*", "identify.phone_question", "eligibility.questions.*.text",
    "eligibility.questions.*.ineligible.*", "eligibility.categories.text", "eligibility.categories.items.*.text",
    "eligibility.categories.items.*.follow_up.text", "eligibility.categories.items.*.follow_up.ineligible.*",
    "eligibility.categories.ineligible.*", "terms.summary", "terms.rules.*", "after_booking.steps.*",
    "after_booking.checklist.*", "cancellation.text",
)  # fmt: skip


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def is_text(path: str) -> bool:
    """Whether the profile's string at `path` (dotted; list items by id or index) is a text to translate."""
    return _matches(path, TRANSLATABLE) or not _matches(path, NOT_TEXT)


def is_paragraph(path: str) -> bool:
    return _matches(path, PARAGRAPHS)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


class Overlay:
    """One sidecar laid over one profile's data: the merged data, the errors and the missing texts."""

    def __init__(self, fill: Callable[[str, str], str] | None = None):
        self.errors: list[str] = []  # "<field>: <why>"
        self.missing: list[str] = []  # fields whose text the sidecar leaves out
        self.fill = fill or (lambda path, japanese: japanese)

    def apply(self, base: Any, side: Any, path: str = "") -> Any:
        if isinstance(base, dict):
            return self._mapping(base, side, path)
        if isinstance(base, list):
            return self._list(base, side, path)
        if isinstance(base, str) and is_text(path):
            if side is None:
                if not _matches(path, OPTIONAL):
                    self.missing.append(path)
                return self.fill(path, base)
            if not isinstance(side, str) or not side.strip():
                self.errors.append(f"{path}: expected the text in this language")
                return base
            return side
        if base is None and side is not None and _matches(path, ADDED):
            if not isinstance(side, str) or not side.strip():
                self.errors.append(f"{path}: expected the text in this language")
                return base
            return side
        if side is not None:
            self.errors.append(f"{path}: not a text to translate (it stays as in the profile)")
        return base

    def _mapping(self, base: dict, side: Any, path: str) -> dict:
        if side is None:
            side = {}
        if not isinstance(side, dict):
            self.errors.append(f"{path or '(sidecar)'}: expected a mapping, as in the profile")
            side = {}
        for key in side:
            if key not in base:
                self.errors.append(f"{_join(path, key)}: the profile has no such field")
        return {key: self.apply(value, side.get(key), _join(path, key)) for key, value in base.items()}

    def _list(self, base: list, side: Any, path: str) -> list:
        if base and all(isinstance(item, dict) and "id" in item for item in base):
            return self._by_id(base, side, path)
        whole = side is None  # the whole list untranslated: one note, after its last item
        if side is None:
            side = [None] * len(base)
        if not isinstance(side, list) or len(side) != len(base):
            self.errors.append(f"{path}: expected a list of {len(base)} item(s), in the profile's order")
            side = [None] * len(base)
        merged = []
        fill = self.fill
        for index, (item, translated) in enumerate(zip(base, side)):
            if isinstance(item, dict) and isinstance(translated, str):
                translated = {"text": translated}  # a rule: just its text
            self.fill = fill if not whole or index == len(base) - 1 else (lambda path, japanese: japanese)
            try:
                merged.append(self.apply(item, translated, _join(path, index)))
            finally:
                self.fill = fill
        return merged

    def _by_id(self, base: list[dict], side: Any, path: str) -> list[dict]:
        if side is None:
            side = {}
        if not isinstance(side, dict):
            self.errors.append(f"{path}: expected a mapping from each item's id to its texts")
            side = {}
        ids = [str(item["id"]) for item in base]
        for key in side:
            if str(key) not in ids:
                self.errors.append(f"{_join(path, key)}: the profile has no item with this id")
        by_id = {str(key): value for key, value in side.items()}
        merged = []
        for item in base:
            translated = by_id.get(str(item["id"]))
            if isinstance(translated, str) and "label" in item:
                translated = {"label": translated}  # a choice: just its label
            merged.append(self._mapping(item, translated, _join(path, item["id"])))
        return merged
