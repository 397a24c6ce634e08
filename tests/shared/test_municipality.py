"""全国地方公共団体コード check digits."""

import pytest

from shared.municipality import is_valid_code


@pytest.mark.parametrize("code", ["242080", "131016", "011002", "012025", "240001", "472018"])
def test_real_codes_are_valid(code: str) -> None:
    assert is_valid_code(code)


@pytest.mark.parametrize("code", ["242081", "131017", "24208", "2420800", "24208a", ""])
def test_wrong_check_digit_or_shape_is_invalid(code: str) -> None:
    assert not is_valid_code(code)
