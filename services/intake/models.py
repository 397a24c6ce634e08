"""Intake's tables (schema `intake`) and its API shapes.

Personal details live only here, each field encrypted (`personal` holds ciphertexts), and never go
into an event. Events carry the case id, tags, age bands, area, route and flags.
"""

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic import Field as DataField
from sqlalchemy import UniqueConstraint
from sqlmodel import JSON, Field, SQLModel, Text

from services.intake.privacy import PersonalDetails
from shared.consultation import ConsultationFacts, HouseholdMember
from shared.db import UTCDateTime
from shared.directory_in_force import DirectoryInForceColumns
from shared.events import ConsentGiver, ConsentRevocationReason, DisclosureBasis, DisclosureChannel, MemberIssues
from shared.idempotency import IdempotencyRecordBase
from shared.inbox import ConsumerPositionBase, ProcessedEventBase
from shared.municipality import is_valid_code
from shared.outbox import OutboxBase
from shared.vocabulary import ContactStatus, FoundBy, Pathway, Urgency

SCHEMA = "intake"


def _now() -> datetime:
    return datetime.now(UTC)


class AgencyCredential(SQLModel, table=True):
    """A partner agency's client credentials (only the secret's hash is kept) and scopes."""

    __tablename__ = "agency_credential"
    __table_args__ = {"schema": SCHEMA}

    agency_id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=200)
    scopes: list[str] = Field(sa_type=JSON)
    # The municipalities (tenants) it serves; the `platform` scope reaches them all.
    municipalities: list[str] = Field(default_factory=list, sa_type=JSON)
    secret_hash: str = Field(max_length=300)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DirectoryInForce(DirectoryInForceColumns, table=True):
    """The directory version in force for a municipality, as the router last published it
    (shared/directory_in_force.py)."""

    __tablename__ = "directory_in_force"
    __table_args__ = {"schema": SCHEMA}


class Case(SQLModel, table=True):
    """A household's case (ケース): opened by its first consultation, joined by later contacts."""

    __tablename__ = "case"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    submitted_by: str = Field(max_length=100, index=True)
    opened_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    status: str = Field(default="received", max_length=20)
    tier: int | None = None
    decision_sequence: int | None = None
    lead: str | None = Field(default=None, max_length=100)
    patterns: list[str] = Field(default_factory=list, sa_type=JSON)
    resource_gaps: list[str] = Field(default_factory=list, sa_type=JSON)
    possible_duplicates: list[str] = Field(default_factory=list, sa_type=JSON)
    updated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    # The urgency in force: the opening consultation's, until a later contact changes it.
    urgency: str = Field(default="routine", max_length=20)
    # 転居 away: set once, on the case the household left (to_case_id None: outside this deployment).
    transferred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    transferred_by: str | None = Field(default=None, max_length=100)
    # The directory version the consultation's area was accepted under (None: opened before versions).
    directory_version: str | None = Field(default=None, max_length=40)
    transfer_reason: str | None = Field(default=None, max_length=20)
    transferred_to_municipality: str | None = Field(default=None, max_length=6)
    transferred_to_case_id: str | None = Field(default=None, max_length=36)
    # 転居 in: on the case a transfer opened, the case the household came from.
    transferred_from_case_id: str | None = Field(default=None, max_length=36)
    transferred_from_municipality: str | None = Field(default=None, max_length=6)
    # 利用停止 in effect since (None: the case's data may be used and shared on their bases).
    use_restricted_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # 終結 as conference last reported it (None: open, or reopened); the retention period counts from it.
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The case's personal details were erased (retention or a 消去 request): what was erased is not kept.
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    erasure_reason: str | None = Field(default=None, max_length=20)


class Contact(SQLModel, table=True):
    """One consultation (相談) about a case: the first opens it, later ones join it (延べ件数)."""

    __tablename__ = "contact"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key=f"{SCHEMA}.case.id", index=True, max_length=36)
    kind: str = Field(max_length=20)  # "opening" or "follow_up"
    submitted_by: str = Field(max_length=100)
    received_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    facts: dict[str, Any] = Field(sa_type=JSON)


class Member(SQLModel, table=True):
    """A household member of a case; `personal` maps field names to ciphertexts."""

    __tablename__ = "member"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key=f"{SCHEMA}.case.id", index=True, max_length=36)
    position: int
    relation: str = Field(max_length=20)
    age: int | None = None
    issues: list[str] = Field(sa_type=JSON)
    personal: dict[str, str] = Field(default_factory=dict, sa_type=JSON)


