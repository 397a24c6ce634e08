"""Japanese fiscal years (年度): April to March, labelled in 和暦 (平成 and 令和)."""

from datetime import UTC, datetime

import pytest

from services.metrics.service import fiscal_year, fiscal_year_label


def test_fiscal_year_turns_in_april_japan_time() -> None:
    assert fiscal_year(datetime(2026, 3, 31, 14, 59, tzinfo=UTC)) == 2025  # 23:59 JST on 31 March
    assert fiscal_year(datetime(2026, 3, 31, 15, 0, tzinfo=UTC)) == 2026  # 00:00 JST on 1 April


def test_labels_in_reiwa() -> None:
    assert fiscal_year_label(2025) == "令和7年度 (FY2025)"
    assert fiscal_year_label(2026) == "令和8年度 (FY2026)"


def test_the_boundary_between_heisei_and_reiwa() -> None:
    """The 年度 that began in April 2019 (still 平成31年) is 令和元年度; the one before is 平成30年度."""
    assert fiscal_year_label(2018) == "平成30年度 (FY2018)"
    assert fiscal_year_label(2019) == "令和元年度 (FY2019)"
    assert fiscal_year_label(2020) == "令和2年度 (FY2020)"


@pytest.mark.parametrize(
    ("year", "label"),
    [
        (2014, "平成26年度 (FY2014)"),
        (2015, "平成27年度 (FY2015)"),
        (2016, "平成28年度 (FY2016)"),
        (2017, "平成29年度 (FY2017)"),
    ],
)
def test_the_reports_own_years_are_heisei_26_to_29(year: int, label: str) -> None:
    """The seed's chapter 5 data are 平成26–29年度 (FY2014–2017)."""
    assert fiscal_year_label(year) == label


def test_the_first_year_of_heisei() -> None:
    assert fiscal_year_label(1989) == "平成元年度 (FY1989)"
