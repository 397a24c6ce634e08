"""Conference's tables (schema `conference`) and API shapes."""

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as DataField
from sqlmodel import JSON, Field, SQLModel, Text

from shared.db import UTCDateTime
from shared.events import AttendanceRecord
from shared.inbox import ProcessedEventBase
from shared.outbox import OutboxBase

SCHEMA = "conference"


def _now() -> datetime:
    return datetime.now(UTC)


class Meeting(SQLModel, table=True):
    """A case meeting (ケース会議) of a tier-2/3 case, or a 相談支援包括化推進会議 of a municipality."""

    __tablename__ = "meeting"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=30, index=True)
    case_id: str | None = Field(default=None, index=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    tier: int | None = None
    title: str = Field(max_length=200)
    starts_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    participants: list[str] = Field(sa_type=JSON)
    # Agencies taken off the invitation list: their calendars keep the meeting as cancelled.
    withdrawn: list[str] = Field(default_factory=list, sa_type=JSON)
    room_id: str | None = Field(default=None, max_length=60)
    status: str = Field(default="scheduled", max_length=20)  # scheduled | held | cancelled
    needs_attention: bool = False
    blockers: list[str] = Field(default_factory=list, sa_type=JSON)
    status_reason: str | None = Field(default=None, max_length=200)
    minutes: str | None = Field(default=None, sa_type=Text)
    # The record frozen when the meeting was held: later reads return it as it stood then.
    agenda: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    held_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    directory_version: str | None = Field(default=None, max_length=64)  # the directory the record saw
    sequence: int = 0  # iCalendar SEQUENCE: bumped on every change of time or invitees
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class Attendance(SQLModel, table=True):
    """Who attended a held meeting."""

    __tablename__ = "attendance"
    __table_args__ = {"schema": SCHEMA}

    meeting_id: str = Field(primary_key=True, max_length=36)
    participant: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=20)  # agency | municipal_division
    # An agency's sector is the directory's; a municipal division (not in the directory) keeps the posted one.
    sector: str = Field(max_length=20)  # welfare | non_welfare
    attended: bool


