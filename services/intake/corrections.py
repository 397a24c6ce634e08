"""訂正 (個人情報保護法 Art. 34): a member's personal details corrected as a new version, with who and why,
and passed on to every agency that received the old value.

A correction changes `Member.personal` (each field encrypted, the match keys recomputed), keeps the
previous values encrypted in a `PersonalDetailVersion` row, records the household's request
(`SubjectRequest`, kind `correction`) and stages one `PersonalDetailsCorrected` per agency the ledger
shows received a corrected field of that member (keyed by the agency). The event names the member and
the fields, never their values: the agency reads the new values at intake on its basis, on the ledger.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict
from pydantic import Field as DataField
from sqlmodel import Session, col, func, or_, select

from services.intake.api import IdempotencyKey, IntakeContextDep, _idempotent, _submitter_or_operator_case
from services.intake.errors import CaseErased
from services.intake.models import (
    FIELD_LABELS,
    MAX_HOUSEHOLD,
    AuditEntry,
    Case,
    Disclosure,
    HouseholdMatch,
    IntakeOutbox,
    MatchKey,
    Member,
    PersonalDetailVersion,
    SubjectRequest,
)
from services.intake.privacy import PersonalDetails, Vault, decrypt_details
from services.intake.service import SOURCE
from shared import outbox
from shared.api import PrincipalDep, RuntimeDep
from shared.auth import Principal, Scope, require_any
from shared.errors import InvalidFields
from shared.events import ConsentGiver, CorrectionReason, PersonalDetailsCorrected, new_event
from shared.ids import new_id
from shared.problems import problem_responses

CORRECTION = "correction"
# The details as submitted are version 1.
FIRST_VERSION = 1
# A transfer's copy (recipient `municipality:<code>`) went to another case, not to an agency's hands.
_MUNICIPALITY_RECIPIENT = "municipality:"

router = APIRouter(prefix="/v1")


class CorrectionCreate(BaseModel):
    """Body of POST /v1/cases/{id}/corrections: 訂正 of one member's personal details (個人情報保護法 Art. 34)."""

    model_config = ConfigDict(extra="forbid")

    member: int = DataField(
        ge=0, lt=MAX_HOUSEHOLD, description="世帯員の番号: the member's position (0-based, as in the consultation)"
    )
    details: PersonalDetails = DataField(
        description="訂正後の値: only the fields to correct, with their new values (validated as at submission); "
        "a field given as null is removed. Stored encrypted in intake, never published."
    )
    reason: CorrectionReason = DataField(
        description="訂正の理由, as a code: person_request 本人の申し出, recorded_in_error 誤登録, "
        "changed 転居・改姓等, other その他. Published with the correction."
    )
    requested_by: ConsentGiver = DataField(
        description="請求者, as a code: self 本人, family 家族, guardian 成年後見人等, legal_representative "
        "法定代理人・任意代理人, other その他. Never a name."
    )
    received_at: datetime | None = DataField(default=None, description="受付日時 (default: now)")
    note: str | None = DataField(
        default=None,
        min_length=1,
        max_length=500,
        description="経緯 (free text): stored in intake only, never published.",
    )


class CorrectionPublic(BaseModel):
    """A correction as the submitting agency and operators see it (field names, never values)."""

    id: str
    case_id: str
    member: int
    version: int = DataField(description="The member's personal details version this correction made (1: as submitted)")
    fields: list[str] = DataField(description="The fields it changed")
    reason: CorrectionReason
    corrected_by: str
    corrected_at: datetime
    request_id: str = DataField(description="The household's request (GET /v1/cases/{id}/requests, kind correction)")
    deadline: datetime | None = DataField(description="When the answer to the request was due")


