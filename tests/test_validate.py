"""bot.dialog.validate: what a job seeker may type, what is stored, what they are told otherwise."""

from __future__ import annotations

import random
import re

import pytest

from bot.dialog.validate import (
    MAX_INPUT,
    Invalid,
    Valid,
    email,
    free_text,
    job_seeker_number,
    normalize_text,
    person_name,
    phone,
)

KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")

# What every Invalid message of a validator must mention, so the job seeker knows what to type.
MENTIONS = {
    job_seeker_number: "12345-12345678",
    person_name: "お名前",
    email: "example@mail.jp",
    phone: "090-1234-5678",
    free_text: "入力してください",
}
VALIDATORS = list(MENTIONS)


def assert_invalid(validator, raw: str) -> str:
    result = validator(raw)
    assert isinstance(result, Invalid), f"{validator.__name__}({raw[:50]!r}) accepted as {result}"
    message = result.message
    assert KANA.search(message), message
    assert message.endswith("。"), message
    assert MENTIONS[validator] in message, message
    assert len(message) <= 100, message  # one or two short sentences for a phone screen
    return message


# --- normalize_text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  山田\u3000\u3000太郎  ", "山田 太郎"),
        ("ﾔﾏﾀﾞ\tﾀﾛｳ\n", "ヤマダ タロウ"),
        ("ＡＢＣ　１２３", "ABC 123"),
        ("a\u200bb\ufeff", "ab"),  # zero-width space and BOM dropped
        ("a \u200b b", "a b"),  # ... before the spaces are collapsed
        ("\u3000\n\t ", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


# --- 求職番号 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345-12345678", "12345-12345678"),
        ("１２３４５－１２３４５６７８", "12345-12345678"),  # full-width digits and hyphen
        ("12345\u221212345678", "12345-12345678"),  # − minus sign
        ("12345\u30fc12345678", "12345-12345678"),  # ー long vowel mark (IME)
        ("12345\uff7012345678", "12345-12345678"),  # ｰ half-width long vowel mark
        ("12345\u201012345678", "12345-12345678"),  # ‐ hyphen
        ("12345\u201112345678", "12345-12345678"),  # non-breaking hyphen
        ("12345\u201312345678", "12345-12345678"),  # – en dash
        ("12345\u201412345678", "12345-12345678"),  # — em dash
        ("12345\u201512345678", "12345-12345678"),  # ― horizontal bar
        ("12345\u250012345678", "12345-12345678"),  # ─ box drawing (IME conversion of ー)
        ("12345\ufe6312345678", "12345-12345678"),  # small hyphen-minus
        ("12345 12345678", "12345-12345678"),  # space as the separator
        ("12345\u300012345678", "12345-12345678"),  # full-width space as the separator
        ("12345 - 12345678", "12345-12345678"),
        ("12345-1234 5678", "12345-12345678"),  # grouped second part
        ("  12345-12345678\n", "12345-12345678"),
        ("1234512345678", "12345-12345678"),  # 13 digits, no separator: 5 + 8
        ("１２３４５１２３４５６７８", "12345-12345678"),
        ("12345-678", "12345-678"),  # older card: shorter second part kept as given
        ("12345-1", "12345-1"),
        ("12345-00001234", "12345-00001234"),  # leading zeros kept
        ("\u200b12345-12345678", "12345-12345678"),
    ],
)
def test_job_seeker_number_accepts(raw, expected):
    assert job_seeker_number(raw) == Valid(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "123451234567",  # 12 digits, no separator: ambiguous
        "12345123456789",  # 14 digits
        "12345678",  # 8 digits only
        "12345-123456789",  # 9 digits after the hyphen
        "1234-12345678",  # 4 digits before it
        "123456-12345678",
        "12345-",
        "-12345678",
        "12345--12345678",
        "12345-1234-5678",
        "12345-1234567a",  # letters
        "abcde-12345678",
        "A12345-12345678",
        "12345/12345678",
        "١٢٣٤٥-١٢٣٤٥٦٧٨",  # non-ASCII decimal digits (\d would match these)
        "求職番号がわかりません",
        "😀",
        "🙇‍♂️🙇‍♂️",
        "",
        "   ",
        "\u3000",
        "1" * (MAX_INPUT + 1),
    ],
)
def test_job_seeker_number_rejects(raw):
    assert_invalid(job_seeker_number, raw)


