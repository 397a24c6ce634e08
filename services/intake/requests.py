"""The household's requests under 個人情報保護法 (APPI), recorded with their outcome: 利用停止 (Art. 35).

A 利用停止 takes effect when it is recorded: intake refuses every release of personal details on
consent or 支援会議 membership (each refusal on the ledger; an emergency release to protect life, body
or property stays possible, Art. 27(1)(ii)), and `UseRestrictionChanged` tells the router, which keeps
the case off every agency's feed and queue and tells the lead. Lifting it restores them. Who asked is
a code; the free-text notes stay here.
"""

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from services.intake.errors import UseAlreadyRestricted, UseNotRestricted
from services.intake.models import Case, SubjectRequest, UseRestrictionCreate, UseRestrictionLift
from services.intake.service import stage
from shared.auth import Principal
from shared.events import UseRestrictionChanged
from shared.ids import new_id

USE_RESTRICTION = "use_restriction"


def restrict_use(
    session: Session, *, case: Case, body: UseRestrictionCreate, principal: Principal, answer_within_days: int = 30
) -> SubjectRequest:
    """Record a 利用停止 and put it in effect now; raises UseAlreadyRestricted if one is. It is answered at
    once; its deadline (the municipality's `answer_within_days`) is recorded all the same."""
    if case.use_restricted_since is not None:
        raise UseAlreadyRestricted(f"a 利用停止 is in effect on case {case.id} since {case.use_restricted_since}")
    now = datetime.now(UTC)
    received_at = body.received_at or now
    request = SubjectRequest(
        id=new_id(),
        case_id=case.id,
        kind=USE_RESTRICTION,
        requested_by=body.requested_by.value,
        received_at=received_at,
        deadline=received_at + timedelta(days=answer_within_days),
        recorded_by=principal.agency_id,
        status="in_effect",
        note=body.note,
    )
    case.use_restricted_since = now
    session.add(request)
    session.add(case)
    stage(session, case, UseRestrictionChanged(case_id=case.id, restricted=True, request_id=request.id, changed_at=now))
    return request


def lift_use_restriction(
    session: Session, *, case: Case, body: UseRestrictionLift, principal: Principal
) -> SubjectRequest:
    """Lift the 利用停止 in effect; raises UseNotRestricted if none is."""
    request = session.exec(
        select(SubjectRequest).where(
            SubjectRequest.case_id == case.id,
            SubjectRequest.kind == USE_RESTRICTION,
            SubjectRequest.status == "in_effect",
        )
    ).first()
    if case.use_restricted_since is None or request is None:
        raise UseNotRestricted(f"no 利用停止 is in effect on case {case.id}")
    now = datetime.now(UTC)
    request.status, request.closed_at, request.closed_by, request.close_note = (
        "lifted",
        now,
        principal.agency_id,
        body.note,
    )
    case.use_restricted_since = None
    session.add(request)
    session.add(case)
    stage(
        session, case, UseRestrictionChanged(case_id=case.id, restricted=False, request_id=request.id, changed_at=now)
    )
    return request


def requests_of(session: Session, case: Case) -> list[SubjectRequest]:
    """The case's requests, oldest first."""
    query = select(SubjectRequest).where(SubjectRequest.case_id == case.id).order_by(col(SubjectRequest.received_at))
    return list(session.exec(query).all())
