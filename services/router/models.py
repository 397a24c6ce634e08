"""Router's tables (schema `router`) and API shapes."""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as DataField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import JSON, Field, SQLModel

from shared.db import UTCDateTime
from shared.events import DecisionChanges, ReferralStatus
from shared.inbox import ConsumerPositionBase, ProcessedEventBase
from shared.outbox import OutboxBase

SCHEMA = "router"


def _now() -> datetime:
    return datetime.now(UTC)


class DirectoryVersion(SQLModel, table=True):
    """A municipality's directory and rules as they stood; the latest activated one is in force."""

    __tablename__ = "directory_version"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    version: str = Field(primary_key=True, max_length=40)
    body: dict[str, Any] = Field(sa_type=JSON)
    source: str = Field(max_length=120)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    activated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class CaseFacts(SQLModel, table=True):
    """What the router knows of a case: its consultation summary (no personal details)."""

    __tablename__ = "case_facts"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=36)
    municipality_code: str = Field(max_length=6)
    submitted_by: str = Field(max_length=100)
    consultation: dict[str, Any] = Field(sa_type=JSON)
    received_at: datetime = Field(sa_type=UTCDateTime)


class RoutingDecision(SQLModel, table=True):
    """A routing decision (振り分け) of a case, with every reason, as the directory then stood.

    A case's first decision has sequence 1; each escalation, return or reassessment adds one.
    """

    __tablename__ = "decision"
    __table_args__ = (UniqueConstraint("case_id", "sequence"), {"schema": SCHEMA})

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    sequence: int = 1
    kind: str = Field(default="initial", max_length=30)
    requested_by: str | None = Field(default=None, max_length=100)
    municipality_code: str = Field(max_length=6, index=True)
    tier: int
    lead: str | None = Field(default=None, max_length=100)
    patterns: list[dict[str, Any]] = Field(sa_type=JSON)
    engaged: list[dict[str, Any]] = Field(sa_type=JSON)
    excluded: list[dict[str, Any]] = Field(sa_type=JSON)
    resource_gaps: list[dict[str, Any]] = Field(sa_type=JSON)
    directory_version: str = Field(max_length=40)
    decided_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    # What a reassessment changed against the decision before it (shared.events.DecisionChanges).
    changes: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class PendingContact(SQLModel, table=True):
    """A later contact's new facts that arrived before its case was routed (topics are not ordered
    against each other): kept here and applied as a reassessment once the case has its first decision."""

    __tablename__ = "pending_contact"
    __table_args__ = {"schema": SCHEMA}

    contact_id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    municipality_code: str = Field(max_length=6)
    contact: dict[str, Any] = Field(sa_type=JSON)  # the ContactRecorded event's data
    received_at: datetime = Field(sa_type=UTCDateTime)


class MonitoredPlan(SQLModel, table=True):
    """An approved 支援プラン version as the router follows it: whom its monitoring timers address, how
    often, and since when the present monitoring cycle runs (approval or last monitoring)."""

    __tablename__ = "monitored_plan"
    __table_args__ = {"schema": SCHEMA}

    plan_id: str = Field(primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    case_id: str = Field(index=True, max_length=36)
    municipality_code: str = Field(max_length=6)
    main_agency: str = Field(max_length=100)  # 主担当
    interval_days: int  # business days between monitorings
    status: str = Field(max_length=20)  # approved | superseded | ended (終結: coordination ended)
    cycle_from: datetime = Field(sa_type=UTCDateTime)


class MonitoringTimer(SQLModel, table=True):
    """A persisted monitoring deadline of a plan version (reminder to the 主担当, then overdue to the lead);
    survives restarts. A superseded plan's or a reset cycle's pending timers are deleted."""

    __tablename__ = "monitoring_timer"
    __table_args__ = (Index("ix_router_monitoring_timer_due", "fired_at", "due_at"), {"schema": SCHEMA})

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(index=True, max_length=36)
    plan_version: int
    case_id: str = Field(index=True, max_length=36)
    kind: str = Field(max_length=20)  # reminder | overdue
    due_at: datetime = Field(sa_type=UTCDateTime)  # when it fires
    monitoring_due_at: datetime = Field(sa_type=UTCDateTime)  # when the monitoring fell due
    fired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Referral(SQLModel, table=True):
    """A request that one agency take part in a case (つなぎ); it adds an agency, it transfers nothing."""

    __tablename__ = "referral"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    decision_id: str = Field(max_length=36)
    municipality_code: str = Field(max_length=6)
    agency_id: str = Field(index=True, max_length=100)
    agency_type: str = Field(max_length=100)
    tier: int
    status: str = Field(default="requested", max_length=20)
    status_reason: str | None = Field(default=None, max_length=60)
    rule_id: str = Field(max_length=60)
    legal_basis: str = Field(max_length=200)
    replaces_referral_id: str | None = Field(default=None, max_length=36)
    requested_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    # The issue tags the agency was engaged for; empty for the case's owner (rules.OWNER_RULES).
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    # 1 when requested, one more on each change of status (ReferralStatusChanged.version).
    version: int = 1


class ReferralTransition(SQLModel, table=True):
    """One step of a referral's lifecycle, for the record."""

    __tablename__ = "referral_transition"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    referral_id: str = Field(index=True, max_length=36)
    from_status: str = Field(max_length=20)
    to_status: str = Field(max_length=20)
    reason_code: str | None = Field(default=None, max_length=60)
    note: str | None = Field(default=None, max_length=500)
    changed_by: str = Field(max_length=100)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Timer(SQLModel, table=True):
    """A persisted deadline of a referral (reminder, then escalation to the lead); survives restarts."""

    __tablename__ = "timer"
    __table_args__ = (Index("ix_router_timer_due", "fired_at", "due_at"), {"schema": SCHEMA})

    id: int | None = Field(default=None, primary_key=True)
    referral_id: str = Field(index=True, max_length=36)
    kind: str = Field(max_length=20)  # reminder | escalation
    due_at: datetime = Field(sa_type=UTCDateTime)
    fired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FeedCounter(SQLModel, table=True):
    """How many entries an agency's feed has; its row lock orders the agency's feed writers."""

    __tablename__ = "feed_counter"
    __table_args__ = {"schema": SCHEMA}

    agency_id: str = Field(primary_key=True, max_length=100)
    last_sequence: int = 0


class RestrictedCase(SQLModel, table=True):
    """A case under 利用停止 (intake's UseRestrictionChanged): off every agency's feed and queue until lifted."""

    __tablename__ = "restricted_case"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=36)
    request_id: str = Field(max_length=36)
    since: datetime = Field(sa_type=UTCDateTime)


