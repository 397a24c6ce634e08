"""Business time: opening hours, weekends, national holidays and the year-end closure.

Japanese municipal offices close on Saturdays, Sundays, 国民の祝日 and 年末年始 (29 December to
3 January). Opening hours are configuration per municipality [LOCAL], and per agency as text such as
"mon-fri 08:30-17:15" (`parse_hours`), read the same way by the directory and the slot finder.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict

JST = ZoneInfo("Asia/Tokyo")

Interval = tuple[time, time]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_GROUP = re.compile(r"([a-z,\-\s]+?)\s*(\d.*)")


@cache
def _japanese_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("JP", years=year).keys())


def is_closed_day(day: date) -> bool:
    """Weekend, national holiday or year-end closure (12/29–1/3)."""
    if day.weekday() >= 5 or day in _japanese_holidays(day.year):
        return True
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)


class BusinessHours(BaseModel):
    """When a municipality's agencies answer: opening and closing time on open days (JST)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opens: time = time(8, 30)
    closes: time = time(17, 15)

    def add(self, start: datetime, hours: float) -> datetime:
        """The moment `hours` of business time after `start` (counting only open hours of open days)."""
        remaining = timedelta(hours=hours)
        cursor = start.astimezone(JST)
        while True:
            day = cursor.date()
            opening = datetime.combine(day, self.opens, tzinfo=JST)
            closing = datetime.combine(day, self.closes, tzinfo=JST)
            if is_closed_day(day) or cursor >= closing:
                cursor = datetime.combine(day + timedelta(days=1), self.opens, tzinfo=JST)
                continue
            cursor = max(cursor, opening)
            available = closing - cursor
            if remaining <= available:
                return cursor + remaining
            remaining -= available
            cursor = datetime.combine(day + timedelta(days=1), self.opens, tzinfo=JST)


class HoursFormatError(ValueError):
    """An opening-hours text that `parse_hours` cannot read."""


def _merged(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    ordered = sorted(intervals)
    for start, end in ordered:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"opening interval {start}-{end}: give wall-clock times (JST) without tzinfo")
        if start >= end:
            raise ValueError(f"opening interval {start}-{end}: start must be before end")
    merged: list[Interval] = []
    for start, end in ordered:
        # Touching intervals are one stretch of availability, so a meeting may run across the seam.
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """When an agency can meet: opening intervals (JST wall clock) for each weekday, 0=Monday … 6=Sunday."""

    days: tuple[tuple[Interval, ...], ...] = ((),) * 7

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError(f"weekly hours need 7 weekdays (Monday first), got {len(self.days)}")
        object.__setattr__(self, "days", tuple(_merged(day) for day in self.days))


DEFAULT_HOURS = WeeklyHours(days=(((time(8, 30), time(17, 15)),),) * 5 + ((), ()))


def _parse_days(spec: str, text: str) -> list[int]:
    weekdays: list[int] = []
    for item in re.sub(r"\s+", "", spec).split(","):
        first, _, last = item.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise HoursFormatError(f"opening hours {text!r}: unknown day {item!r} (use {', '.join(DAY_NAMES)})")
        lo, hi = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if hi < lo:
            raise HoursFormatError(f"opening hours {text!r}: day range {item!r} runs backwards")
        weekdays.extend(range(lo, hi + 1))
    return weekdays


def _parse_intervals(spec: str, text: str) -> list[Interval]:
    intervals: list[Interval] = []
    for item in re.sub(r"\s+", "", spec).split(","):
        match = _TIME_RANGE.fullmatch(item)
        if match is None:
            raise HoursFormatError(f"opening hours {text!r}: {item!r} is not a time range like 08:30-17:15")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise HoursFormatError(f"opening hours {text!r}: {item!r} is not a valid time of day")
        start, end = time(h1, m1), time(h2, m2)
        if start >= end:
            raise HoursFormatError(f"opening hours {text!r}: {item!r} ends before it starts")
        intervals.append((start, end))
    return intervals


def parse_hours(text: str | None, default: WeeklyHours) -> WeeklyHours:
    """Weekly hours from text like "mon-fri 08:30-12:00,13:00-17:15; sat 09:00-12:00"; None gives `default`."""
    if text is None:
        return default
    days: list[list[Interval]] = [[] for _ in DAY_NAMES]
    groups = [group.strip() for group in text.lower().split(";")]
    if not any(groups):
        raise HoursFormatError(f"opening hours {text!r}: empty; expected e.g. 'mon-fri 08:30-17:15'")
    for group in groups:
        if not group:
            continue
        match = _GROUP.fullmatch(group)
        if match is None:
            raise HoursFormatError(
                f"opening hours {text!r}: {group!r} needs days then time ranges, e.g. 'mon-fri 08:30-17:15'"
            )
        intervals = _parse_intervals(match[2], text)
        for weekday in _parse_days(match[1], text):
            days[weekday].extend(intervals)
    return WeeklyHours(days=tuple(tuple(day) for day in days))
