"""Every rule told before consent comes from the office's own documents (../shared/seeds/).

Each rule in `terms.rules` carries `source:` quotes, which must occur verbatim (whitespace aside) in
that office's seed; a rule the documents do not contain cannot be given a quote that passes. The seeds
are read from `HWBOT_SEEDS_DIR` or `shared/seeds` beside the repo and never copied here: without them
these tests skip saying so, as the LINE spec tests do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot.dialog import texts as T
from bot.profiles import OfficeProfile, unsourced_rules
from bot.profiles.models import TermsChange
from bot.settings import REPO_ROOT

SEEDS_DIR = Path(os.environ.get("HWBOT_SEEDS_DIR") or REPO_ROOT.parent / "shared" / "seeds")
SEED_OF = {
    "hamamatsu": "mothers-hw-hamamatsu.txt",
    "izumo": "hw-izumo.txt",
    "noto": "hw-noto.txt",
    "sakata": "hw-sakata.txt",
    "toyooka": "hw-toyooka.txt",
}


def seed(office_id: str) -> str:
    path = SEEDS_DIR / SEED_OF[office_id]
    if not path.is_file():
        pytest.skip(f"the office's document {path} is not there (set HWBOT_SEEDS_DIR to the seeds directory)")
    return path.read_text(encoding="utf-8")


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def before_consent(profile: OfficeProfile) -> list[str]:
    """Every office text the user can read before consenting (the intro, eligibility, terms card)."""
    texts = [profile.name, profile.video_tool, profile.length_text, profile.audience or "", *profile.notes]
    for question in profile.eligibility.questions:
        texts += [question.text, question.ineligible.reason, question.ineligible.instead]
    categories = profile.eligibility.categories
    if categories is not None:
        texts += [categories.text, categories.ineligible.reason, categories.ineligible.instead]
        for item in categories.items:
            texts.append(item.text)
            if item.follow_up:
                texts += [item.follow_up.text, item.follow_up.ineligible.reason, item.follow_up.ineligible.instead]
    texts += [profile.terms.summary, *(rule.text for rule in profile.terms.rules)]
    return texts


def with_rule(profile: OfficeProfile, text: str, quote: str) -> OfficeProfile:
    """The profile with one more rule, quoting `quote`."""
    terms = profile.terms.model_dump()
    terms["rules"].append({"text": text, "source": quote})
    return OfficeProfile.model_validate({**profile.model_dump(), "terms": terms})


def test_every_office_has_its_seed_named_in_its_profile(offices):
    assert sorted(offices) == sorted(SEED_OF)
    for office_id, name in SEED_OF.items():
        assert name in offices[office_id].terms.source, office_id


@pytest.mark.parametrize("office_id", sorted(SEED_OF))
def test_every_rule_quotes_its_office_document(offices, office_id):
    assert unsourced_rules(offices[office_id], seed(office_id)) == []


@pytest.mark.parametrize(
    "office_id, invented, quote",
    [
        # What the audit of 2026-12-01 found: each was shown, and none is in that office's documents.
        ("izumo", "通信の不具合で実施できない場合は、電話での相談に切り替えることがあります。", "電話相談にて対応させていただきます"),
        ("sakata", "通信の不具合で実施できない場合は、電話での相談に切り替えることがあります。", "電話での相談対応となります"),
        ("hamamatsu", "インターネット・SNS等への掲載は禁止です。", "インターネット・SNS等への掲載等はその方法を問わず禁止"),
        ("toyooka", "相談自体は無料です。", "オンライン職業相談の利用料は無料とします。"),
        ("noto", "一度だけのご相談は、窓口またはお電話でも承っています。", "一度だけのご相談は、窓口またはお電話でも承っています"),
    ],
)
def test_an_invented_rule_fails_the_check(offices, office_id, invented, quote):
    """Another office's words (or our own) do not pass as this office's: the check can fail."""
    broken = with_rule(offices[office_id], invented, quote)
    index = len(broken.terms.rules) - 1
    assert unsourced_rules(broken, seed(office_id)) == [
        f"terms.rules.{index}: source {quote!r} is not in the office's document"
    ]


def test_a_quote_too_short_to_identify_a_passage_fails(offices):
    broken = with_rule(offices["noto"], "電話での相談に切り替えます。", "電話相談")
    index = len(broken.terms.rules) - 1
    too_short = f"terms.rules.{index}: source '電話相談' is too short to identify a passage"
    assert unsourced_rules(broken, seed("noto")) == [too_short]


@pytest.mark.parametrize("office_id", sorted(SEED_OF))
def test_the_full_terms_text_holds_only_the_offices_own_words(offices, office_id):
    """Each paragraph of office_profiles/terms/<id>.md (markdown marks aside) is in the office's document."""
    document = squeeze(re.sub(r"[*#]", "", seed(office_id)))
    missing = []
    for line in offices.terms_text(office_id).splitlines():
        words = re.sub(r"[*#]", "", re.sub(r"^\s*(#+|-|・)\s*", "", line))
        if squeeze(words) and squeeze(words) not in document:
            missing.append(line)
    assert missing == []


