"""The event contract: a CloudEvents 1.0 envelope (structured JSON mode) around one model per type."""

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import topics
from shared.consultation import ConsultationSummary, MemberSummary
from shared.ids import new_id
from shared.vocabulary import ClosureReason, ContactStatus, FoundBy, IssueTag, Pathway, Urgency

CONTENT_TYPE = "application/cloudevents+json"


class EventData(BaseModel):
    """Base of every event payload; each subclass names its CloudEvents type, topic and schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    schema_version: ClassVar[int] = 1
    # Fields sealed under the case's key on the wire (shared/sealing.py): dotted paths, `*` for each item of
    # a list. Each must accept an empty value ([], {}, "" or None), which stays in clear in its place.
    sealed_fields: ClassVar[tuple[str, ...]] = ()


class ConsultationReceived(EventData):
    """A partner agency's consultation was accepted and opened a new case (one 実件数)."""

    event_type: ClassVar[str] = "jp.marugoto.consultation.received"
    topic: ClassVar[str] = topics.CONSULTATION_RECEIVED
    sealed_fields: ClassVar[tuple[str, ...]] = ("consultation.area", "consultation.household")

    case_id: str
    consultation_id: str
    submitted_by: str
    received_at: datetime
    consultation: ConsultationSummary


class ContactRecorded(EventData):
    """A later contact (相談) about a household whose case is open: one more 延べ, not a new 実件数."""

    event_type: ClassVar[str] = "jp.marugoto.contact.recorded"
    topic: ClassVar[str] = topics.CONTACT_RECORDED
    sealed_fields: ClassVar[tuple[str, ...]] = ("added_members", "added_issues")

    case_id: str
    contact_id: str
    submitted_by: str
    received_at: datetime
    pathway: Pathway
    found_by: FoundBy
    contact: ContactStatus = ContactStatus.reached
    # New facts the contact brought (the router reassesses the case on them): members first seen now,
    # issues newly seen on known members, and a change of urgency (None: unchanged).
    added_members: list[MemberSummary] = []
    added_issues: list["MemberIssues"] = []
    urgency: Urgency | None = None


class ConsentGiver(StrEnum):
    """Who gave the consent (同意者), as a code: free text here could carry a name onto Kafka."""

    self_ = "self"  # 本人
    family = "family"  # 家族
    guardian = "guardian"  # 成年後見人・保佐人・補助人
    legal_representative = "legal_representative"  # other 法定代理人 (e.g. 親権者) or 任意代理人
    other = "other"  # その他


class ConsentRevocationReason(StrEnum):
    """Why a consent was revoked (撤回理由), as a code; any free-text note stays in intake."""

    person_request = "person_request"  # 本人の申し出
    representative_request = "representative_request"  # 家族・代理人の申し出
    support_ended = "support_ended"  # 支援の終了
    recorded_in_error = "recorded_in_error"  # 誤登録
    other = "other"  # その他


class ConsentGiven(EventData):
    """本人同意 was recorded: who gave it (a code), for which members, to share with whom."""

    event_type: ClassVar[str] = "jp.marugoto.consent.given"
    topic: ClassVar[str] = topics.CONSENT_GIVEN
    schema_version: ClassVar[int] = 2  # 2: given_by is a ConsentGiver code, no longer free text

    case_id: str
    consent_id: str
    given_by: ConsentGiver
    members: list[int]
    share_with: list[str]
    given_at: datetime


class ConsentRevoked(EventData):
    """A consent was revoked: its sharing stops from now on."""

    event_type: ClassVar[str] = "jp.marugoto.consent.revoked"
    topic: ClassVar[str] = topics.CONSENT_REVOKED
    schema_version: ClassVar[int] = 2  # 2: reason is a ConsentRevocationReason code, no longer free text

    case_id: str
    consent_id: str
    revoked_at: datetime
    reason: ConsentRevocationReason


