"""Loading and checking office profiles: errors name the file and the field path."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot import i18n
from bot.errors import ProfileError, UnknownOfficeError
from bot.profiles.i18n import Overlay, is_paragraph
from bot.profiles.models import OfficeProfile

SIDECARS = "i18n"  # office_profiles/i18n/<office>.<lang>.yaml: the profile's texts in another language


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _loc(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc) if loc else "(profile)"


@dataclass
class CheckReport:
    """What checking a directory found: loaded offices, errors (fatal) and warnings."""

    directory: Path
    offices: dict[str, OfficeProfile] = field(default_factory=dict)
    terms_texts: dict[str, str] = field(default_factory=dict)
    sidecars: dict[tuple[str, str], dict] = field(default_factory=dict)  # (office, lang) -> its texts
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ok(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def _warnings_for(name: str, profile: OfficeProfile) -> list[str]:
    """Things an office must still fill in before production (fatal under --strict)."""
    found = []
    if not profile.contact.phone:
        found.append(
            f"{name}: contact.phone: empty; the bot will tell users to contact the office and "
            "hand off to staff instead of showing a number"
        )
    if not profile.hours.stated:
        found.append(
            f"{name}: hours: not stated in the office's documents; using "
            f"{profile.hours.open:%H:%M}-{profile.hours.close:%H:%M} until the office confirms"
        )
    return found


def check_profiles(directory: Path | str) -> CheckReport:
    """Read and validate every `*.yaml` in `directory` (files starting with `_` are skipped)."""
    directory = Path(directory)
    report = CheckReport(directory=directory)
    if not directory.is_dir():
        report.errors.append(f"{directory}: not a directory of office profiles")
        return report
    files = sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("_"))
    if not files:
        report.errors.append(f"{directory}: no office profile (*.yaml) found")
    for path in files:
        name = str(path)
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
        except (OSError, UnicodeDecodeError) as exc:
            report.errors.append(f"{name}: cannot read: {exc}")
            continue
        except yaml.YAMLError as exc:
            report.errors.append(f"{name}: invalid YAML: {exc}".replace("\n", " "))
            continue
        if not isinstance(data, dict):
            report.errors.append(f"{name}: (profile): expected a mapping of fields")
            continue
        try:
            profile = OfficeProfile.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                message = err["msg"].removeprefix("Value error, ")
                report.errors.append(f"{name}: {_loc(err['loc'])}: {message}")
            continue
        if profile.id != path.stem:
            report.errors.append(f"{name}: id: {profile.id!r} does not match the file name {path.stem!r}")
            continue
        terms_path = directory / profile.terms.full_text
        try:
            text = terms_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            report.errors.append(f"{name}: terms.full_text: cannot read {terms_path}: {exc.__class__.__name__}")
            continue
        if not text:
            report.errors.append(f"{name}: terms.full_text: {terms_path} is empty")
            continue
        report.offices[profile.id] = profile
        report.terms_texts[profile.id] = text
        report.warnings.extend(_warnings_for(name, profile))
    _check_sidecars(directory, report)
    return report


def _read_yaml(path: Path, report: CheckReport) -> object | None:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except (OSError, UnicodeDecodeError) as exc:
        report.errors.append(f"{path}: cannot read: {exc}")
    except yaml.YAMLError as exc:
        report.errors.append(f"{path}: invalid YAML: {exc}".replace("\n", " "))
    return None


def _check_sidecars(directory: Path, report: CheckReport) -> None:
    """Each office's texts in each other language: laid over the profile and validated like it; a text
    left out is a warning (said in Japanese), anything else wrong an error naming the file and field."""
    folder = directory / SIDECARS
    languages = [lang for lang in i18n.LANGUAGES if lang != i18n.SOURCE]
    profiles = {path.stem for path in directory.glob("*.yaml") if not path.name.startswith("_")}
    expected = {f"{office}.{lang}.yaml" for office in profiles for lang in languages}
    for stray in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if stray.name not in expected and not stray.name.startswith("_"):
            report.errors.append(f"{stray}: not <office>.<lang>.yaml of a profile here and a language of "
                                 f"the bot ({', '.join(languages)})")
    for office, profile in report.offices.items():
        for lang in languages:
            path = folder / f"{office}.{lang}.yaml"
            if not path.is_file():
                report.warnings.append(f"{path}: missing: every text of {office}.yaml is shown in Japanese to "
                                       f"users of {i18n.NAMES[lang]}")
                continue
            data = _read_yaml(path, report)
            if data is None:
                continue
            overlay = Overlay()
            merged = overlay.apply(profile.model_dump(), data)
            report.errors.extend(f"{path}: {problem}" for problem in overlay.errors)
            if overlay.errors:
                continue
            try:
                OfficeProfile.model_validate(merged)
            except ValidationError as exc:
                for err in exc.errors():
                    message = err["msg"].removeprefix("Value error, ")
                    report.errors.append(f"{path}: {_loc(err['loc'])}: {message}")
                continue
            report.sidecars[(office, lang)] = data
            report.warnings.extend(f"{path}: {missing}: no translation (shown in Japanese)" for missing in overlay.missing)


def _squeeze(text: str) -> str:
    """Text with all whitespace removed: seeds are extracted from PDFs and break lines anywhere."""
    return re.sub(r"\s+", "", text)


# A quote shorter than this (whitespace aside) is too common to prove anything.
QUOTE_MIN = 8


def unsourced_rules(profile: OfficeProfile, seed_text: str) -> list[str]:
    """The rules of `profile` whose source quotes are not in `seed_text`, the office's own document.

    A quote matches when it occurs verbatim once whitespace is removed from both; a quote shorter than
    QUOTE_MIN characters counts as missing. Each problem is `terms.rules.<i>: <why>`.
    """
    seed = _squeeze(seed_text)
    problems = []
    for index, rule in enumerate(profile.terms.rules):
        for quote in rule.source:
            squeezed = _squeeze(quote)
            if len(squeezed) < QUOTE_MIN:
                problems.append(f"terms.rules.{index}: source {quote!r} is too short to identify a passage")
            elif squeezed not in seed:
                problems.append(f"terms.rules.{index}: source {quote!r} is not in the office's document")
    return problems


class Offices(Mapping[str, OfficeProfile]):
    """The loaded office profiles by id, with each office's full terms text."""

    def __init__(self, profiles: dict[str, OfficeProfile], terms_texts: dict[str, str],
                 sidecars: dict[tuple[str, str], dict] | None = None):
        self._profiles = dict(sorted(profiles.items()))
        self._terms = terms_texts
        self.sidecars = dict(sidecars or {})  # (office, lang) -> the office's texts in that language
        self._localized: dict[tuple[str, str, str], OfficeProfile] = {}

    def __getitem__(self, office_id: str) -> OfficeProfile:
        try:
            return self._profiles[office_id]
        except KeyError:
            known = ", ".join(self._profiles) or "none"
            raise UnknownOfficeError(f"unknown office {office_id!r} (known: {known})") from None

    def get(self, office_id: str, default: OfficeProfile | None = None) -> OfficeProfile | None:
        """The profile, or `default` for an unknown id (Mapping.get only catches KeyError)."""
        return self._profiles.get(office_id, default)

    def __contains__(self, office_id: object) -> bool:
        """Whether an office has this id (Mapping's own `in` would raise UnknownOfficeError for "")."""
        return office_id in self._profiles

    def __iter__(self) -> Iterator[str]:
        return iter(self._profiles)

    def __len__(self) -> int:
        return len(self._profiles)

    def terms_text(self, office_id: str) -> str:
        """The office's full official terms text."""
        self[office_id]
        return self._terms[office_id]

    def localized(self, office_id: str, lang: str, note: str = "") -> OfficeProfile:
        """The office's profile with its texts in `lang` (its sidecar laid over it); a text the sidecar
        leaves out stays Japanese, and where it is a paragraph of its own, `note` (one line in `lang`
        saying so) follows it. Japanese, or a language without a sidecar: the profile itself."""
        profile = self[office_id]
        sidecar = self.sidecars.get((office_id, lang))
        if lang == i18n.SOURCE:
            return profile
        key = (office_id, lang, note)
        found = self._localized.get(key)
        if found is None:

            def fill(path: str, japanese: str) -> str:
                return f"{japanese}\n{note}" if note and is_paragraph(path) else japanese

            merged = Overlay(fill).apply(profile.model_dump(), sidecar or {})
            found = self._localized[key] = OfficeProfile.model_validate(merged)
        return found


def load_offices(directory: Path | str, *, strict: bool = False) -> Offices:
    """Load every profile in `directory`; any error (or warning, if strict) raises ProfileError."""
    report = check_profiles(directory)
    if not report.ok(strict):
        raise ProfileError(report.errors + (report.warnings if strict else []))
    return Offices(report.offices, report.terms_texts, report.sidecars)
