"""Intake's logic: cases and contacts, personal details kept encrypted, consent, audited release, the disclosure
ledger, possible same households and the 支援会議 roster.

Functions take an open session and run inside the caller's transaction; events are staged in the
outbox of that same transaction.
"""

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import true
from sqlmodel import Session, col, or_, select

from services.intake.errors import (
    CaseErased,
    CaseNotFound,
    ConsentAlreadyRevoked,
    ConsentNotFound,
    HouseholdMatchDecided,
    HouseholdMatchNotFound,
    PersonalDetailsRefused,
    ReferralCompleted,
    RosterEntryNotFound,
)
from services.intake.models import (
    FIELD_LABELS,
    MAX_HOUSEHOLD,
    PERSONAL_FIELDS,
    AgencyCredential,
    AuditEntry,
    Case,
    CasePublic,
    Consent,
    ConsentCreate,
    ConsentRevoke,
    ConsultationCreate,
    Contact,
    ContactCreate,
    Disclosure,
    EmergencyRelease,
    Engagement,
    HouseholdMatch,
    IntakeOutbox,
    MatchKey,
    Member,
    MemberDetails,
    MemberIn,
    PersonalDetailsRelease,
    RosterEntryUpdate,
    SupportMeetingMember,
)
from services.intake.privacy import FieldCipher, Vault, age_band, decrypt_details, encrypt_details
from shared import outbox
from shared.auth import Principal, Scope, hash_secret, new_client_secret, verify_secret
from shared.calendar import JST
from shared.consultation import ConsultationSummary, MemberSummary
from shared.directory import Directory, UnknownArea
from shared.errors import DomainError, InvalidFields
from shared.events import (
    LIVE_REFERRAL_STATUSES,
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    ContactRecorded,
    DisclosureBasis,
    DisclosureChannel,
    DisclosureRecorded,
    Envelope,
    EventData,
    HouseholdLinked,
    MemberIssues,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    SupportMeetingRosterChanged,
    new_event,
)
from shared.ids import new_id
from shared.uow import unit_of
from shared.vocabulary import IssueTag

SOURCE = "/marugoto/intake"
ENGAGED = "engaged"
# The basis reference of the submitting agency's own reads: it collected the information itself.
SUBMITTED = "submitted"
CASE_READ_FIELDS = sorted(CasePublic.model_fields)
# What an emergency release rests on: protecting life, body or property when consent is hard to obtain.
EMERGENCY_BASIS = "個人情報保護法 Art. 27(1)(ii) / Art. 69"

Access = Literal["submitter", "engaged", "operator", "completed"]
READ_ACCESS: frozenset[Access] = frozenset({"submitter", "engaged", "operator", "completed"})
# Adding to a case (a contact) is for those still working on it, not for an agency whose part ended.
WORK_ACCESS: frozenset[Access] = frozenset({"submitter", "engaged", "operator"})

COMPLETED = "completed"
# ReferralStatusChanged.version counts from the request: requested is 1, each change adds one.
REQUESTED_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


def stage(session: Session, case: Case, data: EventData) -> None:
    """Stage `data` for publication, keyed by the case and tenanted by its municipality."""
    stage_for(session, case.id, case.municipality_code, data)


def stage_for(session: Session, case_id: str, municipality_code: str, data: EventData) -> None:
    """Stage `data` for publication, keyed by `case_id` and tenanted by `municipality_code`."""
    event = new_event(data, source=SOURCE, subject=case_id, municipality_code=municipality_code)
    outbox.stage(session, IntakeOutbox, event)


# --- credentials ------------------------------------------------------------------------------


def issue_credential(
    session: Session, *, agency_id: str, name: str, scopes: Iterable[Scope], municipalities: Iterable[str]
) -> str:
    """Create (or replace) an agency's credential for `municipalities`; returns the secret, which is never stored."""
    secret = new_client_secret()
    existing = session.get(AgencyCredential, agency_id)
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(
        AgencyCredential(
            agency_id=agency_id,
            name=name,
            scopes=sorted(s.value for s in scopes),
            municipalities=sorted(set(municipalities)),
            secret_hash=hash_secret(secret),
        )
    )
    return secret


def revoke_credential(session: Session, agency_id: str) -> bool:
    """Revoke an agency's credential; tokens already issued expire within their lifetime."""
    credential = session.get(AgencyCredential, agency_id)
    if credential is None or credential.revoked_at is not None:
        return False
    credential.revoked_at = _now()
    session.add(credential)
    return True


def list_credentials(session: Session) -> list[AgencyCredential]:
    """Every credential, active or revoked."""
    return list(session.exec(select(AgencyCredential).order_by(col(AgencyCredential.agency_id))).all())


def authenticate_client(session: Session, *, client_id: str, client_secret: str) -> AgencyCredential | None:
    """The active credential matching id and secret, or None."""
    credential = session.get(AgencyCredential, client_id)
    if credential is None or credential.revoked_at is not None:
        return None
    return credential if verify_secret(client_secret, credential.secret_hash) else None


# --- consultations and contacts ---------------------------------------------------------------


def validate_place(body: ConsultationCreate, directories: Mapping[str, Directory], labels: dict[str, str]) -> Directory:
    """The municipality's directory in force, if it is one this deployment serves and the area one of its areas."""
    directory = directories.get(body.municipality_code)
    if directory is None:
        raise InvalidFields(
            [("municipality_code", f"municipality {body.municipality_code} is not served here")], labels
        )
    try:
        directory.ancestors(body.area)
    except UnknownArea:
        known = ", ".join(sorted(a.id for a in directory.municipality.areas))
        raise InvalidFields(
            [("area", f"unknown area {body.area!r}; areas of this municipality: {known}")], labels
        ) from None
    return directory