class EngagedAgency(BaseModel):
    """One agency a routing decision engaged, with the rule that engaged it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_id: str
    agency_type: str
    rule_id: str
    legal_basis: str
    reason: str = ""
    # The issue tags this agency was engaged for (a partner's need-to-know); empty for the case's owner
    # (lead, tier-1 place, general window), who holds the whole picture.
    tags: list[str] = []


class RoutingDecided(EventData):
    """The router decided the tier and the agencies of a case, and why (again after each escalation)."""

    event_type: ClassVar[str] = "jp.marugoto.routing.decided"
    topic: ClassVar[str] = topics.ROUTING_DECIDED
    sealed_fields: ClassVar[tuple[str, ...]] = ("engaged.*.tags", "engaged.*.reason", "changes.added_issues")

    case_id: str
    decision_id: str
    sequence: int = 1
    # reassessment: a new version on new facts of a later contact (ContactRecorded); it never drops an agency.
    kind: Literal["initial", "backup", "prefecture_support", "return_to_community", "reassessment"] = "initial"
    tier: Literal[1, 2, 3]
    patterns: list[str]
    lead: str | None
    engaged: list[EngagedAgency]
    resource_gaps: list[str]
    directory_version: str
    urgency: str
    decided_at: datetime
    changes: "DecisionChanges | None" = None  # what a reassessment changed


class ReferralRequested(EventData):
    """A referral asks one engaged agency to take part in a case (it adds an agency, it transfers nothing)."""

    event_type: ClassVar[str] = "jp.marugoto.referral.requested"
    topic: ClassVar[str] = topics.REFERRAL_REQUESTED
    sealed_fields: ClassVar[tuple[str, ...]] = ("tags",)

    referral_id: str
    case_id: str
    decision_id: str
    agency_id: str
    agency_type: str
    tier: Literal[1, 2, 3]
    rule_id: str
    legal_basis: str
    requested_at: datetime
    replaces_referral_id: str | None = None
    deadline: datetime | None = None
    # The issue tags the agency is engaged for (see EngagedAgency.tags); empty for the case's owner.
    tags: list[str] = []


REFERRAL_STATUSES = (
    "requested",
    "received",
    "accepted",
    "rejected",
    "in_progress",
    "on_hold",
    "completed",
    "failed",
    "cancelled",
)
ReferralStatus = Literal[
    "requested", "received", "accepted", "rejected", "in_progress", "on_hold", "completed", "failed", "cancelled"
]
# The states in which a referral engages its agency on the case (it may read the case and take part).
LIVE_REFERRAL_STATUSES: frozenset[ReferralStatus] = frozenset(
    {"requested", "received", "accepted", "in_progress", "on_hold"}
)


class ReferralStatusChanged(EventData):
    """A referral moved in its lifecycle (FHIR Task states), with the coded reason and who moved it."""

    event_type: ClassVar[str] = "jp.marugoto.referral.status_changed"
    topic: ClassVar[str] = topics.REFERRAL_STATUS_CHANGED

    referral_id: str
    case_id: str
    agency_id: str
    from_status: ReferralStatus
    to_status: ReferralStatus
    reason_code: str | None
    changed_by: str
    changed_at: datetime
    # The referral's version after this change (requested is 1, each change adds one): the outbox may
    # publish a later change before an earlier one, and a consumer keeps the higher version.
    version: int = Field(default=0, ge=0)


class ReferralOverdue(EventData):
    """A referral was not accepted in time: a reminder, or an escalation to the lead (推進員)."""

    event_type: ClassVar[str] = "jp.marugoto.referral.overdue"
    topic: ClassVar[str] = topics.REFERRAL_OVERDUE

    referral_id: str
    case_id: str
    agency_id: str
    stage: Literal["reminder", "escalation"]
    due_at: datetime
    escalated_to: str | None = None


class AgencyFeedEntry(EventData):
    """One entry of an agency's routed-case feed; keyed by agency id, with no personal information."""

    event_type: ClassVar[str] = "jp.marugoto.agency.feed_entry"
    topic: ClassVar[str] = topics.AGENCY_FEED
    sealed_fields: ClassVar[tuple[str, ...]] = ("issues", "area")

    entry_id: int
    agency_id: str
    referral_id: str
    case_id: str
    kind: Literal[
        "referral_requested",
        "status_changed",
        "reminder",
        "escalated",
        "monitoring_due",
        "monitoring_overdue",
        "use_restricted",
        "use_restriction_lifted",
        "personal_details_corrected",
    ]
    status: ReferralStatus
    tier: Literal[1, 2, 3]
    agency_type: str
    rule_id: str
    issues: list[str]
    area: str
    at: datetime


# ケース会議・担当者会議 (consent or engagement), 支援会議 (Art. 106-6: its roster, without consent),
# 重層的支援会議 (支援決定 and 終結, with consent) and the 相談支援包括化推進会議 of the network.
MeetingKind = Literal["case_meeting", "support_meeting", "plan_meeting", "promotion_meeting"]


