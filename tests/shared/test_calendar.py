"""The business-hours clock of referral deadlines: open hours of open days only, in Japan time."""

from datetime import UTC, datetime, time

import pytest

from shared.calendar import JST, BusinessHours, is_closed_day

OFFICE = BusinessHours()  # 08:30-17:15, 8 h 45 min a day


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        ("2025-06-11T10:00", 2, "2025-06-11T12:00"),  # within one Wednesday
        ("2025-06-11T07:00", 1, "2025-06-11T09:30"),  # before opening: counted from 08:30
        ("2025-06-11T17:15", 0.5, "2025-06-12T09:00"),  # at closing: the next morning
        ("2025-06-11T20:00", 0.5, "2025-06-12T09:00"),  # after closing
        ("2025-06-09T08:30", 8.75, "2025-06-09T17:15"),  # a full day ends at closing, not the next morning
        ("2025-06-09T08:30", 16, "2025-06-10T15:45"),  # 8 h 45 min, then 7 h 15 min
        ("2025-06-13T16:15", 2, "2025-06-16T09:30"),  # Friday: 1 h, then Monday after the weekend
        ("2025-06-14T12:00", 1, "2025-06-16T09:30"),  # starting on a Saturday
        ("2025-10-31T16:15", 2, "2025-11-04T09:30"),  # Monday 3 November is 文化の日
        ("2025-09-12T16:15", 2, "2025-09-16T09:30"),  # Monday 15 September is 敬老の日
        ("2025-12-26T16:15", 2, "2026-01-05T09:30"),  # 年末年始: 29 Dec to 3 Jan, then a weekend
        ("2026-12-28T17:00", 1, "2027-01-04T09:15"),  # 29-31 Dec are weekdays but closed
    ],
)
def test_business_hours_skip_closed_time(start: str, hours: float, due: str) -> None:
    assert OFFICE.add(jst(start), hours) == jst(due)


def test_the_deadline_is_in_japan_time_whatever_the_zone_of_the_start() -> None:
    friday_evening_jst = datetime(2025, 6, 13, 7, 15, tzinfo=UTC)  # 16:15 JST
    due = OFFICE.add(friday_evening_jst, 2)
    assert due == jst("2025-06-16T09:30")
    assert due.utcoffset() == JST.utcoffset(due)


def test_a_municipality_with_other_opening_hours() -> None:
    hours = BusinessHours(opens=time(9, 0), closes=time(17, 0))
    assert hours.add(jst("2025-06-13T16:00"), 2) == jst("2025-06-16T10:00")


@pytest.mark.parametrize(
    ("day", "closed"),
    [
        ("2025-06-11", False),
        ("2025-06-14", True),  # Saturday
        ("2025-06-15", True),  # Sunday
        ("2025-11-03", True),  # 文化の日
        ("2025-12-26", False),
        ("2025-12-29", True),  # a Monday, closed for 年末年始
        ("2026-01-02", True),  # a Friday, closed for 年末年始
        ("2026-01-05", False),
    ],
)
def test_closed_days(day: str, closed: bool) -> None:
    assert is_closed_day(datetime.fromisoformat(day).date()) is closed
