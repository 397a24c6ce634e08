"""Japanese fiscal years (年度): April to March, labelled in 和暦."""

from datetime import UTC, datetime

from services.metrics.service import fiscal_year, fiscal_year_label


def test_fiscal_year_turns_in_april_japan_time() -> None:
    assert fiscal_year(datetime(2026, 3, 31, 14, 59, tzinfo=UTC)) == 2025  # 23:59 JST on 31 March
    assert fiscal_year(datetime(2026, 3, 31, 15, 0, tzinfo=UTC)) == 2026  # 00:00 JST on 1 April


def test_labels_in_reiwa() -> None:
    assert fiscal_year_label(2025) == "令和7年度 (FY2025)"
    assert fiscal_year_label(2019) == "令和元年度 (FY2019)"