class ConferenceScheduled(EventData):
    """A meeting was scheduled: a case meeting (ケース会議) or a 相談支援包括化推進会議."""

    event_type: ClassVar[str] = "jp.marugoto.conference.scheduled"
    topic: ClassVar[str] = topics.CONFERENCE_SCHEDULED

    meeting_id: str
    case_id: str | None
    kind: MeetingKind
    tier: Literal[1, 2, 3] | None
    starts_at: datetime | None
    ends_at: datetime | None = None
    deadline: datetime | None
    participants: list[str]
    needs_attention: bool = False
    blockers: list[str] = []


class ConferenceRescheduled(EventData):
    """A meeting moved, or its invitation list changed (an agency added to or removed from the case)."""

    event_type: ClassVar[str] = "jp.marugoto.conference.rescheduled"
    topic: ClassVar[str] = topics.CONFERENCE_RESCHEDULED
    sealed_fields: ClassVar[tuple[str, ...]] = ("reason",)

    meeting_id: str
    case_id: str | None
    kind: MeetingKind
    starts_at: datetime | None
    ends_at: datetime | None
    participants: list[str]
    reason: str
    needs_attention: bool = False
    blockers: list[str] = []


class ConferenceCancelled(EventData):
    """A meeting was cancelled, with the reason."""

    event_type: ClassVar[str] = "jp.marugoto.conference.cancelled"
    topic: ClassVar[str] = topics.CONFERENCE_CANCELLED
    sealed_fields: ClassVar[tuple[str, ...]] = ("reason",)

    meeting_id: str
    case_id: str | None
    kind: MeetingKind
    reason: str


class AttendanceRecord(BaseModel):
    """Who attended: an agency (with its sector) or a municipal division outside welfare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant: str
    kind: Literal["agency", "municipal_division"]
    sector: Literal["welfare", "non_welfare"]
    attended: bool


class ConferenceHeld(EventData):
    """A meeting took place; its attendance is what the indicators count (M1/M2, M5, M13)."""

    event_type: ClassVar[str] = "jp.marugoto.conference.held"
    topic: ClassVar[str] = topics.CONFERENCE_HELD

    meeting_id: str
    case_id: str | None
    kind: MeetingKind
    held_at: datetime
    attendance: list[AttendanceRecord]


# plan: a case meeting's or 推進会議's plan (drafted or approved); support_decision: the 支援決定 of a
# 重層的支援会議 (the plan approved, with consent); closure: its 終結 of coordination.
DecisionType = Literal["plan", "support_decision", "closure"]


class ConferenceDecisionRecorded(EventData):
    """A meeting decided on a case: a plan (approved or drafted), a 支援決定 or a 終結, with the lead
    agency (主担当), roles and the next review (for a 終結 with 見守り: the next check-in)."""

    event_type: ClassVar[str] = "jp.marugoto.conference.decision_recorded"
    topic: ClassVar[str] = topics.CONFERENCE_DECISION_RECORDED
    sealed_fields: ClassVar[tuple[str, ...]] = ("roles",)
    schema_version: ClassVar[int] = 2  # 2: decision_type, consent_id, plan_version, closure fields

    meeting_id: str
    case_id: str
    plan_status: Literal["drafted", "approved"]
    lead_agency: str
    roles: dict[str, str]
    next_review: date | None
    recorded_at: datetime
    decision_type: DecisionType = "plan"
    meeting_kind: MeetingKind = "case_meeting"
    # The live 本人同意 a 支援決定 or 終結 rests on, and the plan version it approved (when plans exist).
    consent_id: str | None = None
    plan_version: int | None = None
    closure_reason: ClosureReason | None = None
    watch: bool = Field(default=False, description="見守り continues after the 終結, with the 主担当")
    # The event id of the decision this one corrects (a correction is a new record, never an edit).
    corrects: str | None = None


class MeetingInvitation(EventData):
    """An invitation (or its update) for one agency; keyed by agency id."""

    event_type: ClassVar[str] = "jp.marugoto.conference.invitation"
    topic: ClassVar[str] = topics.CONFERENCE_INVITATION

    meeting_id: str
    agency_id: str
    kind: MeetingKind
    status: Literal["invited", "updated", "cancelled", "withdrawn"]
    starts_at: datetime | None
    ends_at: datetime | None
    case_id: str | None


DisclosureChannel = Literal[
    "feed_entry", "decision_read", "case_read", "personal_details", "meeting_invitation", "meeting_record", "plan"
]
DisclosureBasis = Literal["consent", "engagement", "support_meeting", "emergency", "operator", "none"]


class DisclosureRecorded(EventData):
    """Case information was released to an agency, or a release was refused: one row of the ledger.

    Names the fields released, never their values; intake keeps every household's ledger. A refusal
    has basis `none`. The note an emergency release requires stays with the service that released.
    """

    event_type: ClassVar[str] = "jp.marugoto.disclosure.recorded"
    topic: ClassVar[str] = topics.DISCLOSURE_RECORDED

    disclosure_id: str
    case_id: str
    recipient: str  # the agency the information went (or would have gone) to
    channel: DisclosureChannel
    fields: list[str]
    basis: DisclosureBasis
    basis_ref: str | None = None  # the consent, referral, roster entry or meeting the basis rests on
    outcome: Literal["released", "refused"]
    released_by: str  # the service that released it (its CloudEvents source)
    at: datetime


class HouseholdLinked(EventData):
    """The lead's coordinator linked two cases as one household (one 実件数), or undid the link."""

    event_type: ClassVar[str] = "jp.marugoto.household.linked"
    topic: ClassVar[str] = topics.HOUSEHOLD_LINKED

    match_id: str
    case_id: str  # the later case
    linked_case_id: str  # the case it is the same household as
    linked: bool  # False: an earlier link was undone
    decided_by: str
    decided_at: datetime