class CaseDecision(SQLModel, table=True):
    """What a held meeting decided on a case: the plan, the lead agency, roles and the next review.

    Never edited: a correction is a new decision naming the one it corrects.
    """

    __tablename__ = "case_decision"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: str = Field(index=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    plan_status: str = Field(max_length=20)  # drafted | approved
    lead_agency: str = Field(max_length=100)
    roles: dict[str, str] = Field(sa_type=JSON)
    next_review: date
    recorded_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    event_id: str | None = Field(default=None, max_length=64)  # its conference.decision_recorded
    corrects: int | None = Field(default=None, description="the decision of the same meeting this one corrects")


class CaseState(SQLModel, table=True):
    """Conference's view of a case, from the router's and intake's events (no personal details)."""

    __tablename__ = "case_state"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    tier: int
    lead: str | None = Field(default=None, max_length=100)
    urgency: str = Field(default="routine", max_length=20)
    engaged: list[str] = Field(default_factory=list, sa_type=JSON)
    decision_sequence: int = 0
    # The patterns of the decision in force: the 推進会議 agenda counts new difficult cases by pattern.
    patterns: list[str] = Field(default_factory=list, sa_type=JSON)
    routed_at: datetime = Field(sa_type=UTCDateTime)
    # When it first became tier 2/3 (an escalated tier-1 case is new to the 推進会議 from then on).
    difficult_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    consents: list[str] = Field(default_factory=list, sa_type=JSON)  # live consent ids
    source_events: list[str] = Field(default_factory=list, sa_type=JSON)


class CaseReferral(SQLModel, table=True):
    """A referral of a followed case as its latest status change left it (the ledger names it as a basis)."""

    __tablename__ = "referral"
    __table_args__ = {"schema": SCHEMA}

    referral_id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    agency_id: str = Field(max_length=100)
    status: str = Field(default="requested", max_length=20)
    # The referral's version after the change held (requested is 1; 0: only events of before versions).
    version: int = 0


class ResourceGapReport(SQLModel, table=True):
    """A resource gap (社会資源の不足) the router reported for a case."""

    __tablename__ = "resource_gap"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    municipality_code: str = Field(max_length=6, index=True)
    case_id: str = Field(max_length=36)
    partner_type: str = Field(max_length=100)
    reported_at: datetime = Field(sa_type=UTCDateTime)
    event_id: str = Field(max_length=64)


class NetworkMember(SQLModel, table=True):
    """An agency that joined the municipality's network (first engaged on a case), with its role."""

    __tablename__ = "network_member"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    agency_id: str = Field(primary_key=True, max_length=100)
    agency_type: str = Field(max_length=100)
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    event_id: str = Field(max_length=64)


class BookingLock(SQLModel, table=True):
    """One row per municipality, locked by the transaction that books a meeting there (see `_lock_bookings`)."""

    __tablename__ = "booking_lock"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    booked_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class ConferenceOutbox(OutboxBase, table=True):
    """Events conference has committed to publish."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class ConferenceProcessedEvent(ProcessedEventBase, table=True):
    """Events conference has applied."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


# What crosses the HTTP edge: the table models above never do.


class DecisionPublic(BaseModel):
    """A recorded decision; a correction names the decision it corrects."""

    id: int
    case_id: str
    plan_status: str
    lead_agency: str
    roles: dict[str, str]
    next_review: date
    recorded_at: datetime
    corrects: int | None


class MeetingPublic(BaseModel):
    """A meeting as its participants see it (never with personal details)."""

    id: str
    kind: str
    case_id: str | None
    municipality_code: str
    tier: int | None
    title: str
    starts_at: datetime | None
    ends_at: datetime | None
    deadline: datetime | None
    participants: list[str]
    room_id: str | None
    status: str
    needs_attention: bool
    blockers: list[str]
    status_reason: str | None
    personal_details: str = DataField(
        default="never shown here", description="whether the case's personal details may be shared, and why"
    )
    agenda: dict[str, Any] | None = None
    held_at: datetime | None = None
    directory_version: str | None = DataField(default=None, description="the directory the held meeting saw")
    attendance: list[AttendanceRecord] = DataField(default_factory=list, description="as recorded when held")
    decisions: list[DecisionPublic] = DataField(default_factory=list, description="corrections included")


class RescheduleRequest(BaseModel):
    """Body of POST /v1/meetings/{id}/reschedule."""

    model_config = ConfigDict(extra="forbid")

    reason: str = DataField(min_length=1, max_length=200)
    not_before: datetime | None = DataField(default=None, description="earliest new start (default: now)")


class CancelRequest(BaseModel):
    """Body of POST /v1/meetings/{id}/cancel."""

    model_config = ConfigDict(extra="forbid")

    reason: str = DataField(min_length=1, max_length=200)


class AttendanceCreate(BaseModel):
    """Body of POST /v1/meetings/{id}/attendance: the meeting was held."""

    model_config = ConfigDict(extra="forbid")

    attendance: list[AttendanceRecord] = DataField(min_length=1)
    minutes: str | None = DataField(default=None, max_length=20_000, description="議事録 (no personal details)")


class DecisionCreate(BaseModel):
    """Body of POST /v1/meetings/{id}/decisions."""

    model_config = ConfigDict(extra="forbid")

    case_id: str | None = DataField(default=None, description="required at a 推進会議; a case meeting's own case")
    plan_approved: bool = DataField(description="支援プラン approved here (else drafted, for the 推進会議)")
    lead_agency: str = DataField(min_length=1, max_length=100, description="主担当機関")
    roles: dict[str, str] = DataField(default_factory=dict, description="役割分担: agency id → role")
    next_review: date = DataField(description="次回見直し日")
    corrects: int | None = DataField(default=None, description="id of a decision of this meeting it corrects")


class PromotionMeetingCreate(BaseModel):
    """Body of POST /v1/promotion-meetings: convene a 相談支援包括化推進会議 (on demand or ahead of time)."""

    model_config = ConfigDict(extra="forbid")

    municipality_code: str = DataField(pattern=r"^\d{6}$")
    not_before: datetime | None = None


class AgendaItem(BaseModel):
    """One line of an agenda, with the events it came from."""

    text: str
    source_events: list[str]
    detail: dict[str, Any] = {}


Section = Literal["ア_イ", "ウ", "エ", "オ"]
