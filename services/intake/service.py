"""Intake's logic: cases and contacts, personal details kept encrypted, consent, and audited release.

Functions take an open session and run inside the caller's transaction; events are staged in the
outbox of that same transaction.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlmodel import Session, col, or_, select

from services.intake.models import (
    PERSONAL_FIELDS,
    AgencyCredential,
    AuditEntry,
    Case,
    Consent,
    ConsentCreate,
    ConsentRevoke,
    ConsultationCreate,
    Contact,
    ContactCreate,
    Engagement,
    IntakeOutbox,
    MatchKey,
    Member,
    MemberDetails,
    PersonalDetailsRelease,
)
from services.intake.privacy import BlindIndex, FieldCipher, age_band, decrypt_details, encrypt_details
from shared import bulk, outbox
from shared.auth import Principal, Scope, hash_secret, new_client_secret, verify_secret
from shared.consultation import ConsultationSummary, MemberSummary
from shared.directory import Directory, UnknownArea
from shared.events import (
    ConsentGiven,
    ConsentRevoked,
    ConsultationReceived,
    ContactRecorded,
    EventData,
    ReferralRequested,
    ReferralStatusChanged,
    RoutingDecided,
    new_event,
)
from shared.ids import new_id
from shared.problems import Problem, invalid_fields

SOURCE = "/marugoto/intake"
ENGAGED = "engaged"

Access = Literal["submitter", "engaged", "operator", "completed"]
READ_ACCESS: frozenset[Access] = frozenset({"submitter", "engaged", "operator", "completed"})
# Adding to a case (a contact) is for those still working on it, not for an agency whose part ended.
WORK_ACCESS: frozenset[Access] = frozenset({"submitter", "engaged", "operator"})

# FHIR Task states in which a referral still engages its agency on the case.
LIVE_REFERRAL_STATUSES = frozenset({"requested", "received", "accepted", "in_progress", "on_hold"})
COMPLETED = "completed"


@dataclass(frozen=True)
class Vault:
    """What protects personal details: the field cipher and the blind index."""

    cipher: FieldCipher
    index: BlindIndex


def _now() -> datetime:
    return datetime.now(UTC)


def _stage(session: Session, case: Case, data: EventData) -> None:
    _stage_for(session, case.id, case.municipality_code, data)


def _stage_for(session: Session, case_id: str, municipality_code: str, data: EventData) -> None:
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


def validate_place(body: ConsultationCreate, directories: Mapping[str, Directory], labels: dict[str, str]) -> None:
    """The municipality must be one this deployment serves and the area one of its areas."""
    directory = directories.get(body.municipality_code)
    if directory is None:
        raise invalid_fields(
            [("municipality_code", f"municipality {body.municipality_code} is not served here")], labels
        )
    try:
        directory.ancestors(body.area)
    except UnknownArea:
        known = ", ".join(sorted(a.id for a in directory.municipality.areas))
        raise invalid_fields(
            [("area", f"unknown area {body.area!r}; areas of this municipality: {known}")], labels
        ) from None


@dataclass(frozen=True)
class Submitted:
    """What a submission opened: the case, its opening contact, and cases that may be the same household."""

    case_id: str
    consultation_id: str
    received_at: datetime
    possible_duplicates: list[str]


def submit(session: Session, *, body: ConsultationCreate, agency_id: str, vault: Vault) -> Submitted:
    """Open a case for a consultation, with its opening contact, members and their match keys.

    Nothing in the transaction updates these new rows, so they are written as bulk rows (one INSERT per
    table, in the order added, so that each row's parent is written before it) when it commits.
    """
    now = _now()
    case_id = new_id()
    members = [(new_id(), member_in, member_in.personal_details()) for member_in in body.household]
    match_keys = {member_id: set(vault.index.household_match_keys(details)) for member_id, _, details in members}
    duplicates = _cases_matching(
        session, set().union(*match_keys.values()), municipality_code=body.municipality_code, exclude=case_id
    )
    summary = ConsultationSummary(
        area=body.area,
        pathway=body.pathway,
        found_by=body.found_by,
        existing_services_fit=body.existing_services_fit,
        backup_requested=body.backup_requested,
        urgency=body.urgency,
        household=[
            MemberSummary(relation=m.relation, issues=m.issues, age_band=age_band(m.age)) for m in body.household
        ],
    )
    bulk.add_row(
        session,
        Case,
        id=case_id,
        municipality_code=body.municipality_code,
        submitted_by=agency_id,
        opened_at=now,
        updated_at=now,
        possible_duplicates=duplicates,
    )
    contact_id = new_id()
    bulk.add_row(
        session,
        Contact,
        id=contact_id,
        case_id=case_id,
        kind="opening",
        submitted_by=agency_id,
        received_at=now,
        facts=summary.model_dump(mode="json"),
    )
    for position, (member_id, member_in, details) in enumerate(members):
        bulk.add_row(
            session,
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
            bulk.add_row(
                session,
                MatchKey,
                digest=digest,
                member_id=member_id,
                case_id=case_id,
                municipality_code=body.municipality_code,
            )
    _stage_for(
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
    return Submitted(case_id, contact_id, now, duplicates)


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


def add_contact(session: Session, *, case: Case, body: ContactCreate, agency_id: str) -> Contact:
    """Record a later consultation about the household of `case` (one more 延べ, the same 実件数)."""
    now = _now()
    contact = Contact(
        id=new_id(),
        case_id=case.id,
        kind="follow_up",
        submitted_by=agency_id,
        received_at=now,
        facts=body.model_dump(mode="json"),
    )
    session.add(contact)
    case.updated_at = now
    session.add(case)
    _stage(
        session,
        case,
        ContactRecorded(
            case_id=case.id,
            contact_id=contact.id,
            submitted_by=agency_id,
            received_at=now,
            pathway=body.pathway,
            found_by=body.found_by,
        ),
    )
    return contact


# --- access -----------------------------------------------------------------------------------


def get_case(session: Session, case_id: str) -> Case:
    """The case, or a 404 problem."""
    case = session.get(Case, case_id)
    if case is None:
        raise Problem(404, "case-not-found", f"no case {case_id}")
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


def _completed_referral(session: Session, case_id: str, agency_id: str) -> bool:
    query = select(Engagement.referral_id).where(
        Engagement.case_id == case_id, Engagement.agency_id == agency_id, Engagement.status == COMPLETED
    )
    return session.exec(query).first() is not None


def access_of(session: Session, case: Case, principal: Principal) -> Access | None:
    """How `principal` relates to `case`, or None when it has no business with it.

    "submitter": the agency that submitted the case; it keeps every right on it. "engaged": an agency
    with a live referral. "operator": an operator's token. "completed": an agency whose referral
    on the case was completed (and none is live); it may still read the case's history, which it
    took part in, but not personal details, since its support has ended. An agency whose referrals
    were all rejected, cancelled or failed has no access at all.
    """
    if principal.agency_id == case.submitted_by:
        return "submitter"
    if principal.agency_id in engaged_agencies(session, case.id):
        return "engaged"
    if principal.has(Scope.operator):
        return "operator"
    if _completed_referral(session, case.id, principal.agency_id):
        return "completed"
    return None


def require_access(
    session: Session, case: Case, principal: Principal, *, allowed: frozenset[Access] = READ_ACCESS
) -> Access:
    """The principal's access to the case if it is one of `allowed`, or a 403 problem (existence is not hidden)."""
    access = access_of(session, case, principal)
    if access is None:
        raise Problem(403, "not-your-case", "this case was neither submitted by nor referred to your agency")
    if access not in allowed:
        raise Problem(
            403, "referral-completed", "your agency's referral on this case is completed: you may read its history only"
        )
    return access


def list_cases(session: Session, principal: Principal) -> list[Case]:
    """Cases the agency submitted, is engaged on or completed a referral of, newest first."""
    referred = select(Engagement.case_id).where(
        Engagement.agency_id == principal.agency_id,
        col(Engagement.status).in_(LIVE_REFERRAL_STATUSES | {COMPLETED}),
    )
    query = (
        select(Case)
        .where(or_(col(Case.submitted_by) == principal.agency_id, col(Case.id).in_(referred)))
        .order_by(col(Case.opened_at).desc())
    )
    return list(session.exec(query).all())


def timeline(session: Session, case: Case, *, access: Access) -> dict[str, Any]:
    """The case with its contacts, referrals and consents, oldest first, as `access` may see it.

    A revocation's free-text note may name people, so only the submitter and operators see it.
    """
    contacts = session.exec(
        select(Contact).where(Contact.case_id == case.id).order_by(col(Contact.received_at), col(Contact.id))
    ).all()
    referrals = session.exec(
        select(Engagement).where(Engagement.case_id == case.id).order_by(col(Engagement.agency_id))
    ).all()
    consents = session.exec(select(Consent).where(Consent.case_id == case.id).order_by(col(Consent.given_at))).all()
    return {
        **case.model_dump(exclude={"possible_duplicates", "updated_at", "decision_sequence"}),
        "contacts": [c.model_dump(include={"id", "kind", "submitted_by", "received_at"}) for c in contacts],
        "referrals": [
            {"referral_id": r.referral_id, "agency_id": r.agency_id, "agency_type": r.agency_type, "status": r.status}
            for r in referrals
        ],
        "consents": [
            c.model_dump(exclude=None if access in {"submitter", "operator"} else {"revocation_note"}) for c in consents
        ],
    }


# --- consent and personal details -------------------------------------------------------------


def record_consent(session: Session, *, case: Case, body: ConsentCreate, agency_id: str) -> Consent:
    """Record 本人同意 for the members it covers and publish it."""
    positions = set(session.exec(select(Member.position).where(Member.case_id == case.id)).all())
    unknown = sorted(set(body.members) - positions)
    if unknown:
        raise invalid_fields([("members", f"no household member at position(s) {unknown}")], {"members": "対象者"})
    consent = Consent(
        id=new_id(),
        case_id=case.id,
        given_by=body.given_by.value,
        members=sorted(set(body.members)),
        share_with=sorted(set(body.share_with)),
        purpose=body.purpose,
        recorded_by=agency_id,
        given_at=body.given_at or _now(),
    )
    session.add(consent)
    _stage(
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
        raise Problem(404, "consent-not-found", f"case {case.id} has no consent {consent_id}")
    if consent.revoked_at is not None:
        raise Problem(409, "consent-already-revoked", f"consent {consent_id} was revoked at {consent.revoked_at}")
    consent.revoked_at = _now()
    consent.revocation_reason = body.reason.value
    consent.revocation_note = body.note
    session.add(consent)
    _stage(
        session,
        case,
        ConsentRevoked(case_id=case.id, consent_id=consent.id, revoked_at=consent.revoked_at, reason=body.reason),
    )
    return consent


def release_personal_details(
    session: Session, *, case: Case, principal: Principal, vault: Vault
) -> tuple[PersonalDetailsRelease | None, str]:
    """Decide whether `principal` may read the case's personal details, and audit the attempt.

    The submitting agency collected them and may read them. Any other agency needs a live referral on
    the case (`engaged_agencies`) and an unrevoked consent covering it, and sees only the members that
    consent covers. An agency whose referral was completed, rejected, cancelled or failed is refused,
    even under a consent to share with "every engaged agency": its support has ended.
    Returns (release, "") or (None, reason); the audit entry is written either way.
    """
    access = access_of(session, case, principal)
    consents = session.exec(select(Consent).where(Consent.case_id == case.id, col(Consent.revoked_at).is_(None))).all()
    covering = [c for c in consents if principal.agency_id in c.share_with or ENGAGED in c.share_with]
    release: PersonalDetailsRelease | None = None
    if access == "submitter":
        release = _release(session, case, vault, positions=None, consents=[c.id for c in consents])
        reason = "submitting agency"
    elif access == "completed":
        reason = "your agency's referral on this case is completed; personal details go only to engaged agencies"
    elif access != "engaged":
        reason = "your agency is not engaged on this case"
    elif not covering:
        revoked = session.exec(
            select(Consent).where(Consent.case_id == case.id, col(Consent.revoked_at).is_not(None))
        ).all()
        reason = (
            "consent to share with your agency was revoked"
            if any(principal.agency_id in c.share_with or ENGAGED in c.share_with for c in revoked)
            else "no consent (本人同意) covers sharing with your agency"
        )
    else:
        positions = {p for c in covering for p in c.members}
        release = _release(session, case, vault, positions=positions, consents=[c.id for c in covering])
        reason = "consent " + ", ".join(c.id for c in covering)
    session.add(
        AuditEntry(
            agency_id=principal.agency_id,
            case_id=case.id,
            action="personal_details.read",
            outcome="granted" if release is not None else "refused",
            detail=reason,
        )
    )
    return release, reason


def _release(
    session: Session, case: Case, vault: Vault, *, positions: set[int] | None, consents: list[str]
) -> PersonalDetailsRelease:
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
    return PersonalDetailsRelease(case_id=case.id, members=released, consents=consents)


def audit_log(session: Session, *, case_id: str | None = None, limit: int = 500) -> list[AuditEntry]:
    """Audit entries, newest first."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if case_id is not None:
        query = query.where(AuditEntry.case_id == case_id)
    return list(session.exec(query).all())


# --- events from the router -------------------------------------------------------------------


def apply_routing_decided(session: Session, data: RoutingDecided) -> None:
    """Show the decision in force on the case's timeline."""
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


def apply_referral_requested(session: Session, data: ReferralRequested) -> None:
    """Remember the engaged agency (it may then read the case, and its details with consent)."""
    engagement = session.get(Engagement, data.referral_id)
    if engagement is None:
        session.add(
            Engagement(
                referral_id=data.referral_id,
                case_id=data.case_id,
                agency_id=data.agency_id,
                agency_type=data.agency_type,
                status="requested",
            )
        )
    elif not engagement.agency_type:
        # Its status arrived first (another topic, no order between them): keep that status, or a
        # rejected agency would be engaged again.
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


def apply_referral_status(session: Session, data: ReferralStatusChanged) -> None:
    """Show a referral's new state on the case's timeline; it decides whether its agency is still engaged."""
    engagement = session.get(Engagement, data.referral_id)
    if engagement is None:
        # The request is on another topic and may come later; its type is filled in then.
        engagement = Engagement(
            referral_id=data.referral_id, case_id=data.case_id, agency_id=data.agency_id, agency_type=""
        )
    engagement.status = data.to_status
    engagement.updated_at = data.changed_at
    session.add(engagement)