class SupportMeetingRosterChanged(EventData):
    """An agency's membership of a municipality's 支援会議 (Art. 106-6) was set or ended; keyed by
    municipality code. The roster says who may be invited and what may be shared without consent."""

    event_type: ClassVar[str] = "jp.marugoto.support_meeting.roster_changed"
    topic: ClassVar[str] = topics.SUPPORT_MEETING_ROSTER

    agency_id: str
    member_from: date
    member_until: date | None
    # The roster entry a release under this membership rests on (the ledger's basis_ref).
    roster_ref: str
    changed_by: str
    changed_at: datetime


class MemberIssues(BaseModel):
    """Issue tags newly seen on a household member already known (by position, 0 being the first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    position: int = Field(ge=0, le=29)
    issues: list[IssueTag] = Field(min_length=1, max_length=20)


class DecisionChanges(BaseModel):
    """What a reassessment changed against the decision before it: nothing engaged is ever dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contact_id: str | None = None  # the contact whose new facts asked for it
    tier_from: Literal[1, 2, 3]
    tier_to: Literal[1, 2, 3]
    added_agencies: list[str] = []
    # Engaged before and no longer engaged by the rules on the current facts: kept on the case, since
    # only a coordinator takes an agency off (a referral cancelled with a coded reason).
    kept_agencies: list[str] = []
    added_members: int = 0
    added_issues: list[str] = []
    urgency_from: str | None = None
    urgency_to: str | None = None


PlanStatus = Literal["drafted", "approved", "superseded"]


class SupportPlanChanged(EventData):
    """A 支援プラン version was drafted, revised or approved (the 支援決定 of a 重層的支援会議).

    Goals are free text written by coordinators and may name people: they stay in conference; the event
    carries the plan's shape only.
    """

    event_type: ClassVar[str] = "jp.marugoto.plan.changed"
    topic: ClassVar[str] = topics.PLAN_CHANGED
    sealed_fields: ClassVar[tuple[str, ...]] = ("roles", "reason")

    case_id: str
    plan_id: str
    version: int = Field(ge=1)
    status: PlanStatus
    main_agency: str  # 主担当
    roles: dict[str, str]  # agency id → role (役割分担)
    goals: int = Field(ge=0, description="how many goals the plan states")
    monitoring_interval_days: int = Field(ge=1, description="business days between monitorings")
    next_evaluation: date
    changed_by: str
    reason: str | None = None  # why a revision was made (a short code or phrase, no names)
    approved_at_meeting: str | None = None  # the 重層的支援会議 whose 支援決定 approved it
    changed_at: datetime


class MonitoringDue(EventData):
    """A plan's monitoring is due: a reminder to the 主担当, then overdue (to the lead and the agenda)."""

    event_type: ClassVar[str] = "jp.marugoto.plan.monitoring_due"
    topic: ClassVar[str] = topics.MONITORING_DUE

    case_id: str
    plan_id: str
    plan_version: int
    stage: Literal["reminder", "overdue"]
    main_agency: str
    lead: str
    due_at: datetime