class MatchKey(SQLModel, table=True):
    """A blind-index value of a member, by which a repeat submission for the household is recognised."""

    __tablename__ = "match_key"
    __table_args__ = {"schema": SCHEMA}

    digest: str = Field(primary_key=True, max_length=64)
    member_id: str = Field(primary_key=True, foreign_key=f"{SCHEMA}.member.id", max_length=36)
    case_id: str = Field(index=True, max_length=36)
    municipality_code: str = Field(max_length=6)


class Engagement(SQLModel, table=True):
    """An agency engaged on a case by a referral, as learnt from the router's events."""

    __tablename__ = "engagement"
    __table_args__ = {"schema": SCHEMA}

    referral_id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    agency_id: str = Field(index=True, max_length=100)
    agency_type: str = Field(max_length=100)
    status: str = Field(default="requested", max_length=20)
    updated_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    # The referral's version its status was read from (ReferralStatusChanged.version); 0 = unknown.
    version: int = 0


class Consent(SQLModel, table=True):
    """本人同意: who gave it, for which members, to share with whom, when; and its revocation."""

    __tablename__ = "consent"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key=f"{SCHEMA}.case.id", index=True, max_length=36)
    given_by: str = Field(max_length=100)
    members: list[int] = Field(sa_type=JSON)
    share_with: list[str] = Field(sa_type=JSON)
    # Municipalities (codes) the members' details may follow the household to when it moves (転居).
    municipalities: list[str] = Field(default_factory=list, sa_type=JSON)
    purpose: str = Field(max_length=200)
    recorded_by: str = Field(max_length=100)
    given_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revocation_reason: str | None = Field(default=None, max_length=200)
    # Free text that may name people: kept here only, never put in an event.
    revocation_note: str | None = Field(default=None, sa_type=Text)


class SubjectRequest(SQLModel, table=True):
    """A request of the household under 個人情報保護法 (開示・訂正・利用停止・消去), with its outcome.

    `kind` is use_restriction (利用停止, Art. 35): in effect from when it is recorded until lifted; or
    disclosure (開示, Art. 33): answered at once by its export (services/intake/disclosure_export.py).
    """

    __tablename__ = "subject_request"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key=f"{SCHEMA}.case.id", index=True, max_length=36)
    kind: str = Field(max_length=30)
    requested_by: str = Field(max_length=30)  # a ConsentGiver code: who asked, never a name
    received_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by: str = Field(max_length=100)
    # in_effect | lifted (use_restriction); corrected (correction); disclosed (disclosure)
    status: str = Field(max_length=20)
    # Free text that may name people: kept here only, never put in an event.
    note: str | None = Field(default=None, sa_type=Text)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = Field(default=None, max_length=100)
    close_note: str | None = Field(default=None, sa_type=Text)
    # When the answer is due (開示・訂正: without delay, at the latest the municipality's set period).
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PersonalDetailVersion(SQLModel, table=True):
    """A 訂正 of a member's personal details (services/intake/corrections.py): the version it made, the fields
    it changed with their previous values (ciphertexts, as `Member.personal` holds them), who and why.

    The member's details as first submitted are version 1; each correction adds one.
    """

    __tablename__ = "personal_detail_version"
    __table_args__ = (UniqueConstraint("case_id", "position", "version"), {"schema": SCHEMA})

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key=f"{SCHEMA}.case.id", index=True, max_length=36)
    position: int
    version: int
    fields: list[str] = Field(sa_type=JSON)
    # Field name to the ciphertext it held before; a field the member had no value for is absent.
    previous: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    corrected_by: str = Field(max_length=100)
    reason: str = Field(max_length=30)  # a CorrectionReason code
    request_id: str = Field(max_length=36)  # the household's request (SubjectRequest, kind correction)
    # Free text that may name people: kept here only, never put in an event.
    note: str | None = Field(default=None, sa_type=Text)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """An append-only record of every attempt to read personal details (granted or refused).

    On PostgreSQL a trigger refuses UPDATE and DELETE (created by the first migration).
    """

    __tablename__ = "audit_log"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    agency_id: str = Field(max_length=100, index=True)
    case_id: str = Field(max_length=36, index=True)
    action: str = Field(max_length=60)
    outcome: str = Field(max_length=20)
    detail: str = Field(default="", sa_type=Text)


