"""Personal information in intake: field encryption, normalisation, blind index, validation, age bands."""

import hashlib
import hmac
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.privacy import (
    BlindIndex,
    FieldCipher,
    PersonalDataError,
    PersonalDetails,
    age_band,
    decrypt_details,
    encrypt_details,
    generate_key,
    normalize_address,
    normalize_birth_date,
    normalize_kana,
    normalize_name,
    normalize_phone,
)

OLD_KEY = generate_key()
NEW_KEY = generate_key()
INDEX_KEY = generate_key()

HANAKO = PersonalDetails(
    name="山田 花子",
    kana="やまだ はなこ",
    birth_date=date(1950, 4, 1),
    address="〒518-0000 三重県名張市桔梗が丘1丁目2番3号",
    phone="0595-63-1234",
)


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher([OLD_KEY])


@pytest.fixture
def index() -> BlindIndex:
    return BlindIndex(INDEX_KEY)


def test_a_value_comes_back_after_encryption(cipher: FieldCipher) -> None:
    assert cipher.decrypt(cipher.encrypt("山田 花子")) == "山田 花子"


@given(st.text())
def test_any_text_comes_back_after_encryption(value: str) -> None:
    cipher = FieldCipher([OLD_KEY])
    assert cipher.decrypt(cipher.encrypt(value)) == value


def test_ciphertext_hides_the_value_and_differs_each_time(cipher: FieldCipher) -> None:
    first, second = cipher.encrypt("yamada"), cipher.encrypt("yamada")
    assert "yamada" not in first
    assert first != second


def test_old_tokens_still_open_after_a_new_primary_key_is_added(cipher: FieldCipher) -> None:
    token = cipher.encrypt("三重県名張市")
    rotated_keys = FieldCipher([NEW_KEY, OLD_KEY])
    assert rotated_keys.decrypt(token) == "三重県名張市"
    assert rotated_keys.needs_rotation(token)


def test_a_rotated_token_opens_with_the_new_key_alone(cipher: FieldCipher) -> None:
    token = cipher.encrypt("三重県名張市")
    rotated_keys = FieldCipher([NEW_KEY, OLD_KEY])
    rotated = rotated_keys.rotate(token)
    assert FieldCipher([NEW_KEY]).decrypt(rotated) == "三重県名張市"
    assert not rotated_keys.needs_rotation(rotated)
    with pytest.raises(PersonalDataError):
        cipher.decrypt(rotated)


def test_new_values_are_encrypted_under_the_first_key() -> None:
    token = FieldCipher([NEW_KEY, OLD_KEY]).encrypt("value")
    assert FieldCipher([NEW_KEY]).decrypt(token) == "value"
    with pytest.raises(PersonalDataError):
        FieldCipher([OLD_KEY]).decrypt(token)


def test_a_token_under_an_unknown_key_is_refused(cipher: FieldCipher) -> None:
    token = FieldCipher([NEW_KEY]).encrypt("value")
    with pytest.raises(PersonalDataError, match="cannot be opened"):
        cipher.decrypt(token)
    with pytest.raises(PersonalDataError):
        cipher.rotate(token)
    with pytest.raises(PersonalDataError):
        cipher.needs_rotation(token)


@pytest.mark.parametrize("mangle", [lambda t: t[:-4] + "AAAA", lambda t: "", lambda t: "山田", lambda t: t[:20]])
def test_altered_or_garbage_tokens_are_refused(cipher: FieldCipher, mangle: Callable[[str], str]) -> None:
    with pytest.raises(PersonalDataError):
        cipher.decrypt(mangle(cipher.encrypt("value")))


def test_a_cipher_needs_keys() -> None:
    with pytest.raises(PersonalDataError):
        FieldCipher([])
    with pytest.raises(PersonalDataError, match="list of keys"):
        FieldCipher(OLD_KEY)


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(PersonalDataError) as raised:
        FieldCipher(["not-a-real-key-but-a-secret"])
    assert "not-a-real-key-but-a-secret" not in str(raised.value)


def test_generated_keys_are_distinct_and_usable() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    assert FieldCipher([first]).decrypt(FieldCipher([first]).encrypt("x")) == "x"


@pytest.mark.parametrize("spelling", ["山田 太郎", "山田　太郎", " 山田太郎 ", "山田\u200b太郎"])
def test_names_match_however_they_are_spaced(spelling: str) -> None:
    assert normalize_name(spelling) == "山田太郎"


def test_latin_names_match_across_width_and_case() -> None:
    assert normalize_name("ＳＭＩＴＨ　John") == normalize_name("smith john") == "smithjohn"


@pytest.mark.parametrize("spelling", ["やまだ たろう", "ヤマダ　タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ", "やまだたろう"])
def test_kana_match_across_hiragana_katakana_width_and_spaces(spelling: str) -> None:
    assert normalize_kana(spelling) == "ヤマダタロウ"