class MonitoringRecorded(EventData):
    """A monitoring (モニタリング) or an evaluation (評価) of a plan version was recorded."""

    event_type: ClassVar[str] = "jp.marugoto.plan.monitoring_recorded"
    topic: ClassVar[str] = topics.MONITORING_RECORDED

    case_id: str
    plan_id: str
    plan_version: int
    kind: Literal["monitoring", "evaluation"]
    recorded_by: str
    recorded_at: datetime
    due_at: datetime | date | None = None
    on_time: bool


CaseLifeState = Literal["active", "closed", "watching", "reopened"]


class CaseLifeChanged(EventData):
    """A case's life after routing moved: coordination ended (終結), with 見守り or not, or a new contact
    reopened a closed case (the same case: one 実件数)."""

    event_type: ClassVar[str] = "jp.marugoto.case.life_changed"
    topic: ClassVar[str] = topics.CASE_LIFE_CHANGED

    case_id: str
    state: CaseLifeState
    reason: ClosureReason | None = None
    main_agency: str | None = None  # 主担当 that keeps accompanying after a 終結
    watch_until: date | None = None  # the next 見守り check-in
    decided_at_meeting: str | None = None
    changed_at: datetime


class CaseTransferred(EventData):
    """転居: a case moved to another municipality of this deployment (a new case there, routed under its
    directory), or away from the deployment (closed as moved_away, the household carrying a summary)."""

    event_type: ClassVar[str] = "jp.marugoto.case.transferred"
    topic: ClassVar[str] = topics.CASE_TRANSFERRED

    case_id: str  # the case that moved away
    to_case_id: str | None  # the receiving municipality's case; None: outside the deployment
    from_municipality: str
    to_municipality: str | None
    personal_details_copied: bool  # only where a live consent covers the receiving municipality
    transferred_by: str
    transferred_at: datetime


class UseRestrictionChanged(EventData):
    """利用停止 (個人情報保護法 Art. 35): the household asked that its case's data stop being used and
    shared (`restricted`), or the stop was lifted. While it holds, no agency's feed shows the case and
    personal details are released to no one on consent or 支援会議 membership. Keyed by case id; the
    request's free-text note stays in intake."""

    event_type: ClassVar[str] = "jp.marugoto.case.use_restriction_changed"
    topic: ClassVar[str] = topics.USE_RESTRICTION_CHANGED

    case_id: str
    restricted: bool
    request_id: str
    changed_at: datetime


class CorrectionReason(StrEnum):
    """Why a member's personal details were corrected (訂正の理由), as a code; any free-text note stays in intake."""

    person_request = "person_request"  # 本人の申し出
    recorded_in_error = "recorded_in_error"  # 誤登録
    changed = "changed"  # 転居・改姓などによる変更
    other = "other"  # その他


class PersonalDetailsCorrected(EventData):
    """訂正 (個人情報保護法 Art. 34): personal details of a member of the case were corrected, and `agency_id`
    received the old value of at least one of `fields` before. Keyed by agency id, one event per such agency.
    It names the member (position) and the fields, never their values: the agency reads the new ones at
    intake (`GET /v1/cases/{id}/personal-details`, on its basis and on the ledger)."""

    event_type: ClassVar[str] = "jp.marugoto.case.personal_details_corrected"
    topic: ClassVar[str] = topics.PERSONAL_DETAILS_CORRECTED

    case_id: str
    correction_id: str
    agency_id: str
    member: int  # the member's position in the household (0-based)
    fields: list[str]  # the corrected fields the agency had received (name, kana, birth_date, address, phone)
    version: int  # the member's personal details version the correction made
    reason: CorrectionReason
    corrected_by: str
    corrected_at: datetime


class CaseErased(EventData):
    """消去: the case's personal details were erased and its key destroyed, at the end of its retention period
    or on the household's request. Every service drops its copies of the case's sensitive data; the case's
    events stay in the topics with their sensitive fields unreadable, so the counts stay rebuildable.
    Keyed by case id; says that an erasure happened, not what was erased."""

    event_type: ClassVar[str] = "jp.marugoto.case.erased"
    topic: ClassVar[str] = topics.CASE_ERASED

    case_id: str
    reason: Literal["retention", "request"]
    erased_at: datetime