class HouseholdMatch(SQLModel, table=True):
    """A possible same household (同一世帯の可能性): a new case whose members share match keys with an older case.

    Raised to the municipality's lead coordinators, who link or dismiss it; it names cases, never people.
    """

    __tablename__ = "household_match"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=36)
    municipality_code: str = Field(max_length=6, index=True)
    case_id: str = Field(max_length=36, index=True)  # the new case
    matched_case_id: str = Field(max_length=36, index=True)
    created_at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)
    status: str = Field(default="open", max_length=20)  # open, linked or dismissed
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Disclosure(SQLModel, table=True):
    """The disclosure ledger (開示記録): one release of case information to an agency, or its refusal.

    Append-only like the audit log: on PostgreSQL a trigger refuses UPDATE and DELETE (migration 0004).
    Names the fields, never their values.
    """

    __tablename__ = "disclosure"
    __table_args__ = {"schema": SCHEMA}

    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(max_length=36, index=True)
    municipality_code: str = Field(max_length=6)
    recipient: str = Field(max_length=100)
    channel: str = Field(max_length=30)
    fields: list[str] = Field(sa_type=JSON)
    basis: str = Field(max_length=20)
    basis_ref: str | None = Field(default=None, sa_type=Text)
    outcome: str = Field(max_length=20)
    released_by: str = Field(max_length=100)
    # An emergency release's reason, which may name people: kept here only, never put in an event.
    note: str | None = Field(default=None, sa_type=Text)
    at: datetime = Field(default_factory=_now, sa_type=UTCDateTime)


class SupportMeetingMember(SQLModel, table=True):
    """An agency's membership of a municipality's 支援会議 (社会福祉法 Art. 106-6), from `member_from`."""

    __tablename__ = "support_meeting_member"
    __table_args__ = {"schema": SCHEMA}

    municipality_code: str = Field(primary_key=True, max_length=6)
    agency_id: str = Field(primary_key=True, max_length=100)
    member_from: date
    member_until: date | None = None
    confidentiality_acknowledged_at: datetime = Field(sa_type=UTCDateTime)
    added_by: str = Field(max_length=100)


class IntakeIdempotencyRecord(IdempotencyRecordBase, table=True):
    """Responses of POST requests that carried an Idempotency-Key."""

    __tablename__ = "idempotency_record"
    __table_args__ = {"schema": SCHEMA}


class IntakeOutbox(OutboxBase, table=True):
    """Events intake has committed to publish."""

    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class IntakeProcessedEvent(ProcessedEventBase, table=True):
    """Events intake has applied (routing decisions and referrals of its cases)."""

    __tablename__ = "processed_event"
    __table_args__ = {"schema": SCHEMA}


class IntakeConsumerPosition(ConsumerPositionBase, table=True):
    """Where intake's consumer stands on each topic-partition, stored with the effects of what it applied."""

    __tablename__ = "consumer_position"
    __table_args__ = {"schema": SCHEMA}


# --- API shapes -------------------------------------------------------------------------------


PERSONAL_FIELDS = {"name", "kana", "birth_date", "address", "phone"}
MAX_HOUSEHOLD = 30


class MemberIn(HouseholdMember, PersonalDetails):
    """A household member as a partner agency submits it; the personal details (stored encrypted, never
    published) are optional."""

    def personal_details(self) -> PersonalDetails:
        """The member's personal details alone."""
        return PersonalDetails.model_validate(self.model_dump(include=PERSONAL_FIELDS, exclude_none=True))


def _check_municipality_code(value: str) -> str:
    if not is_valid_code(value):
        raise ValueError("check digit does not match (全国地方公共団体コード)")
    return value


MunicipalityCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$"), AfterValidator(_check_municipality_code)]


class ConsultationCreate(ConsultationFacts):
    """Body of POST /v1/consultations: the municipality, the consultation and the household."""

    municipality_code: str = DataField(pattern=r"^\d{6}$", description="全国地方公共団体コード (6 digits)")
    household: list[MemberIn] = DataField(min_length=1, max_length=MAX_HOUSEHOLD, description="世帯")

    @field_validator("municipality_code")
    @classmethod
    def _check_digit(cls, value: str) -> str:
        return _check_municipality_code(value)


