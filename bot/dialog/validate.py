"""Check and normalize what a job seeker types during a booking.

Pure functions: no I/O, no edges. Every validator takes the raw message text and returns either
``Valid(value)`` with the normalized value to store, or ``Invalid(message)`` with a short, polite
message in the user's language (`bot.dialog.texts`, read when the check runs) that can be sent back
to the job seeker as it is. No validator raises on any ``str`` input.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from bot.dialog import formats
from bot.dialog import texts as T

__all__ = [
    "MAX_INPUT",
    "NAME_MAX_LEN",
    "FREE_TEXT_MAX_LEN",
    "Valid",
    "Invalid",
    "Result",
    "normalize_text",
    "job_seeker_number",
    "person_name",
    "email",
    "phone",
    "free_text",
]

MAX_INPUT = 2000  # raw characters; anything longer is rejected by every validator
NAME_MAX_LEN = 40
FREE_TEXT_MAX_LEN = 200


@dataclass(frozen=True, slots=True)
class Valid:
    value: str


@dataclass(frozen=True, slots=True)
class Invalid:
    message: str  # in the user's language, shown to the job seeker as it is


Result = Valid | Invalid


# --- normalization ------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")  # str patterns are Unicode-aware: includes U+3000, NBSP, newlines


def _is_invisible(ch: str) -> bool:
    """Control, format (zero-width, bidi, BOM, soft hyphen) and lone surrogate code points."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs") and not ch.isspace()


def normalize_text(raw: str) -> str:
    """NFKC, drop invisible characters, collapse whitespace runs (incl. U+3000) to one space, strip.

    NFKC turns full-width ASCII into ASCII, half-width katakana into full-width, the ideographic
    space into a normal one. Invisible characters (zero-width spaces, BOMs, bidi controls, stray
    control characters, lone surrogates) are removed: they are never meant and would otherwise
    make an input look valid while it is not, or break storing it as UTF-8.
    """
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if not _is_invisible(ch))
    return _WHITESPACE.sub(" ", text).strip()