@dataclass(frozen=True)
class Corrected:
    """A correction recorded: its version row, the household's request and the agencies told."""

    version: PersonalDetailVersion
    request: SubjectRequest
    notified: dict[str, list[str]]  # agency id → the corrected fields it had received

    def public(self) -> CorrectionPublic:
        """The correction as its API shows it."""
        return CorrectionPublic(
            id=self.version.id,
            case_id=self.version.case_id,
            member=self.version.position,
            version=self.version.version,
            fields=self.version.fields,
            reason=CorrectionReason(self.version.reason),
            corrected_by=self.version.corrected_by,
            corrected_at=self.version.at,
            request_id=self.request.id,
            deadline=self.request.deadline,
        )


def correct(
    session: Session,
    *,
    case: Case,
    body: CorrectionCreate,
    principal: Principal,
    vault: Vault,
    answer_within_days: int,
) -> Corrected:
    """Correct a member's personal details as a new version and tell each agency that received an old value.

    Raises CaseErased for a case whose details were erased, and InvalidFields for a member that does not
    exist or a body that changes nothing.
    """
    if case.erased_at is not None:
        raise CaseErased(f"case {case.id} was erased on {case.erased_at:%Y-%m-%d}: no personal details are kept")
    member = session.exec(
        select(Member).where(Member.case_id == case.id, Member.position == body.member).with_for_update()
    ).first()
    if member is None:
        raise InvalidFields([("member", f"no household member at position {body.member}")], FIELD_LABELS)
    held = decrypt_details(member.personal, vault.cipher).model_dump(mode="json", exclude_none=True)
    wanted = body.details.model_dump(mode="json", include=body.details.model_fields_set)
    changed = sorted(field for field, value in wanted.items() if held.get(field) != value)
    if not changed:
        raise InvalidFields([("details", "the corrected values are the ones already held")], FIELD_LABELS)
    now = datetime.now(UTC)
    previous = {field: member.personal[field] for field in changed if field in member.personal}
    personal = {field: token for field, token in member.personal.items() if field not in changed}
    personal |= {field: vault.cipher.encrypt(str(wanted[field])) for field in changed if wanted[field] is not None}
    member.personal = personal
    session.add(member)
    _rekey(session, case, member, vault)
    received_at = body.received_at or now
    request = SubjectRequest(
        id=new_id(),
        case_id=case.id,
        kind=CORRECTION,
        requested_by=body.requested_by.value,
        received_at=received_at,
        recorded_by=principal.agency_id,
        status="corrected",
        note=body.note,
        closed_at=now,
        closed_by=principal.agency_id,
        deadline=received_at + timedelta(days=answer_within_days),
    )
    version = PersonalDetailVersion(
        id=new_id(),
        case_id=case.id,
        position=member.position,
        version=_latest_version(session, case.id, member.position) + 1,
        fields=changed,
        previous=previous,
        corrected_by=principal.agency_id,
        reason=body.reason.value,
        request_id=request.id,
        note=body.note,
        at=now,
    )
    session.add(request)
    session.add(version)
    session.add(
        AuditEntry(
            agency_id=principal.agency_id,
            case_id=case.id,
            action="personal_details.correct",
            outcome="granted",
            detail=f"member {member.position}: {', '.join(changed)} (version {version.version}, {body.reason.value})",
        )
    )
    notified = recipients_of(session, case, position=member.position, fields=changed, corrector=principal.agency_id)
    for agency_id, fields in notified.items():
        corrected = PersonalDetailsCorrected(
            case_id=case.id,
            correction_id=version.id,
            agency_id=agency_id,
            member=member.position,
            fields=fields,
            version=version.version,
            reason=body.reason,
            corrected_by=principal.agency_id,
            corrected_at=now,
        )
        event = new_event(corrected, source=SOURCE, subject=agency_id, municipality_code=case.municipality_code)
        outbox.stage(session, IntakeOutbox, event)
    return Corrected(version, request, notified)