class DuplicateCandidate(BaseModel):
    """An existing case that may be the same household (offered as a link, never merged)."""

    case_id: str
    add_contact: str = DataField(description="POST here to add this consultation to that case instead")


class ConsultationAccepted(BaseModel):
    """Response to a submitted consultation."""

    case_id: str
    consultation_id: str
    received_at: datetime
    possible_duplicates: list[DuplicateCandidate] = DataField(
        default=[],
        description="Cases your agency may already read that may be the same household; other matches go to "
        "the municipality's lead coordinators and are never named here",
    )


class ContactCreate(BaseModel):
    """Body of POST /v1/cases/{id}/contacts: a later consultation about the same household, with any new facts."""

    model_config = ConfigDict(extra="forbid")

    pathway: Pathway = DataField(description="相談受付経路")
    found_by: FoundBy = DataField(default=FoundBy.window, description="把握の経緯")
    urgency: Urgency | None = DataField(default=None, description="緊急度, when it changed (null: unchanged)")
    contact: ContactStatus = DataField(
        default=ContactStatus.reached, description="本人との接触: reached once someone has spoken with the person"
    )
    members: list[MemberIn] = DataField(
        default=[],
        max_length=MAX_HOUSEHOLD - 1,
        description="世帯員 first seen at this contact, appended after the known ones (as a consultation's "
        "household: personal details optional, stored encrypted, never published)",
    )
    issues: list[MemberIssues] = DataField(
        default=[],
        max_length=MAX_HOUSEHOLD,
        description="課題 newly seen on members already known, by position (0-based, as in the consultation)",
    )


class ContactAccepted(BaseModel):
    """Response to an added contact."""

    case_id: str
    contact_id: str
    received_at: datetime


class ConsentCreate(BaseModel):
    """Body of POST /v1/cases/{id}/consents: 本人同意 to share personal details."""

    model_config = ConfigDict(extra="forbid")

    given_by: ConsentGiver = DataField(
        description="同意者, as a code: self 本人, family 家族, guardian 成年後見人等, legal_representative "
        "法定代理人・任意代理人, other その他. Never a name: consent events are published."
    )
    members: list[int] = DataField(min_length=1, description="対象者: positions of the members it covers (0-based)")
    share_with: list[str] = DataField(
        min_length=1, description="共有先: agency ids, or 'engaged' for every agency engaged on the case"
    )
    municipalities: list[MunicipalityCode] = DataField(
        default=[],
        max_length=20,
        description="転居先: municipality codes the covered members' personal details may follow the household "
        "to when it moves (全国地方公共団体コード, 6 digits)",
    )
    purpose: str = DataField(default="multi-agency support", max_length=200, description="利用目的")
    given_at: datetime | None = DataField(default=None, description="同意日時 (default: now)")


class ConsentRevoke(BaseModel):
    """Body of a consent revocation."""

    model_config = ConfigDict(extra="forbid")

    reason: ConsentRevocationReason = DataField(
        description="撤回理由, as a code: person_request 本人の申し出, representative_request 家族・代理人の申し出, "
        "support_ended 支援の終了, recorded_in_error 誤登録, other その他. Published with the revocation."
    )
    note: str | None = DataField(
        default=None,
        min_length=1,
        max_length=500,
        description="撤回の経緯 (free text): stored in intake only, never published; shown only to the "
        "submitting agency and operators.",
    )


class UseRestrictionCreate(BaseModel):
    """Body of POST /v1/cases/{id}/use-restriction: the household asks that its data stop being used and
    shared (利用停止, 個人情報保護法 Art. 35)."""

    model_config = ConfigDict(extra="forbid")

    requested_by: ConsentGiver = DataField(
        description="請求者, as a code: self 本人, family 家族, guardian 成年後見人等, legal_representative "
        "法定代理人・任意代理人, other その他. Never a name: the change is published."
    )
    received_at: datetime | None = DataField(default=None, description="受付日時 (default: now)")
    note: str | None = DataField(
        default=None,
        min_length=1,
        max_length=500,
        description="経緯 (free text): stored in intake only, never published; shown only to the submitting "
        "agency and operators.",
    )