def test_kana_ignore_the_middle_dot_but_keep_the_long_vowel() -> None:
    assert normalize_kana("ジョン・スミス") == normalize_kana("ジョン　スミス") == normalize_kana("ｼﾞｮﾝ･ｽﾐｽ")
    assert normalize_kana("ゆうこ") != normalize_kana("ユーコ")
    assert normalize_kana("ﾕｰｺ") == "ユーコ"


@pytest.mark.parametrize(
    "spelling",
    ["名張市桔梗が丘1丁目2番3号", "名張市桔梗が丘1-2-3", "名張市桔梗が丘１－２－３", "名張市 桔梗ヶ丘 一丁目二番三号"],
)
def test_house_numbers_match_in_every_common_spelling(spelling: str) -> None:
    assert normalize_address(spelling) == normalize_address("名張市桔梗が丘1-2-3")


@pytest.mark.parametrize(
    ("spelling", "plain"),
    [
        ("三丁目五番地十二", "3-5-12"),
        ("二十三番地の五", "23-5"),
        ("1ー2ー3", "1-2-3"),
        ("1‐2—3", "1-2-3"),
        ("1-2-3 コーポ山田201号室", "1-2-3コーポ山田201"),
    ],
)
def test_house_number_variants(spelling: str, plain: str) -> None:
    assert normalize_address(spelling) == normalize_address(plain)


def test_a_leading_postal_code_is_dropped() -> None:
    expected = normalize_address("三重県名張市桔梗が丘1-2-3")
    assert normalize_address("〒518-0000 三重県名張市桔梗が丘1-2-3") == expected
    assert normalize_address("〒５１８－００００　三重県名張市桔梗が丘1-2-3") == expected
    assert normalize_address("518-0000 三重県名張市桔梗が丘1-2-3") == expected


def test_place_names_keep_their_numerals_and_long_vowels() -> None:
    assert normalize_address("四日市市八王子町1-2") == "四日市市八王子町1-2"
    assert normalize_address("コーポ1") == "コーポ1"
    assert normalize_address("名張市1-2-3") != normalize_address("名張市1-2-4")


def test_phone_numbers_keep_only_their_digits() -> None:
    assert normalize_phone("(0595) 63-1234") == normalize_phone("０５９５－６３－１２３４") == "0595631234"


def test_birth_dates_are_iso() -> None:
    assert normalize_birth_date(date(1950, 4, 1)) == "1950-04-01"


def test_the_blind_index_ignores_spelling_differences(index: BlindIndex) -> None:
    respelt = PersonalDetails(
        name="山田　花子",
        kana="ﾔﾏﾀﾞ ﾊﾅｺ",
        birth_date=date(1950, 4, 1),
        address="三重県名張市桔梗ヶ丘１－２－３",
    )
    assert index.household_match_keys(respelt) == index.household_match_keys(HANAKO)
    assert len(set(index.household_match_keys(HANAKO))) == 4


def test_the_blind_index_depends_on_its_key(index: BlindIndex) -> None:
    other = BlindIndex(generate_key())
    assert index.digest("ヤマダハナコ", "1950-04-01") != other.digest("ヤマダハナコ", "1950-04-01")
    assert set(index.household_match_keys(HANAKO)).isdisjoint(other.household_match_keys(HANAKO))


def test_the_blind_index_is_hmac_sha256_over_length_prefixed_parts(index: BlindIndex) -> None:
    # Pinned: changing the construction would silently orphan every stored index value.
    message = b"\x00\x00\x00\x02ab\x00\x00\x00\x03\xe3\x81\x82"
    expected = hmac.new(INDEX_KEY.encode(), message, hashlib.sha256).hexdigest()
    assert index.digest("ab", "あ") == expected


def test_moving_characters_between_parts_changes_the_digest(index: BlindIndex) -> None:
    assert index.digest("ab", "c") != index.digest("a", "bc")
    assert index.digest("abc") != index.digest("ab", "c")


def test_a_short_index_key_is_refused() -> None:
    with pytest.raises(PersonalDataError):
        BlindIndex("too short")


def test_a_partial_submission_is_recognised_by_what_it_shares(index: BlindIndex) -> None:
    known = set(index.household_match_keys(HANAKO))
    kana_and_birth = index.household_match_keys(PersonalDetails(kana="ヤマダ ハナコ", birth_date=date(1950, 4, 1)))
    name_and_address = index.household_match_keys(
        PersonalDetails(name="山田花子", address="三重県名張市桔梗ケ丘一丁目二番三号")
    )
    assert len(kana_and_birth) == 1
    assert known.issuperset(kana_and_birth)
    assert len(name_and_address) == 1
    assert known.issuperset(name_and_address)


def test_a_name_and_a_kana_reading_never_share_a_match_key(index: BlindIndex) -> None:
    # Each digest stands for one combination, so a match says which fields agreed.
    by_name = PersonalDetails(name="ヤマダハナコ", birth_date=date(1950, 4, 1))
    by_kana = PersonalDetails(kana="ヤマダハナコ", birth_date=date(1950, 4, 1))
    assert set(index.household_match_keys(by_name)).isdisjoint(index.household_match_keys(by_kana))


