"""Personal information (個人情報) of household members: field encryption, matching and age bands.

Names, kana, birth dates, addresses and phone numbers live only in the intake service, each field
encrypted on its own, and never go to Kafka (DOMAIN.md §9, P1: 適切な管理を行い、他に漏れることのない
ように). Events carry an age band instead of an exact age. A repeat submission about a known household
is recognised through a keyed blind index, so matching never needs to decrypt stored records.
"""

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.calendar import JST


class PersonalDataError(Exception):
    """Personal data cannot be encrypted, decrypted or indexed as asked."""


_UNREADABLE = "encrypted personal data cannot be opened with any configured key (wrong key, or the data was altered)"


def generate_key() -> str:
    """A fresh random key, usable by `FieldCipher` and (as a separate key) by `BlindIndex`."""
    return Fernet.generate_key().decode("ascii")


class FieldCipher:
    """Authenticated encryption of single fields (Fernet), with key rotation.

    The first key encrypts; every key decrypts, so a new key can be put first while data written
    under older keys is re-encrypted with `rotate` in the background. Drop an old key only after
    `needs_rotation` is false for every stored token.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        # A bare string is a Sequence[str] too; iterating it would make one "key" per character.
        if isinstance(keys, str) or not keys:
            raise PersonalDataError("FieldCipher needs a non-empty list of keys; the first one encrypts")
        try:
            fernets = [Fernet(key) for key in keys]
        except (ValueError, TypeError) as error:
            # The message must not echo the key: error texts end up in logs.
            raise PersonalDataError(
                "an encryption key is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from error
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)

    def encrypt(self, value: str) -> str:
        """`value` encrypted under the first key."""
        return self._all.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of `token`, opened with whichever key sealed it."""
        return self._open(self._all, token).decode("utf-8")

    def rotate(self, token: str) -> str:
        """`token` re-encrypted under the first key (its original timestamp is kept)."""
        try:
            return self._all.rotate(token.encode("utf-8")).decode("ascii")
        except InvalidToken:
            raise PersonalDataError(_UNREADABLE) from None

    def needs_rotation(self, token: str) -> bool:
        """Whether `token` was sealed with a key other than the first one."""
        try:
            self._primary.decrypt(token.encode("utf-8"))
        except InvalidToken:
            # Make sure it is readable at all: a token no key opens cannot be rotated either.
            self._open(self._all, token)
            return True
        return False

    @staticmethod
    def _open(fernet: Fernet | MultiFernet, token: str) -> bytes:
        # Encoding first: Fernet raises a bare ValueError, not InvalidToken, on non-ASCII text.
        try:
            return fernet.decrypt(token.encode("utf-8"))
        except InvalidToken:
            raise PersonalDataError(_UNREADABLE) from None


# Whitespace (including the ideographic space U+3000) and invisible format characters such as
# zero-width spaces, which copy-paste from web forms and spreadsheets brings along.
_BLANKS = re.compile(r"[\s\u200b-\u200f\u2060\ufeff]+")


def _compact(value: str) -> str:
    return _BLANKS.sub("", unicodedata.normalize("NFKC", value))


def normalize_name(value: str) -> str:
    """A name (氏名) reduced for matching: NFKC, no whitespace at all, case-folded.

    NFKC turns full-width Latin letters and digits into ASCII and half-width katakana into
    full-width; spaces between family and given name are written inconsistently, so they are
    dropped; case-folding makes 'YAMADA' equal 'Yamada'. Variant kanji (髙/高, 﨑/崎) are not
    unified, which is one reason matching also uses the kana.
    """
    return _compact(value).casefold()


_MIDDLE_DOTS = re.compile("[・·]")
_HIRAGANA = re.compile("[\u3041-\u3096\u309d\u309e]")
# Hiragana and katakana blocks are laid out in parallel, 0x60 code points apart.
_HIRAGANA_TO_KATAKANA = 0x60


def normalize_kana(value: str) -> str:
    """A kana reading (フリガナ) reduced for matching: NFKC, no whitespace or middle dots, katakana.

    NFKC turns half-width katakana (ﾔﾏﾀﾞ) into full-width (ヤマダ), joining the separate voicing
    marks. Hiragana become katakana, because forms print the フリガナ field in katakana and
    half-width input is always katakana. Spaces and the middle dot ・ (used between foreign given
    and family names) are dropped as mere separators. Small kana (ャ, ッ) stay small.
    """
    compact = _MIDDLE_DOTS.sub("", _compact(value))
    return _HIRAGANA.sub(lambda m: chr(ord(m.group()) + _HIRAGANA_TO_KATAKANA), compact)


