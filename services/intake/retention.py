"""保存期間 and 消去: a case is kept for its municipality's retention period, then erased — by the daily job,
or ahead of it on the household's request where the law allows.

The period counts from 終結 (conference's CaseLifeChanged), or for a case that never ended from its
last contact ([LOCAL], services/intake/policy.py). An operator sees what the job will erase in the next
days before it does.

An erasure destroys the case's key first (shared/case_keys.py): from then on no one can read the
sensitive fields of its events, in the topics or in their backups. Then, in one transaction, intake
deletes the members' personal details and match keys, empties the free text it kept (consultation facts,
consent purposes, request notes, emergency-release notes), drops the possible-same-household items and
the stored answers of repeated requests that name the case, and publishes CaseErased so that every service
drops its copies. The case row stays with its dates and the fact of the erasure; the ledger gets one row
saying an erasure happened, and nothing of what was erased.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import anyio
import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from pydantic import Field as DataField
from sqlalchemy import Engine, String, cast, func, or_
from sqlmodel import Session, col, delete, select, update

from services.intake import service
from services.intake.context import IntakeContext
from services.intake.errors import CaseErased as CaseWasErased
from services.intake.errors import ErasureNotAllowed
from services.intake.models import (
    Case,
    Consent,
    Contact,
    Disclosure,
    HouseholdMatch,
    IntakeIdempotencyRecord,
    MatchKey,
    Member,
    PersonalDetailVersion,
    SubjectRequest,
    SubjectRequestPublic,
)
from services.intake.service import stage
from shared.api import PrincipalDep, RuntimeDep, context_of, in_transaction
from shared.auth import Scope, require
from shared.calendar import JST
from shared.case_keys import CaseKeys
from shared.db import transaction
from shared.events import CaseErased, CaseLifeChanged, ConsentGiver, Envelope
from shared.ids import new_id
from shared.privacy_policy import IntakePolicy, years_after
from shared.problems import problem_responses
from shared.runtime import Runtime

log = structlog.get_logger()

ERASURE = "erasure"
ErasureReason = Literal["retention", "request"]


@dataclass(frozen=True)
class Due:
    """A case the retention job erases on `erase_on`: its period counted from 終結 or from its last contact."""

    case_id: str
    municipality_code: str
    basis: Literal["closure", "last_contact"]
    basis_at: datetime
    erase_on: datetime


PolicyOf = Callable[[str], IntakePolicy]


def due(
    session: Session, policy: PolicyOf, *, until: datetime, municipalities: Iterable[str] | None = None
) -> list[Due]:
    """Every case not yet erased whose retention period ends by `until`, soonest first."""
    last_contact = func.max(Contact.received_at)
    query = (
        sa.select(col(Case.id), col(Case.municipality_code), col(Case.closed_at), col(Case.opened_at), last_contact)
        .join(Contact, col(Contact.case_id) == col(Case.id), isouter=True)
        .where(col(Case.erased_at).is_(None))
        .group_by(col(Case.id), col(Case.municipality_code), col(Case.closed_at), col(Case.opened_at))
    )
    if municipalities is not None:
        query = query.where(col(Case.municipality_code).in_(sorted(municipalities)))
    found = []
    for case_id, code, closed_at, opened_at, last in session.execute(query).all():
        entry = schedule_of(policy(code), case_id, code, closed_at=closed_at, last_contact=last or opened_at)
        if entry.erase_on <= until:
            found.append(entry)
    return sorted(found, key=lambda d: (d.erase_on, d.case_id))


def schedule_of(
    policy: IntakePolicy, case_id: str, code: str, *, closed_at: datetime | None, last_contact: datetime
) -> Due:
    """When the case's retention period ends under its municipality's policy."""
    retention = policy.retention
    if closed_at is not None:
        return Due(case_id, code, "closure", closed_at, _years_after(closed_at, retention.years_after_closure))
    return Due(
        case_id, code, "last_contact", last_contact, _years_after(last_contact, retention.years_after_last_contact)
    )


def _years_after(moment: datetime, years: int) -> datetime:
    return years_after(moment if moment.tzinfo else moment.replace(tzinfo=UTC), years)


def apply_case_life_changed(session: Session, envelope: Envelope[CaseLifeChanged]) -> None:
    """Learn a case's 終結 (and its reopening) from conference: the retention period counts from it.

    A 終結 with 見守り (`watching`) is not an end for retention: an agency still accompanies the household.
    """
    change = envelope.data
    case = session.get(Case, change.case_id)
    if case is None or case.erased_at is not None:
        return
    case.closed_at = change.changed_at if change.state == "closed" else None
    session.add(case)


def erase(
    session: Session,
    keys: CaseKeys,
    case: Case,
    *,
    reason: ErasureReason,
    by: str,
    at: datetime | None = None,
) -> None:
    """Erase the case (see the module's docstring); the caller commits. Done again, it changes nothing."""
    if case.erased_at is not None:
        return
    at = at or datetime.now(UTC)
    keys.erase(case.id)
    member_ids = list(session.exec(select(Member.id).where(Member.case_id == case.id)).all())
    if member_ids:
        session.exec(delete(MatchKey).where(col(MatchKey.member_id).in_(member_ids)))
    session.exec(delete(MatchKey).where(col(MatchKey.case_id) == case.id))
    _erase_extra(session, case.id)
    session.exec(delete(Member).where(col(Member.case_id) == case.id))
    session.exec(update(Contact).where(col(Contact.case_id) == case.id).values(facts={}))
    session.exec(update(Consent).where(col(Consent.case_id) == case.id).values(purpose="", revocation_note=None))
    session.exec(
        update(SubjectRequest).where(col(SubjectRequest.case_id) == case.id).values(note=None, close_note=None)
    )
    session.exec(
        delete(HouseholdMatch).where(
            or_(col(HouseholdMatch.case_id) == case.id, col(HouseholdMatch.matched_case_id) == case.id)
        )
    )
    session.exec(
        update(Disclosure)
        .where(col(Disclosure.case_id) == case.id, col(Disclosure.note).is_not(None))
        .values(note=None)
    )
    session.exec(
        delete(IntakeIdempotencyRecord).where(
            cast(col(IntakeIdempotencyRecord.response), String).contains(case.id, autoescape=True)
        )
    )
    case.possible_duplicates = []
    case.erased_at, case.erasure_reason, case.status, case.updated_at = at, reason, "erased", at
    session.add(case)
    session.add(
        Disclosure(
            id=new_id(),
            case_id=case.id,
            municipality_code=case.municipality_code,
            recipient=by,
            channel=ERASURE,
            fields=[],
            basis="none",
            outcome="erased",
            released_by=by,
            at=at,
        )
    )
    stage(session, case, CaseErased(case_id=case.id, reason=reason, erased_at=at))
    log.info("case_erasure_staged", case_id=case.id, reason=reason)


def _erase_extra(session: Session, case_id: str) -> None:
    """The earlier versions of corrected personal details (訂正) go with the rest."""
    session.exec(delete(PersonalDetailVersion).where(col(PersonalDetailVersion.case_id) == case_id))


def erase_on_request(
    session: Session, keys: CaseKeys, case: Case, *, request: SubjectRequest, ground: str, by: str
) -> None:
    """消去 ahead of the retention period: for a case that ended (終結), or on a ground the law gives for
    erasing at once (the data were handled unlawfully); raises ErasureNotAllowed otherwise."""
    if case.erased_at is not None:
        raise CaseWasErased(f"case {case.id} was erased on {case.erased_at:%Y-%m-%d}")
    if case.closed_at is None and ground != "unlawful_handling":
        raise ErasureNotAllowed(
            f"case {case.id} has not ended (終結): record its 終結 first, or give ground unlawful_handling "
            "if its data were handled against the law (個人情報保護法 Art. 35)"
        )
    session.add(request)
    session.flush()
    erase(session, keys, case, reason="request", by=by)
    request.close_note = ground  # a code, kept: the erasure emptied the requests' free text


def run_once(engine: Engine, keys: CaseKeys, policy: PolicyOf, *, as_of: datetime, by: str = "retention") -> list[str]:
    """Erase every case whose retention period ended by `as_of`; returns their ids. Each case is its own
    transaction, so one failure does not hold back the others (the next run retries it)."""
    with Session(engine) as session:
        found = due(session, policy, until=as_of)
    erased = []
    for entry in found:
        try:
            with transaction(engine) as session:
                case = session.get(Case, entry.case_id)
                if case is None or case.erased_at is not None:
                    continue
                erase(session, keys, case, reason="retention", by=by)
            erased.append(entry.case_id)
        except Exception as exc:
            log.warning("retention_erasure_failed", case_id=entry.case_id, error=repr(exc))
    log.info("retention_run", as_of=as_of.isoformat(), erased=len(erased), due=len(found))
    return erased


def _now() -> datetime:
    return datetime.now(UTC)


async def retention_job(runtime: Runtime) -> None:
    """The daily job: erase the cases past their retention period, every `retention_interval_s`."""
    context = runtime.context_as(IntakeContext)
    keys = runtime.case_keys
    if keys is None:
        raise RuntimeError("intake runs without a key store")
    while True:
        try:
            erased = await anyio.to_thread.run_sync(
                lambda: run_once(runtime.engine, keys, context.policy, as_of=_now())
            )
            if erased:
                runtime.notify_outbox()
        except Exception as exc:  # the next run tries again; an erasure is idempotent
            log.warning("retention_run_failed", error=repr(exc))
        await anyio.sleep(runtime.settings.retention_interval_s)


# --- the operator's API -----------------------------------------------------------------------

router = APIRouter(prefix="/v1")
IntakeContextDep = Annotated[IntakeContext, Depends(context_of(IntakeContext))]


class UpcomingErasure(BaseModel):
    """A case the retention job will erase (or is about to, if the date is past): no personal details."""

    case_id: str
    municipality_code: str
    basis: Literal["closure", "last_contact"] = DataField(
        description="closure: counted from 終結; last_contact: a case that never ended, from its last contact"
    )
    basis_at: datetime
    erase_on: date = DataField(description="the day (JST) its retention period ends and the job erases it")


class ErasureCreate(BaseModel):
    """Body of POST /v1/cases/{id}/erasure: the household asks that its data be erased (消去, APPI Art. 35)."""

    model_config = ConfigDict(extra="forbid")

    requested_by: ConsentGiver = DataField(description="請求者, as a code (never a name)")
    received_at: datetime | None = DataField(default=None, description="受付日時 (default: now)")
    ground: Literal["no_longer_needed", "consent_withdrawn", "unlawful_handling"] = DataField(
        description="why the law allows erasing now: no_longer_needed 利用する必要がなくなった (a case that ended), "
        "consent_withdrawn 同意の撤回 (a case that ended), unlawful_handling 違法な取扱い (at any time)"
    )


@router.get(
    "/retention/upcoming",
    tags=["retention"],
    response_model=list[UpcomingErasure],
    responses=problem_responses(401, 403, 422),
)
async def upcoming_erasures(
    runtime: RuntimeDep,
    context: IntakeContextDep,
    principal: PrincipalDep,
    within_days: Annotated[int, Query(ge=0, le=366, description="how many days ahead to look")] = 30,
) -> list[UpcomingErasure]:
    """The cases of your municipalities the retention job will erase within `within_days` (operators).

    Each municipality keeps a case for its retention period (the `intake: retention:` section of its
    directory) after 終結, or after the last contact of a case that never ended.
    """
    require(principal, Scope.operator)
    now = _now()

    def work(session: Session) -> list[UpcomingErasure]:
        served = None if Scope.platform in principal.scopes else principal.municipalities
        found = due(session, context.policy, until=now + timedelta(days=within_days), municipalities=served)
        return [
            UpcomingErasure(
                case_id=d.case_id,
                municipality_code=d.municipality_code,
                basis=d.basis,
                basis_at=d.basis_at,
                erase_on=d.erase_on.astimezone(JST).date(),
            )
            for d in found
        ]

    return await in_transaction(runtime, work)


@router.post(
    "/cases/{case_id}/erasure",
    tags=["requests"],
    status_code=201,
    response_model=SubjectRequestPublic,
    responses=problem_responses(401, 404, 409, 410, 422),
)
async def erase_case(
    case_id: str, body: ErasureCreate, runtime: RuntimeDep, context: IntakeContextDep, principal: PrincipalDep
) -> SubjectRequestPublic:
    """消去: erase the case now, ahead of its retention period, on the household's request (operators of
    the case's municipality; anyone else hears of no such case).

    The case's key is destroyed (its events' sensitive fields can no longer be read anywhere), its personal
    details deleted, and every service drops its copies. The request is kept with its outcome; the ledger
    keeps that an erasure happened. Refused (409) for a case that has not ended, unless its data were
    handled unlawfully.
    """
    require(principal, Scope.operator)
    keys = runtime.case_keys
    if keys is None:
        raise RuntimeError("intake runs without a key store")
    now = _now()

    def work(session: Session) -> SubjectRequestPublic:
        case = service.get_case(session, case_id, principal)
        service.require_operator_of(principal, case)
        received = body.received_at or now
        request = SubjectRequest(
            id=new_id(),
            case_id=case.id,
            kind=ERASURE,
            requested_by=body.requested_by.value,
            received_at=received,
            recorded_by=principal.agency_id,
            status="erased",
            closed_at=now,
            closed_by=principal.agency_id,
            close_note=body.ground,
            deadline=received + timedelta(days=context.policy(case.municipality_code).requests.answer_within_days),
        )
        erase_on_request(session, keys, case, request=request, ground=body.ground, by=principal.agency_id)
        session.flush()
        return SubjectRequestPublic.model_validate(request.model_dump())

    return await in_transaction(runtime, work, stages_events=True)