def test_job_seeker_number_message_says_where_to_find_it():
    message = assert_invalid(job_seeker_number, "12345")
    assert "受付票" in message and "5けた" in message and "8けた" in message


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("山田太郎", "山田太郎"),
        ("山田　太郎", "山田 太郎"),
        ("  山田   太郎 ", "山田 太郎"),
        ("やまだ たろう", "やまだ たろう"),
        ("ヤマダ タロウ", "ヤマダ タロウ"),
        ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ タロウ"),  # half-width katakana becomes full-width
        ("ｼﾞｮｰｼﾞ･ｽﾐｽ", "ジョージ・スミス"),
        ("マイケル・ジョーダン", "マイケル・ジョーダン"),
        ("佐々木 ゆうこ", "佐々木 ゆうこ"),
        ("髙橋", "髙橋"),
        ("𠮷田", "𠮷田"),
        ("Taro Yamada", "Taro Yamada"),
        ("YAMADA  TARO", "YAMADA TARO"),
        ("Ｔａｒｏ　Ｙａｍａｄａ", "Taro Yamada"),  # full-width latin
        ("Maria Santos Silva", "Maria Santos Silva"),
        ("Jean-Luc Picard", "Jean-Luc Picard"),
        ("Siobhan O'Brien", "Siobhan O'Brien"),
        ("Nguyễn Văn An", "Nguyễn Văn An"),
        ("José Müller", "José Müller"),
        ("王", "王"),
        ("a", "a"),
        ("あ" * 40, "あ" * 40),
    ],
)
def test_person_name_accepts(raw, expected):
    assert person_name(raw) == Valid(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "山田太郎1",
        "１２３",
        "https://example.com",
        "www.example.com",
        "taro@example.com",
        "山田太郎😀",
        "😀",
        "🙇‍♂️",
        "山田（太郎）",
        "山田/太郎",
        "-Taro",  # hyphen and apostrophe only inside a latin name
        "Taro-",
        "'Taro",
        "山田-太郎",
        "ーー",  # no letter
        "・",
        "あ" * 41,
        "",
        "\u3000",
        "あ" * (MAX_INPUT + 1),
    ],
)
def test_person_name_rejects(raw):
    assert_invalid(person_name, raw)


def test_person_name_message_says_how_to_write_it():
    message = assert_invalid(person_name, "12345")
    assert "漢字" in message and "かな" in message and "ローマ字" in message


# --- email ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("taro@example.com", "taro@example.com"),
        ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", "taro@example.com"),  # full-width
        ("Taro.Yamada@Mail.JP", "Taro.Yamada@mail.jp"),  # domain lowercased only
        ("  taro+hw@gmail.com ", "taro+hw@gmail.com"),
        ("taro @ gmail.com", "taro@gmail.com"),
        ("taro@gmail。com", "taro@gmail.com"),  # ideographic full stop from the IME
        ("taro_yamada-1@i.softbank.jp", "taro_yamada-1@i.softbank.jp"),
        ("taro..yamada.@docomo.ne.jp", "taro..yamada.@docomo.ne.jp"),  # legacy carrier address
        (".taro@ezweb.ne.jp", ".taro@ezweb.ne.jp"),
        ("hw-noto@mhlw.go.jp", "hw-noto@mhlw.go.jp"),
    ],
)
def test_email_accepts(raw, expected):
    assert email(raw) == Valid(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "taro",
        "taro@",
        "@example.com",
        "taro@example",
        "taro@@example.com",
        "taro@exa mple.com",
        "ta ro@example.com",
        "taro..yamada@gmail.com",  # consecutive dots outside the legacy carriers
        "taro.@gmail.com",
        "taro@-example.com",
        "taro@example..com",
        "taro@example.c",
        "taro@example.123",
        "たろう@example.com",
        "taro@例え.jp",
        "<taro@example.com>",
        "a" * 65 + "@example.com",
        "😀",
        "",
        "a@b.jp" + " " * (MAX_INPUT),
    ],
)
def test_email_rejects(raw):
    assert_invalid(email, raw)


# --- phone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("090-1234-5678", "090-1234-5678"),
        ("09012345678", "090-1234-5678"),
        ("０９０－１２３４－５６７８", "090-1234-5678"),
        ("０９０ー１２３４ー５６７８", "090-1234-5678"),
        ("080 1234 5678", "080-1234-5678"),
        ("070-1234-5678", "070-1234-5678"),
        ("+81 90-1234-5678", "090-1234-5678"),
        ("+819012345678", "090-1234-5678"),
        ("＋８１　９０　１２３４　５６７８", "090-1234-5678"),
        ("+81 (0)90 1234 5678", "090-1234-5678"),
        ("+81 3-1234-5678", "03-1234-5678"),
        ("0312345678", "03-1234-5678"),
        ("03(1234)5678", "03-1234-5678"),
        ("(03) 1234-5678", "03-1234-5678"),
        ("0768621242", "0768-62-1242"),
        ("053-454-1910", "053-454-1910"),
        ("0853218609", "0853-21-8609"),
        ("050-1234-5678", "050-1234-5678"),
        ("0120-123-456", "0120-123-456"),
    ],
)
def test_phone_accepts(raw, expected):
    assert phone(raw) == Valid(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "090-1234-567",  # too short
        "090-1234-56789",
        "9012345678",  # no leading 0
        "81 90 1234 5678",  # country code without +
        "1234-5678",  # no area code
        "0990-123-456",  # premium rate
        "0570-012-345",  # navi dial
        "+1 202 555 0123",  # not Japanese
        "+44 20 7946 0958",
        "0120-ABC-DEF",  # letters (phonenumbers would read them as keypad digits)
        "090-1234-5678 内線12",
        "tel:09012345678",
        "090.1234.5678",
        "+",
        "😀",
        "",
        "0" * (MAX_INPUT + 1),
    ],
)
def test_phone_rejects(raw):
    assert_invalid(phone, raw)