def recipients_of(
    session: Session, case: Case, *, position: int, fields: list[str], corrector: str
) -> dict[str, list[str]]:
    """The agencies the ledger shows received any of `fields` of the member at `position` (granted releases
    of personal details), each with the ones it received; the corrector is not among them.

    Only the case's own rows can hold them: a linked case's rows name that case's members, whose values
    this correction did not change.
    """
    query = select(Disclosure.recipient, Disclosure.fields).where(
        Disclosure.case_id == case.id, Disclosure.channel == "personal_details", Disclosure.outcome == "released"
    )
    received: dict[str, set[str]] = {}
    for recipient, released in session.exec(query).all():
        if recipient == corrector or recipient.startswith(_MUNICIPALITY_RECIPIENT):
            continue
        if got := {field for field in fields if f"members.{position}.{field}" in released}:
            received.setdefault(recipient, set()).update(got)
    return {agency_id: sorted(got) for agency_id, got in sorted(received.items())}


def _latest_version(session: Session, case_id: str, position: int) -> int:
    query = select(func.max(PersonalDetailVersion.version)).where(
        PersonalDetailVersion.case_id == case_id, PersonalDetailVersion.position == position
    )
    return session.exec(query).one() or FIRST_VERSION


def _rekey(session: Session, case: Case, member: Member, vault: Vault) -> None:
    """Make the member's match keys those of its corrected details; a case newly matched by them becomes a
    possible same household for the lead coordinators, as at submission."""
    digests = set(vault.index.household_match_keys(decrypt_details(member.personal, vault.cipher)))
    held = {key.digest: key for key in session.exec(select(MatchKey).where(MatchKey.member_id == member.id)).all()}
    for digest in set(held) - digests:
        session.delete(held[digest])
    added = digests - set(held)
    for digest in sorted(added):
        session.add(
            MatchKey(digest=digest, member_id=member.id, case_id=case.id, municipality_code=case.municipality_code)
        )
    if not added:
        return
    session.flush()
    matched = session.exec(
        select(MatchKey.case_id)
        .where(col(MatchKey.digest).in_(sorted(added)), MatchKey.municipality_code == case.municipality_code)
        .where(MatchKey.case_id != case.id)
        .distinct()
    ).all()
    known = session.exec(
        select(HouseholdMatch.case_id, HouseholdMatch.matched_case_id).where(
            or_(HouseholdMatch.case_id == case.id, HouseholdMatch.matched_case_id == case.id)
        )
    ).all()
    paired = {other for pair in known for other in pair}
    for other in sorted(set(matched) - paired):
        match = HouseholdMatch(
            id=new_id(), municipality_code=case.municipality_code, case_id=case.id, matched_case_id=other
        )
        session.add(match)


@router.post(
    "/cases/{case_id}/corrections",
    tags=["requests"],
    status_code=status.HTTP_201_CREATED,
    response_model=CorrectionPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 410, 422),
)
async def correct_personal_details(
    case_id: str,
    body: CorrectionCreate,
    request: Request,
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """訂正: correct a member's personal details (個人情報保護法 Art. 34; the submitting agency or an operator).

    The correction is a new version of the member's details, kept with who corrected, the reason code
    and the previous values (encrypted, in intake). Each agency that received a corrected field before
    (the disclosure ledger) is sent `PersonalDetailsCorrected`, naming the member and fields, never the
    values, and reads the new values here on its basis. The household's request is listed at
    `GET /v1/cases/{id}/requests` (kind `correction`). 410 `case-erased` once the case was erased.
    """
    require_any(principal, Scope.submit, Scope.operator)

    def work(session: Session) -> dict[str, Any]:
        case = _submitter_or_operator_case(session, case_id, principal, "corrects personal details")
        corrected = correct(
            session,
            case=case,
            body=body,
            principal=principal,
            vault=context.vault,
            answer_within_days=context.policy(case.municipality_code).requests.answer_within_days,
        )
        return corrected.public().model_dump(mode="json")

    return await _idempotent(runtime, request, principal, idempotency_key, body, work, 201)
