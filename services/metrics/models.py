"""Metrics' tables (schema `metrics`): facts from events, manual values and targets; and API shapes.

Every event becomes facts keyed by the ids it carries, so a repeated event changes nothing and events
may arrive in any order across topics; the indicators are computed from the facts when asked.
"""

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import Field as DataField
from sqlmodel import JSON, Field, SQLModel

from shared.db import UTCDateTime
from shared.directory_in_force import DirectoryInForceColumns
from shared.inbox import ConsumerPositionBase, ProcessedEventBase

SCHEMA = "metrics"


def _now() -> datetime:
    return datetime.now(UTC)


class CaseFact(SQLModel, table=True):
    """A case: how it came in, its tier, when an agency first accepted, and what happened to it."""

    __tablename__ = "case_fact"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pathway: str | None = Field(default=None, max_length=30)
    found_by: str | None = Field(default=None, max_length=20)
    submitted_by: str | None = Field(default=None, max_length=100)
    tier: int | None = None
    decision_sequence: int = 0
    first_accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ContactFact(SQLModel, table=True):
    """One consultation or later contact (延べ); the opening one has the case's consultation id."""

    __tablename__ = "contact_fact"
    __table_args__ = {"schema": SCHEMA}

    contact_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    received_at: datetime = Field(sa_type=UTCDateTime)
    pathway: str = Field(max_length=30)
    found_by: str = Field(max_length=20)
    opening: bool


class DecisionFact(SQLModel, table=True):
    """A routing decision: its tier and patterns."""

    __tablename__ = "decision_fact"
    __table_args__ = {"schema": SCHEMA}

    decision_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    tier: int
    kind: str = Field(max_length=30)
    patterns: list[str] = Field(sa_type=JSON)
    resource_gaps: list[str] = Field(sa_type=JSON)
    decided_at: datetime = Field(sa_type=UTCDateTime)


class ReferralFact(SQLModel, table=True):
    """A referral and where it stands."""

    __tablename__ = "referral_fact"
    __table_args__ = {"schema": SCHEMA}

    referral_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    agency_id: str | None = Field(default=None, max_length=100)
    tier: int | None = None
    rule_id: str | None = Field(default=None, max_length=60)
    requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="requested", max_length=20)
    status_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The referral's version after the change held (0: a change of before versions, ordered by its time).
    version: int = 0
    overdue_stages: list[str] = Field(default_factory=list, sa_type=JSON)


class MeetingFact(SQLModel, table=True):
    """A meeting: scheduled (when, after its latest reschedule), cancelled or held, with whom."""

    __tablename__ = "meeting_fact"
    __table_args__ = {"schema": SCHEMA}

    meeting_id: str = Field(primary_key=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    kind: str = Field(max_length=30)
    case_id: str | None = Field(default=None, max_length=64)
    tier: int | None = None
    scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    starts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the event that set `starts_at` was published: a reschedule delivered before the schedule wins.
    starts_at_as_of: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    held_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attendance: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)