# --- free text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("子どもと一緒に参加します。", "子どもと一緒に参加します。"),
        ("通訳が必要です。\n\nよろしくお願いします😊", "通訳が必要です。 よろしくお願いします😊"),
        ("ｶﾞｲﾀﾞﾝｽ　希望", "ガイダンス 希望"),
        ("あ" * 200, "あ" * 200),
        ("なし", "なし"),
    ],
)
def test_free_text_accepts(raw, expected):
    assert free_text(raw) == Valid(expected)


@pytest.mark.parametrize("raw", ["", " \n\u3000", "😀😀😀", "？！…", "あ" * 201, "あ" * (MAX_INPUT + 1)])
def test_free_text_rejects(raw):
    assert_invalid(free_text, raw)


def test_free_text_max_len_is_a_parameter():
    assert free_text("あいう", max_len=3) == Valid("あいう")
    result = free_text("あいうえ", max_len=3)
    assert isinstance(result, Invalid)
    assert "3文字以内" in result.message and "4文字" in result.message


# --- every validator ------------------------------------------------------------------------------


@pytest.mark.parametrize("validator", VALIDATORS)
@pytest.mark.parametrize("raw", ["", " ", "\u3000\u3000", "\n", "😀", "🙇‍♀️🙏✨", "👍🏻", "❤️", "\u200b"])
def test_empty_and_emoji_only_are_rejected(validator, raw):
    assert_invalid(validator, raw)


@pytest.mark.parametrize("validator", VALIDATORS)
def test_input_longer_than_max_input_is_rejected(validator):
    message = assert_invalid(validator, "a" * (MAX_INPUT + 1))
    assert "長すぎ" in message


def test_max_input_is_inclusive():
    assert free_text("あ" * MAX_INPUT, max_len=MAX_INPUT) == Valid("あ" * MAX_INPUT)


def _random_strings(count: int) -> list[str]:
    rng = random.Random(0)
    pools = [
        "0123456789０１２３４５６７８９-－ー−‐―ｰ–— 　+()（）",
        "abcXYZａｂｃ@＠.．。_'’-",
        "あいうアイウｱｲｳﾞﾟ漢字山田・ー々",
        "😀🙇‍♂️❤️👍🏻🇯🇵\u200d\ufe0f",
        "\u200b\ufeff\u202e\x00\x07\t\n\r\x85\u2028",
        "\ud800\udfff\U0001f600\U00020bb7\U000e0100\ue000",  # lone surrogates, astral, IVS, private use
    ]
    out = []
    for _ in range(count):
        length = rng.choice([0, 1, 2, 5, 9, 10, 11, 12, 13, 14, 20, 45, 250])
        if rng.random() < 0.3:
            alphabet = "".join(pools)
        elif rng.random() < 0.5:
            alphabet = rng.choice(pools)
        else:
            alphabet = None
        if alphabet is None:
            out.append("".join(chr(rng.randrange(0x110000)) for _ in range(length)))
        else:
            out.append("".join(rng.choice(alphabet) for _ in range(length)))
    # Near misses: valid inputs with one character inserted, dropped or replaced, to reach the deeper checks.
    seeds = ["12345-12345678", "1234512345678", "山田 太郎", "Jean-Luc", "taro@mail.jp", "+81 90-1234-5678", "0768-62-1242"]
    noise = "".join(pools)
    for _ in range(count):
        seed = list(rng.choice(seeds))
        i = rng.randrange(len(seed))
        op = rng.randrange(3)
        if op == 0:
            seed.insert(i, rng.choice(noise))
        elif op == 1:
            del seed[i]
        else:
            seed[i] = rng.choice(noise)
        out.append("".join(seed))
    out += ["\ud800", "a" * MAX_INPUT, "1" * MAX_INPUT, "@" * MAX_INPUT, "+" + "9" * 1999]
    return out


def test_no_validator_raises_on_random_input():
    for raw in _random_strings(600):
        for validator in VALIDATORS:
            result = validator(raw)
            assert isinstance(result, Valid | Invalid), (validator.__name__, raw)
            if isinstance(result, Valid):
                assert result.value == result.value.strip() and result.value
                result.value.encode("utf-8")  # storable: no lone surrogates left
            else:
                assert KANA.search(result.message)
        normalize_text(raw)


def test_valid_values_are_fixed_points():
    """Validating a stored value again gives the same value (safe to re-validate an edit)."""
    samples = {
        job_seeker_number: ["１２３４５ー１２３４５６７８", "12345 678"],
        person_name: ["ﾔﾏﾀﾞ　ﾀﾛｳ", "Jean-Luc  Picard"],
        email: ["Taro@Mail.JP", "taro..y.@docomo.ne.jp"],
        phone: ["+81 90 1234 5678", "0768621242"],
        free_text: ["ｶﾞｲﾀﾞﾝｽ　希望\n以上"],
    }
    for validator, raws in samples.items():
        for raw in raws:
            first = validator(raw)
            assert isinstance(first, Valid)
            assert validator(first.value) == first

