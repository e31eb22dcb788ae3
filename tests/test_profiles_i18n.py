"""Office profiles per language (issue 14): sidecars office_profiles/i18n/<office>.<lang>.yaml laid over
the profile, validated by the same models; missing translations are warnings (errors under --strict)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from bot import i18n
from bot.cli import main
from bot.profiles import check_profiles, load_offices
from bot.profiles.i18n import Overlay
from bot.settings import REPO_ROOT

PROFILES = REPO_ROOT / "office_profiles"


def _edit(path, change):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_every_office_has_its_texts_in_every_language():
    report = check_profiles(PROFILES)
    assert not report.errors
    assert {(office, lang) for office, lang in report.sidecars} == {
        (office, lang) for office in report.offices for lang in i18n.LANGUAGES if lang != i18n.SOURCE
    }
    missing = [line for line in report.warnings if "/i18n/" in line]
    assert not missing, missing


def test_the_localized_profile_speaks_the_language_and_keeps_everything_else(offices):
    noto, english = offices["noto"], offices.localized("noto", "en")
    assert english.short_name == "Hello Work Noto" and noto.short_name == "ハローワーク能登"
    assert english.contact == noto.contact and english.schedule == noto.schedule and english.booking.window_months == 1
    assert [q.id for q in english.eligibility.questions] == [q.id for q in noto.eligibility.questions]
    assert [c.ok for q in english.eligibility.questions for c in q.choices] == [
        c.ok for q in noto.eligibility.questions for c in q.choices]
    assert [rule.source for rule in english.terms.rules] == [rule.source for rule in noto.terms.rules]
    assert english.terms.rules[0].text != noto.terms.rules[0].text
    easy = offices.localized("izumo", "ja_easy")
    assert easy.short_name == "ハローワーク出雲（いずも）"
    assert offices.localized("noto", "ja") is noto


def test_an_unknown_field_or_id_is_an_error_naming_the_sidecar_and_the_field(profiles_copy):
    sidecar = profiles_copy / "i18n" / "noto.en.yaml"

    def break_it(data):
        data["eligibility"]["questions"]["registerd"] = {"text": "typo"}
        data["video_tol"] = "TeleOffice"
        data["contact"] = {"phone": "0120-000-000"}  # not a text: stays as in the profile

    _edit(sidecar, break_it)
    errors = check_profiles(profiles_copy).errors
    assert f"{sidecar}: eligibility.questions.registerd: the profile has no item with this id" in errors
    assert f"{sidecar}: video_tol: the profile has no field" in " ".join(errors).replace(" such field", " field")
    assert any(e.startswith(f"{sidecar}: contact.phone: not a text to translate") for e in errors)


def test_a_translated_label_over_lines_limit_is_an_error(profiles_copy):
    sidecar = profiles_copy / "i18n" / "izumo.en.yaml"
    _edit(sidecar, lambda d: d["eligibility"]["questions"]["registered"]["choices"].update(
        {"yes": "Yes, I have already registered"}))
    errors = check_profiles(profiles_copy).errors
    assert any(e.startswith(f"{sidecar}: eligibility.questions.0.choices.0.label:") and "20 characters" in e
               for e in errors), errors


def test_a_short_name_too_long_for_a_button_needs_a_label(profiles_copy, offices):
    """English Hamamatsu: sentences say "Mothers Hello Work Hamamatsu", its button "Mothers HW Hamamatsu"."""
    english = offices.localized("hamamatsu", "en")
    assert english.short_name == "Mothers Hello Work Hamamatsu" and english.button_label == "Mothers HW Hamamatsu"
    assert offices["hamamatsu"].label is None and offices["hamamatsu"].button_label == "マザーズハローワーク浜松"
    sidecar = profiles_copy / "i18n" / "hamamatsu.en.yaml"
    _edit(sidecar, lambda d: d.pop("label"))
    errors = check_profiles(profiles_copy).errors
    assert any(e.startswith(f"{sidecar}: short_name: 'Mothers Hello Work Hamamatsu' is longer than 20") for e in errors), errors
    _edit(sidecar, lambda d: d.update(label="Mothers Hello Work Hamamatsu"))
    errors = check_profiles(profiles_copy).errors
    assert any(e.startswith(f"{sidecar}: label:") and "20 characters" in e for e in errors), errors


def test_a_list_of_another_length_is_an_error(profiles_copy):
    sidecar = profiles_copy / "i18n" / "noto.ja_easy.yaml"
    _edit(sidecar, lambda d: d["after_booking"]["checklist"].pop())
    assert any(e.startswith(f"{sidecar}: after_booking.checklist: expected a list of 4 item(s)")
               for e in check_profiles(profiles_copy).errors)


def test_missing_translations_are_warnings_and_strict_fails(profiles_copy):
    sidecar = profiles_copy / "i18n" / "toyooka.en.yaml"
    _edit(sidecar, lambda d: (d["terms"].pop("summary"), d["after_booking"].pop("checklist")))
    (profiles_copy / "i18n" / "sakata.ja_easy.yaml").unlink()
    report = check_profiles(profiles_copy)
    assert not report.errors
    assert f"{sidecar}: terms.summary: no translation (shown in Japanese)" in report.warnings
    assert f"{sidecar}: after_booking.checklist.0: no translation (shown in Japanese)" in report.warnings
    assert any("sakata.ja_easy.yaml: missing" in line for line in report.warnings)
    runner = CliRunner()
    assert runner.invoke(main, ["profiles", "check", str(profiles_copy)]).exit_code == 0
    strict = runner.invoke(main, ["profiles", "check", "--strict", str(profiles_copy)])
    assert strict.exit_code == 1 and "terms.summary: no translation" in strict.output


def test_an_untranslated_paragraph_is_japanese_with_a_note_and_a_label_is_japanese(profiles_copy):
    sidecar = profiles_copy / "i18n" / "toyooka.en.yaml"
    _edit(sidecar, lambda d: (d["terms"].pop("summary"), d["after_booking"].pop("checklist"), d.pop("short_name")))
    offices = load_offices(profiles_copy)
    japanese = offices["toyooka"]
    english = offices.localized("toyooka", "en", note="(This part is only available in Japanese.)")
    assert english.terms.summary == japanese.terms.summary + "\n(This part is only available in Japanese.)"
    assert english.short_name == japanese.short_name  # a label: no room for a note
    # A whole list left out: one note, after its last item.
    assert english.after_booking.checklist[:-1] == japanese.after_booking.checklist[:-1]
    assert english.after_booking.checklist[-1].endswith("\n(This part is only available in Japanese.)")
    assert english.terms.rules[0].text != japanese.terms.rules[0].text  # still translated


def test_overlay_takes_a_choice_as_its_label_and_a_rule_as_its_text():
    base = {"questions": [{"id": "q", "text": "質問", "choices": [{"id": "yes", "label": "はい", "ok": True}]}],
            "terms": {"rules": [{"text": "規則", "source": ["出典の文"]}]}}
    overlay = Overlay()
    merged = overlay.apply(base, {"questions": {"q": {"text": "Question", "choices": {"yes": "Yes"}}},
                                  "terms": {"rules": ["Rule"]}})
    assert merged == {"questions": [{"id": "q", "text": "Question", "choices": [{"id": "yes", "label": "Yes", "ok": True}]}],
                      "terms": {"rules": [{"text": "Rule", "source": ["出典の文"]}]}}
    assert overlay.errors == [] and overlay.missing == []