@dataclass(frozen=True)
class Submitted:
    """What a submission opened: the case, its opening contact, and the matched cases the submitter may read."""

    case_id: str
    consultation_id: str
    received_at: datetime
    possible_duplicates: list[str]


def submit(
    session: Session,
    *,
    body: ConsultationCreate,
    principal: Principal,
    vault: Vault,
    directory_version: str | None = None,
) -> Submitted:
    """Open a case for a consultation, with its opening contact, members and their match keys.

    Every case whose match keys meet the new case's becomes a possible-same-household item for the
    municipality's lead coordinators; the submitter is told only of those it may already read, so a
    submission cannot ask whether another agency knows the household (a DV victim's, say).

    Nothing in the transaction updates these new rows, so they are written as bulk rows (one INSERT per
    table, in the order added, so that each row's parent is written before it) when it commits.
    """
    unit = unit_of(session)
    agency_id = principal.agency_id
    now = _now()
    case_id = new_id()
    members = [(new_id(), member_in, member_in.personal_details()) for member_in in body.household]
    match_keys = {member_id: set(vault.index.household_match_keys(details)) for member_id, _, details in members}
    duplicates = _cases_matching(
        session, set().union(*match_keys.values()), municipality_code=body.municipality_code, exclude=case_id
    )
    # Asked whether or not anything matched, so that the answer's time says as little as its body.
    readable = _readable_among(session, principal, duplicates)
    summary = ConsultationSummary(
        area=body.area,
        pathway=body.pathway,
        found_by=body.found_by,
        contact=body.contact,
        existing_services_fit=body.existing_services_fit,
        backup_requested=body.backup_requested,
        urgency=body.urgency,
        household=[
            MemberSummary(relation=m.relation, issues=m.issues, age_band=age_band(m.age)) for m in body.household
        ],
    )
    unit.add_row(
        Case,
        id=case_id,
        municipality_code=body.municipality_code,
        submitted_by=agency_id,
        opened_at=now,
        updated_at=now,
        possible_duplicates=duplicates,
        urgency=body.urgency.value,
        directory_version=directory_version,
    )
    contact_id = new_id()
    unit.add_row(
        Contact,
        id=contact_id,
        case_id=case_id,
        kind="opening",
        submitted_by=agency_id,
        received_at=now,
        facts=summary.model_dump(mode="json"),
    )
    for position, (member_id, member_in, details) in enumerate(members):
        unit.add_row(
            Member,
            id=member_id,
            case_id=case_id,
            position=position,
            relation=member_in.relation.value,
            age=member_in.age,
            issues=[t.value for t in member_in.issues],
            personal=encrypt_details(details, vault.cipher),
        )
    for member_id, digests in match_keys.items():
        for digest in sorted(digests):
            unit.add_row(
                MatchKey,
                digest=digest,
                member_id=member_id,
                case_id=case_id,
                municipality_code=body.municipality_code,
            )
    for matched_case_id in duplicates:
        unit.add_row(
            HouseholdMatch,
            id=new_id(),
            municipality_code=body.municipality_code,
            case_id=case_id,
            matched_case_id=matched_case_id,
            created_at=now,
        )
    stage_for(
        session,
        case_id,
        body.municipality_code,
        ConsultationReceived(
            case_id=case_id,
            consultation_id=contact_id,
            submitted_by=agency_id,
            received_at=now,
            consultation=summary,
        ),
    )
    return Submitted(case_id, contact_id, now, readable)


def _readable_among(session: Session, principal: Principal, case_ids: list[str]) -> list[str]:
    """Those of `case_ids` (all of one municipality the principal serves) that `access_of` lets it read."""
    if principal.has(Scope.operator):
        return case_ids
    query = select(Case.id).where(
        col(Case.id).in_(case_ids),
        or_(col(Case.submitted_by) == principal.agency_id, col(Case.id).in_(_referred_to(principal.agency_id))),
    )
    return sorted(session.exec(query).all())


def _referred_to(agency_id: str) -> Any:
    """The ids of cases on which the agency has, or completed, a referral (a subquery)."""
    return select(Engagement.case_id).where(
        Engagement.agency_id == agency_id, col(Engagement.status).in_(LIVE_REFERRAL_STATUSES | {COMPLETED})
    )


def _cases_matching(session: Session, digests: set[str], *, municipality_code: str, exclude: str) -> list[str]:
    if not digests:
        return []
    query = (
        select(MatchKey.case_id)
        .where(col(MatchKey.digest).in_(digests), MatchKey.municipality_code == municipality_code)
        .where(MatchKey.case_id != exclude)
        .distinct()
    )
    return sorted(session.exec(query).all())


