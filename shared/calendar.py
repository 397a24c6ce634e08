"""Business time for deadlines: opening hours, weekends, national holidays and the year-end closure.

Japanese municipal offices close on Saturdays, Sundays, 国民の祝日 and 年末年始 (29 December to
3 January). Opening hours are configuration per municipality [LOCAL].
"""

from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict

JST = ZoneInfo("Asia/Tokyo")


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
