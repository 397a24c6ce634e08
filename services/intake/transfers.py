"""転居: a household moves to another municipality. Within this deployment its case goes with it as a new
case there (routed under the receiving municipality's directory); outside it, the household carries a
printable hand-off summary. Personal details go only where a live consent covers the municipality.

Functions take an open session and run inside the caller's transaction; events are staged in the
outbox of that same transaction.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from services.intake import handoff, service
from services.intake.errors import CaseAlreadyTransferred, CaseNotFound, CaseNotTransferredAway, NotTheLead
from services.intake.models import (
    FIELD_LABELS,
    PERSONAL_FIELDS,
    AuditEntry,
    Case,
    Consent,
    Contact,
    Engagement,
    MatchKey,
    Member,
    MemberDetails,
    TransferCreate,
)
from services.intake.privacy import Vault, age_band
from shared.auth import Principal, Scope
from shared.consultation import ConsultationSummary, MemberSummary
from shared.directory import Directory, UnknownArea
from shared.errors import DomainError, InvalidFields
from shared.events import LIVE_REFERRAL_STATUSES, CaseTransferred, ConsultationReceived, DisclosureBasis
from shared.ids import new_id
from shared.uow import unit_of
from shared.vocabulary import REFERRAL_STATUS_LABELS


def _now() -> datetime:
    return datetime.now(UTC)


# The basis reference of a release made by the municipality's lead (協働の中核), which coordinates its cases.
MUNICIPALITY_LEAD = "municipality_lead"
# The referral states in which an agency took part in a case: live, or completed.
TOOK_PART: frozenset[str] = frozenset(LIVE_REFERRAL_STATUSES | {"completed"})
# The fields of the consultation summary a new case in the receiving municipality starts from.
SUMMARY_FIELDS = sorted(ConsultationSummary.model_fields)


def require_lead_or_operator(
    session: Session, case: Case, principal: Principal, directories: Mapping[str, Directory]
) -> DisclosureBasis:
    """The basis on which `principal` moves the case: as an operator, or as the municipality's lead coordinator.

    Anyone else is answered as for a case it cannot read (CaseNotFound), unless it may read the case:
    then it is told why it may not (NotTheLead).
    """
    if principal.has(Scope.operator):
        return "operator"
    directory = directories.get(case.municipality_code)
    if (
        directory is not None
        and principal.has(Scope.coordinator)
        and principal.agency_id == directory.municipality.lead
    ):
        return "engagement"
    if service.access_of(session, case, principal) is None:
        raise CaseNotFound(case.id)
    raise NotTheLead("only the municipality's lead coordinator (協働の中核) or an operator moves a case")


def _basis_ref(basis: DisclosureBasis) -> str | None:
    return MUNICIPALITY_LEAD if basis == "engagement" else None


def covering_consents(session: Session, case: Case, municipality_code: str) -> list[Consent]:
    """The case's live consents that let the members' personal details follow them to `municipality_code`."""
    consents = session.exec(
        select(Consent)
        .where(Consent.case_id == case.id, col(Consent.revoked_at).is_(None))
        .order_by(col(Consent.given_at), col(Consent.id))
    ).all()
    return [c for c in consents if municipality_code in c.municipalities]


@dataclass(frozen=True)
class Transferred:
    """What a transfer did: the case the household left, and the receiving case within this deployment."""

    case_id: str
    to_municipality_code: str
    to_case_id: str | None
    personal_details_copied: bool
    transferred_at: datetime


def transfer(
    session: Session,
    *,
    case_id: str,
    body: TransferCreate,
    principal: Principal,
    directories: Mapping[str, Directory],
) -> Transferred:
    """Move the household's case to `body.to_municipality_code` (転居), once.

    Within this deployment a new case opens there (submitted by the transferring agency, with the
    case's current facts in the receiving area) and is routed by that municipality's router; members'
    personal details are copied only for the members a live consent covering that municipality covers,
    and the copy is written to the disclosure ledger. Outside it, no case opens: the household carries
    the hand-off summary. Both cases keep the link, and the case left stays readable as before.
    """
    case = service.get_case(session, case_id, principal)
    basis = require_lead_or_operator(session, case, principal, directories)
    # Two transfers at once must not both find the case still here.
    session.refresh(case, with_for_update=True)
    if case.transferred_at is not None:
        raise CaseAlreadyTransferred(f"case {case.id} was transferred to {case.transferred_to_municipality}")
    receiving = directories.get(body.to_municipality_code)
    to_area = _receiving_area(case, body, receiving)
    now = _now()
    to_case_id = None
    copied = False
    if receiving is not None and to_area is not None:
        to_case_id = new_id()
        copied = _open_receiving_case(
            session,
            case,
            to_code=body.to_municipality_code,
            to_case_id=to_case_id,
            to_area=to_area,
            principal=principal,
            basis=basis,
            at=now,
        )
    case.transferred_at = now
    case.transferred_by = principal.agency_id
    case.transfer_reason = body.reason.value
    case.transferred_to_municipality = body.to_municipality_code
    case.transferred_to_case_id = to_case_id
    case.updated_at = now
    session.add(case)
    service.stage(
        session,
        case,
        CaseTransferred(
            case_id=case.id,
            to_case_id=to_case_id,
            from_municipality=case.municipality_code,
            to_municipality=body.to_municipality_code,
            personal_details_copied=copied,
            transferred_by=principal.agency_id,
            transferred_at=now,
        ),
    )
    return Transferred(case.id, body.to_municipality_code, to_case_id, copied, now)


def _receiving_area(case: Case, body: TransferCreate, receiving: Directory | None) -> str | None:
    """The receiving municipality's area the new case opens in (None outside this deployment)."""
    errors = []
    if body.to_municipality_code == case.municipality_code:
        errors.append(("to_municipality_code", "a move within the municipality is not a transfer: the case stays"))
    elif receiving is not None:
        known = ", ".join(sorted(a.id for a in receiving.municipality.areas))
        if body.to_area is None:
            errors.append(
                ("to_area", f"required: this deployment serves {body.to_municipality_code}; its areas: {known}")
            )
        else:
            try:
                receiving.ancestors(body.to_area)
            except UnknownArea:
                errors.append(
                    ("to_area", f"unknown area {body.to_area!r}; areas of {body.to_municipality_code}: {known}")
                )
    if errors:
        raise InvalidFields(errors, FIELD_LABELS)
    return body.to_area if receiving is not None else None


def _members(session: Session, case: Case) -> Sequence[Member]:
    return session.exec(select(Member).where(Member.case_id == case.id).order_by(col(Member.position))).all()


def _open_receiving_case(
    session: Session,
    case: Case,
    *,
    to_code: str,
    to_case_id: str,
    to_area: str,
    principal: Principal,
    basis: DisclosureBasis,
    at: datetime,
) -> bool:
    """Open the receiving municipality's case from `case`; returns whether personal details went with it."""
    unit = unit_of(session)
    opening = session.exec(select(Contact).where(Contact.case_id == case.id, Contact.kind == "opening")).one()
    members = _members(session, case)
    summary = ConsultationSummary.model_validate(
        {
            **opening.facts,
            "area": to_area,
            "urgency": case.urgency,
            "household": [
                MemberSummary.model_validate({"relation": m.relation, "issues": m.issues, "age_band": age_band(m.age)})
                for m in members
            ],
        }
    )
    unit.add_row(
        Case,
        id=to_case_id,
        municipality_code=to_code,
        submitted_by=principal.agency_id,
        opened_at=at,
        updated_at=at,
        urgency=case.urgency,
        transferred_from_case_id=case.id,
        transferred_from_municipality=case.municipality_code,
    )
    contact_id = new_id()
    unit.add_row(
        Contact,
        id=contact_id,
        case_id=to_case_id,
        kind="opening",
        submitted_by=principal.agency_id,
        received_at=at,
        facts=summary.model_dump(mode="json"),
    )
    consents = covering_consents(session, case, to_code)
    covered = {position for consent in consents for position in consent.members}
    copied_fields: list[str] = []
    copied_members: dict[str, str] = {}  # the case left's member id → the receiving case's
    for member in members:
        personal = member.personal if member.position in covered else {}
        member_id = new_id()
        unit.add_row(
            Member,
            id=member_id,
            case_id=to_case_id,
            position=member.position,
            relation=member.relation,
            age=member.age,
            issues=list(member.issues),
            personal=dict(personal),
        )
        if personal:
            copied_members[member.id] = member_id
            copied_fields += [f"members.{member.position}.{field}" for field in personal]
    # The receiving municipality recognises a later consultation about the household only where its
    # details came with it: the match keys go with the details, never without them.
    if copied_members:
        keys = session.exec(select(MatchKey).where(col(MatchKey.member_id).in_(sorted(copied_members)))).all()
        for key in keys:
            unit.add_row(
                MatchKey,
                digest=key.digest,
                member_id=copied_members[key.member_id],
                case_id=to_case_id,
                municipality_code=to_code,
            )
    recipient = f"municipality:{to_code}"
    service.record_disclosure(
        session,
        case,
        recipient=recipient,
        channel="case_read",
        fields=SUMMARY_FIELDS,
        basis=basis,
        basis_ref=_basis_ref(basis),
    )
    if copied_fields:
        consent_ids = [c.id for c in consents]
        service.record_disclosure(
            session,
            case,
            recipient=recipient,
            channel="personal_details",
            fields=copied_fields,
            basis="consent",
            basis_ref=",".join(consent_ids),
        )
        session.add(
            AuditEntry(
                agency_id=principal.agency_id,
                case_id=case.id,
                action="personal_details.transfer",
                outcome="granted",
                detail=f"copied to case {to_case_id} of municipality {to_code} under consent {', '.join(consent_ids)}",
            )
        )
    service.stage_for(
        session,
        to_case_id,
        to_code,
        ConsultationReceived(
            case_id=to_case_id,
            consultation_id=contact_id,
            submitted_by=principal.agency_id,
            received_at=at,
            consultation=summary,
        ),
    )
    return bool(copied_fields)


# --- the hand-off summary ---------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffOutcome:
    """What a request for the hand-off summary came to: the page, or the refusal to raise once recorded."""

    html: str | None
    refusal: DomainError | None = None

    def page(self) -> str:
        """The page; raises the refusal (call it after the attempt's records have committed)."""
        if self.refusal is not None:
            raise self.refusal
        assert self.html is not None
        return self.html


def handoff_summary(
    session: Session,
    *,
    case_id: str,
    principal: Principal,
    directories: Mapping[str, Directory],
    vault: Vault,
) -> HandoffOutcome:
    """The printable hand-off summary (引継ぎ書) of a case whose household moved outside this deployment.

    For the municipality's lead coordinator and operators. It is a release: its issues, agencies, lead
    and dates, and the personal details of the members a live consent covering the receiving
    municipality covers (no others). Granted or refused, the attempt goes to the audit log and the
    disclosure ledger; the caller raises a refusal (`HandoffOutcome.page`) once they have committed.
    """
    case = service.get_case(session, case_id, principal)
    try:
        basis = require_lead_or_operator(session, case, principal, directories)
    except (CaseNotFound, NotTheLead) as refusal:
        _record_handoff(session, case, principal, fields=["handoff_summary"], detail=refusal.detail)
        return HandoffOutcome(None, refusal)
    if case.transferred_at is None or case.transferred_to_case_id is not None:
        raise CaseNotTransferredAway(
            f"case {case.id} did not move outside this deployment: its hand-off goes with the transfer"
        )
    to_code = case.transferred_to_municipality or ""
    consents = covering_consents(session, case, to_code)
    covered = {position for consent in consents for position in consent.members}
    release = service.release_of(
        session, case, vault, positions=covered, consents=[c.id for c in consents], basis="consent"
    )
    details = {m.position: m for m in release.members}
    directory = directories.get(case.municipality_code)
    summary = handoff.HandoffSummary(
        case_id=case.id,
        from_municipality=directory.municipality.name if directory else case.municipality_code,
        to_municipality_code=to_code,
        lead=_agency_name(directory, case.lead or (directory.municipality.lead if directory else None)),
        agencies=_agencies(session, case, directory),
        members=[
            handoff.HandoffMember(
                position=m.position,
                relation=m.relation,
                age_band=age_band(m.age),
                issues=list(m.issues),
                details=details.get(m.position),
            )
            for m in _members(session, case)
        ],
        opened_at=case.opened_at,
        transferred_at=case.transferred_at,
        printed_at=_now(),
    )
    personal_fields = [f"members.{m.position}.{field}" for m in release.members for field in _present(m)]
    if personal_fields:
        consent_ids = ",".join(c.id for c in consents)
        _record_handoff(
            session,
            case,
            principal,
            fields=["handoff_summary", *personal_fields],
            basis="consent",
            basis_ref=consent_ids,
            detail=f"hand-off summary with personal details under consent {consent_ids}",
        )
    else:
        _record_handoff(
            session,
            case,
            principal,
            fields=["handoff_summary"],
            basis=basis,
            basis_ref=_basis_ref(basis),
            detail=f"hand-off summary without personal details (no live consent covers {to_code})",
        )
    return HandoffOutcome(handoff.render(summary))


def _present(member: MemberDetails) -> list[str]:
    return [field for field in sorted(PERSONAL_FIELDS) if getattr(member, field)]


def _record_handoff(
    session: Session,
    case: Case,
    principal: Principal,
    *,
    fields: list[str],
    detail: str,
    basis: DisclosureBasis | None = None,
    basis_ref: str | None = None,
) -> None:
    granted = basis is not None
    session.add(
        AuditEntry(
            agency_id=principal.agency_id,
            case_id=case.id,
            action="handoff_summary.read",
            outcome="granted" if granted else "refused",
            detail=detail,
        )
    )
    service.record_disclosure(
        session,
        case,
        recipient=principal.agency_id,
        channel="personal_details",
        fields=fields,
        basis=basis or "none",
        basis_ref=basis_ref,
        released=granted,
    )


def _agency_name(directory: Directory | None, agency_id: str | None) -> str:
    if agency_id is None:
        return "（未定）"
    agency = directory.find_agency(agency_id) if directory else None
    return agency.name if agency else agency_id


def _agencies(session: Session, case: Case, directory: Directory | None) -> list[handoff.HandoffAgency]:
    """The agencies that took part in the case (a live or completed referral), by name from the directory."""
    engagements = session.exec(
        select(Engagement)
        .where(Engagement.case_id == case.id, col(Engagement.status).in_(sorted(TOOK_PART)))
        .order_by(col(Engagement.agency_id), col(Engagement.updated_at))
    ).all()
    # An agency referred more than once is listed once, as still working on the case if any referral is live.
    status: dict[str, str] = {}
    for engagement in engagements:
        if status.get(engagement.agency_id) not in LIVE_REFERRAL_STATUSES:
            status[engagement.agency_id] = engagement.status
    return [
        handoff.HandoffAgency(name=_agency_name(directory, agency_id), status=REFERRAL_STATUS_LABELS[s])
        for agency_id, s in status.items()
    ]