class DirectoryPublished(EventData):
    """A municipality's directory version came into force (an admin's PUT at the router, or the files a
    fresh deployment was seeded from); keyed by municipality code. Every service keeps the version in
    force from it, so a change reaches them all without a restart.

    `body` is the directory file's shape (municipality, agencies, tag_partners, rules and the services'
    sections: routing, conference, metrics): no personal details."""

    event_type: ClassVar[str] = "jp.marugoto.directory.published"
    topic: ClassVar[str] = topics.DIRECTORY_PUBLISHED

    version: str  # the router's content hash of the body (DirectoryVersion.version)
    body: dict[str, Any]
    source: str  # who published it: "admin:<agency>", or the seed file
    published_at: datetime


# Defined above the models that name them in quotes.
ContactRecorded.model_rebuild()
RoutingDecided.model_rebuild()

EVENT_MODELS: dict[str, type[EventData]] = {
    m.event_type: m
    for m in (
        ConsultationReceived,
        ContactRecorded,
        ConsentGiven,
        ConsentRevoked,
        RoutingDecided,
        ReferralRequested,
        ReferralStatusChanged,
        ReferralOverdue,
        AgencyFeedEntry,
        ConferenceScheduled,
        ConferenceRescheduled,
        ConferenceCancelled,
        ConferenceHeld,
        ConferenceDecisionRecorded,
        MeetingInvitation,
        DisclosureRecorded,
        HouseholdLinked,
        SupportMeetingRosterChanged,
        SupportPlanChanged,
        MonitoringDue,
        MonitoringRecorded,
        CaseLifeChanged,
        CaseTransferred,
        UseRestrictionChanged,
        PersonalDetailsCorrected,
        CaseErased,
        DirectoryPublished,
    )
}

DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event; `municipalitycode` and `schemaversion` are extension attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_id)
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    municipalitycode: str = Field(pattern=r"^\d{6}$")
    schemaversion: int = Field(ge=1)
    data: DataT
    # Set while the event's sensitive fields are sealed (shared/sealing.py): the case whose key sealed
    # them, and the sealed part; both None once opened, or when nothing was sealed.
    sealedkey: str | None = None
    sealed: str | None = None


_ENVELOPES: dict[type[EventData], type[Envelope[Any]]] = {}


def envelope_of(model: type[DataT]) -> type[Envelope[DataT]]:
    """`Envelope[model]`, made once and kept for the life of the process.

    Pydantic keeps the classes it makes for `Envelope[X]` only weakly: once the collector took one,
    the next `Envelope[X]` built it again (schema, validator and serializer), which an intake
    submission did every few transactions.
    """
    envelope = _ENVELOPES.get(model)
    if envelope is None:
        envelope = _ENVELOPES[model] = Envelope[model]  # type: ignore[valid-type]
    return envelope


class InvalidEvent(ValueError):
    """A message that is not a valid event of the expected type; it can never be applied."""


def new_event(data: DataT, *, source: str, subject: str, municipality_code: str) -> Envelope[DataT]:
    """Wrap `data` in a fresh envelope; the subject (and message key) is the aggregate id."""
    envelope: Envelope[DataT] = envelope_of(type(data))(
        source=source,
        type=data.event_type,
        subject=subject,
        municipalitycode=municipality_code,
        schemaversion=data.schema_version,
        data=data,
    )
    return envelope


def encode(envelope: Envelope[Any]) -> bytes:
    """The envelope as UTF-8 JSON, as it travels on the wire."""
    return envelope.model_dump_json().encode()


def decode(raw: bytes, model: type[DataT]) -> Envelope[DataT]:
    """Parse and validate a wire message that must carry an event of `model`'s type.

    Sealed fields (shared/sealing.py) come back empty; a reader with the case's key opens them first.
    """
    try:
        envelope = envelope_of(model).model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(f"not a valid {model.event_type} event: {_summary(exc)}") from exc
    return _checked(envelope, model)


def decode_object(obj: Any, model: type[DataT]) -> Envelope[DataT]:
    """`decode` for a message already parsed from JSON (e.g. one whose sealed fields were opened)."""
    try:
        envelope = envelope_of(model).model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(f"not a valid {model.event_type} event: {_summary(exc)}") from exc
    return _checked(envelope, model)


def _checked(envelope: Envelope[DataT], model: type[DataT]) -> Envelope[DataT]:
    if envelope.type != model.event_type:
        raise InvalidEvent(f"expected type {model.event_type}, got {envelope.type}")
    if envelope.schemaversion > model.schema_version:
        raise InvalidEvent(f"schema version {envelope.schemaversion} is newer than {model.schema_version} known here")
    return envelope


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])
