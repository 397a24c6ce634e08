"""Conference's tables (schema `conference`) and API shapes."""

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as DataField
from sqlmodel import JSON, Field, SQLModel, Text

from shared.db import UTCDateTime
from shared.directory_in_force import DirectoryInForceColumns
from shared.events import AttendanceRecord, CaseLifeState, DecisionType, PlanStatus
from shared.inbox import ConsumerPositionBase, ProcessedEventBase
from shared.outbox import OutboxBase
from shared.vocabulary import ClosureReason

SCHEMA = "conference"


def _now() -> datetime:
    return datetime.now(UTC)


class Meeting(SQLModel, table=True):
    """A meeting of one of the kinds of `kinds.KINDS`: about a case (ケース会議, 支援会議, 重層的支援会議),
    or the 相談支援包括化推進会議 of a municipality's network."""

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
    plan_version: int | None = None  # the 支援プラン version a held 重層的支援会議 saw
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
    lead_agency: str = Field(max_length=100)  # 主担当機関 (after a 終結: the agency that keeps accompanying)
    roles: dict[str, str] = Field(sa_type=JSON)
    next_review: date | None = None  # 次回見直し日; after a 終結 with 見守り, the next check-in
    decision_type: str = Field(default="plan", max_length=20)  # plan | support_decision | closure
    consent_id: str | None = Field(default=None, max_length=36)  # the 本人同意 a 支援決定 rests on
    plan_version: int | None = None
    closure_reason: str | None = Field(default=None, max_length=20)  # ClosureReason of a 終結
    watch: bool = False  # 見守り continues after the 終結
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
    # The case's life after routing (CaseLifeChanged): 終結 closes it, with 見守り it is watched, a new
    # contact reopens it; a 転居 closes it as moved_away.
    life_state: str = Field(default="active", max_length=20)  # CaseLifeState
    life_reason: str | None = Field(default=None, max_length=20)  # ClosureReason
    life_main_agency: str | None = Field(default=None, max_length=100)  # 主担当 that keeps accompanying
    watch_until: date | None = None  # the next 見守り check-in
    life_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Where a 転居 took the household: the receiving municipality's case (None: outside the deployment).
    transferred_to_case: str | None = Field(default=None, max_length=36)
    transferred_to_municipality: str | None = Field(default=None, max_length=6)


class SupportPlan(SQLModel, table=True):
    """One version of a case's 支援プラン: drafted by the lead, approved by a 支援決定, superseded by the next.

    The goals are free text that may name people: they stay here and never go into an event.
    """

    __tablename__ = "support_plan"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    plan_id: str = Field(max_length=36)  # the same for every version of the case's plan
    municipality_code: str = Field(max_length=6, index=True)
    status: str = Field(default="drafted", max_length=20)  # PlanStatus
    goals: list[str] = Field(default_factory=list, sa_type=JSON)
    roles: dict[str, str] = Field(default_factory=dict, sa_type=JSON)  # 役割分担: agency id → role
    main_agency: str = Field(max_length=100)  # 主担当
    monitoring_interval_days: int  # business days between monitorings
    next_evaluation: date
    created_by: str = Field(max_length=100)
    reason: str | None = Field(default=None, max_length=200)  # why this version was made (a revision's)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_at_meeting: str | None = Field(default=None, max_length=36)
    approved_by_decision: int | None = None  # the CaseDecision (支援決定) that approved it
    superseded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PlanMonitoring(SQLModel, table=True):
    """A monitoring (モニタリング) or evaluation (評価) of a plan version; its note stays here."""

    __tablename__ = "plan_monitoring"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=36)
    plan_version: int
    kind: str = Field(max_length=20)  # monitoring | evaluation
    note: str = Field(sa_type=Text)
    recorded_by: str = Field(max_length=100)
    recorded_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    # What it was measured against: a monitoring's due moment, an evaluation's next_evaluation day.
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    due_on: date | None = None
    on_time: bool


