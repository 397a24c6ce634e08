"""Each municipality's [LOCAL] choices for the household's data: how long a case is kept (文書保存年限)
and how soon a request of the household is answered. Read from the `intake:` section of its directory.

```yaml
intake:
  retention:
    years_after_closure: 5        # after 終結 (conference's CaseLifeChanged closed)
    years_after_last_contact: 5   # a case that never reached 終結: after its last contact
  requests:
    answer_within_days: 30        # 開示・訂正・利用停止・消去: the deadline recorded on each request
```
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.calendar import JST


class Retention(BaseModel):
    """How long a case is kept: whole years after 終結, or after the last contact of a case never ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    years_after_closure: int = Field(default=5, ge=1, le=100)
    years_after_last_contact: int = Field(default=5, ge=1, le=100)


class Requests(BaseModel):
    """How soon the municipality answers a request of the household (個人情報保護法 Art. 83: 30 days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer_within_days: int = Field(default=30, ge=1, le=365)


class IntakePolicy(BaseModel):
    """A municipality's `intake:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: Retention = Retention()
    requests: Requests = Requests()


DEFAULT_POLICY = IntakePolicy()


def policy_of(body: Mapping[str, Any]) -> IntakePolicy:
    """The policy of a directory body (the file's shape); raises pydantic.ValidationError if it is wrong."""
    return IntakePolicy.model_validate(body.get("intake") or {})


def years_after(moment: datetime, years: int) -> datetime:
    """The same calendar day `years` later in Japan (29 February becomes 28 February), as an aware moment."""
    local = moment.astimezone(JST)
    try:
        return local.replace(year=local.year + years)
    except ValueError:
        return local.replace(year=local.year + years, day=28)