class UseRestrictionLift(BaseModel):
    """Body of lifting a 利用停止 (the household withdrew its request, or the stop was found unfounded)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = DataField(
        default=None, min_length=1, max_length=500, description="解除の経緯 (free text, kept in intake only)"
    )


class SubjectRequestPublic(BaseModel):
    """A household's request as the submitting agency and operators see it."""

    id: str
    case_id: str
    kind: str
    requested_by: ConsentGiver
    received_at: datetime
    recorded_by: str
    status: str
    note: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_note: str | None
    deadline: datetime | None = DataField(
        default=None, description="回答期限: when the answer is due (the municipality's period from receipt)"
    )


class ConsentPublic(BaseModel):
    """A consent as the case's agencies see it."""

    id: str
    given_by: ConsentGiver
    members: list[int]
    share_with: list[str]
    municipalities: list[str] = DataField(default=[], description="転居先 the consent covers")
    purpose: str
    given_at: datetime
    revoked_at: datetime | None
    revocation_reason: ConsentRevocationReason | None
    revocation_note: str | None = DataField(
        default=None, description="The revocation's free-text note; null for agencies other than the submitter"
    )


class ReferralSummary(BaseModel):
    """A referral of the case and where it stands."""

    referral_id: str
    agency_id: str
    agency_type: str
    status: str


class TransferOut(BaseModel):
    """Where the household moved (転居): the receiving municipality, and its case when this deployment serves it."""

    municipality_code: str
    case_id: str | None = DataField(description="The receiving municipality's case; null outside this deployment")
    reason: str
    transferred_by: str
    transferred_at: datetime


class TransferIn(BaseModel):
    """Where the household came from (転居): the case it left."""

    municipality_code: str
    case_id: str


class ContactSummary(BaseModel):
    """A contact in the case's timeline."""

    id: str
    kind: Literal["opening", "follow_up"]
    submitted_by: str
    received_at: datetime


class CasePublic(BaseModel):
    """A case's timeline as its agencies see it (no personal details)."""

    id: str
    municipality_code: str
    submitted_by: str
    opened_at: datetime
    status: str
    tier: int | None
    lead: str | None
    patterns: list[str]
    resource_gaps: list[str]
    directory_version: str | None = DataField(
        default=None,
        description="the directory version (as the router published it) the consultation was checked against",
    )
    contacts: list[ContactSummary]
    referrals: list[ReferralSummary]
    consents: list[ConsentPublic]
    linked_cases: list[str] = DataField(
        default=[], description="Cases linked to this one as the same household, among those you may read too"
    )
    transferred_to: TransferOut | None = DataField(default=None, description="転居: where the household moved")
    transferred_from: TransferIn | None = DataField(
        default=None, description="転居: the case this one was opened from when the household moved here"
    )
    closed_at: datetime | None = DataField(default=None, description="終結, from which the retention period counts")
    erased_at: datetime | None = DataField(
        default=None, description="消去: the case's personal details were erased (nothing of them is kept)"
    )


class MemberDetails(BaseModel):
    """A member's personal details, as released to an authorised, consented agency."""

    position: int
    relation: str
    age: int | None
    name: str | None
    kana: str | None
    birth_date: str | None
    address: str | None
    phone: str | None


class PersonalDetailsRelease(BaseModel):
    """The personal details an agency may see of a case, on which legal basis and under which consents."""

    case_id: str
    members: list[MemberDetails]
    consents: list[str]
    basis: DisclosureBasis = DataField(
        description="consent (本人同意), engagement (the submitting agency's own collection), support_meeting "
        "(支援会議, 社会福祉法 Art. 106-6) or emergency (個人情報保護法 Art. 27(1)(ii))"
    )


class EmergencyRelease(BaseModel):
    """Body of an emergency release of personal details (個人情報保護法 Art. 27(1)(ii), Art. 69)."""

    model_config = ConfigDict(extra="forbid")

    note: str = DataField(
        min_length=10,
        max_length=2000,
        description="Why life, body or property is at risk and consent is hard to obtain; kept in the "
        "disclosure ledger only, never published",
    )
    members: list[int] | None = DataField(
        default=None, min_length=1, description="Positions of the members needed (default: every member)"
    )


class HouseholdMatchPublic(BaseModel):
    """A possible same household, as the municipality's lead coordinators and operators see it."""

    id: str
    municipality_code: str
    case_id: str
    matched_case_id: str
    created_at: datetime
    status: Literal["open", "linked", "dismissed"]
    decided_by: str | None
    decided_at: datetime | None