def _has_content(text: str) -> bool:
    """At least one letter or digit: not only emoji, stickers' alt symbols or punctuation."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def _join(*sentences: str) -> str:
    """Sentences as one message (in English with a space between them)."""
    return formats.sentences(*sentences)


def _precheck(raw: object, ask: str, *, empty: str | None = None, too_long: str | None = None) -> str | Invalid:
    """Shared first step: the normalized text, or the Invalid for empty/too long/emoji only.

    The length limit is checked on the raw text, before any normalization work is done on it.
    """
    if not isinstance(raw, str):
        return Invalid(empty or ask)
    if len(raw) > MAX_INPUT:
        return Invalid(_join(T.INPUT_TOO_LONG, too_long or ask))
    text = normalize_text(raw)
    if not text:
        return Invalid(empty or ask)
    if not _has_content(text):
        return Invalid(_join(T.INPUT_SYMBOLS_ONLY, ask))
    return text


# --- 求職番号 (job seeker number) -----------------------------------------------------------------

# Every character a phone keyboard or an IME may produce for the hyphen, after NFKC
# (NFKC already maps － U+FF0D and ﹣ U+FE63 to "-", ｰ U+FF70 to ー, ‑ U+2011 to ‐).
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2500\u2501\u30fc\ufe58\ufe63\uff0d\uff70"


def _is_dash(ch: str) -> bool:
    return ch in _DASHES or unicodedata.category(ch) == "Pd"


# After the dashes are unified: 5 digits, then a hyphen and/or spaces, then 1–8 digits (spaces
# between them allowed, e.g. "1234 5678"); or exactly 13 digits with no separator.
_NUMBER_SEPARATED = re.compile(r"([0-9]{5})(?: ?- ?| )([0-9](?: ?[0-9])*)", re.ASCII)
_NUMBER_PLAIN = re.compile(r"[0-9]{13}", re.ASCII)

def job_seeker_number(raw: str) -> Result:
    """The 求職番号, stored as ``NNNNN-NNNNNNNN`` (or ``NNNNN-NNN…`` as printed on older cards)."""
    wrong = Invalid(_join(T.NUMBER_ASK, T.NUMBER_WHERE))
    text = _precheck(raw, T.NUMBER_ASK, empty=wrong.message)
    if isinstance(text, Invalid):
        return text
    text = "".join("-" if _is_dash(ch) else ch for ch in text)
    if _NUMBER_PLAIN.fullmatch(text):
        return Valid(f"{text[:5]}-{text[5:]}")
    match = _NUMBER_SEPARATED.fullmatch(text)
    if match:
        rest = match.group(2).replace(" ", "")
        if 1 <= len(rest) <= 8:
            return Valid(f"{match.group(1)}-{rest}")
    # Includes 12 digits with no separator: 5 + 7 or a mistyped 13 cannot be told apart.
    return wrong


# --- names ----------------------------------------------------------------------------------------

_KANJI_EXTRA = "々〆〇ヶ"  # iteration mark, shime, ideographic zero, small ke (as in 霞ヶ関)
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))  # IVS after kanji


def _char_name(ch: str) -> str:
    return unicodedata.name(ch, "")


def _is_kanji(ch: str) -> bool:
    return ch in _KANJI_EXTRA or _char_name(ch).startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def _is_kana(ch: str) -> bool:
    """Hiragana and katakana letters and iteration marks (ゝゞヽヾ); not ー or ・."""
    return ch != "ー" and ch.isalpha() and _char_name(ch).startswith(("HIRAGANA", "KATAKANA"))


def _is_latin(ch: str) -> bool:
    """Latin letters incl. accented ones (José, Nguyễn, Müller)."""
    return ch.isalpha() and _char_name(ch).startswith("LATIN")


def _is_variation_selector(ch: str) -> bool:
    return any(ord(ch) in block for block in _VARIATION_SELECTORS)


def _name_chars_ok(text: str) -> bool:
    for i, ch in enumerate(text):
        if _is_kanji(ch) or _is_kana(ch) or _is_latin(ch) or ch in " ・ー":
            continue
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if ch in "'’-" and before and after and _is_latin(before) and _is_latin(after):
            continue  # O'Brien, Jean-Luc
        if _is_variation_selector(ch) and before and _is_kanji(before):
            continue  # 葛󠄀 written with an ideographic variation sequence
        return False
    return True


def person_name(raw: str) -> Result:
    """A name in kanji, kana or latin letters, kept as typed (after NFKC and space collapsing)."""
    text = _precheck(raw, T.NAME_ASK)
    if isinstance(text, Invalid):
        return text
    if not _name_chars_ok(text):
        return Invalid(_join(T.NAME_BAD_CHARS, T.NAME_ASK))
    if not any(_is_kanji(ch) or _is_kana(ch) or _is_latin(ch) for ch in text):
        return Invalid(T.NAME_ASK)  # only ー, ・ or spaces
    if len(text) > NAME_MAX_LEN:
        return Invalid(T.NAME_TOO_LONG.format(max=NAME_MAX_LEN))
    return Valid(text)


# --- email ----------------------------------------------------------------------------------------

# RFC 5322 dot-atom (unquoted) local part; quoted local parts and address literals are not accepted.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*", re.ASCII)
# Old docomo / au addresses may have dots at the start or end of the local part or two dots in a
# row (taro..yamada.@docomo.ne.jp). They are real, deliverable addresses, so accept them there.
_LEGACY_CARRIER_DOMAINS = frozenset({"docomo.ne.jp", "ezweb.ne.jp"})
_LOCAL_LEGACY = re.compile(rf"(?:{_ATEXT}|\.)+", re.ASCII)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}", re.ASCII)
# IDNA treats these as dots in a domain; Japanese IMEs produce 。 easily (NFKC maps ．｡ to . and 。).
_IDEOGRAPHIC_STOP = "\u3002"


def email(raw: str) -> Result:
    """An ordinary ASCII address; the domain is lowercased, the local part kept as typed."""
    text = _precheck(raw, T.EMAIL_ASK)
    if isinstance(text, Invalid):
        return text
    text = re.sub(r" ?@ ?", "@", text)  # "taro @ mail.jp" from a phone keyboard's auto-spacing
    if text.count("@") != 1:
        return Invalid(T.EMAIL_WRONG)
    local, domain = text.split("@")
    domain = domain.replace(_IDEOGRAPHIC_STOP, ".").lower()
    if domain.endswith("."):
        domain = domain[:-1]  # fully-qualified form "mail.jp."
    labels = domain.split(".")
    domain_ok = (
        domain.isascii()
        and len(domain) <= 253
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and _TLD.fullmatch(labels[-1]) is not None
    )
    local_pattern = _LOCAL_LEGACY if domain in _LEGACY_CARRIER_DOMAINS else _LOCAL
    local_ok = local.isascii() and len(local) <= 64 and local_pattern.fullmatch(local) is not None
    address = f"{local}@{domain}"
    if not (domain_ok and local_ok) or len(address) > 254:
        return Invalid(T.EMAIL_WRONG)
    return Valid(address)


# --- phone ----------------------------------------------------------------------------------------

# Numbers a job seeker can be called back on. Premium rate (0990), navi dial (0570), pagers/M2M (020)
# and the like are rejected; toll-free (0120, 0800) is accepted.
_PHONE_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.VOIP,
        phonenumbers.PhoneNumberType.TOLL_FREE,
    }
)
_PHONE_NOISE = " ()"  # spaces and 03(1234)5678-style parentheses; dashes are handled by _is_dash
_PHONE_SHAPE = re.compile(r"0[0-9]{8,11}|\+81[0-9]{8,12}", re.ASCII)


def phone(raw: str) -> Result:
    """A Japanese number in the usual hyphenated national format (090-1234-5678, 0768-62-1242)."""
    text = _precheck(raw, T.PHONE_ASK)
    if isinstance(text, Invalid):
        return text
    digits = "".join(ch for ch in text if ch not in _PHONE_NOISE and not _is_dash(ch))
    if not _PHONE_SHAPE.fullmatch(digits):  # also rejects letters, which phonenumbers would read as keypad digits
        return Invalid(T.PHONE_WRONG)
    try:
        number = phonenumbers.parse(digits, "JP")
    except phonenumbers.NumberParseException:
        return Invalid(T.PHONE_WRONG)
    if not phonenumbers.is_valid_number_for_region(number, "JP"):
        return Invalid(T.PHONE_WRONG)
    if phonenumbers.number_type(number) not in _PHONE_TYPES:
        return Invalid(T.PHONE_WRONG)
    return Valid(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))


# --- free text ------------------------------------------------------------------------------------

def free_text(raw: str, max_len: int = FREE_TEXT_MAX_LEN) -> Result:
    """Free text such as "other matters": not empty, not only emoji, at most ``max_len`` characters.

    Line breaks are collapsed to spaces like every other whitespace run.
    """
    text = _precheck(raw, T.FREE_TEXT_ASK, too_long=T.FREE_TEXT_TOO_LONG.format(max=max_len))
    if isinstance(text, Invalid):
        return text
    if len(text) > max_len:
        return Invalid(T.FREE_TEXT_TOO_LONG_NOW.format(max=max_len, count=len(text)))
    return Valid(text)