# Hyphen-like characters people type in house numbers; NFKC already turns － and ﹣ into '-'.
_HYPHENS = re.compile("[‐‑‒–—―−⁃﹣－]")
_LONG_VOWEL_BETWEEN_DIGITS = re.compile("(?<=[0-9])[ーｰ](?=[0-9])")
_POSTAL_CODE = re.compile("^〒?[0-9]{3}-?[0-9]{4}|^〒")
_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
# A run of kanji numerals is a house number only next to a house-number marker or a hyphen;
# elsewhere it is part of a place name (四日市, 八王子, 九十九里) and must stay as written.
_KANJI_HOUSE_NUMBER = re.compile(
    "(?:(?<=丁目)|(?<=番地)|(?<=番地の)|(?<=番)|(?<=番の)|(?<=号)|(?<=-))"
    "([〇零一二三四五六七八九十百千]+)"
    "|([〇零一二三四五六七八九十百千]+)(?=丁目|番地|番|号|-)"
)
# 号室 is a room number: '201号室' and '201' are the same flat.
_ROOM_MARKER = re.compile("(?<=[0-9])号室")
_HOUSE_NUMBER_MARKERS = re.compile("(?<=[0-9])(?:丁目|番地の?|番の?|号)|(?<=[0-9])の(?=[0-9])")
_REPEATED_HYPHENS = re.compile("-{2,}")
_DANGLING_HYPHEN = re.compile("(?<=[0-9])-(?![0-9])")
# 桔梗が丘, 桔梗ヶ丘 and 桔梗ケ丘 name the same place; official spellings differ by municipality.
_KE_BETWEEN_KANJI = re.compile("(?<=[\u4e00-\u9fff])[がヶヵケ](?=[\u4e00-\u9fff])")


def _kanji_number(run: str) -> str:
    if not any(unit in run for unit in _KANJI_UNITS):
        # Positional form, as in 一〇二.
        return "".join(str(_KANJI_DIGITS[digit]) for digit in run)
    total, digit = 0, 0
    for char in run:
        if char in _KANJI_UNITS:
            # A bare unit counts once: 十二 is 12, not 2.
            total += (digit or 1) * _KANJI_UNITS[char]
            digit = 0
        else:
            digit = _KANJI_DIGITS[char]
    return str(total + digit)


def normalize_address(value: str) -> str:
    """An address (住所) reduced for matching; '1丁目2番3号', '1-2-3' and '１－２－３' come out equal.

    Rules, in order: NFKC (full-width digits and hyphens to ASCII); no whitespace; hyphen-like
    dashes to '-'; kanji numerals next to 丁目/番地/番/号 or a hyphen to digits (三丁目五番地十二 →
    3-5-12); the long-vowel mark ー between digits to '-' (a typing slip, but コーポ keeps its ー);
    a leading postal mark and code (〒518-0000) dropped; 号室 after a number dropped; 丁目, 番地, 番,
    号 and 'の' between numbers to '-', repeated hyphens collapsed and a hyphen ending a number
    dropped; が/ヶ/ヵ/ケ between kanji to ヶ; Latin letters case-folded. Prefecture omission, 大字/字
    and old town names are not reconciled.
    """
    text = _HYPHENS.sub("-", _compact(value))
    text = _KANJI_HOUSE_NUMBER.sub(lambda m: _kanji_number(m.group(1) or m.group(2)), text)
    text = _LONG_VOWEL_BETWEEN_DIGITS.sub("-", text)
    text = _POSTAL_CODE.sub("", text)
    text = _ROOM_MARKER.sub("", text)
    text = _HOUSE_NUMBER_MARKERS.sub("-", text)
    text = _REPEATED_HYPHENS.sub("-", text)
    text = _DANGLING_HYPHEN.sub("", text)
    text = _KE_BETWEEN_KANJI.sub("ヶ", text)
    return text.casefold()


_NOT_DIGITS = re.compile("[^0-9]")


def normalize_phone(value: str) -> str:
    """A phone number (電話番号) as its digits only, full-width digits included."""
    return _NOT_DIGITS.sub("", unicodedata.normalize("NFKC", value))


def normalize_birth_date(value: date) -> str:
    """A birth date (生年月日) as ISO 8601, e.g. '1950-04-01'."""
    # A datetime is a date too; its time of day must not change the index.
    return date(value.year, value.month, value.day).isoformat()


_EARLIEST_BIRTH_DATE = date(1900, 1, 1)
_KANA_CHARACTERS = re.compile("[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fb\u30fc\u30fd\u30fe·\\s]+")
_PHONE_CHARACTERS = re.compile("[0-9()\\-‐‑‒–—―−ー\\s]+")