class FeedEntry(SQLModel, table=True):
    """One entry of an agency's feed, numbered 1, 2, 3… per agency in commit order.

    The sequence is the cursor: the SSE event id (resumable with Last-Event-ID) and `after` of the
    pages. It is allocated under the agency's FeedCounter row lock in the writing transaction, so a
    reader never sees an entry before the ones numbered below it.
    """

    __tablename__ = "feed_entry"
    __table_args__ = {"schema": SCHEMA}

    agency_id: str = Field(primary_key=True, max_length=100)
    sequence: int = Field(primary_key=True)
    referral_id: str = Field(max_length=36)
    case_id: str = Field(max_length=36)
    # The case's municipality: a reader sees only the entries of the municipalities its credential serves.
    municipality_code: str = Field(max_length=6)
    kind: str = Field(max_length=30)
    body: dict[str, Any] = Field(sa_type=JSON)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class RouterOutbox(OutboxBase, table=True):
    """Events the router has committed to publish."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class RouterProcessedEvent(ProcessedEventBase, table=True):
    """Events the router has applied."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class RouterConsumerPosition(ConsumerPositionBase, table=True):
    """Where router's consumer stands on each topic-partition, stored with the effects of what it applied."""

    __tablename__ = "consumer_position"
    __table_args__ = {"schema": SCHEMA}


# API shapes: what crosses the HTTP edge (a table model never does).


class DecisionPublic(BaseModel):
    """A decision with its reasons, as coordinators and auditors see it.

    `view` is `full` for operators and the case's owner, `partner` for an agency engaged on the case:
    then `engaged` holds its own engagement alone, and patterns, exclusions, gaps and changes are left out.
    """

    id: str
    case_id: str
    sequence: int
    kind: str
    requested_by: str | None
    municipality_code: str
    tier: int
    lead: str | None
    patterns: list[dict[str, Any]]
    engaged: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    resource_gaps: list[dict[str, Any]]
    directory_version: str
    decided_at: datetime
    changes: DecisionChanges | None = DataField(
        default=None, description="what a reassessment changed against the decision before it (full view only)"
    )
    view: Literal["full", "partner"] = "full"


class ReferralPublic(BaseModel):
    """A referral in an agency's queue."""

    id: str
    case_id: str
    agency_id: str
    agency_type: str
    tier: int
    status: str
    status_reason: str | None
    rule_id: str
    legal_basis: str
    replaces_referral_id: str | None
    requested_at: datetime
    deadline: datetime | None
    tags: list[str] = DataField(description="issue tags the agency was engaged for; empty for the case's owner")
    version: int = DataField(description="1 when requested, one more on each change of status")


class TransitionCreate(BaseModel):
    """Body of POST /v1/referrals/{id}/transitions: move a referral to its next state."""

    model_config = ConfigDict(extra="forbid")

    to: ReferralStatus = DataField(description="next state (FHIR Task status)")
    reason_code: str | None = DataField(
        default=None, max_length=60, description="coded reason; required to reject or close"
    )
    note: str | None = DataField(default=None, max_length=500, description="no personal information")


class EscalationCreate(BaseModel):
    """Body of POST /v1/cases/{id}/escalations."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["backup", "prefecture_support", "return_to_community"] = DataField(
        description="backup: a tier-1 place asks the municipal team (→ tier 2); prefecture_support: the lead asks "
        "for prefecture-level support (→ tier 3); return_to_community: the lead returns the case to 見守り"
    )
    note: str | None = DataField(default=None, max_length=500)


class DirectoryPublic(BaseModel):
    """A directory version of a municipality."""

    municipality_code: str
    version: str
    source: str
    created_at: datetime
    activated_at: datetime
    body: dict[str, Any]


class FeedEntryPublic(BaseModel):
    """One entry of an agency's feed."""

    id: int = DataField(description="the entry's place in the agency's feed (1, 2, 3…): the cursor")
    referral_id: str
    case_id: str
    kind: str
    body: dict[str, Any]
    at: datetime


class FeedPage(BaseModel):
    """A page of an agency's feed; pass `next_after` as `after` for the next page."""

    entries: list[FeedEntryPublic]
    next_after: int | None