class DisclosurePublic(BaseModel):
    """One row of the disclosure ledger, as an operator exports it for a 開示請求."""

    id: str
    at: datetime
    case_id: str
    recipient: str
    # erasure: the row saying that the case was erased (消去), by whom and when; it names no field.
    channel: DisclosureChannel | Literal["erasure"]
    fields: list[str]
    basis: DisclosureBasis
    basis_ref: str | None
    outcome: Literal["released", "refused", "erased"]
    released_by: str
    note: str | None


class RosterEntryUpdate(BaseModel):
    """Body of PUT …/support-meeting-roster/{agency_id}: an agency's membership of the 支援会議."""

    model_config = ConfigDict(extra="forbid")

    member_from: date = DataField(description="構成員となった日")
    member_until: date | None = DataField(default=None, description="構成員でなくなる日 (none: open-ended)")
    confidentiality_acknowledged: bool = DataField(
        description="守秘義務 (Art. 106-6(6)) acknowledged by the agency; must be true"
    )


class RosterEntryPublic(BaseModel):
    """An agency's membership of a municipality's 支援会議, and whether it is current today."""

    municipality_code: str
    agency_id: str
    member_from: date
    member_until: date | None
    confidentiality_acknowledged_at: datetime
    added_by: str
    current: bool


class AuditEntryPublic(BaseModel):
    """One audit log entry."""

    id: int
    at: datetime
    agency_id: str
    case_id: str
    action: str
    outcome: str
    detail: str


class TransferReason(StrEnum):
    """Why a case goes to another municipality, as a code."""

    moved = "moved"  # 転居


class TransferCreate(BaseModel):
    """Body of POST /v1/cases/{id}/transfers: the household moved (転居) to another municipality."""

    model_config = ConfigDict(extra="forbid")

    to_municipality_code: str = DataField(pattern=r"^\d{6}$", description="転居先 (全国地方公共団体コード, 6 digits)")
    to_area: str | None = DataField(
        default=None,
        min_length=1,
        max_length=64,
        description="圏域 of the receiving municipality: required when this deployment serves it",
    )
    reason: TransferReason = DataField(description="理由, as a code: moved 転居")

    @field_validator("to_municipality_code")
    @classmethod
    def _check_digit(cls, value: str) -> str:
        return _check_municipality_code(value)


class TransferAccepted(BaseModel):
    """Response to a transfer: the receiving case (within this deployment) or the hand-off summary to print."""

    case_id: str
    to_municipality_code: str
    to_case_id: str | None = DataField(description="The case opened in the receiving municipality; null outside")
    personal_details_copied: bool = DataField(
        description="Whether personal details went with it (only where a live consent covers that municipality)"
    )
    transferred_at: datetime
    handoff_summary: str | None = DataField(
        description="Outside this deployment: GET here for the printable summary the household carries"
    )


class TokenResponse(BaseModel):
    """An OAuth 2.0 access token (client credentials grant, RFC 6749 §4.4)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


FIELD_LABELS = {
    "municipality_code": "市町村コード",
    "area": "圏域",
    "pathway": "相談受付経路",
    "found_by": "把握の経緯",
    "existing_services_fit": "既存サービスの活用可否",
    "backup_requested": "バックアップ要請",
    "urgency": "緊急度",
    "household": "世帯",
    "relation": "続柄",
    "age": "年齢",
    "issues": "課題",
    "name": "氏名",
    "kana": "フリガナ",
    "birth_date": "生年月日",
    "address": "住所",
    "phone": "電話番号",
    "given_by": "同意者",
    "members": "対象者",
    "share_with": "共有先",
    "purpose": "利用目的",
    "given_at": "同意日時",
    "reason": "理由",
    "municipalities": "転居先",
    "position": "世帯員の番号",
    "to_municipality_code": "転居先の市町村コード",
    "to_area": "転居先の圏域",
    "note": "経緯・理由",
    "member": "世帯員",
    "details": "訂正後の個人情報",
    "requested_by": "請求者",
    "received_at": "受付日時",
    "member_from": "構成員となった日",
    "member_until": "構成員でなくなる日",
    "confidentiality_acknowledged": "守秘義務の確認",
    "client_id": "クライアントID",
    "client_secret": "クライアントシークレット",
    "grant_type": "グラント種別",
}