def add_contact(session: Session, *, case: Case, body: ContactCreate, agency_id: str, vault: Vault) -> Contact:
    """Record a later consultation about the household of `case` (one more 延べ, the same 実件数), with its new facts.

    Members first seen now are appended after the known ones, their personal details encrypted and
    their match keys kept as a consultation's are; tags newly seen on known members join theirs; a
    changed urgency becomes the case's. The event carries only what is new, and never personal details.
    A case whose coordination ended (終結) takes contacts as any other: it is the same case.
    """
    # Two contacts adding members at once must not give two of them the same position.
    session.refresh(case, with_for_update=True)
    known = {m.position: m for m in session.exec(select(Member).where(Member.case_id == case.id)).all()}
    errors = [
        (f"issues.{i}.position", f"no household member at position {item.position}; known: {sorted(known)}")
        for i, item in enumerate(body.issues)
        if item.position not in known
    ]
    if len(known) + len(body.members) > MAX_HOUSEHOLD:
        errors.append(("members", f"a household has at most {MAX_HOUSEHOLD} members; this case has {len(known)}"))
    if errors:
        raise InvalidFields(errors, FIELD_LABELS)
    added_issues = _add_issues(session, known, body.issues)
    added_members = _add_members(session, case, body.members, first_position=max(known, default=-1) + 1, vault=vault)
    # Saying the urgency again changes nothing, and must not ask the router to reassess.
    urgency = body.urgency if body.urgency is not None and body.urgency.value != case.urgency else None
    now = _now()
    contact = Contact(
        id=new_id(),
        case_id=case.id,
        kind="follow_up",
        submitted_by=agency_id,
        received_at=now,
        facts={
            **body.model_dump(mode="json", include={"pathway", "found_by", "contact", "urgency"}),
            "members": [m.model_dump(mode="json") for m in added_members],
            "issues": [i.model_dump(mode="json") for i in added_issues],
        },
    )
    session.add(contact)
    if urgency is not None:
        case.urgency = urgency.value
    case.updated_at = now
    session.add(case)
    stage(
        session,
        case,
        ContactRecorded(
            case_id=case.id,
            contact_id=contact.id,
            submitted_by=agency_id,
            received_at=now,
            pathway=body.pathway,
            found_by=body.found_by,
            contact=body.contact,
            added_members=added_members,
            added_issues=added_issues,
            urgency=urgency,
        ),
    )
    return contact


def _add_issues(session: Session, known: Mapping[int, Member], items: Sequence[MemberIssues]) -> list[MemberIssues]:
    """Add the tags to the known members; returns those that are new to them, by position."""
    added: dict[int, list[IssueTag]] = {}
    for item in items:
        member = known[item.position]
        new = [tag for tag in dict.fromkeys(item.issues) if tag.value not in member.issues]
        if new:
            # A new list, not an append: the JSON column is saved only when it is assigned.
            member.issues = [*member.issues, *(tag.value for tag in new)]
            session.add(member)
            added.setdefault(item.position, []).extend(new)
    return [MemberIssues(position=position, issues=tags) for position, tags in sorted(added.items())]


def _add_members(
    session: Session, case: Case, members: Sequence[MemberIn], *, first_position: int, vault: Vault
) -> list[MemberSummary]:
    """Append `members` to the case from `first_position`, with their match keys; returns them as events carry them."""
    unit = unit_of(session)
    for position, member_in in enumerate(members, start=first_position):
        details = member_in.personal_details()
        member_id = new_id()
        unit.add_row(
            Member,
            id=member_id,
            case_id=case.id,
            position=position,
            relation=member_in.relation.value,
            age=member_in.age,
            issues=[t.value for t in member_in.issues],
            personal=encrypt_details(details, vault.cipher),
        )
        for digest in sorted(set(vault.index.household_match_keys(details))):
            unit.add_row(
                MatchKey, digest=digest, member_id=member_id, case_id=case.id, municipality_code=case.municipality_code
            )
    return [MemberSummary(relation=m.relation, issues=m.issues, age_band=age_band(m.age)) for m in members]


# --- access -----------------------------------------------------------------------------------


def get_case(session: Session, case_id: str, principal: Principal) -> Case:
    """The case, or CaseNotFound: also when it is of a municipality the credential does not serve."""
    case = session.get(Case, case_id)
    if case is None or not principal.serves(case.municipality_code):
        raise CaseNotFound(case_id)
    return case


def engaged_agencies(session: Session, case_id: str) -> set[str]:
    """Agencies with a live referral on the case (requested, received, accepted, in_progress, on_hold).

    Only they are engaged: they may read the case, add contacts and, under a consent, read personal
    details. A rejected, cancelled or failed referral ends the agency's part in the case, so it counts
    for nothing here; a completed one leaves read access to the case's history only (`access_of`).
    """
    query = select(Engagement.agency_id).where(
        Engagement.case_id == case_id, col(Engagement.status).in_(LIVE_REFERRAL_STATUSES)
    )
    return set(session.exec(query).all())


def _referrals_of(session: Session, case_id: str, agency_id: str, statuses: Iterable[str]) -> list[str]:
    query = select(Engagement.referral_id).where(
        Engagement.case_id == case_id, Engagement.agency_id == agency_id, col(Engagement.status).in_(statuses)
    )
    return sorted(session.exec(query).all())


def access_of(session: Session, case: Case, principal: Principal) -> Access | None:
    """How `principal` relates to `case`, or None when it has no business with it.

    "submitter": the agency that submitted the case; it keeps every right on it. "engaged": an agency
    with a live referral. "operator": an operator's token. "completed": an agency whose referral
    on the case was completed (and none is live); it may still read the case's history, which it
    took part in, but not personal details, since its support has ended. An agency whose referrals
    were all rejected, cancelled or failed has no access at all, and nobody reaches a case of a
    municipality its credential does not serve.
    """
    if not principal.serves(case.municipality_code):
        return None
    if principal.agency_id == case.submitted_by:
        return "submitter"
    if principal.agency_id in engaged_agencies(session, case.id):
        return "engaged"
    if principal.has(Scope.operator):
        return "operator"
    if _referrals_of(session, case.id, principal.agency_id, {COMPLETED}):
        return "completed"
    return None


def require_access(
    session: Session, case: Case, principal: Principal, *, allowed: frozenset[Access] = READ_ACCESS
) -> Access:
    """The principal's access to the case if it is one of `allowed`.

    With no part in the case the answer is that of a case that does not exist (CaseNotFound), so
    that nobody learns a household is known to the network; an agency whose referral completed knows
    the case and is told why it may only read it (ReferralCompleted).
    """
    access = access_of(session, case, principal)
    if access is None:
        raise CaseNotFound(case.id)
    if access not in allowed:
        raise ReferralCompleted("your agency's referral on this case is completed: you may read its history only")
    return access