class OverdueMonitoring(SQLModel, table=True):
    """A monitoring the router's timer found overdue (MonitoringDue, stage overdue), until one is recorded.

    The 推進会議 agenda counts those still open; it never names their cases.
    """

    __tablename__ = "overdue_monitoring"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=36)
    plan_version: int = Field(primary_key=True)
    due_at: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    municipality_code: str = Field(max_length=6, index=True)
    noticed_at: datetime = Field(sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    event_id: str = Field(max_length=64)


class CaseReferral(SQLModel, table=True):
    """A referral of a followed case as its latest status change left it (the ledger names it as a basis)."""

    __tablename__ = "referral"
    __table_args__ = {"schema": SCHEMA}

    referral_id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    agency_id: str = Field(max_length=100)
    replaces_referral_id: str | None = Field(default=None, max_length=36)  # a re-route's closed referral
    status: str = Field(default="requested", max_length=20)
    # The referral's version after the change held (requested is 1; 0: only events of before versions).
    version: int = 0


class CaseIntake(SQLModel, table=True):
    """What a case's consultations said that its meetings and the 推進会議 need, without personal details:
    whether the person has been reached, the area, the household's issue tags, whether existing
    services fit (制度の狭間)."""

    __tablename__ = "case_intake"
    __table_args__ = {"schema": SCHEMA}

    case_id: str = Field(primary_key=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    area: str = Field(max_length=64)
    issues: list[str] = Field(default_factory=list, sa_type=JSON)
    services_fit: bool = True
    contact: str = Field(default="reached", max_length=20)  # ContactStatus
    received_at: datetime = Field(sa_type=UTCDateTime)


class CaseHandoff(SQLModel, table=True):
    """A part in a case passed between agencies: a re-route (a closed referral replaced by another
    agency's) or an escalation (a later decision engaging agencies the case did not have)."""

    __tablename__ = "case_handoff"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    municipality_code: str = Field(max_length=6, index=True)
    case_id: str = Field(max_length=36)
    kind: str = Field(max_length=20)  # reroute | escalation
    from_agency: str = Field(max_length=100)
    to_agency: str = Field(max_length=100)
    at: datetime = Field(sa_type=UTCDateTime)
    event_id: str = Field(max_length=64)


class RosterMember(SQLModel, table=True):
    """An agency's membership of a municipality's 支援会議 (Art. 106-6), as intake's roster events say."""

    __tablename__ = "roster_member"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    agency_id: str = Field(primary_key=True, max_length=100)
    member_from: date
    member_until: date | None = None
    roster_ref: str = Field(max_length=200)
    changed_at: datetime = Field(sa_type=UTCDateTime)


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


class ConferenceConsumerPosition(ConsumerPositionBase, table=True):
    """Where conference's consumer stands on each topic-partition, stored with the effects of what it applied."""

    __tablename__ = "consumer_position"
    __table_args__ = {"schema": SCHEMA}


# What crosses the HTTP edge: the table models above never do.


class DecisionPublic(BaseModel):
    """A recorded decision; a correction names the decision it corrects."""

    id: int
    case_id: str
    decision_type: DecisionType
    plan_status: str
    lead_agency: str
    roles: dict[str, str]
    next_review: date | None
    recorded_at: datetime
    corrects: int | None
    consent_id: str | None = None
    plan_version: int | None = None
    closure_reason: ClosureReason | None = None
    watch: bool = False


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
    legal_basis: str = DataField(default="", description="the law the meeting is held under (GET /v1/meeting-kinds)")
    personal_details: str = DataField(
        default="never shown here", description="whether the case's personal details may be shared, and why"
    )
    agenda: dict[str, Any] | None = None
    held_at: datetime | None = None
    directory_version: str | None = DataField(default=None, description="the directory the held meeting saw")
    attendance: list[AttendanceRecord] = DataField(default_factory=list, description="as recorded when held")
    decisions: list[DecisionPublic] = DataField(default_factory=list, description="corrections included")
    plan_version: int | None = DataField(default=None, description="the 支援プラン version a held 重層的支援会議 saw")
    case_life: CaseLifeState | None = DataField(
        default=None, description="the case's life: active, closed (終結), watching (見守り) or reopened"
    )


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

    type: DecisionType = DataField(
        default="plan",
        description="plan (ケース会議・支援会議・推進会議); support_decision (支援決定) or closure (終結) "
        "at a 重層的支援会議",
    )
    case_id: str | None = DataField(default=None, description="required at a 推進会議; a case meeting's own case")
    plan_approved: bool = DataField(
        default=False, description="支援プラン approved here (else drafted, for the 推進会議); a plan decision only"
    )
    lead_agency: str = DataField(
        min_length=1, max_length=100, description="主担当機関 (after a 終結: the agency that keeps accompanying)"
    )
    roles: dict[str, str] = DataField(default_factory=dict, description="役割分担: agency id → role")
    next_review: date | None = DataField(
        default=None, description="次回見直し日 (required but for a 終結; after a 終結 with 見守り, the next check-in)"
    )
    plan_version: int | None = DataField(default=None, ge=1, description="the 支援プラン version a 支援決定 approves")
    closure_reason: ClosureReason | None = DataField(default=None, description="終結理由 (a closure only)")
    watch: bool = DataField(default=False, description="見守り continues after the 終結 (a closure only)")
    corrects: int | None = DataField(default=None, description="id of a decision of this meeting it corrects")


class SupportMeetingCreate(BaseModel):
    """Body of POST /v1/support-meetings: a 支援会議 (Art. 106-6) about a case, among roster members."""

    model_config = ConfigDict(extra="forbid")

    case_id: str = DataField(min_length=1, max_length=36)
    invitees: list[str] = DataField(
        min_length=1, max_length=50, description="current members of the municipality's 支援会議 roster"
    )
    not_before: datetime | None = DataField(default=None, description="earliest start (default: an hour from now)")


class PlanMeetingCreate(BaseModel):
    """Body of POST /v1/plan-meetings: a 重層的支援会議 about a case with 本人同意."""

    model_config = ConfigDict(extra="forbid")

    case_id: str = DataField(min_length=1, max_length=36)
    not_before: datetime | None = DataField(default=None, description="earliest start (default: an hour from now)")


class PromotionMeetingCreate(BaseModel):
    """Body of POST /v1/promotion-meetings: convene a 相談支援包括化推進会議 (on demand or ahead of time)."""

    model_config = ConfigDict(extra="forbid")

    municipality_code: str = DataField(pattern=r"^\d{6}$")
    not_before: datetime | None = None


class PlanCreate(BaseModel):
    """Body of POST /v1/cases/{case_id}/plans: a new 支援プラン version, drafted.

    Whatever is left out is taken from the version before (for version 1: from the case).
    """

    model_config = ConfigDict(extra="forbid")

    goals: list[str] | None = DataField(
        default=None, max_length=30, description="目標 (free text; kept in conference, never in an event)"
    )
    roles: dict[str, str] | None = DataField(
        default=None, description="役割分担: agency id → role, among the case's lead and engaged agencies"
    )
    main_agency: str | None = DataField(default=None, min_length=1, max_length=100, description="主担当")
    monitoring_interval_days: int | None = DataField(
        default=None, ge=1, le=260, description="business days between monitorings"
    )
    next_evaluation: date | None = DataField(default=None, description="次回評価日")
    reason: str | None = DataField(
        default=None, min_length=1, max_length=200, description="why (required from version 2 on; no names)"
    )


class MonitoringCreate(BaseModel):
    """Body of POST /v1/cases/{case_id}/plans/{version}/monitorings."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["monitoring", "evaluation"] = DataField(description="モニタリング or 評価")
    note: str = DataField(min_length=1, max_length=20_000, description="kept in conference, never in an event")


class MonitoringPublic(BaseModel):
    """A monitoring or evaluation of a plan version, as the plan's readers see it."""

    id: int
    plan_version: int
    kind: Literal["monitoring", "evaluation"]
    note: str
    recorded_by: str
    recorded_at: datetime
    due_at: datetime | None
    due_on: date | None
    on_time: bool


class PlanPublic(BaseModel):
    """A 支援プラン version with who made it and why, and the monitorings recorded against it."""

    case_id: str
    plan_id: str
    version: int
    status: PlanStatus
    goals: list[str]
    roles: dict[str, str]
    main_agency: str
    monitoring_interval_days: int
    next_evaluation: date
    created_by: str
    reason: str | None
    created_at: datetime
    approved_at: datetime | None
    approved_at_meeting: str | None
    superseded_at: datetime | None
    monitorings: list[MonitoringPublic] = DataField(default_factory=list)


class DirectoryInForce(DirectoryInForceColumns, table=True):
    """The directory version in force for a municipality, as the router last published it
    (shared/directory_in_force.py)."""

    __tablename__ = "directory_in_force"
    __table_args__ = {"schema": SCHEMA}