# A claim in what the user reads before consent -> the words one of the office's documents must contain.
CLAIMS = {
    "SNS": ("SNS",),
    "無料": ("無料",),
    "電話での相談": ("電話相談", "電話での相談"),
    "電話相談": ("電話相談", "電話での相談"),
    "お電話でのご相談": ("電話相談", "電話での相談"),
    "お電話でも承って": ("電話相談", "電話での相談"),
}


@pytest.mark.parametrize("office_id", sorted(SEED_OF))
def test_no_claim_before_consent_that_the_documents_lack(offices, office_id):
    """Summary, eligibility answers and rules: SNS, free, phone consultations only where the seed says so."""
    document = squeeze(seed(office_id))
    for text in before_consent(offices[office_id]):
        for claim, evidence in CLAIMS.items():
            if claim in text:
                assert any(word in document for word in evidence), (office_id, claim, text)


def test_the_generic_texts_before_consent_promise_no_phone_consultation():
    # Toyooka and Sakata publish no number and Izumo none for consultations: the terms decline says counter.
    for text in (T.TERMS_INTRO, T.DECLINED):
        assert "電話" not in text


def test_the_audit_findings_are_gone(offices):
    rules = {oid: "\n".join(rule.text for rule in offices[oid].terms.rules) for oid in SEED_OF}
    assert "電話" not in rules["izumo"] and "電話" not in rules["sakata"]
    assert "電話での相談に切り替え" in rules["noto"] and "電話での相談に切り替え" in rules["hamamatsu"]
    assert "電話での相談に切り替え" in rules["toyooka"]
    assert [oid for oid in sorted(SEED_OF) if "SNS" in rules[oid]] == ["noto"]
    assert [oid for oid in sorted(SEED_OF) if "無料" in rules[oid]] == ["hamamatsu", "izumo", "noto", "sakata"]
    assert all("窓口またはお電話" not in text for text in before_consent(offices["noto"]))


def test_every_office_confirms_the_chats_booking(offices):
    """OFFICES.md "After booking": every office adjusts and confirms the request (Hamamatsu: terms art. 6 (4))."""
    assert {oid: offices[oid].after_booking.confirmed_by_office for oid in SEED_OF} == dict.fromkeys(SEED_OF, True)
    assert "日程調整を行い、実施日時等をご連絡します" in squeeze(seed("hamamatsu"))


def test_terms_change_rules(offices):
    """Only Noto makes a booking wait for a reply to new terms; Izumo (art. 13) and Hamamatsu tell users."""
    changes = {oid: offices[oid].terms.change for oid in SEED_OF}
    assert changes == {
        "hamamatsu": TermsChange.notify,
        "izumo": TermsChange.notify,
        "noto": TermsChange.reply,
        "sakata": TermsChange.implied,
        "toyooka": TermsChange.implied,
    }
    izumo = squeeze(seed("izumo"))
    assert "利用者の承諾なしに、本規約を変更することができる" in izumo
    assert "変更後の本規約の内容並びにその効力" in izumo


def test_izumo_asks_the_phone_number_registered_with_hello_work(offices):
    assert "求職情報として登録した電話番号" in squeeze(seed("izumo"))
    assert "求職情報として登録した電話番号" in (offices["izumo"].identify.phone_question or "")
    assert all(offices[oid].identify.phone_question is None for oid in SEED_OF if oid != "izumo")


def test_notos_email_is_in_its_flyer(offices):
    contact = offices["noto"].contact
    flyer = squeeze(seed("noto"))
    assert contact.email and contact.email in flyer
    assert contact.email_subject and f"件名：{contact.email_subject}" in flyer
    assert [oid for oid in sorted(SEED_OF) if offices[oid].contact.email] == ["noto"]