class HouseholdLinkFact(SQLModel, table=True):
    """A possible same household the lead decided on: a later case linked to an earlier one, or unlinked."""

    __tablename__ = "household_link_fact"
    __table_args__ = {"schema": SCHEMA}

    match_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(max_length=64)
    linked_case_id: str = Field(max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    linked: bool
    decided_at: datetime = Field(sa_type=UTCDateTime)


class PlanVersionFact(SQLModel, table=True):
    """A 支援プラン version: when it was drafted, approved (the 支援決定) and superseded.

    Each status has its own time, set by its own event, so the fact ends the same whatever order the
    changes arrive in.
    """

    __tablename__ = "plan_version_fact"
    __table_args__ = {"schema": SCHEMA}

    plan_version_id: str = Field(primary_key=True, max_length=80)  # "<plan id>/v<version>"
    plan_id: str = Field(max_length=64)
    version: int
    case_id: str = Field(index=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    drafted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_at_meeting: str | None = Field(default=None, max_length=64)
    superseded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MonitoringFact(SQLModel, table=True):
    """A monitoring (モニタリング) or evaluation (評価) recorded against a plan version, and whether on time."""

    __tablename__ = "monitoring_fact"
    __table_args__ = {"schema": SCHEMA}

    event_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    plan_id: str = Field(max_length=64)
    plan_version: int
    kind: str = Field(max_length=20)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    on_time: bool


class CaseLifeFact(SQLModel, table=True):
    """One change of a case's life after routing: 終結 (closed, or watching under 見守り), reopened, active.

    Kept as a history, one row per event: a case may end, reopen and end again, and a report asks both
    what ended within its window and what state each case was in at the window's end.
    """

    __tablename__ = "case_life_fact"
    __table_args__ = {"schema": SCHEMA}

    event_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    municipality_code: str = Field(max_length=6, index=True)
    state: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=20)
    main_agency: str | None = Field(default=None, max_length=100)
    watch_until: date | None = None
    changed_at: datetime = Field(sa_type=UTCDateTime)


class TransferFact(SQLModel, table=True):
    """A 転居: a case moved from one municipality to another of the deployment, or away from the deployment.

    `to_case_id` and `to_municipality` are the receiving case and municipality, both None when the
    household left the deployment (where it went is no municipality metrics reports on).
    """

    __tablename__ = "transfer_fact"
    __table_args__ = {"schema": SCHEMA}

    event_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(max_length=64)
    to_case_id: str | None = Field(default=None, max_length=64)
    from_municipality: str = Field(max_length=6, index=True)
    to_municipality: str | None = Field(default=None, max_length=6, index=True)
    transferred_at: datetime = Field(sa_type=UTCDateTime)


class ManualValue(SQLModel, table=True):
    """A survey-based or master-data indicator entered for a fiscal year (M3, M4, M6, M7, M9, …)."""

    __tablename__ = "manual_value"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    fiscal_year: int = Field(primary_key=True)
    indicator: str = Field(primary_key=True, max_length=20)
    value: float
    note: str = Field(default="", max_length=500)
    entered_by: str = Field(max_length=100)
    entered_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Target(SQLModel, table=True):
    """One version of a target a municipality set for an indicator and fiscal year (目標, 実施要領 3(6)).

    Versions are never overwritten: the one in force when the year began is what the year is reported
    against (seed L3331, L3469: targets are set in advance), and each later version is a revision
    shown beside it, with who set it, when and why.
    """

    __tablename__ = "target"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    fiscal_year: int = Field(primary_key=True)
    indicator: str = Field(primary_key=True, max_length=40)  # event ids run longer than the catalog's
    version: int = Field(default=1, primary_key=True)
    value: float
    set_by: str = Field(max_length=100)
    set_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    reason: str = Field(default="", max_length=500)


class MetricsProcessedEvent(ProcessedEventBase, table=True):
    """Events metrics has applied (each exactly once)."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class MetricsConsumerPosition(ConsumerPositionBase, table=True):
    """Where metrics's consumer stands on each topic-partition, stored with the effects of what it applied."""

    __tablename__ = "consumer_position"
    __table_args__ = {"schema": SCHEMA}


FACT_TABLES: tuple[type[SQLModel], ...] = (
    CaseFact,
    ContactFact,
    DecisionFact,
    ReferralFact,
    MeetingFact,
    HouseholdLinkFact,
    PlanVersionFact,
    MonitoringFact,
    CaseLifeFact,
    TransferFact,
    MetricsProcessedEvent,
)


class TargetRevision(BaseModel):
    """A target changed after the one the year is reported against: the new value, who, when and why."""

    value: float
    set_by: str
    set_at: datetime
    reason: str


class IndicatorValue(BaseModel):
    """One indicator's value, its breakdown, and its target where one was set."""

    id: str
    name_ja: str
    name_en: str
    definition: str
    source: str  # events | manual
    # What small-cell suppression may hide: counts, and a percent computed from the counts of its breakdown.
    unit: Literal["count", "percent", "hours", "as_entered"] = "count"
    value: float | None
    by_dimension: dict[str, float]
    shares: dict[str, float] | None = None
    # Japanese label of every key of `by_dimension` and `shares` (services/metrics/labels.py).
    labels: dict[str, str] = {}
    # The target in force when the fiscal year began (else the first one set), and attainment against it.
    target: float | None = None
    attainment: float | None = None
    target_revisions: list[TargetRevision] = []
    # False: the indicator does not apply to this municipality and fiscal year (e.g. 支援会議 held, where
    # the 重層的支援体制整備事業 is not run); its value is null, never 0, and its definition says why.
    applicable: bool = True


class IndicatorReport(BaseModel):
    """Indicators of one municipality and fiscal year (optionally one month and one tier)."""

    municipality_code: str
    municipality_name: str | None
    fiscal_year: int
    fiscal_year_label: str
    month: int | None
    tier: int | None
    indicators: list[IndicatorValue]
    directory_version: str | None = DataField(
        default=None, description="the directory version in force the report counted with (general windows, sectors)"
    )


class ValueIn(BaseModel):
    """Body of PUT of a manual value."""

    value: float
    note: str = ""


class TargetIn(BaseModel):
    """Body of PUT of a target: a reason is required once the fiscal year has begun."""

    value: float
    reason: str = Field(default="", max_length=500)


class DirectoryInForce(DirectoryInForceColumns, table=True):
    """The directory version in force for a municipality, as the router last published it
    (shared/directory_in_force.py)."""

    __tablename__ = "directory_in_force"
    __table_args__ = {"schema": SCHEMA}
