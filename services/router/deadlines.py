"""How long an agency has to answer a referral, and how business hours become moments."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.calendar import BusinessHours


class RoutingDeadlines(BaseModel):
    """The `routing:` section of a directory file: opening hours and referral deadlines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    business_hours: BusinessHours = BusinessHours()
    reminder_after_business_hours: float = Field(default=8, gt=0)
    escalate_after_business_hours: float = Field(default=16, gt=0)


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