def _served(column: Any, principal: Principal) -> Any:
    """A filter on a municipality-code column: the municipalities the credential serves."""
    return true() if principal.has(Scope.platform) else col(column).in_(sorted(principal.municipalities))


def list_cases(session: Session, principal: Principal) -> list[Case]:
    """Cases the agency submitted, is engaged on or completed a referral of, newest first."""
    query = (
        select(Case)
        .where(
            or_(col(Case.submitted_by) == principal.agency_id, col(Case.id).in_(_referred_to(principal.agency_id))),
            _served(Case.municipality_code, principal),
        )
        .order_by(col(Case.opened_at).desc())
    )
    return list(session.exec(query).all())


def timeline(session: Session, case: Case, *, access: Access, principal: Principal) -> dict[str, Any]:
    """The case with its contacts, referrals and consents, oldest first, as `access` may see it.

    A revocation's free-text note may name people, so only the submitter and operators see it. A
    partner (engaged, or its referral completed) sees its own referrals only, the lead and the submitter
    every one. A case linked as the same household is named only to a reader who may read it too.
    """
    contacts = session.exec(
        select(Contact).where(Contact.case_id == case.id).order_by(col(Contact.received_at), col(Contact.id))
    ).all()
    referrals = session.exec(
        select(Engagement).where(Engagement.case_id == case.id).order_by(col(Engagement.agency_id))
    ).all()
    if access in ("engaged", "completed") and principal.agency_id != case.lead:
        # A partner learns its own part, as the router's decision tells it: not who else is engaged.
        referrals = [r for r in referrals if r.agency_id == principal.agency_id]
    consents = session.exec(select(Consent).where(Consent.case_id == case.id).order_by(col(Consent.given_at))).all()
    return {
        **case.model_dump(include=_CASE_COLUMNS_SHOWN),
        "contacts": [c.model_dump(include={"id", "kind", "submitted_by", "received_at"}) for c in contacts],
        "referrals": [
            {"referral_id": r.referral_id, "agency_id": r.agency_id, "agency_type": r.agency_type, "status": r.status}
            for r in referrals
        ],
        "consents": [
            c.model_dump(exclude=None if access in {"submitter", "operator"} else {"revocation_note"}) for c in consents
        ],
        "linked_cases": linked_cases(session, case, principal),
        "transferred_to": _transferred_to(case),
        "transferred_from": _transferred_from(case),
    }


# The case's own columns a timeline shows; the transfer links are shown as objects of their own.
_CASE_COLUMNS_SHOWN = {
    "id",
    "municipality_code",
    "submitted_by",
    "opened_at",
    "status",
    "tier",
    "lead",
    "patterns",
    "resource_gaps",
    "directory_version",
    "closed_at",
    "erased_at",
}


def _transferred_to(case: Case) -> dict[str, Any] | None:
    if case.transferred_at is None:
        return None
    return {
        "municipality_code": case.transferred_to_municipality,
        "case_id": case.transferred_to_case_id,
        "reason": case.transfer_reason,
        "transferred_by": case.transferred_by,
        "transferred_at": case.transferred_at,
    }


def _transferred_from(case: Case) -> dict[str, Any] | None:
    if case.transferred_from_case_id is None:
        return None
    return {"municipality_code": case.transferred_from_municipality, "case_id": case.transferred_from_case_id}


def read_case(session: Session, case_id: str, principal: Principal) -> dict[str, Any] | None:
    """The case's timeline for `principal`, its release written to the ledger.

    None when the principal has no part in the case: the refusal is written to the ledger too, and
    the caller answers as if the case did not exist.
    """
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(case_id)
    access = access_of(session, case, principal)
    if access is None:
        record_disclosure(
            session, case, recipient=principal.agency_id, channel="case_read", fields=CASE_READ_FIELDS, released=False
        )
        return None
    return _released_timeline(session, case, principal, access)