class PersonalDetails(BaseModel):
    """A household member's personal information (個人情報), every field optional."""

    # Personal data must not leak into logs through reprs or validation error messages.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True)

    name: str | None = Field(default=None, min_length=1, max_length=100, repr=False, description="Full name (氏名).")
    kana: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        repr=False,
        description="Reading of the name in hiragana or katakana (フリガナ).",
    )
    birth_date: date | None = Field(default=None, repr=False, description="Date of birth (生年月日).")
    address: str | None = Field(default=None, min_length=1, max_length=200, repr=False, description="Address (住所).")
    phone: str | None = Field(
        default=None, max_length=30, repr=False, description="Phone number (電話番号), 10 or 11 digits."
    )

    @field_validator("kana")
    @classmethod
    def _kana_only(cls, value: str | None) -> str | None:
        if value is not None and (
            not _KANA_CHARACTERS.fullmatch(unicodedata.normalize("NFKC", value)) or not normalize_kana(value)
        ):
            raise ValueError("kana (フリガナ) may contain only hiragana, katakana, ー, spaces and the middle dot ・")
        return value

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: date | None) -> date | None:
        if value is not None and value > datetime.now(JST).date():
            raise ValueError("birth date (生年月日) cannot be in the future")
        if value is not None and value < _EARLIEST_BIRTH_DATE:
            raise ValueError("birth date (生年月日) cannot be before 1900-01-01")
        return value

    @field_validator("phone")
    @classmethod
    def _phone_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _PHONE_CHARACTERS.fullmatch(unicodedata.normalize("NFKC", value)):
            raise ValueError("phone number (電話番号) may contain only digits, hyphens, parentheses and spaces")
        if not 10 <= len(normalize_phone(value)) <= 11:
            raise ValueError("phone number (電話番号) must have 10 or 11 digits")
        return value


def encrypt_details(details: PersonalDetails, cipher: FieldCipher) -> dict[str, str]:
    """The fields of `details` that are present, each encrypted on its own (birth date as ISO)."""
    plain = details.model_dump(mode="json", exclude_none=True)
    return {field: cipher.encrypt(str(value)) for field, value in plain.items()}


def decrypt_details(stored: Mapping[str, str], cipher: FieldCipher) -> PersonalDetails:
    """The personal details stored as `stored` by `encrypt_details`."""
    unknown = sorted(set(stored) - set(PersonalDetails.model_fields))
    if unknown:
        raise PersonalDataError(f"stored personal data has unknown fields: {', '.join(unknown)}")
    try:
        return PersonalDetails.model_validate({field: cipher.decrypt(token) for field, token in stored.items()})
    except ValidationError as error:
        raise PersonalDataError("stored personal data no longer passes validation") from error


_MIN_INDEX_KEY_BYTES = 32


class BlindIndex:
    """Keyed hashes (HMAC-SHA256) of normalised personal data, to find a household without decrypting.

    The index key must differ from every encryption key: whoever holds only the index key can test
    guesses, but must not be able to read the data. Rotating the index key changes every digest, so
    all stored records must be decrypted and indexed again under the new key.
    """

    def __init__(self, key: str) -> None:
        encoded = key.encode("utf-8")
        if len(encoded) < _MIN_INDEX_KEY_BYTES:
            # Short keys make guessing names and birth dates offline cheap.
            raise PersonalDataError("the blind-index key must be at least 32 bytes; use generate_key()")
        self._key = encoded

    def digest(self, *parts: str) -> str:
        """Hex HMAC-SHA256 of `parts`, each prefixed by its UTF-8 length so ('ab', 'c') ≠ ('a', 'bc')."""
        message = b"".join(len(raw).to_bytes(4, "big") + raw for raw in (part.encode("utf-8") for part in parts))
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def household_match_keys(self, member: PersonalDetails) -> list[str]:
        """The digests by which a later submission about `member` is recognised.

        One per combination of name or kana with birth date or address; a combination is skipped
        when one of its parts is missing or normalises to nothing. Each digest starts with the name
        of its combination, so a name never matches an address or a kana reading by accident.
        """
        identities = {
            "name": normalize_name(member.name) if member.name else "",
            "kana": normalize_kana(member.kana) if member.kana else "",
        }
        whereabouts = {
            "birth_date": normalize_birth_date(member.birth_date) if member.birth_date else "",
            "address": normalize_address(member.address) if member.address else "",
        }
        return [
            self.digest(f"{who}+{where}", identity, place)
            for who, identity in identities.items()
            for where, place in whereabouts.items()
            if identity and place
        ]


@dataclass(frozen=True)
class Vault:
    """What protects personal details: the field cipher and the blind index."""

    cipher: FieldCipher
    index: BlindIndex


# Upper bound (inclusive) and label of each band; events carry these instead of exact ages.
_AGE_BANDS = (
    (5, "0-5"),  # pre-school (未就学)
    (12, "6-12"),  # school age (小学生)
    (17, "13-17"),  # secondary (中学・高校)
    (39, "18-39"),  # young adult
    (64, "40-64"),  # working age
    (74, "65-74"),  # 前期高齢者
)


def age_band(age: int | None) -> str | None:
    """The band an age falls in: 0-5, 6-12, 13-17, 18-39, 40-64, 65-74 (前期高齢者) or 75+ (後期高齢者)."""
    if age is None:
        return None
    if age < 0:
        raise ValueError("age cannot be negative")
    for upper, label in _AGE_BANDS:
        if age <= upper:
            return label
    return "75+"
