"""The first case-meeting slot and its deadline (the full slot finder comes with the conference issue)."""

from datetime import UTC, datetime

from services.conference.service import JST, add_business_days, deadline_for, first_slot


def test_first_slot_is_the_next_business_day_at_ten_japan_time() -> None:
    friday_evening = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 19:00 JST, Friday
    slot = first_slot(friday_evening)
    assert slot == datetime(2026, 11, 30, 10, 0, tzinfo=JST)  # Monday


def test_deadline_counts_business_days_by_urgency() -> None:
    monday = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert deadline_for(monday, "urgent").date().isoformat() == "2026-12-02"
    assert deadline_for(monday, "routine").date().isoformat() == "2026-12-14"


def test_weekends_are_skipped() -> None:
    assert add_business_days(datetime(2026, 11, 27).date(), 1).isoformat() == "2026-11-30"