def read_cases(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The timelines of `list_cases`, each release written to the ledger."""
    views = []
    for case in list_cases(session, principal):
        access = access_of(session, case, principal)
        if access is not None:
            views.append(_released_timeline(session, case, principal, access))
    return views


def _released_timeline(session: Session, case: Case, principal: Principal, access: Access) -> dict[str, Any]:
    view = timeline(session, case, access=access, principal=principal)
    basis, basis_ref = _read_basis(session, case, principal, access)
    record_disclosure(
        session,
        case,
        recipient=principal.agency_id,
        channel="case_read",
        fields=list(view),
        basis=basis,
        basis_ref=basis_ref,
    )
    return view


def _read_basis(
    session: Session, case: Case, principal: Principal, access: Access
) -> tuple[DisclosureBasis, str | None]:
    """Why `principal` may read the case: its own collection, its referral (live or completed), or operation."""
    if access == "submitter":
        # The agency collected the information itself when the household came to it.
        return "engagement", SUBMITTED
    if access == "operator":
        return "operator", None
    statuses = LIVE_REFERRAL_STATUSES if access == "engaged" else {COMPLETED}
    return "engagement", ",".join(_referrals_of(session, case.id, principal.agency_id, statuses))


# --- consent and personal details -------------------------------------------------------------


def record_consent(session: Session, *, case: Case, body: ConsentCreate, agency_id: str) -> Consent:
    """Record 本人同意 for the members it covers and publish it."""
    positions = set(session.exec(select(Member.position).where(Member.case_id == case.id)).all())
    unknown = sorted(set(body.members) - positions)
    if unknown:
        raise InvalidFields([("members", f"no household member at position(s) {unknown}")], {"members": "対象者"})
    consent = Consent(
        id=new_id(),
        case_id=case.id,
        given_by=body.given_by.value,
        members=sorted(set(body.members)),
        share_with=sorted(set(body.share_with)),
        municipalities=sorted(set(body.municipalities)),
        purpose=body.purpose,
        recorded_by=agency_id,
        given_at=body.given_at or _now(),
    )
    session.add(consent)
    stage(
        session,
        case,
        ConsentGiven(
            case_id=case.id,
            consent_id=consent.id,
            given_by=body.given_by,
            members=consent.members,
            share_with=consent.share_with,
            given_at=consent.given_at,
        ),
    )
    return consent


def revoke_consent(session: Session, *, case: Case, consent_id: str, body: ConsentRevoke) -> Consent:
    """Revoke a consent (from now on) and publish the revocation; its free-text note stays here."""
    consent = session.get(Consent, consent_id)
    if consent is None or consent.case_id != case.id:
        raise ConsentNotFound(f"case {case.id} has no consent {consent_id}")
    if consent.revoked_at is not None:
        raise ConsentAlreadyRevoked(f"consent {consent_id} was revoked at {consent.revoked_at}")
    consent.revoked_at = _now()
    consent.revocation_reason = body.reason.value
    consent.revocation_note = body.note
    session.add(consent)
    stage(
        session,
        case,
        ConsentRevoked(case_id=case.id, consent_id=consent.id, revoked_at=consent.revoked_at, reason=body.reason),
    )
    return consent


@dataclass(frozen=True)
class _Grant:
    """A release the principal has a basis for: which members, on which basis."""

    positions: set[int] | None  # None: every member
    basis: DisclosureBasis
    basis_ref: str | None
    consents: list[str]
    reason: str
    note: str | None = None  # an emergency's reason, for the ledger row only


@dataclass(frozen=True)
class _Refusal:
    """A release the principal has no basis for: the reason audited, and the error its caller hears."""

    reason: str
    error: DomainError


def _refused(reason: str) -> _Refusal:
    """A refusal of an agency that knows the case: it is told why."""
    return _Refusal(reason, PersonalDetailsRefused(reason))


@dataclass(frozen=True)
class DetailsOutcome:
    """What a request for personal details came to: the release, or the refusal to raise once recorded."""

    release: PersonalDetailsRelease | None
    reason: str
    refusal: DomainError | None = None

    def released(self) -> PersonalDetailsRelease:
        """The release; raises the refusal (call it after the attempt's records have committed)."""
        if self.refusal is not None:
            raise self.refusal
        assert self.release is not None
        return self.release


PersonalDetailsBasis = Literal["consent", "support_meeting"]


# The bases a 利用停止 stops; an emergency release (Art. 27(1)(ii)) and the submitter's own records stay.
RESTRICTED_BASES = frozenset({"consent", "support_meeting"})
USE_RESTRICTED = "利用停止: the household asked that its data stop being used and shared (個人情報保護法 Art. 35)"


def release_personal_details(
    session: Session,
    *,
    case_id: str,
    principal: Principal,
    vault: Vault,
    basis: PersonalDetailsBasis = "consent",
    emergency: EmergencyRelease | None = None,
    today: date | None = None,
) -> DetailsOutcome:
    """Decide whether `principal` may read the case's personal details, and record the attempt.

    The submitting agency collected them and may read them. Any other agency needs a live referral on
    the case (`engaged_agencies`) and a legal basis: an unrevoked consent covering it (only the members
    that consent covers), current membership of the municipality's 支援会議 (`basis="support_meeting"`,
    every member), or an emergency (`emergency`, with its note). An agency whose referral was completed,
    rejected, cancelled or failed is refused, even under a consent to share with "every engaged agency":
    its support has ended. While a 利用停止 is in effect, consent and 支援会議 membership release nothing
    (services/intake/requests.py). Granted or refused, the attempt goes to the audit log and the disclosure
    ledger; the caller raises a refusal (`DetailsOutcome.released`) only after this transaction has
    committed them.
    """
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(case_id)
    access = access_of(session, case, principal)
    if access is not None and case.erased_at is not None:
        raise CaseErased(f"case {case.id} was erased on {case.erased_at:%Y-%m-%d}: no personal details are kept")
    decision: _Grant | _Refusal
    if access is None:
        decision = _Refusal("your agency has no part in this case", CaseNotFound(case.id))
    elif access == "submitter":
        consents = session.exec(
            select(Consent.id).where(Consent.case_id == case.id, col(Consent.revoked_at).is_(None))
        ).all()
        decision = _Grant(None, "engagement", SUBMITTED, sorted(consents), "submitting agency")
    elif access == "completed":
        decision = _refused(
            "your agency's referral on this case is completed; personal details go only to engaged agencies"
        )
    elif access != "engaged":
        decision = _refused("your agency is not engaged on this case")
    elif emergency is not None:
        decision = _emergency_grant(session, case, emergency)
    elif basis == "support_meeting":
        decision = _support_meeting_grant(session, case, principal.agency_id, today or local_today())
    else:
        decision = _consent_grant(session, case, principal.agency_id)
    if case.use_restricted_since is not None and isinstance(decision, _Grant) and decision.basis in RESTRICTED_BASES:
        decision = _refused(
            "利用停止: the household asked that its data stop being used and shared (個人情報保護法 Art. 35)"
        )
    if isinstance(decision, _Grant):
        release = release_of(
            session, case, vault, positions=decision.positions, consents=decision.consents, basis=decision.basis
        )
        outcome = DetailsOutcome(release, decision.reason)
        fields = [f"members.{m.position}.{f}" for m in release.members for f in PERSONAL_FIELDS if getattr(m, f)]
    else:
        outcome = DetailsOutcome(None, decision.reason, decision.error)
        fields = sorted(PERSONAL_FIELDS)
    session.add(
        AuditEntry(
            agency_id=principal.agency_id,
            case_id=case.id,
            action="personal_details.read",
            outcome="granted" if outcome.release is not None else "refused",
            detail=outcome.reason,
        )
    )
    granted = decision if isinstance(decision, _Grant) else None
    record_disclosure(
        session,
        case,
        recipient=principal.agency_id,
        channel="personal_details",
        fields=fields,
        basis=granted.basis if granted else "none",
        basis_ref=granted.basis_ref if granted else None,
        released=granted is not None,
        note=granted.note if granted else None,
    )
    return outcome


def _consent_grant(session: Session, case: Case, agency_id: str) -> _Grant | _Refusal:
    consents = session.exec(select(Consent).where(Consent.case_id == case.id)).all()
    covering = [c for c in consents if agency_id in c.share_with or ENGAGED in c.share_with]
    live = [c for c in covering if c.revoked_at is None]
    if live:
        ids = [c.id for c in live]
        return _Grant({p for c in live for p in c.members}, "consent", ",".join(ids), ids, "consent " + ", ".join(ids))
    if covering:
        return _refused("consent to share with your agency was revoked")
    return _refused("no consent (本人同意) covers sharing with your agency, and no other basis was given")


def _support_meeting_grant(session: Session, case: Case, agency_id: str, today: date) -> _Grant | _Refusal:
    entry = session.get(SupportMeetingMember, (case.municipality_code, agency_id))
    if entry is None or not is_current(entry, today):
        return _refused(f"your agency is not a current member of the 支援会議 of municipality {case.municipality_code}")
    return _Grant(None, "support_meeting", roster_key(entry), [], "支援会議 member (社会福祉法 Art. 106-6)")


def _emergency_grant(session: Session, case: Case, emergency: EmergencyRelease) -> _Grant:
    positions = None
    if emergency.members is not None:
        known = set(session.exec(select(Member.position).where(Member.case_id == case.id)).all())
        if unknown := sorted(set(emergency.members) - known):
            raise InvalidFields([("members", f"no household member at position(s) {unknown}")], {"members": "対象者"})
        positions = set(emergency.members)
    return _Grant(positions, "emergency", EMERGENCY_BASIS, [], f"emergency release ({EMERGENCY_BASIS})", emergency.note)


def release_of(
    session: Session,
    case: Case,
    vault: Vault,
    *,
    positions: set[int] | None,
    consents: list[str],
    basis: DisclosureBasis,
) -> PersonalDetailsRelease:
    """The personal details of the case's members at `positions` (None: every member), decrypted."""
    members = session.exec(select(Member).where(Member.case_id == case.id).order_by(col(Member.position))).all()
    released = []
    for member in members:
        if positions is not None and member.position not in positions:
            continue
        details = decrypt_details(member.personal, vault.cipher).model_dump(mode="json")
        released.append(
            MemberDetails(
                position=member.position,
                relation=member.relation,
                age=member.age,
                **{field: details.get(field) for field in PERSONAL_FIELDS},
            )
        )
    return PersonalDetailsRelease(case_id=case.id, members=released, consents=consents, basis=basis)


def audit_log(
    session: Session, *, principal: Principal, case_id: str | None = None, limit: int = 500
) -> list[AuditEntry]:
    """Audit entries of the cases of the municipalities the credential serves, newest first."""
    query = (
        select(AuditEntry)
        .join(Case, col(Case.id) == col(AuditEntry.case_id))
        .where(_served(Case.municipality_code, principal))
        .order_by(col(AuditEntry.id).desc())
        .limit(limit)
    )
    if case_id is not None:
        query = query.where(AuditEntry.case_id == case_id)
    return list(session.exec(query).all())


# --- the disclosure ledger --------------------------------------------------------------------


def record_disclosure(
    session: Session,
    case: Case,
    *,
    recipient: str,
    channel: DisclosureChannel,
    fields: Iterable[str],
    basis: DisclosureBasis = "none",
    basis_ref: str | None = None,
    released: bool = True,
    note: str | None = None,
) -> Disclosure:
    """Write one release of intake's own (or its refusal, basis `none`) to the ledger, in the caller's transaction."""
    row = Disclosure(
        id=new_id(),
        case_id=case.id,
        municipality_code=case.municipality_code,
        recipient=recipient,
        channel=channel,
        fields=sorted(set(fields)),
        basis=basis if released else "none",
        basis_ref=basis_ref if released else None,
        outcome="released" if released else "refused",
        released_by=SOURCE,
        note=note,
        at=_now(),
    )
    session.add(row)
    return row


def apply_disclosure_recorded(session: Session, envelope: Envelope[DisclosureRecorded]) -> None:
    """Write another service's release to the ledger (once: the disclosure id is the row's key)."""
    data = envelope.data
    if session.get(Disclosure, data.disclosure_id) is not None:
        return
    session.add(
        Disclosure(
            id=data.disclosure_id,
            case_id=data.case_id,
            municipality_code=envelope.municipalitycode,
            recipient=data.recipient,
            channel=data.channel,
            fields=list(data.fields),
            basis=data.basis,
            basis_ref=data.basis_ref,
            outcome=data.outcome,
            released_by=data.released_by,
            at=data.at,
        )
    )


def require_operator_of(principal: Principal, case: Case) -> None:
    """CaseNotFound unless an operator of the case's municipality asks (the ledger is theirs to export)."""
    if not principal.has(Scope.operator) or not principal.serves(case.municipality_code):
        raise CaseNotFound(case.id)


def household_disclosures(session: Session, case: Case) -> list[Disclosure]:
    """The ledger of the household: the case and every case linked to it as the same household, oldest first."""
    cases = household_of(session, case.id)
    query = select(Disclosure).where(col(Disclosure.case_id).in_(sorted(cases)))
    return list(session.exec(query.order_by(col(Disclosure.at), col(Disclosure.id))).all())


DISCLOSURE_CSV_COLUMNS = (
    ("at", "日時"),
    ("case_id", "ケースID"),
    ("recipient", "提供先"),
    ("channel", "提供の経路"),
    ("fields", "提供した項目"),
    ("basis", "根拠"),
    ("basis_ref", "根拠の参照"),
    ("outcome", "結果"),
    ("released_by", "提供元"),
    ("note", "緊急提供の理由"),
    ("id", "記録ID"),
)
# A cell a spreadsheet would read as a formula (CSV injection); the note is free text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def disclosures_csv(rows: Sequence[Disclosure]) -> str:
    """The ledger rows as CSV for a 開示請求: UTF-8 with a BOM (Excel), headers in Japanese and English."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"{ja} ({en})" for en, ja in DISCLOSURE_CSV_COLUMNS])
    for row in rows:
        values = row.model_dump()
        cells = []
        for name, _ in DISCLOSURE_CSV_COLUMNS:
            value = values[name]
            cell = value.isoformat() if isinstance(value, datetime) else " ".join(value) if name == "fields" else value
            text = "" if cell is None else str(cell)
            cells.append("'" + text if text.startswith(_FORMULA_START) else text)
        writer.writerow(cells)
    return "\ufeff" + out.getvalue()


# --- possible same households -----------------------------------------------------------------


def deciding_municipalities(principal: Principal, directories: Mapping[str, Directory]) -> set[str]:
    """The municipalities whose possible-same-household items `principal` decides: as a coordinator of the
    municipality's lead agency (協働の中核), or as one of its operators."""
    return {
        code
        for code, directory in directories.items()
        if principal.serves(code)
        and (
            principal.has(Scope.operator)
            or (principal.has(Scope.coordinator) and principal.agency_id == directory.municipality.lead)
        )
    }


def list_household_matches(
    session: Session, *, municipalities: Iterable[str], status: str | None = None
) -> list[HouseholdMatch]:
    """The possible-same-household items of `municipalities`, newest first."""
    query = select(HouseholdMatch).where(col(HouseholdMatch.municipality_code).in_(sorted(municipalities)))
    if status is not None:
        query = query.where(HouseholdMatch.status == status)
    return list(session.exec(query.order_by(col(HouseholdMatch.created_at).desc(), col(HouseholdMatch.id))).all())


def decide_household_match(
    session: Session, *, match_id: str, municipalities: Iterable[str], link: bool, decided_by: str
) -> HouseholdMatch:
    """Link the item's two cases as one household (published, counted once in 実件数) or dismiss it."""
    match = session.exec(select(HouseholdMatch).where(HouseholdMatch.id == match_id).with_for_update()).first()
    if match is None or match.municipality_code not in set(municipalities):
        raise HouseholdMatchNotFound(f"no household match {match_id}")
    if match.status != "open":
        raise HouseholdMatchDecided(f"household match {match_id} is already {match.status}")
    match.status = "linked" if link else "dismissed"
    match.decided_by = decided_by
    match.decided_at = _now()
    session.add(match)
    if link:
        stage_for(
            session,
            match.case_id,
            match.municipality_code,
            HouseholdLinked(
                match_id=match.id,
                case_id=match.case_id,
                linked_case_id=match.matched_case_id,
                linked=True,
                decided_by=decided_by,
                decided_at=match.decided_at,
            ),
        )
    return match


def _linked_to(session: Session, case_ids: set[str]) -> set[str]:
    query = select(HouseholdMatch.case_id, HouseholdMatch.matched_case_id).where(
        HouseholdMatch.status == "linked",
        or_(
            col(HouseholdMatch.case_id).in_(sorted(case_ids)), col(HouseholdMatch.matched_case_id).in_(sorted(case_ids))
        ),
    )
    return {case_id for pair in session.exec(query).all() for case_id in pair}


def linked_cases(session: Session, case: Case, principal: Principal) -> list[str]:
    """The cases linked to `case` as the same household that `principal` may read too."""
    readable = []
    for other_id in sorted(_linked_to(session, {case.id}) - {case.id}):
        other = session.get(Case, other_id)
        if other is not None and access_of(session, other, principal) is not None:
            readable.append(other_id)
    return readable


def household_of(session: Session, case_id: str) -> set[str]:
    """The case and every case linked to it, directly or through others, as the same household."""
    household = {case_id}
    while (found := _linked_to(session, household) | household) != household:
        household = found
    return household


# --- 支援会議 roster ---------------------------------------------------------------------------


def local_today() -> date:
    """Today's date in Japan, by which roster memberships begin and end."""
    return datetime.now(JST).date()


def is_current(entry: SupportMeetingMember, today: date) -> bool:
    """A member today: within its dates (an entry exists only once confidentiality was acknowledged)."""
    return entry.member_from <= today and (entry.member_until is None or today <= entry.member_until)


def roster_key(entry: SupportMeetingMember) -> str:
    """The roster entry a support-meeting release rests on (municipality, agency, since)."""
    return f"support_meeting:{entry.municipality_code}:{entry.agency_id}:{entry.member_from.isoformat()}"


def roster(session: Session, municipality_code: str) -> list[SupportMeetingMember]:
    """Every membership of the municipality's 支援会議, past and current, by agency."""
    query = select(SupportMeetingMember).where(SupportMeetingMember.municipality_code == municipality_code)
    return list(session.exec(query.order_by(col(SupportMeetingMember.agency_id))).all())


def put_roster_entry(
    session: Session, *, municipality_code: str, agency_id: str, body: RosterEntryUpdate, added_by: str
) -> SupportMeetingMember:
    """Make `agency_id` a member of the municipality's 支援会議 for the body's dates (replacing its entry)."""
    errors = []
    if not body.confidentiality_acknowledged:
        errors.append(("confidentiality_acknowledged", "a member must acknowledge the confidentiality duty (守秘義務)"))
    if body.member_until is not None and body.member_until < body.member_from:
        errors.append(("member_until", "must not be before member_from"))
    if errors:
        raise InvalidFields(errors, FIELD_LABELS)
    entry = session.get(SupportMeetingMember, (municipality_code, agency_id)) or SupportMeetingMember(
        municipality_code=municipality_code,
        agency_id=agency_id,
        member_from=body.member_from,
        confidentiality_acknowledged_at=_now(),
        added_by=added_by,
    )
    entry.member_from = body.member_from
    entry.member_until = body.member_until
    entry.confidentiality_acknowledged_at = _now()
    entry.added_by = added_by
    session.add(entry)
    _stage_roster_change(session, entry, changed_by=added_by)
    return entry


def end_roster_entry(
    session: Session, *, municipality_code: str, agency_id: str, today: date, ended_by: str
) -> SupportMeetingMember:
    """End an agency's membership now: its last day was yesterday, so nothing more is shared with it today.

    The entry stays, with its dates, for the ledger rows that rest on it.
    """
    entry = session.get(SupportMeetingMember, (municipality_code, agency_id))
    if entry is None:
        raise RosterEntryNotFound(f"{agency_id} is not on the 支援会議 roster of {municipality_code}")
    last_day = today - timedelta(days=1)
    if entry.member_until is None or entry.member_until > last_day:
        entry.member_until = last_day
        session.add(entry)
        _stage_roster_change(session, entry, changed_by=ended_by)
    return entry


def _stage_roster_change(session: Session, entry: SupportMeetingMember, *, changed_by: str) -> None:
    # Conference invites to a 支援会議 only the members this event tells it of.
    event = new_event(
        SupportMeetingRosterChanged(
            agency_id=entry.agency_id,
            member_from=entry.member_from,
            member_until=entry.member_until,
            roster_ref=roster_key(entry),
            changed_by=changed_by,
            changed_at=_now(),
        ),
        source=SOURCE,
        subject=entry.municipality_code,
        municipality_code=entry.municipality_code,
    )
    outbox.stage(session, IntakeOutbox, event)


# --- events from the router -------------------------------------------------------------------


def apply_routing_decided(session: Session, envelope: Envelope[RoutingDecided]) -> None:
    """Show the decision in force on the case's timeline."""
    data = envelope.data
    case = session.get(Case, data.case_id)
    if case is None or (case.decision_sequence or 0) > data.sequence:
        return
    case.decision_sequence = data.sequence
    case.status = "routed"
    case.tier = data.tier
    case.lead = data.lead
    case.patterns = list(data.patterns)
    case.resource_gaps = list(data.resource_gaps)
    case.updated_at = _now()
    session.add(case)


def apply_referral_requested(session: Session, envelope: Envelope[ReferralRequested]) -> None:
    """Remember the engaged agency (it may then read the case, and its details with consent)."""
    data = envelope.data
    engagement = session.get(Engagement, data.referral_id)
    if engagement is None:
        session.add(
            Engagement(
                referral_id=data.referral_id,
                case_id=data.case_id,
                agency_id=data.agency_id,
                agency_type=data.agency_type,
                status="requested",
                version=REQUESTED_VERSION,
            )
        )
    elif not engagement.agency_type:
        # Its status arrived first (another topic, no order between them): keep that status and its
        # version, or a rejected agency would be engaged again.
        engagement.agency_type = data.agency_type
        session.add(engagement)


def rotate_personal_data(session: Session, cipher: FieldCipher, *, batch: int = 500) -> int:
    """Re-encrypt every stored personal field under the cipher's first key; returns how many changed.

    Run after putting a new key first in MARUGOTO_PERSONAL_DATA_KEYS; the old key can be removed once
    this has finished.
    """
    changed = 0
    offset = 0
    while members := session.exec(select(Member).order_by(col(Member.id)).offset(offset).limit(batch)).all():
        for member in members:
            stale = {field: token for field, token in member.personal.items() if cipher.needs_rotation(token)}
            if stale:
                member.personal = {**member.personal, **{f: cipher.rotate(t) for f, t in stale.items()}}
                session.add(member)
                changed += len(stale)
        offset += batch
    return changed


def apply_referral_status(session: Session, envelope: Envelope[ReferralStatusChanged]) -> None:
    """Show a referral's new state on the case's timeline; it decides whether its agency is still engaged.

    The outbox may publish a change after a later one; a change older than the one applied (a lower
    version) is ignored. A change without a version (0) cannot be ordered, so it is applied as it comes.
    """
    data = envelope.data
    engagement = session.get(Engagement, data.referral_id)
    if engagement is None:
        # The request is on another topic and may come later; its type is filled in then.
        engagement = Engagement(
            referral_id=data.referral_id, case_id=data.case_id, agency_id=data.agency_id, agency_type=""
        )
    elif data.version and data.version <= engagement.version:
        return
    engagement.status = data.to_status
    engagement.updated_at = data.changed_at
    engagement.version = max(engagement.version, data.version)
    session.add(engagement)
