"""How long an agency has to answer a referral or a plan's monitoring may wait, and how business hours
and days become moments."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.calendar import BusinessHours


class RoutingDeadlines(BaseModel):
    """The `routing:` section of a directory file: opening hours, referral and monitoring deadlines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    business_hours: BusinessHours = BusinessHours()
    reminder_after_business_hours: float = Field(default=8, gt=0)
    escalate_after_business_hours: float = Field(default=16, gt=0)
    # [LOCAL] How long a 支援プラン's monitoring may stay undone after it fell due (the 主担当 was reminded)
    # before it is overdue and goes to the lead and the meetings' agenda.
    monitoring_overdue_after_business_days: int = Field(default=5, ge=1)


@dataclass(frozen=True)
class Clock:
    """Turns business hours into moments: a real calendar, or (tests, demos) a shortened wall clock."""

    business_hour_s: float = 3600.0
    wall: bool = False

    def after(self, start: datetime, business_hours: float, hours: BusinessHours) -> datetime:
        """The moment `business_hours` after `start`."""
        if self.wall:
            return start + timedelta(seconds=business_hours * self.business_hour_s)
        return hours.add(start, business_hours * self.business_hour_s / 3600.0)

    def after_days(self, start: datetime, business_days: int, hours: BusinessHours) -> datetime:
        """The moment `business_days` open days after `start` (at the same time of day, when it is open)."""
        return self.after(start, business_days * _open_hours_a_day(hours), hours)


def _open_hours_a_day(hours: BusinessHours) -> float:
    # Any date will do: opening hours are wall-clock times, the same on every open day.
    day = date(2000, 1, 3)
    return (datetime.combine(day, hours.closes) - datetime.combine(day, hours.opens)).total_seconds() / 3600.0
