"""Office profiles: the five real ones load, and a broken one fails with its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.errors import ProfileError, UnknownOfficeError
from bot.profiles import check_profiles, load_offices
from bot.profiles.models import LABEL_MAX
from bot.settings import REPO_ROOT

OFFICE_IDS = ["hamamatsu", "izumo", "noto", "sakata", "toyooka"]


def test_the_five_offices_load(offices):
    assert list(offices) == OFFICE_IDS
    for office_id in OFFICE_IDS:
        assert offices.terms_text(office_id).startswith("# ")
    with pytest.raises(UnknownOfficeError, match="unknown office 'kyoto'"):
        offices["kyoto"]


def test_strict_lists_what_offices_must_fill_in():
    report = check_profiles(REPO_ROOT / "office_profiles")
    assert report.errors == []
    phone_warnings = sorted(w.split("/")[-1].split(".yaml")[0] for w in report.warnings if "contact.phone" in w)
    assert phone_warnings == ["sakata", "toyooka"]
    assert not report.ok(strict=True)
    assert report.ok(strict=False)


@pytest.mark.parametrize(
    "office, field, value",
    [
        ("noto", "contact.phone", "0768-62-1242"),
        ("noto", "contact.email", "hw-noto@mhlw.go.jp"),
        ("noto", "video_tool", "TeleOffice"),
        ("noto", "booking.deadline.days", 2),
        ("hamamatsu", "schedule.minutes", 45),
        ("hamamatsu", "contact.phone", "053-454-1910"),
        ("hamamatsu", "video_tool", "Zoom"),
        ("izumo", "contact.phone", "0853-21-8609"),
        ("izumo", "booking.other_times_handoff", True),
        ("toyooka", "contact.phone", None),
        ("sakata", "contact.phone", None),
        ("sakata", "booking.deadline.kind", "calendar_days"),
        ("sakata", "booking.deadline.days", 3),
        ("toyooka", "booking.deadline.days", 1),
        ("noto", "terms.court", "金沢地方裁判所"),
        ("hamamatsu", "terms.court", "静岡地方裁判所"),
        ("toyooka", "terms.court", "神戸地方裁判所"),
        ("sakata", "terms.court", "山形地方裁判所"),
    ],
)
def test_profile_facts_from_the_documents(offices, office, field, value):
    target: object = offices[office]
    for part in field.split("."):
        target = getattr(target, part)
    if hasattr(target, "value"):
        target = target.value
    assert target == value


def test_cancellation_rules(offices):
    channels = {oid: sorted(c.value for c in offices[oid].cancellation.channels) for oid in OFFICE_IDS}
    same_day = {oid: [c.value for c in offices[oid].cancellation.same_day] for oid in OFFICE_IDS}
    assert channels == {
        "hamamatsu": ["phone"],
        "izumo": ["email", "phone"],
        "noto": ["email", "phone"],
        "sakata": ["phone"],
        "toyooka": ["phone"],
    }
    assert all(value == ["phone"] for value in same_day.values())


def test_terms_versions(offices):
    versions = {oid: offices[oid].terms.version.isoformat() for oid in OFFICE_IDS}
    assert versions == {
        "noto": "2023-05-08",
        "hamamatsu": "2023-10-16",
        "izumo": "2026-01-01",
        "toyooka": "2020-11-20",
        "sakata": "2023-11-01",
    }


def test_sakata_categories(offices):
    categories = offices["sakata"].eligibility.categories
    assert categories is not None and len(categories.items) == 5
    with_follow_up = [item.id for item in categories.items if item.follow_up]
    assert len(with_follow_up) == 1
    third = categories.items[2]
    assert third.follow_up is not None and "障害者手帳" in third.text
    assert all(offices[oid].eligibility.categories is None for oid in OFFICE_IDS if oid != "sakata")


def test_every_office_tells_the_common_rules(offices):
    # Rules every office's terms contain; the others (SNS, free, phone fallback) only where its documents
    # say so: tests/test_profiles_vs_seeds.py.
    for office_id in OFFICE_IDS:
        rules = "\n".join(rule.text for rule in offices[office_id].terms.rules)
        for needle in ("録画", "個室", "通訳", "通信", "10分"):
            assert needle in rules, (office_id, needle)


def test_every_button_label_fits_a_quick_reply(offices):
    for office_id in OFFICE_IDS:
        profile = offices[office_id]
        labels = [profile.button_label, *profile.identify.topics]
        for question in profile.eligibility.questions:
            labels += [choice.label for choice in question.choices]
        assert all(0 < len(label) <= LABEL_MAX for label in labels), office_id


# --- broken profiles ----------------------------------------------------------------------------


def _break(directory: Path, office: str, old: str, new: str) -> None:
    path = directory / f"{office}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test set-up: {old!r} not in {office}.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    "office, old, new, expected",
    [
        ("noto", "video_tool: TeleOffice", "video_tool: TeleOffice\nvideo_tol: Zoom", "noto.yaml: video_tol: Extra inputs are not permitted"),
        ("noto", "  minutes: 30", "  minutes: thirty", "noto.yaml: schedule.minutes: Input should be a valid integer"),
        ("noto", '    mon: ["10:00", "11:00", "14:00", "15:00"]', '    mon: ["10:00", "11:00", "14:00", "17:00"]', "noto.yaml: (profile): schedule.slots.mon.3: 17:00 + 30 min is outside office hours 08:30-17:15"),
        ("noto", '    mon: ["10:00", "11:00", "14:00", "15:00"]', '    mon: ["10:00", "10:15", "14:00", "15:00"]', "noto.yaml: (profile): schedule.slots.mon.0: 10:00 + 30 min overlaps the next slot 10:15"),
        ("noto", "    tue: [", "    tues: [", "noto.yaml: schedule.slots: unknown weekday 'tues'"),
        ("noto", "    days: 2", "    days: -2", "noto.yaml: booking.deadline.days: Input should be greater than or equal to 0"),
        ("noto", "    - id: device", "    - id: registered", "noto.yaml: eligibility: duplicate question ids: registered"),
        ("noto", "  phone: \"0768-62-1242\"", "  phone: \"0768621242x\"", "noto.yaml: contact.phone: String should match pattern"),
        ("noto", "id: noto", "id: notto", "noto.yaml: id: 'notto' does not match the file name 'noto'"),
        ("noto", "  full_text: terms/noto.md", "  full_text: terms/missing.md", "noto.yaml: terms.full_text: cannot read"),
        ("noto", "  open: \"08:30\"", "  open: \"08:30\"\n  open: \"09:00\"", "noto.yaml: invalid YAML"),
        ("noto", "        - {id: \"yes\", label: はい, ok: true}", "        - {id: \"yes\", label: はい、継続的な支援を希望します（担当者による個別支援）, ok: true}", "noto.yaml: eligibility.questions.1.choices.0.label: String should have at most 20 characters"),
        ("sakata", "text: 大学等に在籍する卒業予定者", "text: ''\n        old: 大学等に在籍する卒業予定者", "sakata.yaml: eligibility.categories.items.0"),
        # A rule told before consent must say where in the office's documents it comes from.
        ("noto", "      source: 別途TeleOfficeの利用規約にも同意いただく必要があります。\n", "", "noto.yaml: terms.rules.7.source: Field required"),
    ],
)
def test_broken_profile_names_file_and_field(profiles_copy, office, old, new, expected):
    _break(profiles_copy, office, old, new)
    report = check_profiles(profiles_copy)
    assert not report.ok()
    assert any(expected in line for line in report.errors), report.errors
    assert office not in report.offices
    # The other offices still load, and loading raises with the same lines.
    assert len(report.offices) == 4
    with pytest.raises(ProfileError) as raised:
        load_offices(profiles_copy)
    assert any(expected in line for line in raised.value.problems)


def test_unknown_deadline_kind_is_rejected(profiles_copy):
    _break(profiles_copy, "sakata", "kind: calendar_days", "kind: weeks")
    errors = check_profiles(profiles_copy).errors
    assert any("sakata.yaml: booking.deadline.kind: Input should be 'business_days' or 'calendar_days'" in e for e in errors)


def test_a_sixth_office_is_just_a_file(profiles_copy):
    text = (profiles_copy / "toyooka.yaml").read_text(encoding="utf-8")
    (profiles_copy / "kinosaki.yaml").write_text(text.replace("id: toyooka", "id: kinosaki"), encoding="utf-8")
    offices = load_offices(profiles_copy)
    assert "kinosaki" in offices
    assert offices.terms_text("kinosaki") == offices.terms_text("toyooka")


# --- the command --------------------------------------------------------------------------------


def test_profiles_check_command(profiles_copy):
    runner = CliRunner()
    ok = runner.invoke(main, ["profiles", "check", str(profiles_copy)])
    assert ok.exit_code == 0, ok.output
    assert "5 office profile(s)" in ok.output and "warning: " in ok.output
    strict = runner.invoke(main, ["profiles", "check", "--strict", str(profiles_copy)])
    assert strict.exit_code == 1
    assert "toyooka.yaml: contact.phone: empty" in strict.output
    assert "sakata.yaml: contact.phone: empty" in strict.output

    _break(profiles_copy, "izumo", "  minutes: 30", "  minutes: -30")
    broken = runner.invoke(main, ["profiles", "check", str(profiles_copy)])
    assert broken.exit_code == 1
    assert "izumo.yaml: schedule.minutes: Input should be greater than 0" in broken.output


def test_profiles_check_on_a_missing_directory(tmp_path):
    result = CliRunner().invoke(main, ["profiles", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "not a directory of office profiles" in result.output


def test_an_unknown_office_id_is_none_with_get_and_an_error_by_index(offices):
    """The dialog looks offices up with .get (a booking of an office since removed must not crash it)."""
    from bot.errors import UnknownOfficeError

    assert offices.get("closed_office") is None
    assert offices.get("noto").short_name == "ハローワーク能登"
    with pytest.raises(UnknownOfficeError, match="closed_office"):
        offices["closed_office"]


def test_in_offices_answers_for_any_id_without_raising(offices):
    """`in` is asked with "" (a user who has not chosen an office) and stale ids: an answer, never an error."""
    assert "noto" in offices
    assert "" not in offices and "nowhere" not in offices and None not in offices