def test_someone_else_shares_no_match_key(index: BlindIndex) -> None:
    other = PersonalDetails(name="山田 花子", kana="やまだ はなこ", birth_date=date(1962, 8, 15), address="津市1-1")
    assert set(index.household_match_keys(HANAKO)).isdisjoint(index.household_match_keys(other))


@pytest.mark.parametrize(
    "details",
    [
        PersonalDetails(),
        PersonalDetails(name="山田花子", kana="ヤマダハナコ"),
        PersonalDetails(birth_date=date(1950, 4, 1), address="名張市1-2-3", phone="0595631234"),
        PersonalDetails(name="山田花子", address="〒518-0000"),
    ],
)
def test_combinations_with_a_missing_part_are_skipped(index: BlindIndex, details: PersonalDetails) -> None:
    assert index.household_match_keys(details) == []


@pytest.mark.parametrize("kana", ["山田", "yamada", "ヤマダ1", "・ ・"])
def test_kana_must_be_kana(kana: str) -> None:
    with pytest.raises(ValidationError, match="フリガナ"):
        PersonalDetails(kana=kana)


def test_kana_accepts_hiragana_katakana_half_width_and_separators() -> None:
    for kana in ["やまだ はなこ", "ヤマダ　ハナコ", "ﾔﾏﾀﾞ ﾊﾅｺ", "ジョン・スミス", "ユーコ"]:
        assert PersonalDetails(kana=kana).kana == kana


@pytest.mark.parametrize("birth_date", [date.today() + timedelta(days=2), date(1899, 12, 31)])
def test_birth_dates_must_be_plausible(birth_date: date) -> None:
    with pytest.raises(ValidationError, match="生年月日"):
        PersonalDetails(birth_date=birth_date)


def test_a_birth_date_of_1900_is_accepted() -> None:
    assert PersonalDetails(birth_date=date(1900, 1, 1)).birth_date == date(1900, 1, 1)


@pytest.mark.parametrize("phone", ["0595-63-123", "090-1234-56789", "090-1234-abcd", "+81 90 1234 5678"])
def test_phone_numbers_must_have_10_or_11_digits(phone: str) -> None:
    with pytest.raises(ValidationError, match="電話番号"):
        PersonalDetails(phone=phone)


@pytest.mark.parametrize("phone", ["0595-63-1234", "(0595) 63-1234", "０９０－１２３４－５６７８", "09012345678"])
def test_usual_phone_spellings_are_accepted(phone: str) -> None:
    assert PersonalDetails(phone=phone).phone == phone


def test_unknown_fields_and_overlong_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        PersonalDetails.model_validate({"my_number": "123456789012"})
    with pytest.raises(ValidationError):
        PersonalDetails(name="山" * 101)
    with pytest.raises(ValidationError):
        PersonalDetails(address="名" * 201)


def test_personal_data_stays_out_of_reprs_and_error_messages() -> None:
    assert "花子" not in repr(HANAKO)
    with pytest.raises(ValidationError) as raised:
        PersonalDetails(kana="山田花子")
    assert "花子" not in str(raised.value)


def test_details_are_stored_field_by_field_and_come_back(cipher: FieldCipher) -> None:
    stored = encrypt_details(HANAKO, cipher)
    assert set(stored) == {"name", "kana", "birth_date", "address", "phone"}
    assert cipher.decrypt(stored["birth_date"]) == "1950-04-01"
    assert all("花子" not in token and "1950" not in token for token in stored.values())
    assert decrypt_details(stored, cipher) == HANAKO


def test_absent_fields_are_not_stored(cipher: FieldCipher) -> None:
    stored = encrypt_details(PersonalDetails(kana="やまだ"), cipher)
    assert list(stored) == ["kana"]
    assert decrypt_details(stored, cipher) == PersonalDetails(kana="やまだ")


def test_stored_details_need_the_right_key_and_known_fields(cipher: FieldCipher) -> None:
    stored = encrypt_details(HANAKO, cipher)
    with pytest.raises(PersonalDataError):
        decrypt_details(stored, FieldCipher([NEW_KEY]))
    with pytest.raises(PersonalDataError, match="unknown fields: nickname"):
        decrypt_details({**stored, "nickname": cipher.encrypt("はな")}, cipher)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-5"),
        (5, "0-5"),
        (6, "6-12"),
        (12, "6-12"),
        (13, "13-17"),
        (17, "13-17"),
        (18, "18-39"),
        (39, "18-39"),
        (40, "40-64"),
        (64, "40-64"),
        (65, "65-74"),
        (74, "65-74"),
        (75, "75+"),
        (110, "75+"),
        (None, None),
    ],
)
def test_age_bands(age: int | None, band: str | None) -> None:
    assert age_band(age) == band


def test_a_negative_age_is_an_error() -> None:
    with pytest.raises(ValueError):
        age_band(-1)
